//! The actor's record of the app's invitations in flight: the context each carries and who waits for its
//! outcome.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::error::InviteError;
use super::events::ConnectionFailure;
use crate::identity::PeerId;
use crate::proto::mesh::MAX_CANDIDATES;

/// Most callers waiting on invitations to one peer (callers that gave up are pruned first).
const MAX_WAITERS_PER_PEER: usize = 16;

pub(crate) type InviteReply = oneshot::Sender<Result<(), InviteError>>;

#[derive(Default)]
pub(crate) struct Invites {
    waiting: HashMap<PeerId, (Option<Vec<u8>>, Vec<InviteReply>)>,
}

impl Invites {
    /// Records an invitation to a peer that is a candidate (so at most one entry per candidate). A newer
    /// context replaces an older one.
    pub(crate) fn add(&mut self, peer: PeerId, context: Option<Vec<u8>>, reply: InviteReply) {
        if !self.waiting.contains_key(&peer) && self.waiting.len() >= MAX_CANDIDATES {
            let _ = reply.send(Err(InviteError::NotNearby(peer)));
            return;
        }
        let (held, waiters) = self.waiting.entry(peer).or_default();
        waiters.retain(|w| !w.is_closed());
        if waiters.len() >= MAX_WAITERS_PER_PEER {
            waiters.remove(0);
        }
        waiters.push(reply);
        if context.is_some() {
            *held = context;
        }
    }

    /// The context to send when dialing `peer`, if the app invited it with one.
    pub(crate) fn context(&self, peer: &PeerId) -> Option<Vec<u8>> {
        self.waiting.get(peer).and_then(|(context, _)| context.clone())
    }

    /// `peer` joined: every invitation to it succeeded.
    pub(crate) fn joined(&mut self, peer: &PeerId) {
        for reply in self.waiting.remove(peer).map(|(_, w)| w).unwrap_or_default() {
            let _ = reply.send(Ok(()));
        }
    }

    /// An invitation to `peer` failed for good. Returns whether there was one.
    pub(crate) fn failed(&mut self, peer: &PeerId, reason: &ConnectionFailure) -> bool {
        let Some((_, waiters)) = self.waiting.remove(peer) else {
            return false;
        };
        for reply in waiters {
            let _ = reply.send(Err(InviteError::from_failure(*peer, reason.clone())));
        }
        true
    }

    /// The app gave up on its invitations to `peer`. Returns whether any was left.
    pub(crate) fn cancel(&mut self, peer: &PeerId) -> bool {
        self.waiting.remove(peer).is_some()
    }

    /// The session ends: nobody joins any more.
    pub(crate) fn close(&mut self) {
        for (_, (_, waiters)) in self.waiting.drain() {
            for reply in waiters {
                let _ = reply.send(Err(InviteError::SessionClosed));
            }
        }
    }
}
