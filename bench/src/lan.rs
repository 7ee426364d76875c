//! Mesh formation over real mDNS, on a virtual LAN of network namespaces (needs root and iproute2).
//!
//! Every peer is a `multipeer-test-peer` process in a host namespace of its own; the hosts share a bridge in a
//! namespace of its own, so nothing multicasts on the machine's real interfaces. One repetition: start N
//! processes at once and wait (bounded) until each has reported the N - 1 others; the figure is the time from
//! the first spawn to the last of those reports. Every repetition uses a service type of its own, and its
//! processes are killed before the next starts.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "../../core/tests/common/netns.rs"]
#[allow(dead_code, unreachable_pub)]
mod netns;

/// How long a peer may take to start (print its id).
const STARTUP: Duration = Duration::from_secs(20);
/// How long a mesh may take to form before the repetition counts as failed.
const FORMATION: Duration = Duration::from_secs(20);

/// The test-peer binary, next to this benchmark's own binary.
fn peer_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let peer = exe.parent()?.join("multipeer-test-peer");
    peer.exists().then_some(peer)
}

/// What one group size gave.
pub(crate) struct Formation {
    pub(crate) peers: usize,
    /// Milliseconds from the first spawn until every peer had the others, one per successful repetition.
    pub(crate) samples: Vec<f64>,
    /// Repetitions that did not form a full mesh in time.
    pub(crate) failures: usize,
}

/// Why the group could not run, in one line (empty if that line was printed already).
pub(crate) type Skipped = String;

/// Measures mesh formation for each size in `sizes`, `reps` times each. Blocking: run it off the runtime.
pub(crate) fn formation(sizes: &[usize], reps: usize) -> Result<Vec<Formation>, Skipped> {
    let Some(peer) = peer_binary() else {
        return Err(
            "the test peer is not built (cargo build --release -p multipeer --features test-peer \
                    --bin multipeer-test-peer)"
                .into(),
        );
    };
    let hosts = sizes.iter().copied().max().unwrap_or(2);
    // Without root or iproute2 this prints its one line saying so.
    let Some(lan) = netns::VirtualLan::new(hosts) else {
        return Err(String::new());
    };
    let peer = peer.to_string_lossy().into_owned();
    let mut results = Vec::new();
    for &n in sizes {
        let mut formation = Formation {
            peers: n,
            samples: Vec::new(),
            failures: 0,
        };
        for rep in 0..reps {
            let service = format!("bench-n{n}-r{rep}");
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| once(&lan, &peer, &service, n)));
            match attempt {
                Ok(ms) => formation.samples.push(ms),
                Err(_) => formation.failures += 1,
            }
        }
        results.push(formation);
    }
    Ok(results)
}

/// One repetition: milliseconds from the first spawn to the full mesh. Panics (with the peers' output) if a
/// peer does not start or the mesh does not form in time; dropping the processes kills them.
fn once(lan: &netns::VirtualLan, peer: &str, service: &str, n: usize) -> f64 {
    let mut procs: Vec<netns::PeerProcess> = (0..n)
        .map(|i| {
            let name = format!("peer{i}");
            lan.spawn(i, peer, &["--name", &name, "--service", service, "--max-peers", "8"])
        })
        .collect();
    let t0 = procs[0].spawned_at();
    let ids: Vec<String> = procs.iter_mut().map(|p| p.started(STARTUP).0).collect();
    let deadline = Instant::now() + FORMATION;
    let mut last = t0;
    for (i, p) in procs.iter_mut().enumerate() {
        let others: BTreeSet<String> = ids
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, id)| id.clone())
            .collect();
        let at = p.wait_peers(deadline.saturating_duration_since(Instant::now()), &others);
        last = last.max(at);
    }
    (last - t0).as_secs_f64() * 1e3
}
