//! Named streams for the foreign side: one-way outgoing, and two-way (duplex).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::MultipeerError;

fn io_error(e: std::io::Error) -> MultipeerError {
    MultipeerError::Io { detail: e.to_string() }
}

/// Runs `work` on the session's runtime (the foreign side may call from any thread or executor).
async fn on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    work: impl std::future::Future<Output = Result<T, MultipeerError>> + Send + 'static,
) -> Result<T, MultipeerError> {
    runtime.spawn(work).await.map_err(|_| MultipeerError::SessionClosed)?
}

/// An outgoing named byte stream: `write` waits while the receiver is behind; `finish` ends it.
#[derive(uniffi::Object)]
pub struct OutgoingStream {
    runtime: Arc<tokio::runtime::Runtime>,
    stream: Arc<Mutex<Option<multipeer::OutgoingStream>>>,
}

impl OutgoingStream {
    pub(crate) fn new(runtime: Arc<tokio::runtime::Runtime>, stream: multipeer::OutgoingStream) -> Self {
        Self {
            runtime,
            stream: Arc::new(Mutex::new(Some(stream))),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl OutgoingStream {
    /// Writes all of `data`.
    pub async fn write(&self, data: Vec<u8>) -> Result<(), MultipeerError> {
        let stream = self.stream.clone();
        on(&self.runtime, async move {
            let mut guard = stream.lock().await;
            let s = guard.as_mut().ok_or(MultipeerError::StreamClosed)?;
            s.write_all(&data).await.map_err(io_error)
        })
        .await
    }

    /// Ends the stream and waits until the receiver has read all of it.
    pub async fn finish(&self) -> Result<(), MultipeerError> {
        let stream = self.stream.clone();
        on(&self.runtime, async move {
            let s = stream.lock().await.take().ok_or(MultipeerError::StreamClosed)?;
            s.finish().await.map_err(io_error)
        })
        .await
    }

    /// Abandons the stream; the receiver sees an error.
    pub fn cancel(&self) {
        if let Ok(mut guard) = self.stream.try_lock() {
            if let Some(s) = guard.take() {
                s.cancel();
            }
        }
    }
}

/// A two-way named stream with one peer: `read` what it writes, `write` what it reads. Both directions have
/// back-pressure; `finish` ends our direction (the peer reads the end), `cancel` or releasing it resets both.
#[derive(uniffi::Object)]
pub struct DuplexStream {
    peer_id: String,
    name: String,
    incoming: Arc<Mutex<Option<multipeer::IncomingStream>>>,
    outgoing: OutgoingStream,
}

impl DuplexStream {
    pub(crate) fn new(runtime: Arc<tokio::runtime::Runtime>, stream: multipeer::DuplexStream) -> Self {
        let (peer_id, name) = (stream.peer().to_string(), stream.name().to_owned());
        let (incoming, outgoing) = stream.into_split();
        Self {
            peer_id,
            name,
            incoming: Arc::new(Mutex::new(Some(incoming))),
            outgoing: OutgoingStream::new(runtime, outgoing),
        }
    }
}

/// Most bytes one `read` returns.
const MAX_READ: u32 = 1 << 20;

#[uniffi::export(async_runtime = "tokio")]
impl DuplexStream {
    /// The peer at the other end.
    pub fn peer_id(&self) -> String {
        self.peer_id.clone()
    }

    /// The stream's name.
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Reads what the peer wrote next, at most `max` bytes (at most 1 MiB); empty once the peer finished.
    pub async fn read(&self, max: u32) -> Result<Vec<u8>, MultipeerError> {
        let incoming = self.incoming.clone();
        let max = max.clamp(1, MAX_READ) as usize;
        on(&self.outgoing.runtime, async move {
            let mut guard = incoming.lock().await;
            let s = guard.as_mut().ok_or(MultipeerError::StreamClosed)?;
            let mut buf = vec![0u8; max];
            let n = s.read(&mut buf).await.map_err(io_error)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
    }

    /// Writes all of `data` to the peer.
    pub async fn write(&self, data: Vec<u8>) -> Result<(), MultipeerError> {
        self.outgoing.write(data).await
    }

    /// Ends our direction and waits until the peer has read all of it; reading goes on.
    pub async fn finish(&self) -> Result<(), MultipeerError> {
        self.outgoing.finish().await
    }

    /// Resets both directions.
    pub fn cancel(&self) {
        self.outgoing.cancel();
        if let Ok(mut guard) = self.incoming.try_lock() {
            guard.take();
        }
    }
}
