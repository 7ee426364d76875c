//! The mesh rules: whom to dial, whom to admit, which of two connections between a pair survives.
//!
//! [`Mesh`] is a pure state machine. The session feeds it discovery results, connection outcomes and the
//! current time, and carries out what it answers. Every decision is deterministic, so both ends of a pair
//! reach the same conclusion without talking about it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::identity::PeerId;

/// How long the peer with the larger id waits before dialing a newly found peer, so that in the common
/// case only the smaller id dials and no duplicate handshake happens.
pub const DIAL_DEFER: Duration = Duration::from_millis(200);
/// First retry delay after a failed attempt; it doubles per failure.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Most outbound dials in flight at once. Dials do not take seats: a discovered record that points nowhere
/// (a stale or forged service) costs one dial slot for the handshake timeout, never a place in the session,
/// and never keeps a real peer from dialing us.
pub const MAX_CONCURRENT_DIALS: usize = 16;

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

/// Why an inbound connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session holds its maximum number of peers.
    Full,
    /// The session is not looking for peers.
    NotLooking,
    /// The app removed this peer.
    Blocked,
    /// A connection between the pair that wins by the tie-break rule exists.
    Duplicate,
}

/// An inbound connection that may proceed to the hello exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The attempt id of the inbound connection.
    pub attempt: AttemptId,
    /// Our own dial to the same peer, which loses the tie-break and must be aborted.
    pub abort_dial: Option<AttemptId>,
    /// An established connection to the same peer that this one replaces (the peer lost it).
    pub replaces: Option<AttemptId>,
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
}

/// The peer table of one session and the rules that drive it.
#[derive(Debug)]
pub struct Mesh {
    local: PeerId,
    capacity: usize,
    looking: bool,
    slots: HashMap<PeerId, Slot>,
    candidates: HashMap<PeerId, Candidate>,
    blocked: HashSet<PeerId>,
    next_attempt_id: AttemptId,
}

impl Mesh {
    /// A mesh for `local` holding at most `max_peers` peers including itself.
    pub fn new(local: PeerId, max_peers: usize) -> Self {
        Self {
            local,
            capacity: max_peers.saturating_sub(1),
            looking: true,
            slots: HashMap::new(),
            candidates: HashMap::new(),
            blocked: HashSet::new(),
            next_attempt_id: 1,
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
            self.candidates.clear();
        }
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

    /// Peers that hold a seat: connected, or admitted and exchanging hellos. Dials in flight do not count.
    fn seated(&self) -> usize {
        self.slots.values().filter(|s| !matches!(s, Slot::Dialing(_))).count()
    }

    fn dialing(&self) -> usize {
        self.slots.values().filter(|s| matches!(s, Slot::Dialing(_))).count()
    }

    /// Whether every seat is taken (connected, or admitted and joining).
    pub fn is_full(&self) -> bool {
        self.seated() >= self.capacity
    }

    /// Discovery found `peer` at `addrs` (again).
    pub fn found(&mut self, peer: PeerId, addrs: Vec<SocketAddr>, now: Instant) {
        if peer == self.local {
            return;
        }
        let defer = if self.local > peer { DIAL_DEFER } else { Duration::ZERO };
        match self.candidates.get_mut(&peer) {
            Some(c) => {
                c.addrs = addrs;
                if c.parked {
                    c.parked = false;
                    c.failures = 0;
                    c.next_attempt = now + defer;
                }
            }
            None => {
                self.candidates.insert(
                    peer,
                    Candidate {
                        addrs,
                        next_attempt: now + defer,
                        failures: 0,
                        parked: false,
                    },
                );
            }
        }
    }

    /// Discovery lost `peer`. An established link stays: liveness is the transport's job.
    pub fn lost(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
    }

    fn may_dial(&self, peer: &PeerId) -> bool {
        self.looking
            && !self.is_full()
            && self.dialing() < MAX_CONCURRENT_DIALS
            && !self.slots.contains_key(peer)
            && !self.blocked.contains(peer)
    }

    /// The next dial to start now, if any. Call until it returns `None`.
    pub fn poll_dial(&mut self, now: Instant) -> Option<Dial> {
        let peer = self
            .candidates
            .iter()
            .filter(|(p, c)| !c.parked && c.next_attempt <= now && self.may_dial(p))
            // Peers that never failed go first, so unreachable records cannot starve fresh ones.
            .min_by_key(|(p, c)| (c.failures, c.next_attempt, **p))
            .map(|(p, _)| *p)?;
        let attempt = self.new_attempt();
        self.slots.insert(peer, Slot::Dialing(attempt));
        let addrs = self.candidates.get(&peer).map(|c| c.addrs.clone()).unwrap_or_default();
        Some(Dial { peer, attempt, addrs })
    }

    /// When [`Mesh::poll_dial`] may next have something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.candidates
            .iter()
            .filter(|(p, c)| !c.parked && self.may_dial(p))
            .map(|(_, c)| c.next_attempt)
            .min()
    }

