//! The mesh's rules: dialing, admitting, and what each outcome does to the roster.

use std::time::{Duration, Instant};

use super::{
    Action, Admission, AttemptId, Candidate, Dial, Mesh, Refusal, Retry, Slot, DIAL_DEFER, FULL_RETRY_MAX,
    LEADER_DEFER, MAX_CONCURRENT_DIALS, NOT_YET_DELAY, RETRY_BASE, RETRY_MAX, UNLINKED_GRACE,
};
use crate::identity::PeerId;
use crate::proto::roster::{Decision, RosterView, Update};

impl Mesh {
    /// When `peer` may be dialed, if our rules let us dial it at all: roster members we are not linked with, and
    /// — for a free peer or a leader — one peer outside the session at a time (free: the smallest id we know;
    /// leader: a smaller id than ours at once, a larger one after [`LEADER_DEFER`] if the session has room;
    /// waiting: only the full session's leader).
    fn ready_at(&self, peer: &PeerId, c: &Candidate) -> Option<Instant> {
        if c.parked || self.slots.contains_key(peer) || self.blocked.contains(peer) {
            return None;
        }
        if self.roster.contains(peer) {
            // Members link with every member, looking or not (a redirect from before we shared the session
            // does not hold us back).
            let defer = if self.local > *peer { DIAL_DEFER } else { Duration::ZERO };
            let since = c.redirected_at.map_or(c.next_attempt, |at| at.min(c.next_attempt));
            return Some(since + defer);
        }
        if self.probing.is_some() || !self.looking {
            return None;
        }
        if c.invited && !self.roster.is_full() {
            return Some(c.next_attempt);
        }
        if self.manual {
            // Manual invitations: only the app's invitations reach outside the session.
            return None;
        }
        if let Some(leader) = self.roster.waiting_on() {
            return (leader == *peer).then_some(c.next_attempt);
        }
        if !self.roster.is_leader() {
            return None;
        }
        // A peer that told us its session's leader (or whom it waits for) is reached through that leader.
        if c.leader.is_some_and(|l| l != *peer) {
            return None;
        }
        if self.roster.is_free() || *peer < self.local {
            return Some(c.next_attempt);
        }
        // A larger id dials us, unless it has not seen us: then we dial it, a little later.
        (!self.roster.is_full()).then_some(c.next_attempt + LEADER_DEFER)
    }

    /// Whom we dial now, if anyone: the candidate ready soonest, members first, then fewest failures, smallest id.
    fn dial_target(&self, now: Instant) -> Option<PeerId> {
        if self.dialing() >= MAX_CONCURRENT_DIALS {
            return None;
        }
        self.candidates
            .iter()
            .filter(|(p, c)| self.ready_at(p, c).is_some_and(|t| t <= now))
            .min_by_key(|(p, c)| (!self.roster.contains(p), c.failures, **p))
            .map(|(p, _)| *p)
    }

    /// The next dial to start now, if any. Call until it returns `None`.
    pub fn poll_dial(&mut self, now: Instant) -> Option<Dial> {
        let peer = self.dial_target(now)?;
        let attempt = self.new_attempt();
        self.slots.insert(peer, Slot::Dialing(attempt));
        if !self.roster.contains(&peer) {
            self.probing = Some(attempt);
        }
        let addrs = self.candidates.get(&peer).map(|c| c.addrs.clone()).unwrap_or_default();
        Some(Dial { peer, attempt, addrs })
    }

