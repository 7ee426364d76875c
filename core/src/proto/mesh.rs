//! The one owner of membership: whom to dial, whom to admit, which of two connections between a pair survives,
//! and who is in the session (the [`Roster`]).
//!
//! [`Mesh`] is a pure state machine. The session feeds it discovery results, connection outcomes, roster updates
//! and the current time, and carries out what it answers (dials to start, connections to close, rosters to
//! send: [`Mesh::poll_action`]). Every decision is deterministic, so both ends of a pair reach the same conclusion
//! without talking about it, and the whole thing runs on virtual time in the tests (`mesh/sim.rs`).

use std::collections::{BTreeMap as HashMap, BTreeSet as HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::identity::PeerId;
use crate::proto::roster::{Roster, RosterView};

/// How long the peer with the larger id waits before dialing a member it is not linked with yet, so that in the
/// common case only the smaller id dials and no duplicate handshake happens.
pub const DIAL_DEFER: Duration = Duration::from_millis(50);
/// How long a leader waits before dialing a peer with a larger id (which would normally dial it): discovery can
/// be one-sided for a while (a missed announcement is only made up for by the next mDNS query, a second or more
/// later), and without this two sessions whose larger leader has not seen the smaller one would wait for it.
pub const LEADER_DEFER: Duration = Duration::from_millis(150);
/// First retry delay after a failed attempt; it doubles per failure.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Longest retry delay while waiting for a seat in a full session.
pub const FULL_RETRY_MAX: Duration = Duration::from_secs(5);
/// Delay before trying again after `NOT_YET`.
pub const NOT_YET_DELAY: Duration = Duration::from_millis(25);
/// How long a leader keeps a member in the roster without a link to it, and a member stays without a link to its
/// leader.
pub const UNLINKED_GRACE: Duration = Duration::from_secs(5);
/// Most outbound dials in flight at once. Dials do not take seats: a discovered record that points nowhere
/// (a stale or forged service) costs one dial slot for the handshake timeout, never a place in the session,
/// and never keeps a real peer from dialing us.
pub const MAX_CONCURRENT_DIALS: usize = 16;

/// Most candidates held at once (discovery bounds its own table; this also bounds what any other
/// [`Discovery`](crate::discovery::Discovery) implementation and the app's invitations can add).
pub const MAX_CANDIDATES: usize = 1024;

/// Identifies one connection attempt (outbound dial or inbound connection).
pub type AttemptId = u64;

/// The state of the link to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// We are dialing it.
    Dialing(AttemptId),
    /// It dialed us and the hello exchange is under way.
    Accepting(AttemptId),
    /// Connected.
    Connected {
        /// The connection.
        attempt: AttemptId,
        /// Whether we dialed it.
        outbound: bool,
    },
}

impl Slot {
    /// The attempt this slot holds.
    pub fn attempt(self) -> AttemptId {
        match self {
            Slot::Dialing(a) | Slot::Accepting(a) | Slot::Connected { attempt: a, .. } => a,
        }
    }
}

/// What to do after a connection attempt failed or a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after an exponential back-off.
    Backoff,
    /// Do not dial again until discovery reports the peer anew.
    UntilRediscovered,
    /// The peer is in a session led by this peer: dial that one instead.
    Redirect(PeerId),
    /// Try again shortly, without counting a failure.
    Soon,
    /// The session led by this peer is full.
    Full(PeerId),
    /// The peer says we are not in its session (any more).
    Removed,
    /// The peer takes no newcomers now: try again, backing off up to [`FULL_RETRY_MAX`].
    Later,
}

/// A dial the session should start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Whom to dial.
    pub peer: PeerId,
    /// The attempt id to report the outcome with.
    pub attempt: AttemptId,
    /// Where the peer was seen, in preference order.
    pub addrs: Vec<SocketAddr>,
}

