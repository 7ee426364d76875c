//! The queue between a session and its app: one ordered stream, fed through two lanes.
//!
//! Everything the app sees travels in one FIFO, so [`Events`] (and a delegate) get a single ordered stream.
//! What differs is how an event gets in:
//!
//! - **Control** (peer added or removed, connection failed, resource started or finished): queued at once,
//!   never waiting for the app, so the session's actor and discovery keep running however far behind the app
//!   is. This lane is counted, not unbounded in practice: membership events are at most two per admitted
//!   connection, and while [`CONTROL_BACKLOG`] control events wait the session admits no new peer (inbound
//!   attempts are refused as "session full", dials are put off), drops reports of failed inbound attempts, and
//!   resource tasks wait for room. What can still arrive past the mark is bounded by the peers and handshakes
//!   already under way.
//! - **Data** (messages and incoming streams): counted in bytes, payload plus [`EVENT_OVERHEAD`], per peer
//!   ([`EVENT_BYTES_PER_PEER`]) and overall ([`EVENT_BYTES_TOTAL`]). A peer's connection reader waits for room
//!   before it reads more of that peer's control stream, so QUIC flow control holds that sender back and other
//!   peers carry on; a datagram that does not fit is dropped.
//!
//! Ordering: events come out in the order they went in. The actor queues `PeerAdded` before it starts reading
//! from the connection, so it precedes every message and stream of that connection. `PeerRemoved` is queued
//! through the connection's lane gate, which then refuses that connection's data: nothing of the connection
//! follows its `PeerRemoved`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};

use super::events::{Event, Message};

/// Bytes of data events (messages, incoming streams) from one peer that may wait for the app. When they are
/// used up the session stops reading that peer's messages until the app takes some.
pub const EVENT_BYTES_PER_PEER: usize = 16 << 20;
/// Bytes of data events from all peers together that may wait for the app.
pub const EVENT_BYTES_TOTAL: usize = 64 << 20;
/// What each data event counts on top of its payload (the event itself and its bookkeeping).
pub const EVENT_OVERHEAD: usize = 256;
/// Control events waiting for the app at which the session admits no new peer, drops reports of failed inbound
/// attempts and makes resource transfers wait before reporting.
pub const CONTROL_BACKLOG: usize = 1024;
/// Most data events handed over together.
pub(crate) const MAX_BATCH: usize = 64;

/// A data event as it waits in the queue: messages (nearly all of them) inline, in a third of an [`Event`]'s
/// size, anything else boxed. Many thousands of small messages a second move through here.
#[derive(Debug)]
pub(crate) enum Data {
    Message(Message),
    Other(Box<Event>),
}

impl From<Event> for Data {
    fn from(event: Event) -> Self {
        match event {
            Event::Message(m) => Data::Message(m),
            other => Data::Other(Box::new(other)),
        }
    }
}

impl From<Data> for Event {
    fn from(data: Data) -> Self {
        match data {
            Data::Message(m) => Event::Message(m),
            Data::Other(event) => *event,
        }
    }
}

/// What a data event costs in the byte budget.
pub(crate) fn cost(data: &Data) -> usize {
    EVENT_OVERHEAD
        + match data {
            Data::Message(m) => m.data.len(),
            Data::Other(_) => 0,
        }
}

/// One entry of the queue.
#[derive(Debug)]
enum Item {
    Control(Event),
    /// Data events of one peer, with what they cost.
    Data {
        events: Vec<Data>,
        lane: Arc<LaneState>,
        bytes: usize,
    },
}

/// Counters shared by the senders and the app's side.
#[derive(Debug)]
struct Shared {
    /// Bytes of data events queued, all peers.
    data: AtomicUsize,
    /// Control events queued.
    control: AtomicUsize,
    /// The app dropped its [`Events`].
    gone: AtomicBool,
    /// Bumped whenever the app takes something (or goes away), for senders waiting for room.
    released: watch::Sender<u64>,
}

