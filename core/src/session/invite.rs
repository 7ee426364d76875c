//! Invitations: who asks to join, and the invitation the app holds while its user decides
//! ([`crate::InvitationMode::Manual`]).

use std::collections::BTreeMap;

use crate::identity::PeerId;

/// A peer asking to join (or, when `inbound` is false, a peer we found and are about to invite).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invitation {
    /// The peer: who invites us, or whom we would invite.
    pub peer: PeerId,
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

/// An invitation waiting for the app's answer ([`crate::Event::Invitation`]): read it as an [`Invitation`],
/// hold it while the user decides, then accept or decline it. Unanswered for
/// [`crate::SessionConfigBuilder::answer_timeout`], it is declined and the inviter told
/// [`crate::InviteError::NoAnswer`].
pub type PendingInvitation = crate::pending::Pending<Invitation>;
