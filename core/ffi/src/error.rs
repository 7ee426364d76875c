//! The one flat error enum Swift and Kotlin can switch on.

/// Everything that can go wrong, for Swift (`MultipeerError`) and Kotlin (`MultipeerException`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum MultipeerError {
    /// The configuration is invalid; the message says what is allowed.
    #[error("invalid configuration: {detail}")]
    InvalidConfig {
        /// What is wrong.
        detail: String,
    },
    /// The identity bytes are not a valid key.
    #[error("invalid identity")]
    InvalidIdentity,
    /// A string is not a peer id.
    #[error("not a peer id: {id}")]
    InvalidPeerId {
        /// The string.
        id: String,
    },
    /// The ticket is not valid for this session.
    #[error("invalid ticket: {detail}")]
    InvalidTicket {
        /// Why.
        detail: String,
    },
    /// The session could not start.
    #[error("cannot start: {detail}")]
    Start {
        /// Why.
        detail: String,
    },
    /// Discovery failed.
    #[error("discovery: {detail}")]
    Discovery {
        /// Why.
        detail: String,
    },
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
    /// The peer is not connected.
    #[error("peer {peer} is not connected")]
    NotConnected {
        /// The peer.
        peer: String,
    },
    /// A reliable message exceeds the limit.
    #[error("message is {size} bytes; at most {max}")]
    MessageTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A datagram does not fit the path.
    #[error("datagram is {size} bytes; the path allows {max}")]
    DatagramTooLarge {
        /// Its size.
        size: u64,
        /// The limit now.
        max: u64,
    },
    /// A message sent to several peers did not reach some (or all) of them; every recipient was tried once.
    #[error("{detail}")]
    NotDelivered {
        /// The peers (ids) that got the message.
        delivered: Vec<String>,
        /// The peers (ids) that did not.
        failed: Vec<String>,
        /// Why, for each peer that did not get it.
        detail: String,
    },
    /// The connection to a peer was lost.
    #[error("connection to {peer} lost")]
    ConnectionLost {
        /// The peer.
        peer: String,
    },
    /// The stream was finished or cancelled already.
    #[error("the stream is closed")]
    StreamClosed,
    /// An I/O error on a stream.
    #[error("stream: {detail}")]
    Io {
        /// What happened.
        detail: String,
    },
    /// Something else; the message says what.
    #[error("{detail}")]
    Other {
        /// What happened.
        detail: String,
    },
    /// The receiver refused the resource.
    #[error("the receiver refused the resource: {reason}")]
    ResourceRefused {
        /// Why.
        reason: crate::RefusalReason,
    },
    /// The resource transfer was cancelled on this side.
    #[error("the resource transfer was cancelled")]
    ResourceCancelled,
    /// The peer cancelled the resource transfer.
    #[error("the peer cancelled the resource transfer")]
    ResourceCancelledByPeer,
    /// The connection was lost and the peer did not come back within the resume window.
    #[error("the resource transfer was interrupted: the peer did not come back in time")]
    ResourceInterrupted,
    /// The resource name is empty or longer than 255 bytes.
    #[error("invalid resource name: must be 1-255 bytes")]
    InvalidResourceName,
    /// The resource transfer failed otherwise: reading or writing the file, the integrity check (the received
    /// data did not match the sender's SHA-256 and was discarded) or a protocol violation.
    #[error("resource transfer failed: {detail}")]
    ResourceFailed {
        /// What happened.
        detail: String,
    },
    /// The invitation was declined by the peer's app.
    #[error("peer {peer} declined the invitation")]
    InvitationDeclined {
        /// The peer.
        peer: String,
    },
    /// The peer's app did not answer the invitation in time, or no answer came back at all.
    #[error("no answer to the invitation from {peer}")]
    InvitationTimedOut {
        /// The peer.
        peer: String,
    },
    /// An invitation or a resource offer can no longer be answered: it timed out, the asking peer gave up, or
    /// it was answered already.
    #[error("it can no longer be answered")]
    AnswerExpired,
    /// Discovery does not see this peer nearby.
    #[error("peer {peer} is not nearby")]
    NotNearby {
        /// The peer.
        peer: String,
    },
    /// A foreign callback failed unexpectedly.
    #[error("callback failed: {detail}")]
    Callback {
        /// What happened.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for MultipeerError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Callback { detail: e.reason }
    }
}