impl Shared {
    fn bump(&self) {
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The app is gone (its [`Events`] was dropped, or the session shut down), or the peer was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueClosed;

/// Waits for the app to take something. Call [`Room::mark`] before checking for room, then
/// [`Room::changed`]: a release in between is not missed.
#[derive(Debug)]
pub(crate) struct Room {
    rx: watch::Receiver<u64>,
    shared: Arc<Shared>,
}

impl Room {
    /// Notes the releases seen so far.
    pub(crate) fn mark(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Returns once the app took something since the last [`Room::mark`]; `Err` if it is gone.
    pub(crate) async fn changed(&mut self) -> Result<(), QueueClosed> {
        if self.shared.gone.load(Ordering::Acquire) {
            return Err(QueueClosed);
        }
        self.rx.changed().await.map_err(|_| QueueClosed)?;
        if self.shared.gone.load(Ordering::Acquire) {
            return Err(QueueClosed);
        }
        Ok(())
    }
}

/// The sending side of a session's event queue (the control lane; data goes through a [`PeerLane`]).
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: mpsc::UnboundedSender<Item>,
    shared: Arc<Shared>,
}

impl EventSender {
    /// Resolves once the app has dropped its [`Events`].
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }

    fn enqueue_control(&self, event: Event) -> Result<(), QueueClosed> {
        self.shared.control.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(Item::Control(event)).is_err() {
            self.shared.control.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueClosed);
        }
        Ok(())
    }

    /// Queues a control event at once, whatever the backlog (for the actor, whose events are bounded).
    pub(crate) fn push(&self, event: Event) {
        let _ = self.enqueue_control(event);
    }

    /// Queues a control event unless [`CONTROL_BACKLOG`] events wait; `false` if it was dropped.
    pub(crate) fn offer(&self, event: Event) -> bool {
        !self.backlogged() && self.enqueue_control(event).is_ok()
    }

    /// Queues a presence event (lossy: the app can always ask for the list) while fewer than half of
    /// [`CONTROL_BACKLOG`] events wait, so presence never crowds out membership; `false` if it was dropped.
    pub(crate) fn offer_presence(&self, event: Event) -> bool {
        self.shared.control.load(Ordering::Acquire) < CONTROL_BACKLOG / 2 && self.enqueue_control(event).is_ok()
    }

    /// Queues a control event, first waiting while [`CONTROL_BACKLOG`] events wait (for tasks that may wait).
    pub(crate) async fn send(&self, event: Event) -> Result<(), QueueClosed> {
        let mut room = self.room();
        loop {
            room.mark();
            if !self.backlogged() {
                return self.enqueue_control(event);
            }
            room.changed().await?;
        }
    }

    /// Whether [`CONTROL_BACKLOG`] control events wait: the session then admits no new peer.
    pub(crate) fn backlogged(&self) -> bool {
        self.shared.control.load(Ordering::Acquire) >= CONTROL_BACKLOG
    }

    /// Bytes of data events waiting for the app.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.data.load(Ordering::Acquire)
    }

    /// Control events waiting for the app.
    pub(crate) fn queued_control(&self) -> usize {
        self.shared.control.load(Ordering::Acquire)
    }

    /// A way to wait for the app to take events.
    pub(crate) fn room(&self) -> Room {
        Room {
            rx: self.shared.released.subscribe(),
            shared: self.shared.clone(),
        }
    }

    /// A new data lane for one connection, with its own byte budget.
    pub(crate) fn lane(&self) -> PeerLane {
        PeerLane {
            sender: self.clone(),
            state: Arc::new(LaneState::default()),
        }
    }

    /// Closes a connection's lane and queues `removed` (its `PeerRemoved`) after everything it queued; the lane
    /// takes nothing more.
    pub(crate) fn remove(&self, gate: &LaneGate, removed: Event) {
        let mut closed = lock(&gate.closed);
        *closed = true;
        let _ = self.enqueue_control(removed);
    }
}

fn lock(m: &Mutex<bool>) -> MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection's share of the data budget, and the gate that orders its data before its removal.
#[derive(Debug, Default)]
pub(crate) struct LaneState {
    /// Bytes of this connection's data events queued.
    used: AtomicUsize,
    /// Set once the connection's `PeerRemoved` is queued; held while queueing so the two cannot cross.
    closed: Mutex<bool>,
}

/// What the actor keeps of a connection's lane to close it.
pub(crate) type LaneGate = Arc<LaneState>;

/// The data lane of one connection: its messages and streams, bounded in bytes.
#[derive(Debug, Clone)]
pub(crate) struct PeerLane {
    sender: EventSender,
    state: Arc<LaneState>,
}

impl PeerLane {
    /// The gate the actor closes when the peer is removed.
    pub(crate) fn gate(&self) -> LaneGate {
        self.state.clone()
    }

