//! Who is in the session: the roster every member holds and the rule that makes all rosters converge, free of
//! I/O (see `PROTOCOL.md`, *Membership*).
//!
//! A session is the set of peers in a roster; its **leader** is the smallest id in it. Every peer starts alone
//! (a roster of itself: *free*). The rule:
//!
//! - Only a leader changes its session: it **merges** with another leader's session (a free peer is the leader
//!   of a session of one) when both fit within `max_peers`; the merged roster has a higher version and floods
//!   to every member. A member that is not the leader sends newcomers to its leader (`REDIRECT`).
//! - When two sessions meet and do not fit together, the **larger one stays** (equal sizes: the one whose leader
//!   has the smaller id) and the other **dissolves**: its members become free and join the winner one by one
//!   while seats remain. A formed session never loses a member to make room for a newcomer.
//! - A free peer refused as full **waits** for that session (it is told once) and neither forms nor joins
//!   another session while it waits; it retries, so it is admitted when a seat frees.
//! - Leaders look for other sessions only towards smaller ids (free peers: the smallest id they know), and a
//!   leader runs one such probe at a time, so merges cannot chase each other in circles.
//! - A leader removes a member whose link closed and floods the new roster; when the leader itself goes, every
//!   member removes it alike and the next smallest id leads.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::PeerId;

/// A roster as it travels in a hello or a ROSTER frame.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterView {
    /// Increases with every change the session's leader makes.
    pub version: u64,
    /// Every member, the sender included, sorted.
    pub members: Vec<PeerId>,
    /// Peers a member's app declined: kept out of the session by every member (sorted, at most
    /// [`MAX_EXCLUDED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<PeerId>,
}

impl std::fmt::Display for RosterView {
    /// `v7[1a2b,3c4d]`: the version and the members' short ids.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}[", self.version)?;
        for (i, member) in self.members.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{}", member.short())?;
        }
        write!(f, "]")
    }
}

/// Most peers a roster keeps out at the app's request.
pub const MAX_EXCLUDED: usize = 32;

impl RosterView {
    /// The leader: the smallest id.
    pub fn leader(&self) -> Option<PeerId> {
        self.members.first().copied()
    }

    /// Whether `peer` is a member.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.members.binary_search(peer).is_ok()
    }

    /// Whether the view is well-formed: 1 to `max` members, sorted, no duplicates, `sender` among them.
    pub fn is_valid(&self, sender: &PeerId, max: usize) -> bool {
        (1..=max).contains(&self.members.len()) && self.members.windows(2).all(|w| w[0] < w[1]) && self.contains(sender)
    }

    /// The view of a free peer.
    pub fn alone(peer: PeerId) -> Self {
        Self {
            version: 0,
            members: vec![peer],
            excluded: Vec::new(),
        }
    }
}

/// What the acceptor answers a peer that dialed it, as far as membership goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Admit the peer; `changed` if our roster grew (the new roster must flood to the members).
    Admit {
        /// Whether the roster changed.
        changed: bool,
    },
    /// Our session is not the one to join: dial its leader instead.
    Redirect(PeerId),
    /// Try again shortly (a roster update is on its way, or we are in the middle of a merge).
    NotYet,
    /// The session led by this peer is full.
    Full(PeerId),
    /// A member's app declined the peer.
    Declined,
}

/// What a ROSTER update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing new.
    Stale,
    /// The sender is behind: send it ours.
    Answer,
    /// We took the sender's roster.
    Adopted,
    /// We merged two concurrent changes into a newer roster: send it to everyone.
    Merged,
    /// The sender's newer roster does not hold us: we are free.
    Removed,
}

/// The roster of one peer and the membership rule.
#[derive(Debug, Clone)]
pub struct Roster {
    local: PeerId,
    max_peers: usize,
    members: BTreeSet<PeerId>,
    version: u64,
    /// The leader of a full session this free peer waits for.
    waiting_on: Option<PeerId>,
    /// Members of a session we dissolved, not yet told.
    dissolved: Vec<PeerId>,
    /// Peers kept out of the session because a member's app declined them.
    excluded: BTreeSet<PeerId>,
    /// Set when we start waiting for a full session, until taken.
    newly_waiting: Option<PeerId>,
    /// Members we took in by a merge of our own that our leader may not know yet, with the version we gave that
    /// merge: a roster of the leader's made without them is not a removal.
    unconfirmed: BTreeMap<PeerId, u64>,
    /// Members we removed as the leader, with the version of the removal (at most [`MAX_REMEMBERED`]): a
    /// member's older roster that still names them does not bring them back.
    removed: BTreeMap<PeerId, u64>,
}