    fn schedule_retry(&mut self, peer: &PeerId, retry: Retry, now: Instant) {
        if let Some(c) = self.candidates.get_mut(peer) {
            match retry {
                Retry::UntilRediscovered => c.parked = true,
                Retry::Backoff => {
                    c.failures = c.failures.saturating_add(1);
                    let factor = 1u32 << c.failures.saturating_sub(1).min(16);
                    c.next_attempt = now + RETRY_BASE.saturating_mul(factor).min(RETRY_MAX);
                }
            }
        }
    }

    /// Our dial `attempt` to `peer` failed.
    pub fn dial_failed(&mut self, peer: PeerId, attempt: AttemptId, retry: Retry, now: Instant) {
        if self.slots.get(&peer) == Some(&Slot::Dialing(attempt)) {
            self.slots.remove(&peer);
        }
        self.schedule_retry(&peer, retry, now);
    }

    /// `peer` dialed us and proved its identity: may the hello exchange proceed?
    pub fn inbound(&mut self, peer: PeerId) -> Result<Admission, Refusal> {
        if self.blocked.contains(&peer) {
            return Err(Refusal::Blocked);
        }
        let (abort_dial, replaces) = match self.slots.get(&peer).copied() {
            None => {
                if !self.looking {
                    return Err(Refusal::NotLooking);
                }
                if self.is_full() {
                    return Err(Refusal::Full);
                }
                (None, None)
            }
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
        let attempt = self.new_attempt();
        self.slots.insert(peer, Slot::Accepting(attempt));
        Ok(Admission {
            attempt,
            abort_dial,
            replaces,
        })
    }

    /// The inbound `attempt` from `peer` failed before it was established.
    pub fn inbound_failed(&mut self, peer: PeerId, attempt: AttemptId) {
        if self.slots.get(&peer) == Some(&Slot::Accepting(attempt)) {
            self.slots.remove(&peer);
        }
    }

    /// The hello exchange of `attempt` completed. `Ok`: the peer is now connected over it. `Err(Duplicate)`:
    /// the attempt was superseded; `Err(Full)`: a dial completed after the last seat was taken (several dials
    /// may be in flight at once). Either way its connection must be closed with the matching code.
    pub fn established(&mut self, peer: PeerId, attempt: AttemptId, now: Instant) -> Result<(), Refusal> {
        let outbound = match self.slots.get(&peer) {
            Some(Slot::Dialing(a)) if *a == attempt => true,
            Some(Slot::Accepting(a)) if *a == attempt => false,
            _ => return Err(Refusal::Duplicate),
        };
        if outbound && self.is_full() {
            self.slots.remove(&peer);
            self.schedule_retry(&peer, Retry::Backoff, now);
            return Err(Refusal::Full);
        }
        self.slots.insert(peer, Slot::Connected { attempt, outbound });
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.failures = 0;
        }
        Ok(())
    }

