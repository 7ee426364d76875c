//! Resources: files sent to a peer with progress, cancellation, an integrity check and resumption.
//!
//! [`crate::Session::send_resource`] starts a transfer and returns a [`ResourceTransfer`]; the receiving
//! session reports [`crate::Event::ResourceStarted`] with its own handle and, once the file is complete and
//! its SHA-256 matches, [`crate::Event::ResourceFinished`] with the path it was saved to. A transfer cut off
//! by a lost connection resumes where it stopped when the peer comes back within the resume window.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::identity::PeerId;
use crate::proto::resource::{Refusal, RESOURCE_CANCELLED, RESOURCE_ID_LEN};

mod direct;
pub(crate) mod host;
mod names;
mod pipe;
pub(crate) mod recv;
pub(crate) mod send;
mod store;

pub(crate) use host::{Host, Report};
pub(crate) use recv::Hub;

/// Most bidirectional streams (resources and duplex streams) one peer may have open to us at once (QUIC stream
/// credit; more wait).
pub const MAX_INCOMING_PER_PEER: u32 = 64;
/// Most incoming transfers tracked at once (running or waiting to resume); more are refused as busy.
pub const MAX_INCOMING_TRANSFERS: usize = 64;

/// Identifies one transfer; the same across resumptions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(pub(crate) [u8; RESOURCE_ID_LEN]);

impl ResourceId {
    pub(crate) fn random() -> Self {
        use ring::rand::SecureRandom;
        let mut id = [0u8; RESOURCE_ID_LEN];
        // The system RNG only fails on broken platforms; a fixed id then still works, it just cannot resume
        // two such transfers from one peer at once.
        let _ = ring::rand::SystemRandom::new().fill(&mut id);
        Self(id)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({self})")
    }
}

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes transferred (on resumption this starts where the interrupted attempt stopped).
    pub transferred: u64,
    /// Size of the resource.
    pub total: u64,
    /// Recent rate, bytes per second (0 while interrupted).
    pub bytes_per_second: f64,
}

impl Progress {
    /// Progress of `transferred` bytes out of `total`, at `bytes_per_second` (for tests and app-side models).
    pub fn new(transferred: u64, total: u64, bytes_per_second: f64) -> Self {
        Self {
            transferred,
            total,
            bytes_per_second,
        }
    }

    /// `transferred / total`, from 0.0 to 1.0 (1.0 for an empty resource).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.transferred as f64 / self.total as f64
        }
    }
}

/// A resource offer waiting for the app's answer ([`crate::Event::ResourceOffered`], with
/// [`crate::config::ResourceAcceptance::Manual`]): read it as a [`ResourceOffer`], hold it while the user
/// decides, then accept or decline it. Unanswered for [`crate::SessionConfigBuilder::answer_timeout`], it is
/// declined.
pub type PendingResource = crate::pending::Pending<ResourceOffer>;
/// Most offers waiting for the app's answer at once; more are refused as busy.
pub const MAX_PENDING_OFFERS: usize = 8;

/// A resource a peer offers; see [`crate::SessionBuilder::resource_filter`] and [`PendingResource`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceOffer {
    /// Who offers it.
    pub peer: PeerId,
    /// The name it was sent with (the saved file gets a sanitized form of it).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A completed transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Bytes in the resource.
    pub size: u64,
    /// SHA-256 of its content, checked by the receiver.
    pub sha256: [u8; 32],
    /// Where the receiver saved it (on the receiving side; `None` on the sending side).
    pub path: Option<PathBuf>,
    /// Where the last attempt started: non-zero when the transfer resumed after an interruption.
    pub resumed_from: u64,
}

/// Why a receiver refused a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The app declined it.
    Declined,
    /// It is larger than the receiver's [`crate::SessionConfigBuilder::max_resource_size`], or than what is
    /// left of the sender's [`crate::SessionConfigBuilder::max_resource_bytes_per_peer`].
    TooLarge,
    /// The receiver has too many transfers under way.
    Busy,
    /// The receiver cannot store it (for example its directory is not writable or not private, or its disk
    /// lacks the space).
    Unavailable,
}

