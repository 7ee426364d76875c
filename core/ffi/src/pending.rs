//! Questions the app answers later (invitations, resource offers), held for the foreign side.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::MultipeerError;

/// A [`multipeer::Pending`] the foreign side may answer once, from any thread.
struct Held<T>(Mutex<Option<multipeer::Pending<T>>>);

impl<T> Held<T> {
    fn new(pending: multipeer::Pending<T>) -> Self {
        Self(Mutex::new(Some(pending)))
    }

    fn answer(&self, accept: bool) -> Result<(), MultipeerError> {
        let pending = self.0.lock().map_err(|_| MultipeerError::AnswerExpired)?.take();
        let pending = pending.ok_or(MultipeerError::AnswerExpired)?;
        let answered = if accept { pending.accept() } else { pending.decline() };
        answered.map_err(|_| MultipeerError::AnswerExpired)
    }

    fn is_expired(&self) -> bool {
        self.0
            .lock()
            .map_or(true, |p| p.as_ref().is_none_or(multipeer::Pending::is_expired))
    }
}

/// Who decides that a peer joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum InvitationMode {
    /// Every peer found joins (the default): games, chats.
    #[default]
    Auto,
    /// Nothing is dialed until the app calls `invite`; an invited app gets `invitation_received` and accepts or
    /// declines. Accepting joins the inviter's session, whose members link without asking again.
    Manual,
}

impl From<InvitationMode> for multipeer::InvitationMode {
    fn from(mode: InvitationMode) -> Self {
        match mode {
            InvitationMode::Auto => Self::Auto,
            InvitationMode::Manual => Self::Manual,
        }
    }
}

/// Who decides that an offered resource (a file) is received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, uniffi::Enum)]
pub enum ResourceAcceptance {
    /// Every offer within the limits is received (the default).
    #[default]
    Auto,
    /// The app gets each offer (`resource_offered`) and accepts or declines it once its user decided.
    Manual,
}

impl From<ResourceAcceptance> for multipeer::ResourceAcceptance {
    fn from(acceptance: ResourceAcceptance) -> Self {
        match acceptance {
            ResourceAcceptance::Auto => Self::Auto,
            ResourceAcceptance::Manual => Self::Manual,
        }
    }
}

/// An invitation waiting for the app's answer. Keep it while the user decides and call `accept` or `decline`
/// from any thread; releasing it unanswered declines. Unanswered for the answer timeout, it expires.
#[derive(uniffi::Object)]
pub struct Invitation {
    peer_id: String,
    display_name: String,
    discovery_info: HashMap<String, String>,
    context: Option<Vec<u8>>,
    held: Held<multipeer::Invitation>,
}

impl Invitation {
    pub(crate) fn new(pending: multipeer::PendingInvitation) -> Self {
        Self {
            peer_id: pending.peer.to_string(),
            display_name: pending.display_name.clone(),
            discovery_info: pending.discovery_info.clone().into_iter().collect(),
            context: pending.context.clone(),
            held: Held::new(pending),
        }
    }
}

#[uniffi::export]
impl Invitation {
    /// The inviter's id (proved by its certificate).
    pub fn peer_id(&self) -> String {
        self.peer_id.clone()
    }

    /// The inviter's display name.
    pub fn display_name(&self) -> String {
        self.display_name.clone()
    }

    /// The inviter's discovery info.
    pub fn discovery_info(&self) -> HashMap<String, String> {
        self.discovery_info.clone()
    }

    /// The context the inviter sent with the invitation, if any.
    pub fn context(&self) -> Option<Vec<u8>> {
        self.context.clone()
    }

    /// Joins the inviter's session. Throws `AnswerExpired` once it timed out, the inviter gave up, or it was
    /// answered already.
    pub fn accept(&self) -> Result<(), MultipeerError> {
        self.held.answer(true)
    }

    /// Declines; the inviter is told. Throws `AnswerExpired` like `accept`.
    pub fn decline(&self) -> Result<(), MultipeerError> {
        self.held.answer(false)
    }

    /// Whether the invitation can no longer be answered (close the dialog that asks about it).
    pub fn is_expired(&self) -> bool {
        self.held.is_expired()
    }
}

/// A resource (file) a peer offers, waiting for the app's answer (resource acceptance `Manual`). Keep it
/// while the user decides and call `accept` or `decline` from any thread; releasing it unanswered declines.
#[derive(uniffi::Object)]
pub struct ResourceOffer {
    peer_id: String,
    name: String,
    size: u64,
    held: Held<multipeer::ResourceOffer>,
}

impl ResourceOffer {
    pub(crate) fn new(pending: multipeer::PendingResource) -> Self {
        Self {
            peer_id: pending.peer.to_string(),
            name: pending.name.clone(),
            size: pending.size,
            held: Held::new(pending),
        }
    }
}

#[uniffi::export]
impl ResourceOffer {
    /// The offering peer's id.
    pub fn peer_id(&self) -> String {
        self.peer_id.clone()
    }

    /// The name it was sent with (it is saved under a sanitized form of it).
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Receives it: `resource_started` follows. Throws `AnswerExpired` once it timed out, the sender gave up,
    /// or it was answered already.
    pub fn accept(&self) -> Result<(), MultipeerError> {
        self.held.answer(true)
    }

    /// Declines; the sender is told. Throws `AnswerExpired` like `accept`.
    pub fn decline(&self) -> Result<(), MultipeerError> {
        self.held.answer(false)
    }

    /// Whether the offer can no longer be answered.
    pub fn is_expired(&self) -> bool {
        self.held.is_expired()
    }
}
