//! Invitations in [`crate::InvitationMode::Manual`]: the one the app holds while its user decides, and what
//! inviting can fail with.

use std::collections::BTreeMap;
use std::fmt;

use tokio::sync::oneshot;

use crate::identity::PeerId;

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
    /// The context the inviter attached ([`crate::Session::invite`], or
    /// [`crate::SessionConfigBuilder::invitation_context`]); only inbound.
    pub context: Option<Vec<u8>>,
    /// Whether the peer invited us (`true`) or we found it and would invite it (`false`).
    pub inbound: bool,
}

/// An invitation waiting for the app's answer ([`crate::Event::Invitation`]). Hold it while the user decides;
/// [`PendingInvitation::accept`] or [`PendingInvitation::decline`] it from any thread. Dropping it declines.
/// Unanswered for [`crate::SessionConfigBuilder::invitation_timeout`], it is declined and the inviter told
/// [`crate::InviteError::NoAnswer`].
pub struct PendingInvitation {
    invitation: Invitation,
    answer: oneshot::Sender<bool>,
}

impl PendingInvitation {
    pub(crate) fn new(invitation: Invitation) -> (Self, oneshot::Receiver<bool>) {
        let (answer, receiver) = oneshot::channel();
        (Self { invitation, answer }, receiver)
    }

    /// Who invites us, its discovery info and the context it sent (proved by its certificate; with a
    /// passphrase, it also knows the passphrase).
    pub fn invitation(&self) -> &Invitation {
        &self.invitation
    }

    /// The inviter's id.
    pub fn peer(&self) -> PeerId {
        self.invitation.peer_id
    }

    /// Joins the inviter's session. Fails if the invitation expired (timed out, or the inviter gave up).
    pub fn accept(self) -> Result<(), AnswerError> {
        self.answer.send(true).map_err(|_| AnswerError::Expired)
    }

    /// Declines: the inviter is told [`crate::InviteError::Declined`]. It may invite again later.
    pub fn decline(self) -> Result<(), AnswerError> {
        self.answer.send(false).map_err(|_| AnswerError::Expired)
    }

    /// Whether the invitation can no longer be answered (timed out, or the inviter gave up).
    pub fn is_expired(&self) -> bool {
        self.answer.is_closed()
    }

    /// Completes once the invitation can no longer be answered: close the dialog that asks about it.
    pub async fn expired(&mut self) {
        self.answer.closed().await;
    }
}

impl fmt::Debug for PendingInvitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingInvitation")
            .field("invitation", &self.invitation)
            .field("expired", &self.is_expired())
            .finish()
    }
}

/// Why an answer to an invitation was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The invitation timed out, or the inviter gave up or left, before the answer.
    #[error("the invitation expired before it was answered")]
    Expired,
}
