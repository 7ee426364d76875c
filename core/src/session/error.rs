//! One error type per operation.

use std::net::SocketAddr;

use super::events::ConnectionFailure;
use crate::discovery::DiscoveryError;
use crate::identity::PeerId;
use crate::proto::frame::FrameError;
use crate::tls::TlsError;

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// TLS could not be set up with the identity.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Discovery could not start.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// No Tokio runtime is running on this thread.
    #[error("a session must be started from within a Tokio runtime")]
    NoRuntime,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
    /// The recipient is not connected.
    #[error("peer {} is not connected", .0.short())]
    NotConnected(PeerId),
    /// A reliable message is larger than the limit.
    #[error("message is {size} bytes; reliable messages may be at most {max} bytes (use a stream for more)")]
    MessageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An unreliable message does not fit in one datagram on the path to this peer.
    #[error("datagram is {size} bytes; the path to {} allows at most {max}", .peer.short())]
    DatagramTooLarge {
        /// The peer.
        peer: PeerId,
        /// Its size.
        size: usize,
        /// What the path allows now.
        max: usize,
    },
    /// The peer does not accept datagrams.
    #[error("peer {} does not accept datagrams", .0.short())]
    DatagramsUnsupported(PeerId),
    /// The connection to the peer was lost while sending.
    #[error("connection to {} was lost", .0.short())]
    ConnectionLost(PeerId),
    /// Sent to several peers, the message did not reach some (or all) of them. Every recipient was tried
    /// once; those in `delivered` got it.
    #[error("{}", recipients_message(delivered, failed))]
    Recipients {
        /// The recipients the message was sent to, in the order given.
        delivered: Vec<PeerId>,
        /// The recipients it was not sent to, in the order given, each with why.
        failed: Vec<(PeerId, SendError)>,
    },
}

fn recipients_message(delivered: &[PeerId], failed: &[(PeerId, SendError)]) -> String {
    let total = delivered.len() + failed.len();
    let why: Vec<String> = failed.iter().map(|(_, e)| e.to_string()).collect();
    format!("not sent to {} of {total} recipients: {}", failed.len(), why.join("; "))
}

/// Why [`crate::Session::send_json`] did not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendJsonError {
    /// The value could not be serialized as JSON.
    #[error("cannot encode JSON: {0}")]
    Encode(String),
    /// Sending failed.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
    /// The peer is not connected.
    #[error("peer {} is not connected", .0.short())]
    NotConnected(PeerId),
    /// The stream name is invalid.
    #[error(transparent)]
    InvalidName(#[from] FrameError),
    /// The connection to the peer was lost.
    #[error("connection to {} was lost", .0.short())]
    ConnectionLost(PeerId),
}

/// The session has shut down: all that removing or allowing a peer, stopping to look, disconnecting, shutting
/// down or asking for diagnostics can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session has shut down")]
pub struct SessionClosed;

/// Why [`crate::Session::start_looking_for_peers`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookingError {
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
    /// Discovery could not restart.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

impl From<SessionClosed> for LookingError {
    fn from(_: SessionClosed) -> Self {
        Self::SessionClosed
    }
}

/// Why [`crate::Session::invite`] did not bring the peer into the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteError {
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
    /// Discovery does not see this peer nearby (see [`crate::Session::nearby`]).
    #[error("peer {} is not nearby", .0.short())]
    NotNearby(PeerId),
    /// The invitation context is larger than [`crate::config::MAX_INVITATION_CONTEXT_LEN`].
    #[error("invitation context is {size} bytes; allowed: at most {max}")]
    ContextTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The peer's app declined.
    #[error("peer {} declined the invitation", .0.short())]
    Declined(PeerId),
    /// The peer's app did not answer in time.
    #[error("peer {} did not answer the invitation in time", .0.short())]
    NoAnswer(PeerId),
    /// No answer came back in time at all (the peer is unreachable or gone).
    #[error("no answer from {} in time", .0.short())]
    TimedOut(PeerId),
    /// The connection failed for another reason (a full session, a wrong passphrase, ...).
    #[error("inviting {} failed: {reason}", .peer.short())]
    Failed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: ConnectionFailure,
    },
}

impl InviteError {
    pub(crate) fn from_failure(peer: PeerId, reason: ConnectionFailure) -> Self {
        match reason {
            ConnectionFailure::Declined => Self::Declined(peer),
            ConnectionFailure::NoAnswer => Self::NoAnswer(peer),
            reason => Self::Failed { peer, reason },
        }
    }
}