/// Why a connection is refused or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session (led by this peer) holds its maximum number of peers.
    Full(PeerId),
    /// The session is not looking for peers (for now).
    NotLooking,
    /// The app declined this peer: it is kept out of the session.
    Declined,
    /// The app removed this peer.
    Blocked,
    /// A connection between the pair that wins by the tie-break rule exists.
    Duplicate,
    /// We are not the one to admit newcomers: dial this leader.
    Redirect(PeerId),
    /// Try again shortly.
    NotYet,
    /// The peer is not in our session (any more).
    NotMember,
}

/// An inbound connection that may proceed to the hello exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The attempt id of the inbound connection.
    pub attempt: AttemptId,
    /// Our own dial to the same peer, which loses the tie-break and must be aborted.
    pub abort_dial: Option<AttemptId>,
    /// An established connection to the same peer that this one replaces (the peer lost it).
    pub replaces: Option<AttemptId>,
    /// The roster to send in our hello.
    pub roster: RosterView,
}

/// Something the session must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send our current roster to this connected peer.
    SendRoster(PeerId),
    /// Tell this connected peer our session dissolved (it should join `into`), then close the link.
    Dissolve {
        /// The member.
        peer: PeerId,
        /// The leader of the session that stays.
        into: PeerId,
    },
    /// Close the link to this peer (it is not in our session).
    Close(PeerId, AttemptId, Refusal),
}

/// What an inbound peer needs before [`Mesh::inbound`] (see [`Mesh::consent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Nothing: go on with [`Mesh::inbound`].
    NotNeeded,
    /// The app must accept the invitation first ([`Mesh::consented`]).
    Ask,
    /// Refuse it now.
    Refuse(Refusal),
}

/// A candidate as [`Mesh::candidates`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateState {
    /// The peer.
    pub peer: PeerId,
    /// Where it was seen.
    pub addrs: Vec<SocketAddr>,
    /// Its link state, if any.
    pub slot: Option<Slot>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Whether dialing waits for rediscovery.
    pub parked: bool,
}

#[derive(Debug)]
struct Candidate {
    addrs: Vec<SocketAddr>,
    next_attempt: Instant,
    failures: u32,
    parked: bool,
    /// The leader of the session this peer is in, as it told us.
    leader: Option<PeerId>,
    /// The app asked for this peer (a ticket): dial it whatever our role.
    invited: bool,
    /// The app asked for this peer again while an attempt was in flight: if that attempt fails in a way that
    /// would wait for rediscovery, dial again instead (the app's request came after it started).
    invited_again: bool,
    /// When the peer last sent us to its leader: once we share a session with it, we link with it from then
    /// on, not after the redirect's back-off.
    redirected_at: Option<Instant>,
}

/// The peer table of one session, its roster, and the rules that drive them.
#[derive(Debug)]
pub struct Mesh {
    local: PeerId,
    looking: bool,
    /// Manual invitations: only invited peers are dialed, and newcomers need the app's consent.
    manual: bool,
    /// Peers whose invitation the app accepted, until they are connected.
    consented: HashSet<PeerId>,
    roster: Roster,
    slots: HashMap<PeerId, Slot>,
    candidates: HashMap<PeerId, Candidate>,
    blocked: HashSet<PeerId>,
    /// Our dial to a peer outside the session (a merge or a join), if one is in flight.
    probing: Option<AttemptId>,
    /// When each roster member we have no link to was first missed (leader only).
    unlinked_since: HashMap<PeerId, Instant>,
    actions: VecDeque<Action>,
    next_attempt_id: AttemptId,
    /// When the leader last sent its roster to every member.
    last_flood: Option<Instant>,
    /// When the candidates' session hints were last cleared.
    hints_checked: Option<Instant>,
}

mod rules;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

impl Mesh {
    /// A mesh for `local` in sessions of at most `max_peers` peers including itself.
    pub fn new(local: PeerId, max_peers: usize) -> Self {
        Self {
            local,
            looking: true,
            manual: false,
            consented: HashSet::new(),
            roster: Roster::new(local, max_peers),
            slots: HashMap::new(),
            candidates: HashMap::new(),
            blocked: HashSet::new(),
            probing: None,
            unlinked_since: HashMap::new(),
            actions: VecDeque::new(),
            next_attempt_id: 1,
            last_flood: None,
            hints_checked: None,
        }
    }