    /// A way to wait for room.
    pub(crate) fn room(&self) -> Room {
        self.sender.room()
    }

    /// Reserves `cost` bytes of this lane's and the overall budget. An event always fits an empty budget.
    fn reserve(&self, cost: usize) -> bool {
        let used = self.state.used.load(Ordering::Acquire);
        if used > 0 && used + cost > EVENT_BYTES_PER_PEER {
            return false;
        }
        let total = &self.sender.shared.data;
        let fits = |t: usize| (t == 0 || t + cost <= EVENT_BYTES_TOTAL).then_some(t + cost);
        if total.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_err() {
            return false;
        }
        self.state.used.fetch_add(cost, Ordering::AcqRel);
        true
    }

    fn unreserve(&self, bytes: usize) {
        self.state.used.fetch_sub(bytes, Ordering::AcqRel);
        self.sender.shared.data.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Queues as many events from the front of `batch` as the budgets allow, in order, leaving the rest.
    /// `Err` once the peer was removed or the app is gone.
    pub(crate) fn push_fitting(&self, batch: &mut Vec<Data>) -> Result<(), QueueClosed> {
        let closed = lock(&self.state.closed);
        if *closed {
            return Err(QueueClosed);
        }
        let mut fitting = 0;
        for event in batch.iter() {
            if !self.reserve(cost(event)) {
                break;
            }
            fitting += 1;
        }
        if fitting == batch.len() && fitting <= MAX_BATCH {
            // The common case: everything in one hand-over, without copying.
            let events = std::mem::take(batch);
            return self.hand_over(events);
        }
        // In hand-overs of at most MAX_BATCH; what does not fit stays at the front of `batch` (moved once).
        let mut taken = batch.drain(..fitting);
        loop {
            let events: Vec<Data> = taken.by_ref().take(MAX_BATCH).collect();
            if events.is_empty() {
                break;
            }
            if let Err(closed) = self.hand_over(events) {
                self.unreserve(taken.map(|e| cost(&e)).sum());
                return Err(closed);
            }
        }
        drop(closed);
        Ok(())
    }

    /// Queues `events`, whose cost is reserved already; gives it back if the app is gone.
    fn hand_over(&self, events: Vec<Data>) -> Result<(), QueueClosed> {
        if events.is_empty() {
            return Ok(());
        }
        let bytes = events.iter().map(cost).sum();
        let item = Item::Data {
            events,
            lane: self.state.clone(),
            bytes,
        };
        if self.sender.tx.send(item).is_err() {
            self.unreserve(bytes);
            return Err(QueueClosed);
        }
        Ok(())
    }

    /// Queues `event` if it fits; `Ok(false)` if it was dropped for want of room.
    pub(crate) fn try_send(&self, event: Event) -> Result<bool, QueueClosed> {
        let mut batch = vec![Data::from(event)];
        self.push_fitting(&mut batch)?;
        Ok(batch.is_empty())
    }

    /// Queues every event of `batch` in order, waiting for room. Leaves `batch` empty.
    pub(crate) async fn send_all(&self, batch: &mut Vec<Data>, room: &mut Room) -> Result<(), QueueClosed> {
        loop {
            room.mark();
            self.push_fitting(batch)?;
            if batch.is_empty() {
                return Ok(());
            }
            room.changed().await?;
        }
    }

    /// Queues `event`, waiting for room.
    pub(crate) async fn send(&self, event: Event) -> Result<(), QueueClosed> {
        let mut room = self.room();
        self.send_all(&mut vec![Data::from(event)], &mut room).await
    }
}

/// A session's event queue: the sending side for the session, the receiving side for the app.
pub(crate) fn queue() -> (EventSender, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        data: AtomicUsize::new(0),
        control: AtomicUsize::new(0),
        gone: AtomicBool::new(false),
        released: watch::Sender::new(0),
    });
    (
        EventSender {
            tx,
            shared: shared.clone(),
        },
        Events {
            rx,
            shared,
            taken: Vec::new().into_iter(),
        },
    )
}