impl From<Refusal> for RefusalReason {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Declined => Self::Declined,
            Refusal::TooLarge => Self::TooLarge,
            Refusal::Busy => Self::Busy,
            Refusal::Unavailable => Self::Unavailable,
            // Senders report this one as `ResourceError::CancelledByPeer`.
            Refusal::Cancelled => Self::Declined,
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Declined => "declined",
            Self::TooLarge => "too large",
            Self::Busy => "busy",
            Self::Unavailable => "cannot store it",
        })
    }
}

/// Why [`crate::Session::send_resource`] did not start a transfer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SendResourceError {
    /// The peer is not connected.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// The session has shut down.
    #[error("the session is closed")]
    SessionClosed,
    /// The name is empty or longer than 255 bytes.
    #[error("invalid resource name: must be 1-255 bytes of UTF-8")]
    InvalidName,
    /// The file cannot be read (or is not a regular file).
    #[error("file error: {0}")]
    Io(#[source] Arc<io::Error>),
}

impl From<io::Error> for SendResourceError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// Why a resource transfer failed once it started.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// The session has shut down.
    #[error("the session is closed")]
    SessionClosed,
    /// Reading or writing the file failed.
    #[error("file error: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The receiver refused it.
    #[error("the receiver refused the resource: {0}")]
    Refused(RefusalReason),
    /// Cancelled on this side.
    #[error("cancelled")]
    Cancelled,
    /// Cancelled by the peer.
    #[error("cancelled by the peer")]
    CancelledByPeer,
    /// The received data does not match the sender's SHA-256; it was discarded.
    #[error("integrity check failed: the SHA-256 of the received data differs")]
    IntegrityCheckFailed,
    /// The connection was lost and the peer did not come back within the resume window.
    #[error("interrupted: the peer did not come back within the resume window")]
    Interrupted,
    /// The partial file on disk was replaced by something else (for example a symlink) while the transfer ran
    /// or waited to resume; nothing was saved and the replacement was left alone.
    #[error("the partial file was replaced on disk; the transfer was abandoned")]
    PartialFileReplaced,
    /// The peer broke the resource protocol.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

impl From<io::Error> for ResourceError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// Direction of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We send it.
    Outgoing,
    /// A peer sends it to us.
    Incoming,
}

pub(crate) type Outcome = Option<Result<Delivered, ResourceError>>;

pub(crate) struct TransferState {
    id: ResourceId,
    peer: PeerId,
    name: String,
    size: u64,
    direction: Direction,
    progress: watch::Sender<Progress>,
    outcome: watch::Sender<Outcome>,
    cancel: watch::Sender<bool>,
}

impl TransferState {
    pub(crate) fn new(id: ResourceId, peer: PeerId, name: String, size: u64, direction: Direction) -> Arc<Self> {
        Arc::new(Self {
            id,
            peer,
            name,
            size,
            direction,
            progress: watch::Sender::new(Progress {
                transferred: 0,
                total: size,
                bytes_per_second: 0.0,
            }),
            outcome: watch::Sender::new(None),
            cancel: watch::Sender::new(false),
        })
    }

    pub(crate) fn report(&self, transferred: u64, bytes_per_second: f64) {
        self.progress.send_replace(Progress {
            transferred,
            total: self.size,
            bytes_per_second,
        });
    }

    /// Records the outcome once; later calls are ignored.
    pub(crate) fn finish(&self, outcome: Result<Delivered, ResourceError>) -> bool {
        let mut first = false;
        self.outcome.send_if_modified(|o| {
            if o.is_none() {
                *o = Some(outcome);
                first = true;
            }
            first
        });
        if first {
            self.progress.send_modify(|p| p.bytes_per_second = 0.0);
        }
        first
    }

    pub(crate) fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancel.subscribe()
    }
}

/// Measures the rate of one attempt.
pub(crate) struct Rate {
    start: tokio::time::Instant,
    from: u64,
}

impl Rate {
    pub(crate) fn new(from: u64) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            from,
        }
    }

    pub(crate) fn at(&self, transferred: u64) -> f64 {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        transferred.saturating_sub(self.from) as f64 / secs
    }
}