    /// The connection of `attempt` to `peer` closed. Returns whether it was the peer's current connection
    /// (so the peer is now gone).
    pub fn closed(&mut self, peer: PeerId, attempt: AttemptId, retry: Retry, now: Instant) -> bool {
        match self.slots.get(&peer) {
            Some(Slot::Connected { attempt: a, .. }) if *a == attempt => {
                self.slots.remove(&peer);
                self.schedule_retry(&peer, retry, now);
                true
            }
            _ => false,
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
    }

    /// Keeps `peer` out until [`Mesh::unblock`]. Returns the attempt to close, if any.
    pub fn block(&mut self, peer: PeerId) -> Option<AttemptId> {
        self.blocked.insert(peer);
        self.slots.remove(&peer).map(Slot::attempt)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn addr() -> Vec<SocketAddr> {
        vec![SocketAddr::from(([127, 0, 0, 1], 4000))]
    }

    /// Runs two meshes through a simultaneous dial and checks they keep the same connection.
    #[test]
    fn simultaneous_dial_keeps_the_smaller_ids_connection() {
        let now = Instant::now();
        let (mut a, mut b) = (Mesh::new(id(1), 8), Mesh::new(id(2), 8));
        a.found(id(2), addr(), now);
        b.found(id(1), addr(), now);
        // The smaller id dials at once, the larger waits.
        let dial_a = a.poll_dial(now).unwrap();
        assert!(b.poll_dial(now).is_none());
        let later = now + DIAL_DEFER;
        let dial_b = b.poll_dial(later).unwrap();
        // Both dials reach the other side.
        assert_eq!(a.inbound(id(2)), Err(Refusal::Duplicate));
        let admitted = b.inbound(id(1)).unwrap();
        assert_eq!(admitted.abort_dial, Some(dial_b.attempt));
        assert!(b.established(id(1), admitted.attempt, now).is_ok());
        assert!(a.established(id(2), dial_a.attempt, now).is_ok());
        assert_eq!(
            b.established(id(1), dial_b.attempt, now),
            Err(Refusal::Duplicate),
            "aborted dial must not win"
        );
        assert_eq!(a.connected().collect::<Vec<_>>(), vec![id(2)]);
        assert_eq!(b.connected().collect::<Vec<_>>(), vec![id(1)]);
    }

    #[test]
    fn full_session_refuses_and_does_not_dial() {
        let now = Instant::now();
        let mut m = Mesh::new(id(1), 3);
        for n in 2..=4 {
            m.found(id(n), addr(), now);
        }
        // Dials do not take seats: all three go out, the one that completes last finds the session full.
        let dials: Vec<Dial> = std::iter::from_fn(|| m.poll_dial(now)).collect();
        assert_eq!(dials.len(), 3);
        assert!(m.established(dials[0].peer, dials[0].attempt, now).is_ok());
        assert!(m.established(dials[1].peer, dials[1].attempt, now).is_ok());
        assert_eq!(m.established(dials[2].peer, dials[2].attempt, now), Err(Refusal::Full));
        assert_eq!(m.inbound(id(9)), Err(Refusal::Full));
        assert!(m.next_wakeup().is_none());
        assert!(m.closed(dials[0].peer, dials[0].attempt, Retry::Backoff, now));
        assert!(m.inbound(id(9)).is_ok());
    }

    #[test]
    fn unreachable_candidates_neither_take_seats_nor_starve_real_peers() {
        let now = Instant::now();
        let mut m = Mesh::new(id(1), 8);
        // Forged records point nowhere; every dial slot is busy with them.
        for n in 100..=(100 + MAX_CONCURRENT_DIALS as u8 + 4) {
            m.found(id(n), addr(), now);
        }
        let dials: Vec<Dial> = std::iter::from_fn(|| m.poll_dial(now)).collect();
        assert_eq!(dials.len(), MAX_CONCURRENT_DIALS, "dials in flight are bounded");
        // A real peer dialing us is admitted all the same.
        assert!(m.inbound(id(50)).is_ok());
        // A real peer found later is dialed as soon as a slot frees, before the forged ones are retried.
        m.found(id(60), addr(), now);
        for d in &dials {
            m.dial_failed(d.peer, d.attempt, Retry::Backoff, now);
        }
        let next = m.poll_dial(now + RETRY_BASE).unwrap();
        assert_eq!(next.peer, id(60));
        let all: Vec<Dial> = std::iter::from_fn(|| m.poll_dial(now + RETRY_BASE)).collect();
        assert_eq!(
            all.len() + 1,
            MAX_CONCURRENT_DIALS,
            "never more than the bound in flight"
        );
    }

    #[test]
    fn failures_back_off_and_parking_waits_for_rediscovery() {
        let now = Instant::now();
        let mut m = Mesh::new(id(1), 8);
        m.found(id(2), addr(), now);
        let d = m.poll_dial(now).unwrap();
        m.dial_failed(id(2), d.attempt, Retry::Backoff, now);
        assert!(m.poll_dial(now).is_none());
        assert_eq!(m.next_wakeup(), Some(now + RETRY_BASE));
        let d = m.poll_dial(now + RETRY_BASE).unwrap();
        m.dial_failed(id(2), d.attempt, Retry::Backoff, now);
        assert_eq!(m.next_wakeup(), Some(now + RETRY_BASE * 2));
        let d = m.poll_dial(now + RETRY_BASE * 2).unwrap();
        m.dial_failed(id(2), d.attempt, Retry::UntilRediscovered, now);
        assert!(m.next_wakeup().is_none());
        m.found(id(2), addr(), now);
        assert!(m.poll_dial(now).is_some());
    }

    #[test]
    fn blocked_peers_stay_out_until_unblocked() {
        let now = Instant::now();
        let mut m = Mesh::new(id(1), 8);
        m.found(id(2), addr(), now);
        let d = m.poll_dial(now).unwrap();
        assert!(m.established(id(2), d.attempt, now).is_ok());
        assert_eq!(m.block(id(2)), Some(d.attempt));
        assert!(!m.closed(id(2), d.attempt, Retry::Backoff, now), "already gone");
        assert_eq!(m.inbound(id(2)), Err(Refusal::Blocked));
        assert!(m.poll_dial(now).is_none());
        m.unblock(&id(2), now);
        assert!(m.poll_dial(now).is_some());
    }

    #[test]
    fn not_looking_refuses_newcomers_but_keeps_links() {
        let now = Instant::now();
        let mut m = Mesh::new(id(1), 8);
        m.found(id(2), addr(), now);
        let d = m.poll_dial(now).unwrap();
        assert!(m.established(id(2), d.attempt, now).is_ok());
        m.set_looking(false);
        assert_eq!(m.inbound(id(3)), Err(Refusal::NotLooking));
        m.found(id(4), addr(), now);
        assert!(m.poll_dial(now).is_none());
        assert_eq!(m.connected().count(), 1);
    }

    #[test]
    fn a_peer_that_lost_the_link_replaces_it() {
        let now = Instant::now();
        let mut m = Mesh::new(id(5), 8);
        let first = m.inbound(id(2)).unwrap();
        assert!(m.established(id(2), first.attempt, now).is_ok());
        let second = m.inbound(id(2)).unwrap();
        assert_eq!(second.replaces, Some(first.attempt));
        assert!(m.established(id(2), second.attempt, now).is_ok());
        assert!(
            !m.closed(id(2), first.attempt, Retry::Backoff, now),
            "old link closing is not a removal"
        );
        // Our own outbound link from the smaller id is not replaced by a dial of the larger id.
        let mut small = Mesh::new(id(1), 8);
        small.found(id(2), addr(), now);
        let d = small.poll_dial(now).unwrap();
        assert!(small.established(id(2), d.attempt, now).is_ok());
        assert_eq!(small.inbound(id(2)), Err(Refusal::Duplicate));
    }
}