/// Most removals a leader remembers.
const MAX_REMEMBERED: usize = 64;

impl Roster {
    /// A free peer in sessions of at most `max_peers` (including itself).
    pub fn new(local: PeerId, max_peers: usize) -> Self {
        Self {
            local,
            max_peers: max_peers.max(2),
            members: BTreeSet::from([local]),
            version: 0,
            waiting_on: None,
            dissolved: Vec::new(),
            excluded: BTreeSet::new(),
            newly_waiting: None,
            unconfirmed: BTreeMap::new(),
            removed: BTreeMap::new(),
        }
    }

    /// Notes that we (the leader) removed `peer` at the current version.
    fn note_removed(&mut self, peer: PeerId) {
        self.unconfirmed.remove(&peer);
        self.removed.insert(peer, self.version);
        if self.removed.len() > MAX_REMEMBERED {
            if let Some(oldest) = self.removed.iter().min_by_key(|(_, v)| **v).map(|(p, _)| *p) {
                self.removed.remove(&oldest);
            }
        }
    }

    /// The current roster.
    pub fn view(&self) -> RosterView {
        RosterView {
            version: self.version,
            members: self.members.iter().copied().collect(),
            excluded: self.excluded.iter().copied().collect(),
        }
    }

    /// The union of our members and `theirs`, without anyone either side keeps out.
    fn union_with(&self, theirs: &RosterView) -> BTreeSet<PeerId> {
        self.members
            .iter()
            .chain(&theirs.members)
            .filter(|p| !self.excluded.contains(p) && theirs.excluded.binary_search(p).is_err())
            .copied()
            .collect()
    }

    fn take_excluded(&mut self, theirs: &RosterView) {
        for p in &theirs.excluded {
            if self.excluded.len() >= MAX_EXCLUDED {
                break;
            }
            if *p != self.local {
                self.excluded.insert(*p);
            }
        }
    }

    /// Our app declined `peer`: keep it out of the session. Returns whether the roster changed (flood it).
    pub fn veto(&mut self, peer: PeerId) -> bool {
        if peer == self.local || (self.excluded.len() >= MAX_EXCLUDED && !self.excluded.contains(&peer)) {
            return false;
        }
        let fresh = self.excluded.insert(peer);
        let removed = self.members.remove(&peer);
        if fresh || removed {
            self.version += 1;
        }
        fresh || removed
    }

    /// The leader.
    pub fn leader(&self) -> PeerId {
        self.members.first().copied().unwrap_or(self.local)
    }

    /// Whether we lead our session.
    pub fn is_leader(&self) -> bool {
        self.leader() == self.local
    }

    /// Whether we are alone.
    pub fn is_free(&self) -> bool {
        self.members.len() == 1
    }

