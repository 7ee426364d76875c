//! What a session tells the app: events, the delegate trait, and the event stream.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};

use super::stream::{DuplexStream, IncomingStream};
use crate::identity::PeerId;
use crate::resource::{ResourceError, ResourceOffer, ResourceTransfer};

/// How many events may wait for the app. While the queue is full the session waits for the app (reliable
/// messages and streams are then held back by QUIC flow control; unreliable datagrams are dropped).
pub const EVENT_QUEUE: usize = 1024;

/// A peer in the session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Peer {
    /// Its id, proved by its TLS certificate.
    pub id: PeerId,
    /// The name it chose.
    pub display_name: String,
    /// The discovery info it published.
    pub discovery_info: BTreeMap<String, String>,
    /// The initial data it sent in its hello.
    pub initial_data: serde_json::Value,
}

impl Peer {
    pub(crate) fn new(
        id: PeerId,
        display_name: String,
        discovery_info: BTreeMap<String, String>,
        initial_data: serde_json::Value,
    ) -> Self {
        Self {
            id,
            display_name,
            discovery_info,
            initial_data,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.display_name, self.id.short())
    }
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// Delivered once and in order (per sender and receiver) while connected. Up to 4 MiB per message.
    Reliable,
    /// A QUIC datagram: may be lost, never retransmitted, must fit one packet (see
    /// [`crate::Session::max_datagram_size`]).
    Unreliable,
}

/// A message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Who sent it.
    pub from: PeerId,
    /// Its bytes.
    pub data: Bytes,
    /// How it travelled.
    pub reliability: Reliability,
}

impl Message {
    /// Decodes the message as JSON (as sent by [`crate::Session::send_json`]).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }
}

/// Why a peer left the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemovalReason {
    /// It disconnected or shut down and said goodbye.
    Left,
    /// Nothing was heard from it for the idle timeout.
    TimedOut,
    /// This app removed it with [`crate::Session::remove_peer`].
    Removed,
    /// It removed us from its session.
    Expelled,
    /// It broke the protocol; the connection was closed.
    ProtocolError(String),
    /// The connection failed for another reason.
    ConnectionLost(String),
    /// This app called [`crate::Session::disconnect`] or shut down.
    LocalDisconnect,
}

impl fmt::Display for RemovalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Left => f.write_str("left"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Removed => f.write_str("removed by us"),
            Self::Expelled => f.write_str("removed us"),
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::ConnectionLost(e) => write!(f, "connection lost: {e}"),
            Self::LocalDisconnect => f.write_str("we disconnected"),
        }
    }
}

/// Why a connection to or from a peer did not come up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// The peer's session is full.
    SessionFull,
    /// The peer declined us, or is not looking for peers.
    Declined,
    /// The peer removed us earlier and keeps us out.
    Expelled,
    /// The admission passphrases differ.
    WrongPassphrase,
    /// Too many failed passphrase attempts between us and this peer (or its address): one side waits before
    /// trying again.
    TooManyAttempts,
    /// The peer's certificate key does not match the id it announced: possible impersonation.
    IdentityMismatch {
        /// The id it presented.
        presented: PeerId,
    },
    /// The peer speaks another protocol version.
    VersionMismatch,
    /// No address of the peer answered in time.
    Unreachable,
    /// The peer broke the protocol during the hello.
    ProtocolError(String),
    /// Another failure.
    Other(String),
}

impl fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SessionFull => f.write_str("the peer's session is full"),
            Self::Declined => f.write_str("the peer declined"),
            Self::Expelled => f.write_str("the peer removed us"),
            Self::WrongPassphrase => f.write_str("wrong passphrase"),
            Self::TooManyAttempts => f.write_str("too many failed passphrase attempts; waiting before trying again"),
            Self::IdentityMismatch { presented } => {
                write!(
                    f,
                    "certificate key {} does not match the announced id",
                    presented.short()
                )
            }
            Self::VersionMismatch => f.write_str("incompatible protocol version"),
            Self::Unreachable => f.write_str("unreachable"),
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