    /// When [`Mesh::poll_dial`] or [`Mesh::tick`] may next have something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let dials = if self.dialing() < MAX_CONCURRENT_DIALS {
            self.candidates.iter().filter_map(|(p, c)| self.ready_at(p, c)).min()
        } else {
            None
        };
        let grace = self.unlinked_since.values().map(|t| *t + UNLINKED_GRACE).min();
        let flood = self
            .last_flood
            .filter(|_| self.roster.is_leader() && !self.roster.is_free())
            .map(|t| t + UNLINKED_GRACE);
        let hints = self.hints_checked.map(|t| t + UNLINKED_GRACE);
        let grace = grace.into_iter().chain(flood).chain(hints).min();
        dials.into_iter().chain(grace).min()
    }

    /// Time passed: as the leader, drop members that never linked with us within [`UNLINKED_GRACE`].
    pub fn tick(&mut self, now: Instant) {
        let hints = *self.hints_checked.get_or_insert(now);
        if now.saturating_duration_since(hints) >= UNLINKED_GRACE {
            // What other peers told us about their sessions is checked again now and then: sessions change.
            self.hints_checked = Some(now);
            let local = self.local;
            for c in self.candidates.values_mut() {
                c.leader = c.leader.filter(|l| *l == local);
            }
        }
        if !self.roster.is_leader() {
            // A member cut off from its leader for the grace period is out: it becomes free and joins anew.
            let leader = self.roster.leader();
            self.unlinked_since.retain(|p, _| *p == leader);
            if matches!(self.slots.get(&leader), Some(Slot::Connected { .. })) {
                self.unlinked_since.clear();
            } else {
                let since = *self.unlinked_since.entry(leader).or_insert(now);
                if now.saturating_duration_since(since) >= UNLINKED_GRACE {
                    self.unlinked_since.clear();
                    self.roster.dissolve();
                    self.roster.take_dissolved();
                    self.close_non_members();
                }
            }
            return;
        }
        let last = *self.last_flood.get_or_insert(now);
        if now.saturating_duration_since(last) >= UNLINKED_GRACE && !self.roster.is_free() {
            // Anti-entropy: members whose roster diverged (concurrent changes) reconcile with this one.
            self.last_flood = Some(now);
            self.flood(None);
        }
        let members: Vec<PeerId> = self.roster.others().collect();
        self.unlinked_since.retain(|p, _| members.contains(p));
        let mut expired = Vec::new();
        for peer in members {
            if matches!(self.slots.get(&peer), Some(Slot::Connected { .. })) {
                self.unlinked_since.remove(&peer);
            } else {
                let since = *self.unlinked_since.entry(peer).or_insert(now);
                if now.saturating_duration_since(since) >= UNLINKED_GRACE {
                    expired.push(peer);
                }
            }
        }
        for peer in expired {
            self.unlinked_since.remove(&peer);
            if self.roster.link_lost(&peer) {
                self.flood(None);
            }
        }
    }

    fn schedule_retry(&mut self, peer: &PeerId, retry: Retry, now: Instant) {
        if let Retry::Redirect(leader) = retry {
            // An invitation to a member goes to its session's leader, whose app answers for the session.
            let invited = self.manual && self.candidates.get(peer).is_some_and(|c| c.invited);
            if let Some(c) = self.candidates.get_mut(&leader) {
                c.next_attempt = now;
                c.leader = None;
                c.invited |= invited;
            }
            if invited {
                self.uninvite(peer);
            }
        }
        let Some(c) = self.candidates.get_mut(peer) else { return };
        c.redirected_at = matches!(retry, Retry::Redirect(_)).then_some(now);
        let backoff = |failures: u32, max: Duration| {
            RETRY_BASE
                .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                .min(max)
        };
        let invited_again = std::mem::take(&mut c.invited_again);
        match retry {
            Retry::UntilRediscovered if invited_again => c.next_attempt = now,
            Retry::UntilRediscovered => c.parked = true,
            Retry::Backoff => {
                c.failures = c.failures.saturating_add(1);
                c.next_attempt = now + backoff(c.failures, RETRY_MAX);
            }
            Retry::Soon | Retry::Removed => c.next_attempt = now + NOT_YET_DELAY,
            Retry::Redirect(leader) => {
                c.leader = Some(leader);
                c.next_attempt = now + RETRY_BASE;
            }
            Retry::Full(leader) => {
                c.leader = Some(leader);
                c.failures = c.failures.saturating_add(1);
                c.next_attempt = now + backoff(c.failures, FULL_RETRY_MAX);
            }
            Retry::Later => {
                c.failures = c.failures.saturating_add(1);
                c.next_attempt = now + backoff(c.failures, FULL_RETRY_MAX);
            }
        }
    }

    /// The app declined `peer` (asked about an invitation either way): it is kept out of the whole session.
    pub fn declined(&mut self, peer: PeerId) {
        if self.roster.veto(peer) {
            self.flood(None);
            self.close_non_members();
        }
    }

    /// Our dial `attempt` to `peer` failed.
    pub fn dial_failed(&mut self, peer: PeerId, attempt: AttemptId, retry: Retry, now: Instant) {
        if self.slots.get(&peer) == Some(&Slot::Dialing(attempt)) {
            self.slots.remove(&peer);
        }
        if self.probing == Some(attempt) {
            self.probing = None;
        }
        if retry == Retry::Removed && self.roster.contains(&peer) && !self.roster.is_free() {
            // A member says we are not in the session any more.
            self.roster.dissolve();
            self.roster.take_dissolved();
            self.close_non_members();
        }
        if let Retry::Full(leader) = retry {
            if !self.roster.is_free() && self.roster.is_leader() && !self.roster.contains(&leader) {
                // Our session met a larger one and both do not fit: ours dissolves, its members join one by one.
                self.roster.dissolve();
                self.tell_dissolved(leader);
            }
            self.roster.refused_full(leader);
        }
        self.schedule_retry(&peer, retry, now);
    }

    /// Tells the members of a session we dissolved that the session led by `into` stays.
    fn tell_dissolved(&mut self, into: PeerId) {
        for member in self.roster.take_dissolved() {
            if self.slots.remove(&member).is_some() {
                self.actions.push_back(Action::Dissolve { peer: member, into });
            }
        }
    }

    /// `peer` dialed us, proved its identity and sent its roster: may it join?
    pub fn inbound(&mut self, peer: PeerId, theirs: &RosterView) -> Result<Admission, Refusal> {
        if self.blocked.contains(&peer) {
            return Err(Refusal::Blocked);
        }
        let (abort_dial, replaces) = match self.slots.get(&peer).copied() {
            None => (None, None),
            // Both dialed: the connection dialed by the smaller id survives.
            Some(Slot::Dialing(ours)) => {
                if self.local < peer {
                    return Err(Refusal::Duplicate);
                }
                (Some(ours), None)
            }
            Some(Slot::Accepting(_)) => return Err(Refusal::Duplicate),
            // The peer dials although we think we are connected: it lost the link (or restarted). Only our own
            // outbound connection from the smaller id wins over it, as a stale dial may still be in flight.
            Some(Slot::Connected { attempt, outbound }) => {
                if outbound && self.local < peer {
                    return Err(Refusal::Duplicate);
                }
                (None, Some(attempt))
            }
        };
        if !self.looking && !self.roster.contains(&peer) {
            return Err(Refusal::NotLooking);
        }
        if theirs.contains(&self.local) && !self.roster.contains(&peer) {
            // Its roster names us: take it as a roster update first (we may have missed one).
            self.apply_update(peer, theirs, false);
        }
        let probing = self.probing.is_some() && abort_dial.is_none_or(|a| Some(a) != self.probing);
        match self.roster.inbound(peer, theirs, probing) {
            Decision::Admit { changed } => {
                self.tell_dissolved(peer);
                if changed {
                    self.flood(Some(peer));
                }
            }
            Decision::Redirect(leader) => return Err(Refusal::Redirect(leader)),
            Decision::NotYet => return Err(Refusal::NotYet),
            Decision::Full(leader) => {
                self.tell_dissolved(leader);
                return Err(Refusal::Full(leader));
            }
            Decision::Declined => return Err(Refusal::Declined),
        }
        if let Some(ours) = abort_dial {
            if self.probing == Some(ours) {
                self.probing = None;
            }
        }
        let attempt = self.new_attempt();
        self.slots.insert(peer, Slot::Accepting(attempt));
        Ok(Admission {
            attempt,
            abort_dial,
            replaces,
            roster: self.roster.view(),
        })
    }

    /// The inbound `attempt` from `peer` failed before it was established.
    pub fn inbound_failed(&mut self, peer: PeerId, attempt: AttemptId) {
        if self.slots.get(&peer) == Some(&Slot::Accepting(attempt)) {
            self.slots.remove(&peer);
        }
    }

    /// The hello exchange of `attempt` completed; `theirs` is the roster the peer sent (for an inbound attempt,
    /// already taken into account by [`Mesh::inbound`]). `Ok`: the peer is now connected over it. `Err`: close
    /// the connection with the matching code.
    pub fn established(
        &mut self,
        peer: PeerId,
        attempt: AttemptId,
        theirs: &RosterView,
        now: Instant,
    ) -> Result<(), Refusal> {
        let outbound = match self.slots.get(&peer) {
            Some(Slot::Dialing(a)) if *a == attempt => true,
            Some(Slot::Accepting(a)) if *a == attempt => false,
            _ => return Err(Refusal::Duplicate),
        };
        if outbound {
            if self.probing == Some(attempt) {
                self.probing = None;
            }
            match self.roster.admitted(peer, theirs) {
                Some(changed) => {
                    if changed {
                        self.flood(Some(peer));
                        if theirs.members.len() < self.roster.view().members.len() {
                            self.actions.push_back(Action::SendRoster(peer));
                        }
                    }
                }
                None => {
                    self.slots.remove(&peer);
                    self.schedule_retry(&peer, Retry::Backoff, now);
                    return Err(Refusal::NotMember);
                }
            }
        }
        self.slots.insert(peer, Slot::Connected { attempt, outbound });
        self.consented.remove(&peer);
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.failures = 0;
            c.leader = None;
            c.invited = false;
            c.invited_again = false;
        }
        self.close_non_members();
        Ok(())
    }

    /// The connection of `attempt` to `peer` closed. Returns whether it was the peer's current connection
    /// (so the peer is now gone).
    pub fn closed(&mut self, peer: PeerId, attempt: AttemptId, retry: Retry, now: Instant) -> bool {
        match self.slots.get(&peer) {
            Some(Slot::Connected { attempt: a, .. }) if *a == attempt => {
                self.slots.remove(&peer);
                self.schedule_retry(&peer, retry, now);
                if retry == Retry::Removed && self.roster.contains(&peer) && !self.roster.is_leader() {
                    // A member closed our link because its (newer) roster does not hold us.
                    self.roster.dissolve();
                    self.roster.take_dissolved();
                    self.close_non_members();
                } else if self.roster.link_lost(&peer) {
                    self.flood(None);
                }
                true
            }
            _ => false,
        }
    }

    /// A connected peer sent its roster.
    pub fn roster_received(&mut self, from: PeerId, theirs: &RosterView) {
        self.apply_update(from, theirs, true);
    }

    fn apply_update(&mut self, from: PeerId, theirs: &RosterView, linked: bool) {
        match self.roster.update(theirs) {
            Update::Stale => {}
            Update::Answer => {
                if linked {
                    self.actions.push_back(Action::SendRoster(from));
                }
            }
            Update::Adopted => {
                self.flood(Some(from));
                self.close_non_members();
            }
            Update::Merged => {
                self.flood(None);
                self.close_non_members();
            }
            Update::Removed => self.close_non_members(),
        }
    }

    /// Our leader dissolved the session; the session led by `into` stays and we may join it.
    pub fn dissolved(&mut self, from: PeerId, into: PeerId, now: Instant) {
        if self.roster.leader() != from {
            return;
        }
        self.roster.dissolve();
        self.roster.take_dissolved();
        self.close_non_members();
        if let Some(c) = self.candidates.get_mut(&into) {
            c.next_attempt = now;
        }
    }
}