    fn new_attempt(&mut self) -> AttemptId {
        let id = self.next_attempt_id;
        self.next_attempt_id += 1;
        id
    }

    /// Whether we are looking for (dialing and admitting) new peers.
    pub fn is_looking(&self) -> bool {
        self.looking
    }

    /// Starts or stops looking for new peers. Established links are not affected.
    pub fn set_looking(&mut self, looking: bool) {
        self.looking = looking;
        if !looking {
            self.candidates.retain(|p, _| self.roster.contains(p));
        }
    }

    /// Switches to manual invitations: no one outside the session is dialed unless invited
    /// ([`Mesh::invite`]), and a newcomer joins only with the app's consent ([`Mesh::consent`]).
    pub fn set_manual(&mut self, manual: bool) {
        self.manual = manual;
    }

    /// Whether a peer that dialed us with roster `theirs` needs the app's consent first. Only in manual mode,
    /// and only for a peer outside our session that we did not invite, when we would admit it (we are free
    /// or lead our session; a member redirects to its leader, who asks). A peer claiming a session with us
    /// that our own roster does not confirm waits (and backs off) until one of our members tells us.
    pub fn consent(&self, peer: &PeerId, theirs: &RosterView) -> Consent {
        let invited = self.candidates.get(peer).is_some_and(|c| c.invited) || self.consented.contains(peer);
        if !self.manual || invited || !self.looking || self.roster.contains(peer) || self.blocked.contains(peer) {
            return Consent::NotNeeded;
        }
        if theirs.contains(&self.local) {
            return Consent::Refuse(Refusal::NotLooking);
        }
        if self.roster.waiting_on().is_some() || !self.roster.is_leader() {
            return Consent::NotNeeded;
        }
        Consent::Ask
    }

    /// The app accepted `peer`'s invitation: it is admitted under the usual rules from now on.
    pub fn consented(&mut self, peer: PeerId) {
        if self.consented.len() < MAX_CANDIDATES {
            self.consented.insert(peer);
        }
    }

    /// Forgets an invitation to `peer` (it failed, or the app gave up on it).
    pub fn uninvite(&mut self, peer: &PeerId) {
        if let Some(c) = self.candidates.get_mut(peer) {
            c.invited = false;
        }
    }

    /// The session's roster as we hold it.
    pub fn roster(&self) -> RosterView {
        self.roster.view()
    }

    /// The leader of a full session we wait for a seat in.
    pub fn waiting_on(&self) -> Option<PeerId> {
        self.roster.waiting_on()
    }

    /// The leader of the full session we started waiting for since the last call, if we did: tell the app once
    /// that the session is full (refusals while we wait are not news).
    pub fn take_newly_waiting(&mut self) -> Option<PeerId> {
        self.roster.take_newly_waiting()
    }

    /// The slot of a peer, if any.
    pub fn slot(&self, peer: &PeerId) -> Option<Slot> {
        self.slots.get(peer).copied()
    }

