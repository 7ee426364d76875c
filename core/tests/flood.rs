//! A flood of connections that pass TLS and then stall: memory stays bounded in bytes and a real peer still joins.
//!
//! Alone in its test binary: it counts the heap bytes the whole process holds, which other tests running at the
//! same time would blur.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{self, RawOptions};
use common::*;
use multipeer::proto::codes;
use multipeer::MemoryNetwork;

/// The system allocator, counting the heap bytes this process holds.
#[global_allocator]
static HEAP: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Samples [`HEAP`] until dropped; the most it held, above `base`.
struct HeapPeak {
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HeapPeak {
    fn start(base: usize) -> Self {
        let (peak, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(HEAP.allocated().saturating_sub(base), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for HeapPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const T: Duration = Duration::from_secs(10);
/// What the process may hold at the flood's peak: both sessions and the 100 stalled connections, both ends of each
/// (measured: about 11 MiB).
const FLOOD_BUDGET: usize = 24 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_bounded_and_real_peers_still_join() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let sampler = HeapPeak::start(HEAP.allocated());
    // 100 connections from one address that complete TLS and then never say hello, holding handshake slots.
    let from = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut flood = Vec::new();
    for _ in 0..100 {
        let (addr, from) = (a.local_addr(), from.clone());
        let options = RawOptions {
            endpoint: Some(from),
            ..RawOptions::default()
        };
        flood.push(tokio::spawn(async move { raw::connect(addr, options).await }));
    }
    // A real peer arrives in the middle of the flood and still joins (at worst after the stalled
    // handshakes time out).
    let (_b, mut b_events) = start(&net, config("b")).await;
    let joined = expect_peers_added(&mut a_events, 1, Duration::from_secs(20)).await;
    assert_eq!(joined[0].display_name, "b");
    expect_peers_added(&mut b_events, 1, Duration::from_secs(5)).await;
    let mut refused_or_closed = 0;
    for attempt in flood {
        match attempt.await.unwrap() {
            Err(_) => refused_or_closed += 1,
            Ok(conn) => {
                // Without a hello the session closes it after the hello timeout.
                let reason = tokio::time::timeout(T, conn.closed())
                    .await
                    .expect("stalled connection closed");
                if let quinn::ConnectionError::ApplicationClosed(close) = reason {
                    assert_eq!(close.error_code.into_inner(), u64::from(codes::HELLO_TIMEOUT));
                }
                refused_or_closed += 1;
            }
        }
    }
    assert_eq!(refused_or_closed, 100);
    let peak = sampler.peak();
    eprintln!("flood: heap peak {} KiB above the start", peak >> 10);
    assert!(peak < FLOOD_BUDGET, "the flood held {} MiB at its peak", peak >> 20);
    assert_eq!(a.peers().len(), 1);
}