/// Everything that happens in a session, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A peer joined. Its messages follow this event.
    PeerAdded(Peer),
    /// A peer left. No message from this connection follows.
    PeerRemoved {
        /// Who left.
        peer: Peer,
        /// Why.
        reason: RemovalReason,
    },
    /// A message arrived.
    Message(Message),
    /// A peer opened a named stream to us.
    Stream(IncomingStream),
    /// A peer opened a two-way named stream with us.
    DuplexStream(DuplexStream),
    /// A peer started sending us a resource (a file). Follow it with the handle; it ends with
    /// [`Event::ResourceFinished`]. Not repeated when an interrupted transfer resumes.
    ResourceStarted(ResourceTransfer),
    /// A resource from a peer finished: saved to the path once complete and verified, or failed.
    ResourceFinished {
        /// The transfer.
        transfer: ResourceTransfer,
        /// Where the file was saved, or why it was not.
        result: Result<PathBuf, ResourceError>,
    },
    /// A connection to or from a peer failed before it joined.
    ConnectionFailed {
        /// The peer concerned (as announced, or as proved by its certificate).
        peer: PeerId,
        /// Why.
        reason: ConnectionFailure,
    },
}

/// A peer asking to join (or, when `inbound` is false, a peer we found and are about to invite).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invitation {
    /// Its id.
    pub peer_id: PeerId,
    /// Its display name.
    pub display_name: String,
    /// Its discovery info.
    pub discovery_info: BTreeMap<String, String>,
    /// The context the inviter attached ([`crate::SessionConfigBuilder::invitation_context`]); only inbound.
    pub context: Option<Vec<u8>>,
    /// Whether the peer invited us (`true`) or we found it and would invite it (`false`).
    pub inbound: bool,
}

/// Receives a session's events. Every method has a default, so implement only what you need.
///
/// Methods are called one at a time, in event order, on a dedicated thread of the session (never on an
/// async runtime worker). A slow method delays later events; the session then waits (see [`EVENT_QUEUE`]).
/// [`SessionDelegate::should_admit`] is called on the session's runtime and must return quickly.
pub trait SessionDelegate: Send + Sync + 'static {
    /// A peer joined.
    fn peer_added(&self, peer: &Peer) {
        let _ = peer;
    }

    /// A peer left.
    fn peer_removed(&self, peer: &Peer, reason: &RemovalReason) {
        let _ = (peer, reason);
    }

    /// A message arrived.
    fn receive(&self, message: Message) {
        let _ = message;
    }

    /// A peer opened a named stream. Read it on your own task or thread; dropping it stops the stream.
    fn stream_receive(&self, stream: IncomingStream) {
        let _ = stream;
    }

    /// A peer opened a two-way named stream. Use it on your own task; dropping it resets it.
    fn duplex_stream_receive(&self, stream: DuplexStream) {
        let _ = stream;
    }

    /// A connection failed before the peer joined.
    fn connection_failed(&self, peer: &PeerId, reason: &ConnectionFailure) {
        let _ = (peer, reason);
    }

    /// A peer started sending us a resource; `transfer` reports progress and can cancel it.
    fn resource_started(&self, transfer: ResourceTransfer) {
        let _ = transfer;
    }

    /// A resource from a peer finished: `Ok(path)` once saved complete and verified, or why it failed.
    fn resource_finished(&self, transfer: &ResourceTransfer, result: &Result<PathBuf, ResourceError>) {
        let _ = (transfer, result);
    }

    /// Decides whether to accept a resource a peer offers (offers above
    /// [`crate::SessionConfigBuilder::max_resource_size`] are refused before this is asked). The default
    /// accepts. Called on the session's runtime: return quickly.
    fn should_accept_resource(&self, offer: &ResourceOffer) -> bool {
        let _ = offer;
        true
    }

    /// Decides whether a peer may join. The default admits everyone.
    fn should_admit(&self, invitation: &Invitation) -> bool {
        let _ = invitation;
        true
    }
}

pub(crate) fn dispatch(delegate: &dyn SessionDelegate, event: Event) {
    match event {
        Event::PeerAdded(peer) => delegate.peer_added(&peer),
        Event::PeerRemoved { peer, reason } => delegate.peer_removed(&peer, &reason),
        Event::Message(message) => delegate.receive(message),
        Event::Stream(stream) => delegate.stream_receive(stream),
        Event::DuplexStream(stream) => delegate.duplex_stream_receive(stream),
        Event::ConnectionFailed { peer, reason } => delegate.connection_failed(&peer, &reason),
        Event::ResourceStarted(transfer) => delegate.resource_started(transfer),
        Event::ResourceFinished { transfer, result } => delegate.resource_finished(&transfer, &result),
    }
}

