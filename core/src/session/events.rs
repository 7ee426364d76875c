//! What a session tells the app: events, the delegate trait, and the event stream.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

pub use super::invite::{Invitation, PendingInvitation};
use super::stream::{DuplexStream, IncomingStream};
use crate::discovery::DiscoveryState;
use crate::identity::PeerId;
use crate::resource::{PendingResource, ResourceError, ResourceTransfer};

pub(crate) use super::queue::{queue, Data, EventSender, LaneGate, PeerLane};
pub use super::queue::{Events, CONTROL_BACKLOG, EVENT_BYTES_PER_PEER, EVENT_BYTES_TOTAL, EVENT_OVERHEAD};

/// A peer that discovery sees nearby, in the session or not (what its advert says; unproved until it joins).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearbyPeer {
    /// The id it announces.
    pub id: PeerId,
    /// The name it announces.
    pub display_name: String,
    /// The discovery info it publishes.
    pub discovery_info: BTreeMap<String, String>,
}

impl NearbyPeer {
    /// A nearby peer (for discovery implementations and tests).
    pub fn new(id: PeerId, display_name: impl Into<String>, discovery_info: BTreeMap<String, String>) -> Self {
        Self {
            id,
            display_name: display_name.into(),
            discovery_info,
        }
    }
}

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
    pub peer: PeerId,
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

/// Why a session ended ([`Event::SessionEnded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The app called [`crate::Session::shutdown`].
    Shutdown,
    /// The app released its last handle without shutting down (the goodbye was sent all the same).
    Released,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("shut down"),
            Self::Released => f.write_str("released without shutdown"),
        }
    }
}

/// Why a connection to or from a peer did not come up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionFailure {
    /// The peer's session is full.
    SessionFull,
    /// The peer's app declined us (our invitation, or its admission hook).
    Declined,
    /// The peer's app did not answer our invitation in time.
    NoAnswer,
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
    /// Another session runs with this session's own identity (reported with our own id as the peer): the same
    /// identity opened twice, or copied to another device. It proved the key in a TLS handshake, and it was
    /// running first, so this session withdrew as after `disconnect` (no adverts, no links). Reported once; stop
    /// one of the two, or start this one with another identity.
    IdentityInUse {
        /// Where the other session answered.
        elsewhere: std::net::SocketAddr,
    },
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
            Self::NoAnswer => f.write_str("the peer did not answer the invitation in time"),
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
            Self::IdentityInUse { elsewhere } => {
                write!(
                    f,
                    "this identity is in use by another session at {elsewhere}; this one withdrew"
                )
            }
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

/// Everything that happens in a session, in order.
///
/// One stream carries every event. A peer's `PeerAdded` comes before its messages and streams, and its
/// `PeerRemoved` after the last of them. Membership events (and failures, resource reports) are queued at
/// once, never behind the app; messages wait in a byte budget per peer (see [`Events`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Discovery found a peer nearby (or what it announces changed). Independent of joining: a peer is found
    /// before it joins and stays found while it advertises. Lossy under a backlog: [`crate::Session::nearby`]
    /// always has the current list.
    PeerFound(NearbyPeer),
    /// A peer found earlier stopped advertising (or its record expired).
    PeerLost(NearbyPeer),
    /// A peer invites us to its session ([`crate::InvitationMode::Manual`] only): accept or decline the held
    /// invitation, now or once the user decided.
    Invitation(PendingInvitation),
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
    /// A peer offers us a resource (a file) and the app decides ([`crate::config::ResourceAcceptance::Manual`]):
    /// accept or decline the held offer, now or once the user decided. [`Event::ResourceStarted`] follows an
    /// accepted one.
    ResourceOffered(PendingResource),
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
    /// Discovery started, stopped, failed or was refused permission. Lossy under a backlog, like presence.
    DiscoveryStateChanged(DiscoveryState),
    /// The session ended: the last event, after every peer's removal. The stream ends after it.
    SessionEnded(EndReason),
}

