//! Back-off after failed passphrase attempts, free of I/O (time is passed in).
//!
//! The admission exchange gives an attacker one online guess per connection. This guard limits how fast those
//! guesses can come: per peer id and per source address, the first [`FREE_FAILURES`] failures cost nothing,
//! then each further attempt waits [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`]. Ids are free to make and
//! addresses easy to change on a LAN, so a session-wide window also applies: after [`GLOBAL_FAILURES`] failures
//! within [`GLOBAL_WINDOW`], only sources that were admitted before may try until the window has room again.
//! State is bounded: at most [`MAX_TRACKED`] sources, the oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures per source before back-off starts.
pub const FREE_FAILURES: u32 = 3;
/// The first back-off.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Failures of the whole session within [`GLOBAL_WINDOW`] before unknown sources are held back.
pub const GLOBAL_FAILURES: usize = 30;
/// The window of the session-wide limit.
pub const GLOBAL_WINDOW: Duration = Duration::from_secs(60);
/// Most sources tracked.
pub const MAX_TRACKED: usize = 1024;

/// Where an attempt comes from: the peer id (as bytes) or the remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Peer([u8; 32]),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    admitted: bool,
}

/// Counts failed passphrase attempts and says when the next attempt may run.
#[derive(Debug, Default)]
pub struct GuessGuard {
    sources: HashMap<Source, Record>,
    recent: VecDeque<Instant>,
}

impl GuessGuard {
    /// A guard that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an attempt by `peer` from `addr` may run at `now`; `Err` holds how long it must wait.
    pub fn check(&mut self, now: Instant, peer: [u8; 32], addr: IpAddr) -> Result<(), Duration> {
        self.expire(now);
        let mut wait = Duration::ZERO;
        let mut known = false;
        for source in [Source::Peer(peer), Source::Addr(addr)] {
            if let Some(record) = self.sources.get(&source) {
                known |= record.admitted;
                wait = wait.max(backoff(record.failures).saturating_sub(now.saturating_duration_since(record.last)));
            }
        }
        if !known && self.recent.len() >= GLOBAL_FAILURES {
            if let Some(oldest) = self.recent.front() {
                wait = wait.max(GLOBAL_WINDOW.saturating_sub(now.saturating_duration_since(*oldest)));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, now: Instant, peer: [u8; 32], addr: IpAddr) {
        for source in [Source::Peer(peer), Source::Addr(addr)] {
            self.make_room(source);
            let record = self.sources.entry(source).or_insert(Record {
                failures: 0,
                last: now,
                admitted: false,
            });
            record.failures = record.failures.saturating_add(1);
            record.last = now;
        }
        if self.recent.len() >= GLOBAL_FAILURES {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
    }

    /// Records a successful attempt: the source's failures are forgotten, and it passes the session-wide limit.
    pub fn succeeded(&mut self, now: Instant, peer: [u8; 32], addr: IpAddr) {
        for source in [Source::Peer(peer), Source::Addr(addr)] {
            self.make_room(source);
            self.sources.insert(
                source,
                Record {
                    failures: 0,
                    last: now,
                    admitted: true,
                },
            );
        }
    }

    /// How many sources are tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= GLOBAL_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Forgets the source seen longest ago (preferring ones never admitted) when the table is full.
    fn make_room(&mut self, incoming: Source) {
        if self.sources.len() < MAX_TRACKED || self.sources.contains_key(&incoming) {
            return;
        }
        let oldest = self
            .sources
            .iter()
            .min_by_key(|(_, r)| (r.admitted, r.last))
            .map(|(s, _)| *s);
        if let Some(oldest) = oldest {
            self.sources.remove(&oldest);
        }
    }
}

/// The wait after `failures` failures.
fn backoff(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None => Duration::ZERO,
        Some(extra) => FIRST_BACKOFF
            .saturating_mul(1u32.checked_shl(extra.min(20)).unwrap_or(u32::MAX))
            .min(MAX_BACKOFF),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    fn id(n: u32) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id
    }

    fn addr(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn back_off_starts_after_the_free_failures_and_doubles_to_the_cap() {
        let (mut g, t0) = (GuessGuard::new(), Instant::now());
        for _ in 0..FREE_FAILURES {
            assert_eq!(g.check(t0, id(1), ADDR), Ok(()));
            g.failed(t0, id(1), ADDR);
        }
        assert_eq!(g.check(t0, id(1), ADDR), Err(FIRST_BACKOFF));
        assert_eq!(g.check(t0 + FIRST_BACKOFF, id(1), ADDR), Ok(()));
        g.failed(t0 + FIRST_BACKOFF, id(1), ADDR);
        assert_eq!(g.check(t0 + FIRST_BACKOFF, id(1), ADDR), Err(FIRST_BACKOFF * 2));
        for _ in 0..30 {
            g.failed(t0, id(1), ADDR);
        }
        assert_eq!(g.check(t0, id(1), ADDR), Err(MAX_BACKOFF));
        // Another id from the same address waits too; a success clears the id and the address.
        assert!(g.check(t0, id(2), ADDR).is_err());
        g.succeeded(t0, id(1), ADDR);
        assert_eq!(g.check(t0, id(1), ADDR), Ok(()));
    }

    #[test]
    fn fresh_ids_from_fresh_addresses_are_held_by_the_session_wide_window() {
        let (mut g, t0) = (GuessGuard::new(), Instant::now());
        g.succeeded(t0, id(u32::MAX), addr(u32::MAX));
        let mut allowed = 0;
        for n in 0..1000 {
            let now = t0 + Duration::from_millis(u64::from(n));
            if g.check(now, id(n), addr(n)).is_ok() {
                allowed += 1;
                g.failed(now, id(n), addr(n));
            }
        }
        assert_eq!(allowed, GLOBAL_FAILURES, "at most {GLOBAL_FAILURES} guesses per window");
        // A peer admitted before is not locked out by the attack; after the window others may try again.
        assert_eq!(
            g.check(t0 + Duration::from_secs(1), id(u32::MAX), addr(u32::MAX)),
            Ok(())
        );
        assert_eq!(g.check(t0 + GLOBAL_WINDOW, id(5000), addr(5000)), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let (mut g, t0) = (GuessGuard::new(), Instant::now());
        for n in 0..10_000 {
            g.failed(t0 + Duration::from_millis(u64::from(n)), id(n), addr(n));
        }
        assert!(g.tracked() <= MAX_TRACKED);
        assert!(g.recent.len() <= GLOBAL_FAILURES);
    }
}