impl From<multipeer::ConfigError> for MultipeerError {
    fn from(e: multipeer::ConfigError) -> Self {
        Self::InvalidConfig { detail: e.to_string() }
    }
}

impl From<multipeer::IdentityError> for MultipeerError {
    fn from(_: multipeer::IdentityError) -> Self {
        Self::InvalidIdentity
    }
}

impl From<multipeer::TicketError> for MultipeerError {
    fn from(e: multipeer::TicketError) -> Self {
        Self::InvalidTicket { detail: e.to_string() }
    }
}

impl From<multipeer::ConnectTicketError> for MultipeerError {
    fn from(e: multipeer::ConnectTicketError) -> Self {
        match e {
            multipeer::ConnectTicketError::SessionClosed => Self::SessionClosed,
            other => Self::InvalidTicket {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::StartError> for MultipeerError {
    fn from(e: multipeer::StartError) -> Self {
        match e {
            multipeer::StartError::Discovery(d) => Self::Discovery { detail: d.to_string() },
            other => Self::Start {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::SessionClosed> for MultipeerError {
    fn from(_: multipeer::SessionClosed) -> Self {
        Self::SessionClosed
    }
}

impl From<multipeer::LookingError> for MultipeerError {
    fn from(e: multipeer::LookingError) -> Self {
        match e {
            multipeer::LookingError::SessionClosed => Self::SessionClosed,
            multipeer::LookingError::Discovery(d) => Self::Discovery { detail: d.to_string() },
            other => Self::Other {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::InviteError> for MultipeerError {
    fn from(e: multipeer::InviteError) -> Self {
        use multipeer::InviteError as I;
        match e {
            I::SessionClosed => Self::SessionClosed,
            I::NotNearby(p) => Self::NotNearby { peer: p.to_string() },
            I::Declined(p) => Self::InvitationDeclined { peer: p.to_string() },
            I::NoAnswer(p) | I::TimedOut(p) => Self::InvitationTimedOut { peer: p.to_string() },
            other => Self::Other {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::SendError> for MultipeerError {
    fn from(e: multipeer::SendError) -> Self {
        use multipeer::SendError as S;
        match e {
            S::SessionClosed => Self::SessionClosed,
            S::NotConnected(p) => Self::NotConnected { peer: p.to_string() },
            S::MessageTooLarge { size, max } => Self::MessageTooLarge {
                size: size as u64,
                max: max as u64,
            },
            S::DatagramTooLarge { size, max, .. } => Self::DatagramTooLarge {
                size: size as u64,
                max: max as u64,
            },
            S::ConnectionLost(p) => Self::ConnectionLost { peer: p.to_string() },
            S::Recipients {
                ref delivered,
                ref failed,
            } => Self::NotDelivered {
                delivered: delivered.iter().map(ToString::to_string).collect(),
                failed: failed.iter().map(|(p, _)| p.to_string()).collect(),
                detail: e.to_string(),
            },
            other => Self::Other {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::StreamError> for MultipeerError {
    fn from(e: multipeer::StreamError) -> Self {
        use multipeer::StreamError as S;
        match e {
            S::SessionClosed => Self::SessionClosed,
            S::NotConnected(p) => Self::NotConnected { peer: p.to_string() },
            S::ConnectionLost(p) => Self::ConnectionLost { peer: p.to_string() },
            other => Self::Other {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::SendResourceError> for MultipeerError {
    fn from(e: multipeer::SendResourceError) -> Self {
        use multipeer::SendResourceError as S;
        match e {
            S::SessionClosed => Self::SessionClosed,
            S::NotConnected(p) => Self::NotConnected { peer: p.to_string() },
            S::InvalidName => Self::InvalidResourceName,
            other => Self::ResourceFailed {
                detail: other.to_string(),
            },
        }
    }
}

impl From<multipeer::ResourceError> for MultipeerError {
    fn from(e: multipeer::ResourceError) -> Self {
        use multipeer::ResourceError as R;
        match e {
            R::SessionClosed => Self::SessionClosed,
            R::Refused(reason) => Self::ResourceRefused { reason: reason.into() },
            R::Cancelled => Self::ResourceCancelled,
            R::CancelledByPeer => Self::ResourceCancelledByPeer,
            R::Interrupted => Self::ResourceInterrupted,
            other => Self::ResourceFailed {
                detail: other.to_string(),
            },
        }
    }
}
