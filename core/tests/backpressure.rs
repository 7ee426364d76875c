//! An app that falls behind: membership and control never wait for it, and what waits for it is bounded in bytes.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use multipeer::{
    Event, Events, MemoryNetwork, PeerId, Reliability, RemovalReason, Session, To, EVENT_BYTES_PER_PEER, EVENT_OVERHEAD,
};

/// The tests measure the process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a control call may take while the app reads nothing. The app never reads, so a call that waited on
/// it would never return: the bound only keeps the test finite, well above what shutdown may take by design
/// (goodbyes and the endpoint's drain are each bounded by a second), so a loaded machine does not fail it.
const PROMPT: Duration = Duration::from_secs(15);

/// Three sessions on loopback, all connected; only the last two have their events read so far.
async fn three() -> [(Session, Events); 3] {
    let net = MemoryNetwork::new();
    let a = start(&net, config("a")).await;
    let mut b = start(&net, config("b")).await;
    let mut c = start(&net, config("c")).await;
    expect_peers_added(&mut b.1, 2, Duration::from_secs(20)).await;
    expect_peers_added(&mut c.1, 2, Duration::from_secs(20)).await;
    within(Duration::from_secs(10), "a to see both peers", async {
        while a.0.peers().len() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    [a, b, c]
}

/// Waits until `session` holds at least `bytes` of messages for its app.
async fn until_queued(session: &Session, bytes: usize, what: &str) {
    within(Duration::from_secs(30), what, async {
        while session.diagnostics().await.unwrap().queued_event_bytes < bytes {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Sends `count` messages of `len` bytes (the first 8 the index) from `from` to `to`, counting those sent.
fn flood(from: &Session, to: PeerId, count: usize, len: usize) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let (session, sent) = (from.clone(), Arc::new(AtomicUsize::new(0)));
    let counter = sent.clone();
    let task = tokio::spawn(async move {
        for i in 0..count {
            let mut data = vec![0u8; len];
            data[..8].copy_from_slice(&(i as u64).to_be_bytes());
            if session.send(data, To::Peer(to), Reliability::Reliable).await.is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    (task, sent)
}

fn index(data: &[u8]) -> u64 {
    u64::from_be_bytes(data[..8].try_into().unwrap())
}

async fn timed<T>(what: &str, future: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = tokio::time::timeout(PROMPT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {PROMPT:?} while the app read nothing"));
    (value, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_calls_return_promptly_while_the_app_reads_nothing() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let [(a, mut a_events), (b, _b_events), (c, _c_events)] = three().await;
    let (a_id, b_id, c_id) = (a.local_peer().id, b.local_peer().id, c.local_peer().id);
    // b sends far more than a's app may have waiting (100 MiB); c sends more small messages than a count-bounded
    // queue of 1,024 would hold.
    let (b_flood, _) = flood(&b, a_id, 100, 1 << 20);
    let (c_flood, _) = flood(&c, a_id, 2000, 16);
    within(Duration::from_secs(30), "c's messages to be sent", c_flood)
        .await
        .unwrap();
    let c_bytes = 2000 * (16 + EVENT_OVERHEAD);
    until_queued(&a, EVENT_BYTES_PER_PEER - (1 << 20) + c_bytes, "a's queue to fill").await;

    let (removed, remove_time) = timed("remove_peer", a.remove_peer(c_id)).await;
    assert!(removed.unwrap());
    let (diagnostics, diagnostics_time) = timed("diagnostics", a.diagnostics()).await;
    let diagnostics = diagnostics.unwrap();
    assert!(diagnostics.queued_event_bytes <= EVENT_BYTES_PER_PEER + c_bytes);
    assert!(diagnostics.queued_control_events >= 3, "two peers added, one removed");
    let (shutdown, shutdown_time) = timed("shutdown", a.shutdown()).await;
    shutdown.unwrap();
    eprintln!("while the app read nothing: remove_peer {remove_time:?}, diagnostics {diagnostics_time:?}, shutdown {shutdown_time:?}");
    let _ = within(Duration::from_secs(10), "b's flood to end", b_flood).await;

    // Everything c sent is there, in order, before c's removal and nothing of c after it; b's removal comes last.
    let mut c_next = 0;
    let mut removals = Vec::new();
    within(Duration::from_secs(30), "a's events to end", async {
        while let Some(event) = a_events.next().await {
            match event {
                Event::Message(m) if m.peer == c_id => {
                    assert!(removals.is_empty(), "a message of c after a removal");
                    assert_eq!(index(&m.data), c_next);
                    c_next += 1;
                }
                Event::PeerRemoved { peer, reason } => removals.push((peer.id, reason)),
                Event::Message(m) => assert!(m.peer == b_id && removals.len() < 2, "b's message after its removal"),
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(c_next, 2000);
    assert_eq!(
        removals,
        vec![(c_id, RemovalReason::Removed), (b_id, RemovalReason::LocalDisconnect)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_messages_stays_within_the_byte_bound_and_other_peers_go_on() {
    let _serial = SERIAL.lock().await;
    init_tracing();
    let [(a, mut a_events), (b, _b_events), (c, _c_events)] = three().await;
    let (a_id, b_id, c_id) = (a.local_peer().id, b.local_peer().id, c.local_peer().id);
    let rss_before = rss().unwrap_or(0);
    const LARGE: usize = 4 << 20;
    let (b_flood, b_sent) = flood(&b, a_id, 300, LARGE);
    // Three of b's 4 MiB messages fit its 16 MiB; then c's ten small ones go in all the same.
    let fits = EVENT_BYTES_PER_PEER / (LARGE + EVENT_OVERHEAD);
    until_queued(&a, fits * (LARGE + EVENT_OVERHEAD), "b's messages to fill its share").await;
    let (c_flood, _) = flood(&c, a_id, 10, 1024);
    within(Duration::from_secs(10), "c's messages to be sent", c_flood)
        .await
        .unwrap();
    let c_bytes = 10 * (1024 + EVENT_OVERHEAD);
    until_queued(
        &a,
        fits * (LARGE + EVENT_OVERHEAD) + c_bytes,
        "c's messages to be queued",
    )
    .await;

    // For 3 s b may push all it can (1.2 GiB unbounded): memory must stay near the bound and b held back.
    let mut peak = rss().unwrap_or(0);
    let watch = async {
        loop {
            peak = peak.max(rss().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), watch).await;
    let growth = peak.saturating_sub(rss_before);
    let sent = b_sent.load(Ordering::Relaxed);
    eprintln!(
        "b sent {sent} of 300 4 MiB messages; peak RSS growth {} MiB",
        growth >> 20
    );
    assert!(sent < 20, "b was not held back: {sent} messages sent");
    if rss_before > 0 {
        // Slack: the message a's reader holds back, QUIC's 4 MiB stream windows and b's own copies (both ends
        // live in this process), allocator overhead.
        assert!(
            growth < (EVENT_BYTES_PER_PEER + (64 << 20)) as u64,
            "RSS grew {growth} bytes"
        );
    }

    // Once a reads, c's messages come within the first few (b had at most `fits` waiting ahead of them), and
    // b's flow resumes in order.
    let (mut c_seen, mut b_before_c, mut b_next) = (0, 0, 0u64);
    within(Duration::from_secs(60), "c's messages and 12 of b's", async {
        while c_seen < 10 || b_next < 12 {
            match a_events.next().await.unwrap() {
                Event::Message(m) if m.peer == c_id => c_seen += 1,
                Event::Message(m) if m.peer == b_id => {
                    assert_eq!(index(&m.data), b_next);
                    b_next += 1;
                    if c_seen < 10 {
                        b_before_c += 1;
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(b_before_c <= fits + 1, "{b_before_c} of b's messages came before c's");
    b_flood.abort();
    a.shutdown().await.unwrap();
}
