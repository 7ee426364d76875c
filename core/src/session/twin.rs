//! The same identity running twice (an app opened twice, an identity file copied to another device).
//!
//! Two sessions with one id make every other peer flap between them, each connection replacing the other. A
//! session that sees an advert with its own id elsewhere, or is dialed by its own id, checks by dialing that
//! address: only a TLS handshake in which the other side proves the same key counts, so a forged advert changes
//! nothing. The side that is dialed closes at once with `IDENTITY_IN_USE` and its session's age as the reason
//! (`conn::answer_twin`); the younger session yields (withdraws, as after `disconnect`) and tells its app, once.

use std::net::SocketAddr;
use std::time::Duration;

use super::conn::{ConnCtx, Internal};
use super::handshake::{connect_any, HANDSHAKE_TIMEOUT};
use crate::proto::codes;

/// Least time between two checks of a twin (forged adverts cost at most one dial per period).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What a session knows of a twin: when it last checked, and whether it yielded.
#[derive(Debug, Default)]
pub(crate) struct TwinWatch {
    last_probe: Option<std::time::Instant>,
    in_flight: bool,
    yielded: bool,
}

impl TwinWatch {
    /// Whether to start a check now (one at a time, at most one per [`PROBE_INTERVAL`], none after yielding).
    pub(crate) fn start_probe(&mut self, now: std::time::Instant) -> bool {
        let due = self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_INTERVAL);
        if self.yielded || self.in_flight || !due {
            return false;
        }
        self.in_flight = true;
        self.last_probe = Some(now);
        true
    }

    /// A check finished: whether this session must yield to the twin it found (once).
    pub(crate) fn probed(&mut self, found: Option<(Duration, u16)>, our_age: Duration, our_port: u16) -> bool {
        self.in_flight = false;
        let Some((their_age, their_port)) = found else {
            return false;
        };
        if self.yielded || !yields(our_age, their_age, our_port, their_port) {
            return false;
        }
        self.yielded = true;
        true
    }
}

/// Whether this session yields to a twin: the younger one does; the larger QUIC port breaks a tie.
pub(crate) fn yields(our_age: Duration, their_age: Duration, our_port: u16, their_port: u16) -> bool {
    (our_age, their_port) < (their_age, our_port)
}

/// Dials `addrs` expecting our own id; reports what the twin said of its age (`None`: no twin proved itself).
pub(crate) async fn probe(ctx: std::sync::Arc<ConnCtx>, addrs: Vec<SocketAddr>) {
    let result = probe_inner(&ctx, &addrs).await;
    let _ = ctx.internal.send(Internal::TwinProbed { result }).await;
}

async fn probe_inner(ctx: &ConnCtx, addrs: &[SocketAddr]) -> Option<(SocketAddr, Duration)> {
    let (config, _) = ctx.client.config_for(ctx.local_id).ok()?;
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_any(&ctx.endpoint, config, addrs))
        .await
        .ok()?
        .ok()?;
    // The handshake completed: the other side holds our key. It closes with its age.
    let closed = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.closed()).await;
    let remote = conn.remote_address();
    conn.close(codes::IDENTITY_IN_USE.into(), b"");
    match closed.ok()? {
        quinn::ConnectionError::ApplicationClosed(close)
            if u64::from(close.error_code) == u64::from(codes::IDENTITY_IN_USE) =>
        {
            let millis: u64 = std::str::from_utf8(&close.reason).ok()?.parse().ok()?;
            Some((remote, Duration::from_millis(millis)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_two_twins_yields() {
        let s = Duration::from_secs;
        for (a, b, pa, pb) in [
            (s(1), s(9), 1000, 2000),
            (s(9), s(1), 1000, 2000),
            (s(5), s(5), 1000, 2000),
        ] {
            assert_ne!(yields(a, b, pa, pb), yields(b, a, pb, pa), "{a:?} {b:?}");
        }
        assert!(yields(s(1), s(9), 5000, 4000), "the younger yields");
        assert!(yields(s(5), s(5), 4001, 4000), "the larger port breaks a tie");
    }
}
