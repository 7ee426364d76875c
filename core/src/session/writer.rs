//! The sending half of a control stream: reliable messages are framed into a bounded queue and reach QUIC in
//! as few writes as possible.
//!
//! A message sent on its own (nothing queued, and no other message sent on the link within [`BURST`]) is
//! written by the sender itself, at once: a lone message never waits for another task. A message that follows
//! another closely is appended to the queue's buffer instead, and a flusher task hands everything queued to
//! QUIC in one write. Many small messages then cost one stream write instead of one each (QUIC keeps every
//! write as a separate segment until it is acknowledged, and finds data by walking them, so thousands of tiny
//! segments make every packet dearer).
//!
//! The queue is bounded ([`QUEUE_LIMIT`] bytes, counting what the flusher is still writing): senders wait for
//! room while it is full, which carries QUIC's flow control back to them.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::Notify;

/// Most bytes queued on one link (a message larger than the room left is still taken whole).
pub(crate) const QUEUE_LIMIT: usize = 256 * 1024;
/// A message sent within this time of the previous one on the same link is queued for the flusher (a burst)
/// rather than written at once. Far shorter than any network round trip, far longer than a send.
const BURST: Duration = Duration::from_micros(20);
/// Payloads up to this size are copied into the queue's buffer; larger ones are queued as they are.
const COPY_LIMIT: usize = 4 * 1024;
/// The queue's buffer grows by at least this much at a time.
const BUFFER_BLOCK: usize = 64 * 1024;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

#[derive(Default)]
struct Queue {
    /// Frames not handed to QUIC yet, in order: `chunks`, then `tail`.
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    /// Bytes queued plus bytes the flusher took and has not written yet.
    len: usize,
    /// The flusher has work: while set, senders only append. Cleared by the flusher once nothing is queued.
    busy: bool,
    /// When the last frame was queued while the flusher was idle, or when the flusher last ran dry.
    last: Option<Instant>,
    /// Writing failed (connection lost, stream stopped) or the goodbye was queued: later frames are refused.
    closed: bool,
    /// Writing failed: whatever is queued is dropped.
    failed: bool,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    fn push(&mut self, header: &[u8], payload: &Bytes) {
        let copied = if payload.len() <= COPY_LIMIT {
            header.len() + payload.len()
        } else {
            header.len()
        };
        if self.tail.capacity() - self.tail.len() < copied {
            self.tail.reserve(copied.max(BUFFER_BLOCK));
        }
        self.tail.put_slice(header);
        if payload.len() <= COPY_LIMIT {
            self.tail.put_slice(payload);
        } else {
            let head = self.tail.split().freeze();
            self.chunks.push_back(head);
            self.chunks.push_back(payload.clone());
        }
        self.len += header.len() + payload.len();
    }

    /// Moves everything queued to the end of `batch`.
    fn take(&mut self, batch: &mut Vec<Bytes>) {
        batch.extend(self.chunks.drain(..));
        if !self.tail.is_empty() {
            batch.push(self.tail.split().freeze());
        }
    }

    fn fail(&mut self) {
        self.closed = true;
        self.failed = true;
        self.chunks.clear();
        self.tail.clear();
        self.len = 0;
    }
}