/// The session's events as an async stream. It ends after the session has shut down.
///
/// Events come in one order (see [`crate::Event`]): a peer's `PeerAdded` before any of its messages, its
/// `PeerRemoved` after the last. Up to [`EVENT_BYTES_PER_PEER`] of one peer's messages (and
/// [`EVENT_BYTES_TOTAL`] of all) wait here; past that the session stops reading from that peer until the app
/// catches up, while membership changes are always queued at once.
///
/// Dropping `Events` shuts the session down, as [`Session::shutdown`](crate::Session::shutdown) does: nobody
/// would read what peers send, so the session says goodbye (peers see
/// [`RemovalReason::Left`](crate::RemovalReason::Left)) instead of leaving them connected to an app that no
/// longer listens. Later calls on the [`Session`](crate::Session) fail with a "session closed" error. Keep
/// `Events` for as long as the session should run, even if you only send (read it and ignore what you do not
/// need).
///
/// ```no_run
/// # async fn run(mut events: multipeer::Events) {
/// while let Some(event) = events.next().await {
///     if let multipeer::Event::Message(m) = event {
///         tracing::info!("{} bytes from {}", m.data.len(), m.peer.short());
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Item>,
    shared: Arc<Shared>,
    /// The rest of the batch taken last.
    taken: std::vec::IntoIter<Data>,
}

impl Events {
    /// Takes an entry off the queue, giving back what it counted.
    fn take(&mut self, item: Item) -> Option<Event> {
        let event = match item {
            Item::Control(event) => {
                self.shared.control.fetch_sub(1, Ordering::AcqRel);
                Some(event)
            }
            Item::Data { events, lane, bytes } => {
                lane.used.fetch_sub(bytes, Ordering::AcqRel);
                self.shared.data.fetch_sub(bytes, Ordering::AcqRel);
                self.taken = events.into_iter();
                self.taken.next().map(Event::from)
            }
        };
        self.shared.bump();
        event
    }