/// Events on their way to the app: one, or several delivered together (a connection passes on every message
/// it has decoded at once, so a burst of small messages costs one hand-over, not one each).
#[derive(Debug)]
enum Batch {
    One(Event),
    Many(Vec<Event>),
}

/// The app is gone (its [`Events`] was dropped, or the session shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueClosed;

/// The sending side of a session's event queue. The queue holds at most [`EVENT_QUEUE`] events (plus one batch
/// the app is taking): senders wait for room, or drop what may be dropped.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: mpsc::UnboundedSender<Batch>,
    room: Arc<Semaphore>,
}

/// Most events handed over together.
pub(crate) const MAX_BATCH: usize = 64;

impl EventSender {
    /// Queues `event`, waiting while the queue is full.
    pub(crate) async fn send(&self, event: Event) -> Result<(), QueueClosed> {
        self.room.acquire().await.map_err(|_| QueueClosed)?.forget();
        self.tx.send(Batch::One(event)).map_err(|_| QueueClosed)
    }

    /// Queues `event` if there is room; `Ok(false)` if the queue is full (the event is dropped).
    pub(crate) fn try_send(&self, event: Event) -> Result<bool, QueueClosed> {
        match self.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Ok(false),
            Err(TryAcquireError::Closed) => return Err(QueueClosed),
        }
        self.tx.send(Batch::One(event)).map(|()| true).map_err(|_| QueueClosed)
    }

    /// Queues every event of `batch` in order (at most [`MAX_BATCH`] at a time), waiting while the queue is full.
    /// Leaves `batch` empty.
    pub(crate) async fn send_all(&self, batch: &mut Vec<Event>) -> Result<(), QueueClosed> {
        while !batch.is_empty() {
            let part = if batch.len() <= MAX_BATCH {
                std::mem::take(batch)
            } else {
                batch.drain(..MAX_BATCH).collect()
            };
            // At most MAX_BATCH, far below u32::MAX.
            let n = part.len() as u32;
            match self.room.try_acquire_many(n) {
                Ok(permits) => permits.forget(),
                Err(TryAcquireError::NoPermits) => self.room.acquire_many(n).await.map_err(|_| QueueClosed)?.forget(),
                Err(TryAcquireError::Closed) => return Err(QueueClosed),
            }
            let one = part.len() == 1;
            let batch_out = if one {
                part.into_iter().next().map(Batch::One)
            } else {
                Some(Batch::Many(part))
            };
            if let Some(out) = batch_out {
                self.tx.send(out).map_err(|_| QueueClosed)?;
            }
        }
        Ok(())
    }
}

/// A session's event queue: the sending side for the session, the receiving side for the app.
pub(crate) fn queue() -> (EventSender, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(EVENT_QUEUE));
    (
        EventSender { tx, room: room.clone() },
        Events {
            rx,
            room,
            taken: Vec::new().into_iter(),
        },
    )
}

/// The session's events as an async stream. It ends after the session has shut down.
///
/// ```no_run
/// # async fn run(mut events: multipeer::Events) {
/// while let Some(event) = events.next().await {
///     if let multipeer::Event::Message(m) = event {
///         tracing::info!("{} bytes from {}", m.data.len(), m.from.short());
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Batch>,
    room: Arc<Semaphore>,
    /// The rest of the batch taken last.
    taken: std::vec::IntoIter<Event>,
}

impl Events {
    /// Takes a batch off the queue, making room for as many events.
    fn take(&mut self, batch: Batch) -> Option<Event> {
        match batch {
            Batch::One(event) => {
                self.room.add_permits(1);
                Some(event)
            }
            Batch::Many(events) => {
                self.room.add_permits(events.len());
                self.taken = events.into_iter();
                self.taken.next()
            }
        }
    }

    /// The next event, or `None` once the session has shut down.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.taken.next() {
            return Some(event);
        }
        loop {
            let batch = self.rx.recv().await?;
            if let Some(event) = self.take(batch) {
                return Some(event);
            }
        }
    }

    pub(crate) fn blocking_next(&mut self) -> Option<Event> {
        if let Some(event) = self.taken.next() {
            return Some(event);
        }
        loop {
            let batch = self.rx.blocking_recv()?;
            if let Some(event) = self.take(batch) {
                return Some(event);
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        // Senders waiting for room give up instead of waiting for an app that is gone.
        self.room.close();
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if let Some(event) = self.taken.next() {
            return Poll::Ready(Some(event));
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => {
                    if let Some(event) = self.take(batch) {
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