    /// Connected peers.
    pub fn connected(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Connected { .. }))
            .map(|(p, _)| *p)
    }

    fn dialing(&self) -> usize {
        self.slots.values().filter(|s| matches!(s, Slot::Dialing(_))).count()
    }

    /// Whether every seat is taken.
    pub fn is_full(&self) -> bool {
        self.roster.is_full()
    }

    /// The next thing the session must do, if any. Call until it returns `None` after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Discovery found `peer` at `addrs` (again). Returns whether it is a candidate now (`false`: it is us, or
    /// the table is full).
    pub fn found(&mut self, peer: PeerId, addrs: Vec<SocketAddr>, now: Instant) -> bool {
        if peer == self.local {
            return false;
        }
        if !self.candidates.contains_key(&peer)
            && self.candidates.len() >= MAX_CANDIDATES
            && !self.roster.contains(&peer)
        {
            return false;
        }
        match self.candidates.get_mut(&peer) {
            Some(c) => {
                c.addrs = addrs;
                if c.parked {
                    c.parked = false;
                    c.failures = 0;
                    c.next_attempt = now;
                }
            }
            None => {
                self.candidates.insert(
                    peer,
                    Candidate {
                        addrs,
                        next_attempt: now,
                        failures: 0,
                        parked: false,
                        leader: None,
                        invited: false,
                        redirected_at: None,
                        invited_again: false,
                    },
                );
            }
        }
        true
    }

    /// The app invites `peer` at `addrs` (a ticket): it is dialed whatever our role in the session.
    pub fn invite(&mut self, peer: PeerId, addrs: Vec<SocketAddr>, now: Instant) {
        self.found(peer, addrs, now);
        let in_flight = matches!(self.slots.get(&peer), Some(Slot::Dialing(_)));
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.invited = true;
            c.leader = None;
            c.invited_again |= in_flight;
        }
    }

    /// The app invites `peer`, a candidate discovery found: it is dialed whatever our role in the session (even
    /// if it waited for rediscovery). Returns `false` if `peer` is no candidate.
    pub fn invite_candidate(&mut self, peer: &PeerId, now: Instant) -> bool {
        let in_flight = matches!(self.slots.get(peer), Some(Slot::Dialing(_)));
        let Some(c) = self.candidates.get_mut(peer) else {
            return false;
        };
        c.invited = true;
        c.invited_again |= in_flight;
        c.leader = None;
        c.parked = false;
        c.failures = 0;
        c.next_attempt = now;
        true
    }

    /// Discovery lost `peer`. An established link stays: liveness is the transport's job.
    pub fn lost(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
        self.consented.remove(peer);
        if self.roster.waiting_on() == Some(*peer) {
            self.roster.stop_waiting();
        }
    }

    /// Every candidate discovery reported, with its link state, ordered by id.
    pub fn candidates(&self) -> Vec<CandidateState> {
        let mut out: Vec<_> = self
            .candidates
            .iter()
            .map(|(p, c)| CandidateState {
                peer: *p,
                addrs: c.addrs.clone(),
                slot: self.slots.get(p).copied(),
                failures: c.failures,
                parked: c.parked,
            })
            .collect();
        out.sort_by_key(|c| c.peer);
        out
    }

    /// Forgets every dial in progress (the session aborted them).
    pub fn release_pending_dials(&mut self) {
        self.slots.retain(|_, slot| !matches!(slot, Slot::Dialing(_)));
        self.probing = None;
    }

    /// Keeps `peer` out until [`Mesh::unblock`]. Returns the attempt to close, if any.
    pub fn block(&mut self, peer: PeerId) -> Option<AttemptId> {
        self.blocked.insert(peer);
        if self.roster.expel(&peer) {
            self.flood(None);
        }
        let slot = self.slots.remove(&peer);
        if slot.is_some_and(|s| Some(s.attempt()) == self.probing) {
            self.probing = None;
        }
        slot.map(Slot::attempt)
    }

    /// Lets a blocked peer back in.
    pub fn unblock(&mut self, peer: &PeerId, now: Instant) {
        if self.blocked.remove(peer) {
            if let Some(c) = self.candidates.get_mut(peer) {
                c.parked = false;
                c.failures = 0;
                c.next_attempt = now;
            }
        }
    }

    /// Queues our roster for every connected member but `except`.
    fn flood(&mut self, except: Option<PeerId>) {
        let members: Vec<PeerId> = self.roster.others().filter(|p| Some(*p) != except).collect();
        for peer in members {
            if matches!(self.slots.get(&peer), Some(Slot::Connected { .. })) {
                self.actions.push_back(Action::SendRoster(peer));
            }
        }
    }

    /// Queues closing every connected peer that is not in the roster.
    fn close_non_members(&mut self) {
        let outsiders: Vec<(PeerId, AttemptId)> = self
            .slots
            .iter()
            .filter(|(p, s)| matches!(s, Slot::Connected { .. }) && !self.roster.contains(p))
            .map(|(p, s)| (*p, s.attempt()))
            .collect();
        for (peer, attempt) in outsiders {
            self.slots.remove(&peer);
            self.actions.push_back(Action::Close(peer, attempt, Refusal::NotMember));
        }
    }
}