/// Writes as much of `batch` as QUIC takes now; `Pending` once it takes no more. Written chunks are removed,
/// a partly written one is cut to what is left. Adds the bytes written to `written`.
fn poll_write_batch(
    stream: &mut quinn::SendStream,
    cx: &mut Context<'_>,
    batch: &mut Vec<Bytes>,
    written: &mut usize,
) -> Poll<Result<(), quinn::WriteError>> {
    while !batch.is_empty() {
        // `write_chunks` is cancel safe: polled once and dropped, it wrote exactly what it reports.
        let polled = pin!(stream.write_chunks(batch)).poll(cx);
        match polled {
            Poll::Ready(Ok(w)) => {
                batch.drain(..w.chunks);
                *written += w.bytes;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(()))
}

/// The control stream's sending half, shared by every sender on one link and its flusher task.
pub(crate) struct ControlWriter {
    queue: Mutex<Queue>,
    /// Locked only while writing, never while waiting; taken after `queue` when both are needed.
    stream: Mutex<quinn::SendStream>,
    /// Wakes the flusher.
    work: Notify,
    /// Wakes senders waiting for room and a goodbye waiting for the queue to drain.
    progress: Notify,
}

impl ControlWriter {
    pub(crate) fn new(stream: quinn::SendStream) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            stream: Mutex::new(stream),
            work: Notify::new(),
            progress: Notify::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stream(&self) -> MutexGuard<'_, quinn::SendStream> {
        self.stream.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one frame (`header` then `payload`), waiting while the queue is full. `Err` once the stream
    /// failed or the goodbye was queued.
    pub(crate) async fn send(&self, header: &[u8], payload: &Bytes) -> Result<(), Closed> {
        // Queuing rarely waits: count it against the task's budget so that a sender in a tight loop still lets
        // other tasks on its thread (receivers, connections) run.
        tokio::task::coop::consume_budget().await;
        loop {
            if self.try_send(header, payload)? {
                return Ok(());
            }
            let room = self.progress.notified();
            let mut room = pin!(room);
            {
                // Registered, then checked again under the lock: the flusher's next wake-up cannot be missed.
                room.as_mut().enable();
                let queue = self.queue();
                if queue.closed {
                    return Err(Closed);
                }
                if queue.len < QUEUE_LIMIT {
                    continue;
                }
            }
            room.await;
        }
    }

    /// Queues one frame if the queue has room: `Ok(false)` if it is full (nothing queued), `Err` once the
    /// stream failed or the goodbye was queued. Never waits.
    pub(crate) fn try_send(&self, header: &[u8], payload: &Bytes) -> Result<bool, Closed> {
        let mut queue = self.queue();
        if queue.closed {
            return Err(Closed);
        }
        if queue.len >= QUEUE_LIMIT {
            return Ok(false);
        }
        if queue.busy {
            // The flusher will take it; it notes the time when it runs dry.
            queue.push(header, payload);
            return Ok(true);
        }
        self.push(&mut queue, header, payload, Instant::now()).map(|()| true)
    }

    fn push(&self, queue: &mut Queue, header: &[u8], payload: &Bytes, now: Instant) -> Result<(), Closed> {
        let burst = queue
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < BURST);
        queue.last = Some(now);
        queue.push(header, payload);
        if burst {
            queue.busy = true;
            self.work.notify_one();
            return Ok(());
        }
        // On its own: write now without waiting; the flusher takes over whatever QUIC cannot take yet.
        let mut batch = Vec::with_capacity(2);
        queue.take(&mut batch);
        let mut written = 0;
        let result = poll_write_batch(
            &mut self.stream(),
            &mut Context::from_waker(Waker::noop()),
            &mut batch,
            &mut written,
        );
        queue.len = queue.len.saturating_sub(written);
        match result {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Pending => {
                // The queue was empty, and it stays locked: what is left goes first.
                queue.chunks.extend(batch);
                queue.busy = true;
                self.work.notify_one();
                Ok(())
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!("control stream write failed: {e}");
                queue.fail();
                drop(batch);
                self.progress.notify_waiters();
                Err(Closed)
            }
        }
    }

    /// Writes what senders queue until the connection closes or writing fails. Run it on a task of its own.
    pub(crate) async fn flush(&self, conn: quinn::Connection) {
        // However the flusher ends (returning, or aborted at shutdown), waiting senders must learn it.
        struct FailOnExit<'a>(&'a ControlWriter);
        impl Drop for FailOnExit<'_> {
            fn drop(&mut self) {
                self.0.queue().fail();
                self.0.progress.notify_waiters();
            }
        }
        let _fail_on_exit = FailOnExit(self);
        let mut closed = pin!(conn.closed());
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                _ = self.work.notified() => {}
                _ = &mut closed => {
                    self.queue().fail();
                    self.progress.notify_waiters();
                    return;
                }
            }
            loop {
                {
                    let mut queue = self.queue();
                    if queue.is_empty() {
                        // Senders did not look at the clock while we were busy: a message now is still part
                        // of the burst.
                        queue.busy = false;
                        queue.last = Some(Instant::now());
                        break;
                    }
                    queue.take(&mut batch);
                }
                while !batch.is_empty() {
                    let mut written = 0;
                    let result = poll_fn(|cx| {
                        match poll_write_batch(&mut self.stream(), cx, &mut batch, &mut written) {
                            // Report progress as soon as there is some, so waiting senders get room early.
                            Poll::Pending if written == 0 => Poll::Pending,
                            Poll::Pending => Poll::Ready(Ok(())),
                            ready => ready,
                        }
                    })
                    .await;
                    if let Err(e) = result {
                        tracing::debug!("control stream write failed: {e}");
                        batch.clear();
                        self.queue().fail();
                        self.progress.notify_waiters();
                        return;
                    }
                    {
                        let mut queue = self.queue();
                        queue.len = queue.len.saturating_sub(written);
                    }
                    self.progress.notify_waiters();
                }
            }
            self.progress.notify_waiters();
        }
    }

    /// Queues `goodbye` as the last frame, waits until everything queued was handed to QUIC and finishes the
    /// stream. Needs the flusher running.
    pub(crate) async fn close(&self, goodbye: &[u8]) {
        {
            let mut queue = self.queue();
            if queue.closed {
                return;
            }
            queue.push(goodbye, &Bytes::new());
            queue.closed = true;
            queue.busy = true;
            self.work.notify_one();
        }
        loop {
            let drained = self.progress.notified();
            let mut drained = pin!(drained);
            {
                let queue = self.queue();
                if queue.failed {
                    return;
                }
                if !queue.busy {
                    break;
                }
                drained.as_mut().enable();
            }
            drained.await;
        }
        let _ = self.stream().finish();
    }
}
