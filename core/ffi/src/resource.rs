//! Resources (files sent to a peer): the transfer handle, its progress and its outcome.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::MultipeerError;

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct ResourceProgress {
    /// Bytes transferred (after a resumption this starts where the interrupted attempt stopped).
    pub transferred: u64,
    /// Size of the resource in bytes.
    pub total: u64,
    /// Recent rate in bytes per second (0 while interrupted and once finished).
    pub bytes_per_second: f64,
}

impl From<multipeer::Progress> for ResourceProgress {
    fn from(p: multipeer::Progress) -> Self {
        Self {
            transferred: p.transferred,
            total: p.total,
            bytes_per_second: p.bytes_per_second,
        }
    }
}

/// A completed transfer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ResourceResult {
    /// Bytes in the resource.
    pub size: u64,
    /// SHA-256 of its content (64 lowercase hex characters), checked by the receiver.
    pub sha256: String,
    /// Where the receiver saved it; `None` on the sending side.
    pub path: Option<String>,
    /// Where the last attempt started: non-zero when the transfer resumed after an interruption.
    pub resumed_from: u64,
}

impl From<multipeer::Delivered> for ResourceResult {
    fn from(d: multipeer::Delivered) -> Self {
        Self {
            size: d.size,
            sha256: d.sha256.iter().map(|b| format!("{b:02x}")).collect(),
            path: d.path.map(|p| p.to_string_lossy().into_owned()),
            resumed_from: d.resumed_from,
        }
    }
}

/// Why a receiver refused a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RefusalReason {
    /// The app declined it (or did not answer in time).
    Declined,
    /// It is larger than the receiver's `max_resource_size`.
    TooLarge,
    /// The receiver has too many transfers under way.
    Busy,
    /// The receiver cannot store it (for example its directory is not writable).
    Unavailable,
}

impl From<multipeer::RefusalReason> for RefusalReason {
    fn from(r: multipeer::RefusalReason) -> Self {
        match r {
            multipeer::RefusalReason::Declined => Self::Declined,
            multipeer::RefusalReason::TooLarge => Self::TooLarge,
            multipeer::RefusalReason::Busy => Self::Busy,
            _ => Self::Unavailable,
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

/// A resource transfer in either direction: progress, cancellation and the outcome. Two handles are equal
/// when they follow the same transfer.
#[derive(uniffi::Object)]
#[uniffi::export(Debug, Eq, Hash)]
pub struct ResourceTransfer {
    transfer: multipeer::ResourceTransfer,
}

impl ResourceTransfer {
    pub(crate) fn new(transfer: multipeer::ResourceTransfer) -> Self {
        Self { transfer }
    }
}

impl fmt::Debug for ResourceTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.transfer.fmt(f)
    }
}

impl PartialEq for ResourceTransfer {
    fn eq(&self, other: &Self) -> bool {
        self.transfer.id() == other.transfer.id()
            && self.transfer.peer() == other.transfer.peer()
            && self.transfer.direction() == other.transfer.direction()
    }
}

impl Eq for ResourceTransfer {}

impl Hash for ResourceTransfer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.transfer.id().hash(state);
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl ResourceTransfer {
    /// The transfer's id, 32 hex characters (the same on both ends and across resumptions).
    pub fn id(&self) -> String {
        self.transfer.id().to_string()
    }

    /// The id of the peer at the other end.
    pub fn peer(&self) -> String {
        self.transfer.peer().to_string()
    }

    /// The resource's name as the sender gave it (the receiver saves it under a sanitized form).
    pub fn name(&self) -> String {
        self.transfer.name().to_owned()
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.transfer.size()
    }

    /// `true` when a peer sends it to us, `false` when we send it.
    pub fn is_incoming(&self) -> bool {
        self.transfer.direction() == multipeer::Direction::Incoming
    }

    /// Progress now.
    pub fn progress(&self) -> ResourceProgress {
        self.transfer.progress().into()
    }

    /// Whether the transfer has finished, delivered or failed ([`ResourceTransfer::finished`] then returns at
    /// once).
    pub fn is_finished(&self) -> bool {
        self.transfer.outcome().is_some()
    }

    /// Cancels the transfer: the peer sees `ResourceCancelledByPeer` and a partial file is deleted.
    pub fn cancel(&self) {
        self.transfer.cancel();
    }

    /// Waits until the transfer has finished: delivered (and verified by the receiver), or failed.
    pub async fn finished(&self) -> Result<ResourceResult, MultipeerError> {
        Ok(self.transfer.finished().await?.into())
    }
}