    /// Whether `peer` is a member.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.members.contains(peer)
    }

    /// Members other than us.
    pub fn others(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.members.iter().copied().filter(move |p| *p != self.local)
    }

    /// Whether every seat is taken.
    pub fn is_full(&self) -> bool {
        self.members.len() >= self.max_peers
    }

    /// The full session this free peer waits for.
    pub fn waiting_on(&self) -> Option<PeerId> {
        self.waiting_on
    }

    /// Stops waiting (the session we waited for went away).
    pub fn stop_waiting(&mut self) {
        self.waiting_on = None;
    }

    /// Decides on `peer`, which dialed us with roster `theirs`. `probing`: we have a merge of our own in flight.
    pub fn inbound(&mut self, peer: PeerId, theirs: &RosterView, probing: bool) -> Decision {
        if self.members.contains(&peer) {
            return Decision::Admit { changed: false };
        }
        if let Some(leader) = self.waiting_on {
            return Decision::Redirect(leader);
        }
        if self.excluded.contains(&peer) {
            return Decision::Declined;
        }
        if theirs.contains(&self.local) && theirs.version < self.version && theirs.leader() != Some(peer) {
            // An older roster that names us but not the dialer in ours: it was removed, or it is in a branch of a
            // merge that ours has not seen yet (versions of merges made at once are not comparable). Either way
            // it may join as a newcomer: members send it to the leader, who admits it if there is a seat.
            if !self.is_leader() {
                return Decision::Redirect(self.leader());
            }
            return self.meet(peer, &RosterView::alone(peer));
        }
        if !self.is_leader() {
            return if theirs.contains(&self.local) && theirs.version > self.version {
                Decision::NotYet
            } else {
                Decision::Redirect(self.leader())
            };
        }
        // A leader merges with leaders; a free peer also joins a member that invites it (a ticket).
        if theirs.leader() != Some(peer)
            && !self.is_free()
            && !(theirs.contains(&self.local) && theirs.version > self.version)
        {
            return Decision::NotYet;
        }
        if probing && peer > self.local {
            return Decision::NotYet;
        }
        // Another leader, or a member whose roster is newer than ours and names us (we missed an update).
        self.meet(peer, theirs)
    }

    /// Two leaders meet: merge if both sessions fit, else the smaller dissolves.
    fn meet(&mut self, peer: PeerId, theirs: &RosterView) -> Decision {
        let union = self.union_with(theirs);
        if union.len() <= self.max_peers && union.contains(&peer) {
            self.take_union(theirs, union, self.version.max(theirs.version) + 1);
            return Decision::Admit { changed: true };
        }
        if self.wins_against(peer, theirs) {
            return Decision::Full(self.local);
        }
        if self.is_free() {
            // Alone against a full session: wait for a seat in it.
            self.wait_for(peer);
            return Decision::Full(peer);
        }
        self.dissolve();
        self.meet(peer, theirs)
    }

    /// Whether our session stays when it meets the one `theirs` describes (led by `peer`) and both do not fit.
    fn wins_against(&self, peer: PeerId, theirs: &RosterView) -> bool {
        (self.members.len(), std::cmp::Reverse(self.leader())) > (theirs.members.len(), std::cmp::Reverse(peer))
    }

    /// Becomes free; the members who must be told are kept for [`Roster::take_dissolved`].
    pub fn dissolve(&mut self) {
        let gone: Vec<PeerId> = self.others().collect();
        self.dissolved.extend(gone);
        self.members = BTreeSet::from([self.local]);
        self.version += 1;
    }

    /// Members of sessions we dissolved since the last call.
    pub fn take_dissolved(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.dissolved)
    }

    /// We dialed `peer` and it admitted us with roster `theirs`. Returns whether our roster changed (flood it),
    /// or `None` when the two cannot be reconciled (close the link and retry later).
    pub fn admitted(&mut self, peer: PeerId, theirs: &RosterView) -> Option<bool> {
        self.waiting_on = None;
        if self.members.contains(&peer) && theirs.version <= self.version {
            // A member's older roster. It may still name peers ours lacks: the member took them in from a merge
            // made at the same time as ours (versions of concurrent merges are not comparable). Keep them if
            // they fit, rather than flood a roster that removes them.
            let union = self.union_with(theirs);
            if union.len() == self.members.len() || union.len() > self.max_peers {
                return Some(false);
            }
            self.take_union(theirs, union, self.version + 1);
            return Some(true);
        }
        if !theirs.contains(&self.local) {
            return None;
        }
        let union = self.union_with(theirs);
        if union.len() > self.max_peers || !union.contains(&peer) || !union.contains(&self.local) {
            return None;
        }
        let grew = union.len() != theirs.members.len();
        self.take_union(theirs, union, self.version.max(theirs.version) + u64::from(grew));
        Some(true)
    }

    /// A ROSTER update from a member: what it did to ours.
    pub fn update(&mut self, theirs: &RosterView) -> Update {
        if self.waiting_on.is_some() {
            // We left our session for a full one: older rosters naming us do not bring us back.
            return Update::Stale;
        }
        // A roster made after our merge that names them: our leader has seen them.
        self.unconfirmed
            .retain(|peer, merged| !(theirs.contains(peer) && theirs.version > *merged));
        let same = theirs.members.iter().eq(self.members.iter());
        // We lead, and this is a member's roster made from one of ours.
        let ours_by_a_member = self.is_leader() && theirs.leader() == Some(self.local);
        if same || theirs.version < self.version {
            if same && theirs.version > self.version {
                self.version = theirs.version;
            }
            if !same && ours_by_a_member && self.take_in_from_older(theirs) {
                return Update::Merged;
            }
            return if same { Update::Stale } else { Update::Answer };
        }
        if theirs.version == self.version {
            // Two changes made at once: take both if they fit, else the larger roster (then the smaller list).
            let union = self.union_with(theirs);
            if union.len() <= self.max_peers && union.contains(&self.local) {
                self.take_union(theirs, union, self.version + 1);
                return Update::Merged;
            }
            let ours: Vec<PeerId> = self.members.iter().copied().collect();
            let key = |m: &Vec<PeerId>| (m.len(), std::cmp::Reverse(m.clone()));
            if key(&ours) >= key(&theirs.members) {
                return Update::Answer;
            }
        }
        // A roster that lacks some of our members without being our leader's removal of them: keep them (if they
        // fit) rather than close their links and have them join again. Either we lead and it is a member's merge
        // made from an older roster of ours (only we remove our members), or it is another session's roster that
        // names us: ours merged into it (it has a smaller leader), or a member of ours merged into it while we
        // merged elsewhere (it names peers we lack).
        let other_session = theirs.leader() < Some(self.leader())
            || (theirs.leader() != Some(self.leader()) && theirs.members.iter().any(|p| !self.members.contains(p)));
        if (ours_by_a_member || other_session) && self.members.iter().any(|p| !theirs.contains(p)) {
            let union = self.union_with(theirs);
            if union.len() <= self.max_peers && union.contains(&self.local) {
                self.take_union(theirs, union, theirs.version + 1);
                return Update::Merged;
            }
        }
        if theirs.leader() == Some(self.leader()) && self.keep_unconfirmed(theirs) {
            return Update::Merged;
        }
        self.version = theirs.version;
        self.take_excluded(theirs);
        if !theirs.contains(&self.local) {
            self.members = BTreeSet::from([self.local]);
            return Update::Removed;
        }
        self.members = theirs
            .members
            .iter()
            .copied()
            .filter(|p| !self.excluded.contains(p))
            .collect();
        Update::Adopted
    }

    /// Makes `union` (of ours and `theirs`) our roster at `version`. When their side leads the result, the
    /// members only our side had are unconfirmed: their leader has not seen them yet.
    fn take_union(&mut self, theirs: &RosterView, union: BTreeSet<PeerId>, version: u64) {
        let leader = union.first().copied();
        if leader != Some(self.local) && leader.is_some_and(|l| theirs.contains(&l)) {
            for peer in self.members.iter().filter(|p| **p != self.local && !theirs.contains(p)) {
                self.unconfirmed.insert(*peer, version);
            }
        }
        self.take_excluded(theirs);
        self.members = union;
        self.version = version;
        let members = &self.members;
        self.unconfirmed.retain(|peer, _| members.contains(peer));
    }

    /// As the leader, takes in the peers a member's older roster names that we lack (the member merged them
    /// while we changed ours), unless we removed them since that roster or they do not fit. Whether we did.
    fn take_in_from_older(&mut self, theirs: &RosterView) -> bool {
        let extra: Vec<PeerId> = theirs
            .members
            .iter()
            .filter(|p| !self.members.contains(p) && !self.excluded.contains(p))
            .filter(|p| self.removed.get(p).is_none_or(|at| *at <= theirs.version))
            .copied()
            .collect();
        if extra.is_empty() || self.members.len() + extra.len() > self.max_peers {
            return false;
        }
        self.members.extend(extra);
        self.version += 1;
        true
    }

    /// A newer roster from our own leader lacks members we took in that it has not seen: keeps them if they fit
    /// (it made that roster without knowing them; it did not remove them). Whether we did.
    fn keep_unconfirmed(&mut self, theirs: &RosterView) -> bool {
        let kept: Vec<PeerId> = self
            .unconfirmed
            .keys()
            .filter(|p| self.members.contains(p) && !theirs.contains(p) && theirs.excluded.binary_search(p).is_err())
            .copied()
            .collect();
        if kept.is_empty() || !theirs.contains(&self.local) || theirs.members.len() + kept.len() > self.max_peers {
            return false;
        }
        self.take_excluded(theirs);
        self.members = theirs.members.iter().chain(&kept).copied().collect();
        self.version = theirs.version + 1;
        true
    }

    /// The link to member `peer` closed. Returns whether our roster changed and we must flood it (as the leader).
    pub fn link_lost(&mut self, peer: &PeerId) -> bool {
        if !self.members.contains(peer) || *peer == self.local {
            return false;
        }
        let was_leader = self.leader() == *peer;
        self.unconfirmed.remove(peer);
        if self.is_leader() || was_leader {
            self.members.remove(peer);
            self.version += 1;
            if self.is_leader() {
                self.note_removed(*peer);
            }
            // A leader floods its change. Members that lost the leader all make the same change by themselves;
            // the next leader floods it too, for members that never linked with the old one (it was removed
            // before they could) and would otherwise keep it, and redirect newcomers to it.
            return self.is_leader();
        }
        false
    }

    /// Our session's leader (or the session we probed) said it is full: wait for it if we are free.
    pub fn refused_full(&mut self, leader: PeerId) {
        if self.is_free() {
            self.wait_for(leader);
        }
    }

    fn wait_for(&mut self, leader: PeerId) {
        if self.waiting_on.is_none() {
            self.newly_waiting = Some(leader);
        }
        self.waiting_on = Some(leader);
    }

    /// The leader of the full session we started waiting for since the last call: the app is told once.
    pub fn take_newly_waiting(&mut self) -> Option<PeerId> {
        self.newly_waiting.take()
    }

    /// Removes `peer` because the app expelled it (as leader: flood). Returns whether the roster changed.
    pub fn expel(&mut self, peer: &PeerId) -> bool {
        if self.is_leader() && *peer != self.local && self.members.remove(peer) {
            self.version += 1;
            self.note_removed(*peer);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn view(version: u64, ids: &[u8]) -> RosterView {
        let mut members: Vec<PeerId> = ids.iter().map(|n| id(*n)).collect();
        members.sort();
        RosterView {
            version,
            members,
            excluded: Vec::new(),
        }
    }

    #[test]
    fn free_peers_merge_and_members_redirect_to_their_leader() {
        let mut a = Roster::new(id(1), 8);
        assert!(matches!(
            a.inbound(id(2), &view(0, &[2]), false),
            Decision::Admit { changed: true, .. }
        ));
        assert_eq!(a.view(), view(1, &[1, 2]));
        let mut b = Roster::new(id(2), 8);
        assert_eq!(b.admitted(id(1), &a.view()), Some(true));
        assert_eq!(b.view(), view(1, &[1, 2]));
        assert_eq!(b.inbound(id(3), &view(0, &[3]), false), Decision::Redirect(id(1)));
    }

    #[test]
    fn sessions_that_do_not_fit_leave_the_larger_one_standing() {
        let mut big = Roster::new(id(1), 4);
        big.inbound(id(2), &view(0, &[2]), false);
        big.inbound(id(3), &view(0, &[3]), false);
        assert_eq!(big.inbound(id(5), &view(3, &[5, 6]), false), Decision::Full(id(1)));
        // The smaller session's leader, dialed by the larger one, dissolves and joins it if a seat is left.
        let mut small = Roster::new(id(5), 4);
        small.inbound(id(6), &view(0, &[6]), false);
        assert_eq!(
            small.inbound(id(1), &view(2, &[1, 2, 3]), false),
            Decision::Admit { changed: true }
        );
        assert_eq!(small.take_dissolved(), vec![id(6)]);
        assert_eq!(small.view().members, view(0, &[1, 2, 3, 5]).members);
    }

    #[test]
    fn a_free_peer_refused_as_full_waits_and_redirects() {
        let mut p = Roster::new(id(9), 8);
        p.refused_full(id(1));
        assert_eq!(p.inbound(id(10), &view(0, &[10]), false), Decision::Redirect(id(1)));
        p.stop_waiting();
        assert!(matches!(
            p.inbound(id(10), &view(0, &[10]), false),
            Decision::Admit { .. }
        ));
    }

    #[test]
    fn updates_move_forward_concurrent_ones_merge_and_removal_frees() {
        let mut p = Roster::new(id(3), 8);
        assert_eq!(p.update(&view(4, &[1, 3, 4])), Update::Adopted);
        assert_eq!(p.update(&view(3, &[1, 3])), Update::Answer, "a stale sender gets ours");
        assert_eq!(p.update(&view(4, &[1, 3, 5])), Update::Merged);
        assert_eq!(p.view(), view(5, &[1, 3, 4, 5]));
        assert_eq!(p.update(&view(6, &[1, 4])), Update::Removed);
        assert!(p.is_free());
    }

    #[test]
    fn a_peer_a_member_declined_is_kept_out_by_everyone() {
        let mut a = Roster::new(id(1), 8);
        a.update(&view(3, &[1, 2, 3]));
        assert!(a.veto(id(3)));
        let vetoed = a.view();
        assert_eq!(vetoed.members, view(0, &[1, 2]).members);
        let mut b = Roster::new(id(2), 8);
        b.update(&view(3, &[1, 2, 3]));
        assert_eq!(b.update(&vetoed), Update::Adopted);
        assert_eq!(b.inbound(id(3), &view(0, &[3]), false), Decision::Declined);
        assert_eq!(a.inbound(id(3), &view(0, &[3]), false), Decision::Declined);
    }

    #[test]
    fn losing_the_leader_makes_the_next_smallest_lead() {
        let mut p = Roster::new(id(3), 8);
        p.update(&view(4, &[1, 2, 3]));
        assert!(!p.link_lost(&id(1)), "no flood: every member does the same");
        assert_eq!(p.leader(), id(2));
        assert_eq!(p.view().version, 5);
        // The next leader floods the same change: a member that never linked with 1 learns it from 2.
        let mut next = Roster::new(id(2), 8);
        next.update(&view(4, &[1, 2, 3]));
        assert!(next.link_lost(&id(1)));
        assert_eq!(next.view(), p.view());
        let mut unlinked = Roster::new(id(4), 8);
        unlinked.update(&view(4, &[1, 2, 4]));
        assert_eq!(unlinked.update(&view(5, &[2, 4])), Update::Adopted);
        assert_eq!(unlinked.leader(), id(2));
    }

    #[test]
    fn a_roster_of_a_merge_made_from_an_older_view_of_ours_keeps_our_members() {
        // We (4) are in a session led by 2 with 6; a merge into the session led by 1 was made from an older view
        // of ours that lacked 6. A removal comes from our own leader; this did not: 6 stays.
        let mut p = Roster::new(id(4), 8);
        p.update(&view(2, &[2, 4, 6]));
        assert_eq!(p.update(&view(5, &[1, 2, 3, 4])), Update::Merged);
        assert_eq!(p.view(), view(6, &[1, 2, 3, 4, 6]));
        // Neither is 1's next roster, made before it saw ours (it never named 6).
        assert_eq!(p.update(&view(7, &[1, 2, 3, 4])), Update::Merged);
        assert_eq!(p.view(), view(8, &[1, 2, 3, 4, 6]));
        // Once our leader's roster has named 6, a newer one without it is a removal.
        assert_eq!(p.update(&view(9, &[1, 2, 3, 4, 6])), Update::Stale);
        assert_eq!(p.update(&view(10, &[1, 2, 3, 4])), Update::Adopted);
        assert_eq!(p.view().members, view(0, &[1, 2, 3, 4]).members);
    }

    #[test]
    fn an_older_roster_naming_us_is_a_newcomer_not_a_refusal() {
        // 5 holds an older roster of ours (it was removed, or merged in a branch we have not seen): members send
        // it to the leader, the leader admits it.
        let mut member = Roster::new(id(3), 8);
        member.update(&view(4, &[1, 3]));
        assert_eq!(
            member.inbound(id(5), &view(2, &[1, 3, 5]), false),
            Decision::Redirect(id(1))
        );
        let mut leader = Roster::new(id(1), 8);
        leader.update(&view(4, &[1, 3]));
        assert_eq!(
            leader.inbound(id(5), &view(2, &[1, 3, 5]), false),
            Decision::Admit { changed: true }
        );
        assert_eq!(leader.view().members, view(0, &[1, 3, 5]).members);
    }

    #[test]
    fn a_members_older_roster_with_a_peer_we_lack_is_merged() {
        // Leader 1 merged with another session while member 3 took in 6 from a merge of its own: when 1 links
        // with 3, it keeps 6 instead of flooding a roster that removes it.
        let mut leader = Roster::new(id(1), 8);
        leader.update(&view(5, &[1, 2, 3]));
        assert_eq!(leader.admitted(id(3), &view(4, &[1, 3, 6])), Some(true));
        assert_eq!(leader.view(), view(6, &[1, 2, 3, 6]));
        assert_eq!(leader.admitted(id(2), &view(3, &[1, 2])), Some(false), "nothing new");
    }

    #[test]
    fn a_leaders_roster_made_before_it_saw_a_peer_we_merged_in_keeps_it() {
        // 5 and 6 paired; 5 joined the session led by 1, bringing 6, while 1 admitted 4 and 7.
        let mut p = Roster::new(id(5), 8);
        p.update(&view(1, &[5, 6]));
        assert_eq!(p.admitted(id(1), &view(3, &[1, 2, 3, 5])), Some(true));
        assert_eq!(p.view(), view(4, &[1, 2, 3, 5, 6]));
        // 1's next roster was made before it saw 6: not a removal.
        assert_eq!(p.update(&view(5, &[1, 2, 3, 4, 5, 7])), Update::Merged);
        assert_eq!(p.view(), view(6, &[1, 2, 3, 4, 5, 6, 7]));
        // Once 1's roster has named 6, a roster without it is a removal.
        assert_eq!(p.update(&view(7, &[1, 2, 3, 4, 5, 6, 7])), Update::Stale);
        assert_eq!(p.update(&view(8, &[1, 2, 3, 4, 5, 7])), Update::Adopted);
        assert!(!p.contains(&id(6)));
    }

    #[test]
    fn a_leader_takes_in_what_a_members_older_roster_merged_but_not_what_it_removed() {
        let mut leader = Roster::new(id(1), 8);
        leader.update(&view(5, &[1, 2, 3, 4]));
        // 3 merged 6 in while 1 took 4: 1 keeps 6 instead of answering with a roster that drops it.
        assert_eq!(leader.update(&view(4, &[1, 2, 3, 6])), Update::Merged);
        assert_eq!(leader.view(), view(6, &[1, 2, 3, 4, 6]));
        // 1 loses 6; a member's roster from before that removal does not bring it back.
        assert!(leader.link_lost(&id(6)));
        assert_eq!(leader.update(&view(6, &[1, 2, 3, 4, 6])), Update::Answer);
        assert!(!leader.contains(&id(6)));
        // Another session's older roster is not ours to take in.
        assert_eq!(leader.update(&view(2, &[0, 1, 9])), Update::Answer);
        assert!(!leader.contains(&id(9)));
    }

    #[test]
    fn a_leader_keeps_its_members_against_a_members_merge_made_from_an_older_roster() {
        // 1 admitted 6 at version 3; member 2 merged 4 and 5 in from 1's version 2 and sent version 4.
        let mut leader = Roster::new(id(1), 8);
        leader.update(&view(2, &[1, 2, 3]));
        assert_eq!(
            leader.inbound(id(6), &view(0, &[6]), false),
            Decision::Admit { changed: true }
        );
        assert_eq!(leader.update(&view(4, &[1, 2, 3, 4, 5])), Update::Merged);
        assert_eq!(leader.view(), view(5, &[1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn a_pair_that_merged_into_two_sessions_at_once_keeps_both() {
        // 3 and 7 were a pair. 3 joined the session led by 1 (with 2), 7 the one led by 5 (with 6); 7 tells 3.
        let mut p = Roster::new(id(3), 8);
        p.update(&view(1, &[3, 7]));
        assert_eq!(p.admitted(id(1), &view(2, &[1, 2, 3])), Some(true));
        assert_eq!(p.update(&view(4, &[3, 5, 6, 7])), Update::Merged);
        assert_eq!(p.view(), view(5, &[1, 2, 3, 5, 6, 7]));
        // The same roster from a session that lost its leader (nothing new in it) is a removal.
        let mut q = Roster::new(id(3), 8);
        q.update(&view(4, &[1, 2, 3]));
        assert_eq!(q.update(&view(5, &[2, 3])), Update::Adopted);
    }

    #[test]
    fn a_leader_that_met_a_smaller_one_keeps_its_members_until_the_new_leader_has_seen_them() {
        let mut p = Roster::new(id(5), 8);
        p.update(&view(1, &[5, 9]));
        assert_eq!(
            p.inbound(id(1), &view(0, &[1]), false),
            Decision::Admit { changed: true }
        );
        assert_eq!(p.view(), view(2, &[1, 5, 9]));
        assert_eq!(p.update(&view(3, &[1, 2, 5, 7])), Update::Merged);
        assert_eq!(p.view(), view(4, &[1, 2, 5, 7, 9]));
    }
}
