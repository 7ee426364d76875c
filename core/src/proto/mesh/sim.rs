//! A simulated LAN for [`Mesh`]es on virtual time, in the style of quinn-proto's `Pair`: every endpoint is the
//! real state machine; the harness delivers dials, hellos, refusals, rosters and closes after seeded delays and
//! checks the outcome. The same seed gives the same trace.

use std::cmp::Reverse;
use std::collections::{BTreeMap as HashMap, BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use super::{Action, AttemptId, Mesh, Refusal, Retry};
use crate::identity::PeerId;
use crate::proto::roster::RosterView;

/// A small deterministic random number generator (xorshift64*).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone)]
enum Msg {
    /// A dial that never arrived: the dialer's handshake timed out.
    TimedOut {
        from: usize,
        to: usize,
        attempt: AttemptId,
    },
    Found {
        at: usize,
        peer: usize,
    },
    DialArrives {
        from: usize,
        to: usize,
        attempt: AttemptId,
        roster: RosterView,
    },
    Accepted {
        from: usize,
        to: usize,
        attempt: AttemptId,
        theirs: AttemptId,
        roster: RosterView,
    },
    Refused {
        from: usize,
        to: usize,
        attempt: AttemptId,
        refusal: Refusal,
    },
    Roster {
        from: usize,
        to: usize,
        attempt: AttemptId,
        roster: RosterView,
    },
    Dissolve {
        from: usize,
        to: usize,
        attempt: AttemptId,
        into: PeerId,
    },
    Closed {
        at: usize,
        other: usize,
        attempt: AttemptId,
        retry: Retry,
    },
    Wake {
        at: usize,
    },
}

/// How a refusal reads to the side that receives it.
pub(super) fn retry_for(refusal: Refusal) -> Retry {
    match refusal {
        Refusal::Full(leader) => Retry::Full(leader),
        Refusal::Declined | Refusal::Blocked => Retry::UntilRediscovered,
        Refusal::NotLooking => Retry::Later,
        Refusal::Duplicate => Retry::Soon,
        Refusal::Redirect(leader) => Retry::Redirect(leader),
        Refusal::NotYet => Retry::Soon,
        Refusal::NotMember => Retry::Removed,
    }
}

/// One simulated run.
pub(super) struct Sim {
    pub(super) meshes: Vec<Mesh>,
    ids: Vec<PeerId>,
    rng: Rng,
    start: Instant,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    messages: HashMap<usize, Msg>,
    seq: u64,
    /// Each side's attempt of a live connection, to the other side's (peer, attempt).
    links: HashMap<(usize, AttemptId), (usize, AttemptId)>,
    /// How often each endpoint started waiting for a full session since it was last in one (what the app is told).
    pub(super) full_reports: Vec<u32>,
    wake_at: Vec<Option<Duration>>,
    /// When the last message from one endpoint to another arrives: links deliver in order.
    fifo: HashMap<(usize, usize), Duration>,
    pub(super) trace: Vec<String>,
    max_delay_ms: u64,
    /// Percent of dials lost on the way (they time out after the handshake timeout).
    loss_percent: u64,
    /// How often each endpoint established a link with each other one (each is a `PeerAdded` for its app).
    pub(super) added: HashMap<(usize, usize), u32>,
}

impl Sim {
    /// `n` endpoints with sessions of at most `max_peers`; discovery reaches each pair within `spread`.
    pub(super) fn new(n: usize, max_peers: usize, seed: u64, spread: Duration, max_delay_ms: u64) -> Self {
        let mut rng = Rng::new(seed);
        let ids: Vec<PeerId> = (0..n)
            .map(|_| {
                let mut b = [0u8; 32];
                for chunk in b.chunks_mut(8) {
                    chunk.copy_from_slice(&rng.next().to_le_bytes());
                }
                PeerId::from_bytes(b)
            })
            .collect();
        let mut sim = Self {
            meshes: ids.iter().map(|id| Mesh::new(*id, max_peers)).collect(),
            ids,
            rng,
            start: Instant::now(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            messages: HashMap::new(),
            seq: 0,
            links: HashMap::new(),
            full_reports: vec![0; n],
            wake_at: vec![None; n],
            fifo: HashMap::new(),
            trace: Vec::new(),
            max_delay_ms,
            loss_percent: 0,
            added: HashMap::new(),
        };
        let spread_ms = spread.as_millis() as u64;
        for at in 0..n {
            for peer in 0..n {
                if at != peer {
                    let when = Duration::from_millis(sim.rng.below(spread_ms + 1));
                    sim.push(when, Msg::Found { at, peer });
                }
            }
        }
        sim
    }

    /// Loses `percent` of dials from now on.
    pub(super) fn with_dial_loss(mut self, percent: u64) -> Self {
        self.loss_percent = percent;
        self
    }

    pub(super) fn id(&self, i: usize) -> PeerId {
        self.ids[i]
    }

    fn index(&self, id: &PeerId) -> usize {
        self.ids.iter().position(|p| p == id).unwrap_or(usize::MAX)
    }

    fn push(&mut self, at: Duration, msg: Msg) {
        self.seq += 1;
        let key = self.seq as usize;
        self.messages.insert(key, msg);
        self.queue.push(Reverse((at, self.seq, key)));
    }

    /// Sends `msg` from `from` to `to` after a random delay, never before an earlier message between them.
    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        let d = self.delay();
        let last = self.fifo.get(&(from, to)).copied().unwrap_or_default();
        let at = (self.now + d).max(last + Duration::from_micros(1));
        self.fifo.insert((from, to), at);
        self.push(at, msg);
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(1 + self.rng.below(self.max_delay_ms))
    }

    fn instant(&self) -> Instant {
        self.start + self.now
    }

    /// Runs until virtual time `until` (or nothing is left to do). Returns the number of steps.
    pub(super) fn run(&mut self, until: Duration) -> usize {
        let mut steps = 0;
        while let Some(Reverse((at, _, key))) = self.queue.peek().copied() {
            if at > until || steps > 2_000_000 {
                break;
            }
            self.queue.pop();
            self.now = at;
            if let Some(msg) = self.messages.remove(&key) {
                self.step(msg);
            }
            steps += 1;
        }
        self.now = until;
        steps
    }

    fn step(&mut self, msg: Msg) {
        let now = self.instant();
        self.trace.push(format!("{:?} {msg:?}", self.now));
        let at = match msg {
            Msg::Found { at, peer } => {
                let (id, addr) = (self.ids[peer], std::net::SocketAddr::from(([10, 0, 0, 1], 1)));
                self.meshes[at].found(id, vec![addr], now);
                at
            }
            Msg::DialArrives {
                from,
                to,
                attempt,
                roster,
            } => self.dial_arrives(from, to, attempt, &roster),
            Msg::Accepted {
                from,
                to,
                attempt,
                theirs,
                roster,
            } => {
                if !self.links.contains_key(&(to, theirs)) {
                    // The acceptor closed it meanwhile.
                    self.meshes[from].dial_failed(self.ids[to], attempt, Retry::Soon, now);
                } else if self.meshes[from]
                    .established(self.ids[to], attempt, &roster, now)
                    .is_err()
                {
                    self.close(from, attempt, retry_for(Refusal::NotMember));
                } else {
                    *self.added.entry((from, to)).or_default() += 1;
                }
                from
            }
            Msg::Refused {
                from,
                to,
                attempt,
                refusal,
            } => {
                let retry = retry_for(refusal);
                self.meshes[from].dial_failed(self.ids[to], attempt, retry, now);
                from
            }
            Msg::TimedOut { from, to, attempt } => {
                self.meshes[from].dial_failed(self.ids[to], attempt, Retry::Backoff, now);
                from
            }
            Msg::Roster {
                from,
                to,
                attempt,
                roster,
            } => {
                if self.links.contains_key(&(from, attempt)) {
                    self.meshes[to].roster_received(self.ids[from], &roster);
                }
                to
            }
            Msg::Dissolve {
                from,
                to,
                attempt,
                into,
            } => {
                if let Some((_, theirs)) = self.links.remove(&(from, attempt)) {
                    self.links.remove(&(to, theirs));
                    self.meshes[to].dissolved(self.ids[from], into, now);
                    self.meshes[to].closed(self.ids[from], theirs, Retry::Soon, now);
                }
                to
            }
            Msg::Closed {
                at,
                other,
                attempt,
                retry,
            } => {
                self.meshes[at].closed(self.ids[other], attempt, retry, now);
                at
            }
            Msg::Wake { at } => {
                self.wake_at[at] = None;
                at
            }
        };
        self.drive(at);
    }

    fn dial_arrives(&mut self, from: usize, to: usize, attempt: AttemptId, roster: &RosterView) -> usize {
        let now = self.instant();
        if self.meshes[from].slot(&self.ids[to]).map(|s| s.attempt()) != Some(attempt) {
            return to; // the dialer aborted it
        }
        match self.meshes[to].inbound(self.ids[from], roster) {
            Ok(admission) => {
                if let Some(replaced) = admission.replaces {
                    self.close(to, replaced, Retry::Soon);
                }
                let accepted = Msg::Accepted {
                    from,
                    to,
                    attempt,
                    theirs: admission.attempt,
                    roster: admission.roster.clone(),
                };
                self.send(to, from, accepted);
                let theirs = roster.clone();
                if self.meshes[to]
                    .established(self.ids[from], admission.attempt, &theirs, now)
                    .is_ok()
                {
                    *self.added.entry((to, from)).or_default() += 1;
                    self.links.insert((from, attempt), (to, admission.attempt));
                    self.links.insert((to, admission.attempt), (from, attempt));
                } else {
                    self.trace.push("acceptor could not establish".into());
                }
            }
            Err(refusal) => self.send(
                to,
                from,
                Msg::Refused {
                    from,
                    to,
                    attempt,
                    refusal,
                },
            ),
        }
        to
    }

    /// Closes our side of a link; the other side learns it with `retry`.
    fn close(&mut self, at: usize, attempt: AttemptId, retry: Retry) {
        if let Some((other, theirs)) = self.links.remove(&(at, attempt)) {
            self.trace
                .push(format!("{:?} {at} closes its link to {other}: {retry:?}", self.now));
            self.links.remove(&(other, theirs));
            let closed = Msg::Closed {
                at: other,
                other: at,
                attempt: theirs,
                retry,
            };
            self.send(at, other, closed);
        }
    }

    fn attempt_to(&self, at: usize, peer: usize) -> Option<AttemptId> {
        self.links
            .iter()
            .find(|((a, _), (p, _))| *a == at && *p == peer)
            .map(|((_, att), _)| *att)
    }

    /// Carries out what endpoint `at` decided: actions, dials, and its next wake-up.
    fn drive(&mut self, at: usize) {
        let now = self.instant();
        self.meshes[at].tick(now);
        if self.meshes[at].take_newly_waiting().is_some() {
            self.full_reports[at] += 1;
        }
        if self.meshes[at].connected().next().is_some() {
            // It is in a session again: being left out later is news again.
            self.full_reports[at] = 0;
        }
        while let Some(action) = self.meshes[at].poll_action() {
            self.act(at, action);
        }
        while let Some(dial) = self.meshes[at].poll_dial(now) {
            let to = self.index(&dial.peer);
            let roster = self.meshes[at].roster();
            if self.rng.below(100) < self.loss_percent {
                // Lost on the way: the dialer gives up after the handshake timeout.
                let attempt = dial.attempt;
                self.push(
                    self.now + Duration::from_secs(5),
                    Msg::TimedOut { from: at, to, attempt },
                );
                continue;
            }
            let d = self.delay() + self.delay();
            self.push(
                self.now + d,
                Msg::DialArrives {
                    from: at,
                    to,
                    attempt: dial.attempt,
                    roster,
                },
            );
        }
        if let Some(wake) = self.meshes[at].next_wakeup() {
            let when = wake
                .saturating_duration_since(self.start)
                .max(self.now + Duration::from_millis(1));
            if self.wake_at[at].is_none_or(|w| w > when) {
                self.wake_at[at] = Some(when);
                self.push(when, Msg::Wake { at });
            }
        }
    }

    fn act(&mut self, at: usize, action: Action) {
        match action {
            Action::SendRoster(peer) => {
                let to = self.index(&peer);
                if let Some(attempt) = self.attempt_to(at, to) {
                    let roster = self.meshes[at].roster();
                    self.send(
                        at,
                        to,
                        Msg::Roster {
                            from: at,
                            to,
                            attempt,
                            roster,
                        },
                    );
                }
            }
            Action::Dissolve { peer, into } => {
                let to = self.index(&peer);
                if let Some(attempt) = self.attempt_to(at, to) {
                    self.send(
                        at,
                        to,
                        Msg::Dissolve {
                            from: at,
                            to,
                            attempt,
                            into,
                        },
                    );
                }
            }
            Action::Close(_, attempt, refusal) => self.close(at, attempt, retry_for(refusal)),
        }
    }

    /// Who is connected to whom, as both ends see it.
    pub(super) fn connected(&self, at: usize) -> HashSet<PeerId> {
        self.meshes[at].connected().collect()
    }

    /// Checks the outcome: one session of `min(n, max_peers)` with the same roster everywhere, fully linked,
    /// and every other endpoint waiting for it, told once. `Err` describes what is wrong.
    pub(super) fn check_converged(&self, max_peers: usize) -> Result<(), String> {
        let n = self.meshes.len();
        let rosters: Vec<RosterView> = self.meshes.iter().map(Mesh::roster).collect();
        let biggest = rosters.iter().map(|r| r.members.len()).max().unwrap_or(0);
        let session = rosters
            .iter()
            .find(|r| r.members.len() == biggest)
            .cloned()
            .ok_or("no roster")?;
        if session.members.len() != n.min(max_peers) {
            return Err(format!(
                "session of {} (expected {})",
                session.members.len(),
                n.min(max_peers)
            ));
        }
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            let me = self.ids[i];
            if session.contains(&me) {
                if rosters[i].members != session.members {
                    return Err(format!(
                        "member {i} holds another roster: {:?}",
                        rosters[i].members.len()
                    ));
                }
                let want: HashSet<PeerId> = session.members.iter().copied().filter(|p| *p != me).collect();
                if self.connected(i) != want {
                    return Err(format!(
                        "member {i} linked to {} of {}",
                        self.connected(i).len(),
                        want.len()
                    ));
                }
            } else {
                if rosters[i].members.len() != 1 || !self.connected(i).is_empty() {
                    return Err(format!("outsider {i} is not alone"));
                }
                if self.full_reports[i] != 1 {
                    return Err(format!("outsider {i} was told full {} times", self.full_reports[i]));
                }
            }
        }
        Ok(())
    }
}