    /// The next event, or `None` once the session has shut down.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(data) = self.taken.next() {
            return Some(data.into());
        }
        loop {
            let item = self.rx.recv().await?;
            if let Some(event) = self.take(item) {
                return Some(event);
            }
        }
    }

    pub(crate) fn blocking_next(&mut self) -> Option<Event> {
        if let Some(data) = self.taken.next() {
            return Some(data.into());
        }
        loop {
            let item = self.rx.blocking_recv()?;
            if let Some(event) = self.take(item) {
                return Some(event);
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // Senders waiting for room give up instead of waiting for an app that is gone.
        self.shared.gone.store(true, Ordering::Release);
        self.rx.close();
        self.shared.bump();
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if let Some(data) = self.taken.next() {
            return Poll::Ready(Some(data.into()));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(item)) => {
                    if let Some(event) = self.take(item) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::session::events::{ConnectionFailure, Message, Peer, Reliability, RemovalReason};
    use crate::PeerId;

    fn id() -> PeerId {
        crate::Identity::generate().peer_id()
    }

    fn message(peer: PeerId, len: usize) -> Event {
        Event::Message(Message {
            peer,
            data: Bytes::from(vec![0u8; len]),
            reliability: Reliability::Reliable,
        })
    }

    fn failed(peer: PeerId) -> Event {
        Event::ConnectionFailed {
            peer,
            reason: ConnectionFailure::Unreachable,
        }
    }

    /// Payload that makes an event cost exactly 1 MiB.
    const MIB_EVENT: usize = (1 << 20) - EVENT_OVERHEAD;

    #[tokio::test]
    async fn data_is_counted_in_bytes_per_peer_and_overall() {
        let (tx, mut events) = queue();
        let peer = id();
        let lanes: Vec<PeerLane> = (0..5).map(|_| tx.lane()).collect();
        // One peer: 16 of 20 fit its 16 MiB; four peers fill the 64 MiB overall.
        for lane in &lanes[..4] {
            let mut batch: Vec<Data> = (0..20).map(|_| message(peer, MIB_EVENT).into()).collect();
            lane.push_fitting(&mut batch).unwrap();
            assert_eq!(batch.len(), 4);
        }
        assert_eq!(tx.queued_bytes(), EVENT_BYTES_TOTAL);
        assert_eq!(lanes[0].state.used.load(Ordering::Acquire), EVENT_BYTES_PER_PEER);
        // A fifth peer has room of its own but none is left overall: its datagram is dropped.
        assert!(!lanes[4].try_send(message(peer, 10)).unwrap());
        // Control events go in regardless.
        tx.push(failed(peer));
        assert_eq!(tx.queued_control(), 1);
        // The app takes one event (of the first peer's batch): its bytes come back, to the lane and overall.
        let mut room = lanes[4].room();
        room.mark();
        assert!(matches!(events.next().await, Some(Event::Message(_))));
        assert_eq!(tx.queued_bytes(), 16 * (1 << 20) * 3);
        assert_eq!(lanes[0].state.used.load(Ordering::Acquire), 0);
        // Waiters hear of it, and the fifth peer now fits.
        room.changed().await.unwrap();
        assert!(lanes[4].try_send(message(peer, 10)).unwrap());
        assert_eq!(tx.queued_bytes(), 48 * (1 << 20) + 10 + EVENT_OVERHEAD);
    }

    #[tokio::test]
    async fn a_long_batch_goes_over_in_order_and_what_does_not_fit_stays_in_order() {
        let (tx, mut events) = queue();
        let peer = id();
        let lane = tx.lane();
        let numbered = |range: std::ops::Range<u32>, len: usize| -> Vec<Data> {
            range
                .map(|i| {
                    let mut data = vec![0u8; len];
                    data[..4].copy_from_slice(&i.to_be_bytes());
                    Data::Message(Message {
                        peer,
                        data: Bytes::from(data),
                        reliability: Reliability::Reliable,
                    })
                })
                .collect()
        };
        // Far more than one hand-over's worth, all fitting.
        let mut batch = numbered(0..1000, 8);
        lane.push_fitting(&mut batch).unwrap();
        assert!(batch.is_empty());
        // Then a batch of which only a part fits this peer's budget: the rest stays, first unsent first.
        let big = EVENT_BYTES_PER_PEER / 100;
        let mut batch = numbered(1000..1200, big);
        lane.push_fitting(&mut batch).unwrap();
        let stayed = batch.len();
        assert!(stayed > 0 && stayed < 200, "{stayed} stayed");
        let first_left = match &batch[0] {
            Data::Message(m) => u32::from_be_bytes(m.data[..4].try_into().unwrap()),
            Data::Other(_) => panic!("not a message"),
        };
        assert_eq!(first_left as usize, 1200 - stayed);
        for want in 0..(1200 - stayed) as u32 {
            match events.next().await {
                Some(Event::Message(m)) => assert_eq!(u32::from_be_bytes(m.data[..4].try_into().unwrap()), want),
                other => panic!("expected message {want}, got {other:?}"),
            }
        }
        assert_eq!(tx.queued_bytes(), 0, "everything taken was given back");
    }

    #[tokio::test]
    async fn removal_follows_the_last_message_and_closes_the_lane() {
        let (tx, mut events) = queue();
        let peer = id();
        let lane = tx.lane();
        assert!(lane.try_send(message(peer, 3)).unwrap());
        let removed = Event::PeerRemoved {
            peer: Peer::new(peer, "p".into(), Default::default(), serde_json::Value::Null),
            reason: RemovalReason::Removed,
        };
        tx.remove(&lane.gate(), removed);
        assert_eq!(lane.try_send(message(peer, 3)), Err(QueueClosed));
        assert!(matches!(events.next().await, Some(Event::Message(_))));
        assert!(matches!(events.next().await, Some(Event::PeerRemoved { .. })));
        assert_eq!((tx.queued_bytes(), tx.queued_control()), (0, 0));
    }

    #[test]
    fn presence_fills_at_most_half_the_control_backlog() {
        let (tx, _events) = queue();
        let nearby = || Event::PeerFound(crate::NearbyPeer::new(id(), "n", Default::default()));
        let mut taken = 0;
        for _ in 0..CONTROL_BACKLOG {
            taken += usize::from(tx.offer_presence(nearby()));
        }
        assert_eq!(taken, CONTROL_BACKLOG / 2);
        // Membership and failures still have room before the session counts as backlogged.
        assert!(!tx.backlogged());
        assert!(tx.offer(failed(id())));
    }

    #[test]
    fn a_control_backlog_drops_only_what_may_be_dropped() {
        let (tx, _events) = queue();
        let peer = id();
        for _ in 0..CONTROL_BACKLOG {
            assert!(tx.offer(failed(peer)));
        }
        assert!(tx.backlogged());
        assert!(!tx.offer(failed(peer)));
        tx.push(failed(peer));
        assert_eq!(tx.queued_control(), CONTROL_BACKLOG + 1);
    }
}