/// A resource transfer in either direction: progress, cancellation and the outcome. Cheap to clone.
///
/// ```no_run
/// # async fn run(session: multipeer::Session, peer: multipeer::PeerId) -> Result<(), Box<dyn std::error::Error>> {
/// let transfer = session.send_resource("holiday.jpg", "holiday.jpg", peer).await?;
/// let mut progress = transfer.clone();
/// tokio::spawn(async move {
///     while let Some(p) = progress.progress_changed().await {
///         tracing::info!("{:.0}% at {:.1} MB/s", p.fraction() * 100.0, p.bytes_per_second / 1e6);
///     }
/// });
/// let delivered = transfer.finished().await?;
/// tracing::info!("sent {} bytes", delivered.size);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ResourceTransfer {
    state: Arc<TransferState>,
    progress: watch::Receiver<Progress>,
}

impl ResourceTransfer {
    pub(crate) fn new(state: Arc<TransferState>) -> Self {
        let progress = state.progress.subscribe();
        Self { state, progress }
    }

    /// The transfer's id (the same on both ends).
    pub fn id(&self) -> ResourceId {
        self.state.id
    }

    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.state.peer
    }

    /// The resource's name as the sender gave it.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.state.size
    }

    /// Whether we send or receive it.
    pub fn direction(&self) -> Direction {
        self.state.direction
    }

    /// Progress now.
    pub fn progress(&self) -> Progress {
        *self.state.progress.borrow()
    }

    /// Waits for the next progress update and returns it; `None` once the transfer has finished (after the
    /// last update).
    pub async fn progress_changed(&mut self) -> Option<Progress> {
        let mut outcome = self.state.outcome.subscribe();
        if outcome.borrow().is_some() {
            return None;
        }
        tokio::select! {
            changed = self.progress.changed() => changed.ok().map(|()| *self.progress.borrow_and_update()),
            _ = outcome.wait_for(Option::is_some) => None,
        }
    }

    /// The outcome, if the transfer has finished.
    pub fn outcome(&self) -> Option<Result<Delivered, ResourceError>> {
        self.state.outcome.borrow().clone()
    }

    /// Waits until the transfer has finished: delivered (and verified by the receiver), or failed.
    pub async fn finished(&self) -> Result<Delivered, ResourceError> {
        let mut outcome = self.state.outcome.subscribe();
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(o) => o.clone().unwrap_or(Err(ResourceError::SessionClosed)),
            Err(_) => Err(ResourceError::SessionClosed),
        };
        result
    }

    /// Cancels the transfer; the peer sees [`ResourceError::CancelledByPeer`] and a partial file is deleted.
    pub fn cancel(&self) {
        self.state.cancel.send_replace(true);
    }
}

impl fmt::Debug for ResourceTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceTransfer")
            .field("id", &self.state.id)
            .field("peer", &self.state.peer)
            .field("name", &self.state.name)
            .field("direction", &self.state.direction)
            .field("progress", &self.progress())
            .finish()
    }
}

/// How one side's part of a transfer ended without delivering.
pub(crate) enum Stop {
    /// For good.
    Failed(ResourceError),
    /// The connection went away: keep what we have and wait for the peer to resume.
    Interrupted,
}

impl From<ResourceError> for Stop {
    fn from(e: ResourceError) -> Self {
        Stop::Failed(e)
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// What a failed write on a resource stream means.
pub(crate) fn write_stop(e: quinn::WriteError) -> Stop {
    match e {
        quinn::WriteError::Stopped(code) if code == quinn::VarInt::from_u32(RESOURCE_CANCELLED) => {
            Stop::Failed(ResourceError::CancelledByPeer)
        }
        quinn::WriteError::Stopped(_) => Stop::Failed(ResourceError::Protocol("the peer stopped the stream")),
        _ => Stop::Interrupted,
    }
}

/// What a failed read on a resource stream means.
pub(crate) fn read_stop(e: quinn::ReadError) -> Stop {
    match e {
        quinn::ReadError::Reset(code) if code == quinn::VarInt::from_u32(RESOURCE_CANCELLED) => {
            Stop::Failed(ResourceError::CancelledByPeer)
        }
        quinn::ReadError::Reset(_) => Stop::Failed(ResourceError::Protocol("the peer reset the stream")),
        _ => Stop::Interrupted,
    }
}

/// How long a transfer may wait for the receiver's reply (its app may take up to
/// [`crate::config::MAX_ANSWER_TIMEOUT`]) or verdict.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(90);