/// Receives a session's events as callbacks: an adapter over [`Events`], the primary way. Every method has a
/// default, so implement only what you need.
///
/// Methods are called one at a time, in event order, on a dedicated thread of the session (never on an
/// async runtime worker). A slow method delays later events; past [`EVENT_BYTES_PER_PEER`] of a peer's messages
/// the session stops reading from that peer until the delegate catches up (membership events never wait).
/// Decisions (who may join, which files to accept) are not callbacks here but the builder's one hook each:
/// [`crate::SessionBuilder::admission`] and [`crate::SessionBuilder::resource_filter`].
pub trait SessionDelegate: Send + Sync + 'static {
    /// Discovery found a peer nearby (or what it announces changed).
    fn peer_found(&self, peer: &NearbyPeer) {
        let _ = peer;
    }

    /// A peer found earlier stopped advertising.
    fn peer_lost(&self, peer: &NearbyPeer) {
        let _ = peer;
    }

    /// A peer invites us ([`crate::InvitationMode::Manual`] only). Keep `invitation` to answer it later;
    /// dropping it declines.
    fn invitation_received(&self, invitation: PendingInvitation) {
        let _ = invitation;
    }

    /// A peer joined.
    fn peer_added(&self, peer: &Peer) {
        let _ = peer;
    }

    /// A peer left.
    fn peer_removed(&self, peer: &Peer, reason: &RemovalReason) {
        let _ = (peer, reason);
    }

    /// A message arrived.
    fn received(&self, message: Message) {
        let _ = message;
    }

    /// A peer opened a named stream. Read it on your own task or thread; dropping it stops the stream.
    fn stream_received(&self, stream: IncomingStream) {
        let _ = stream;
    }

    /// A peer opened a two-way named stream. Use it on your own task; dropping it resets it.
    fn duplex_stream_received(&self, stream: DuplexStream) {
        let _ = stream;
    }

    /// A connection failed before the peer joined.
    fn connection_failed(&self, peer: &PeerId, reason: &ConnectionFailure) {
        let _ = (peer, reason);
    }

    /// Discovery started, stopped, failed or was refused permission.
    fn discovery_state_changed(&self, state: &DiscoveryState) {
        let _ = state;
    }

    /// The session ended; no call follows.
    fn session_ended(&self, reason: &EndReason) {
        let _ = reason;
    }

    /// A peer offers a resource ([`crate::config::ResourceAcceptance::Manual`] only). Keep `offer` to answer it
    /// later; dropping it declines.
    fn resource_offered(&self, offer: PendingResource) {
        let _ = offer;
    }

    /// A peer started sending us a resource; `transfer` reports progress and can cancel it.
    fn resource_started(&self, transfer: ResourceTransfer) {
        let _ = transfer;
    }

    /// A resource from a peer finished: `Ok(path)` once saved complete and verified, or why it failed.
    fn resource_finished(&self, transfer: &ResourceTransfer, result: &Result<PathBuf, ResourceError>) {
        let _ = (transfer, result);
    }
}

pub(crate) fn dispatch(delegate: &dyn SessionDelegate, event: Event) {
    match event {
        Event::PeerFound(peer) => delegate.peer_found(&peer),
        Event::PeerLost(peer) => delegate.peer_lost(&peer),
        Event::Invitation(invitation) => delegate.invitation_received(invitation),
        Event::PeerAdded(peer) => delegate.peer_added(&peer),
        Event::PeerRemoved { peer, reason } => delegate.peer_removed(&peer, &reason),
        Event::Message(message) => delegate.received(message),
        Event::Stream(stream) => delegate.stream_received(stream),
        Event::DuplexStream(stream) => delegate.duplex_stream_received(stream),
        Event::ConnectionFailed { peer, reason } => delegate.connection_failed(&peer, &reason),
        Event::DiscoveryStateChanged(state) => delegate.discovery_state_changed(&state),
        Event::SessionEnded(reason) => delegate.session_ended(&reason),
        Event::ResourceOffered(offer) => delegate.resource_offered(offer),
        Event::ResourceStarted(transfer) => delegate.resource_started(transfer),
        Event::ResourceFinished { transfer, result } => delegate.resource_finished(&transfer, &result),
    }
}
