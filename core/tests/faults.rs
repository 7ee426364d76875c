//! Faults between two peers, through a user-space UDP relay that drops, duplicates, reorders and cuts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use multipeer::{CongestionControl, Event, Events, MemoryNetwork, Reliability, RemovalReason, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `b` alone on its own network; `a` finds it only through the relay.
async fn relayed_pair(
    impairment: Impairment,
    idle: Duration,
    congestion: CongestionControl,
) -> (Session, Events, Session, Events, UdpRelay) {
    let config = |name| config(name).idle_timeout(idle).congestion_control(congestion);
    common::relayed_pair(config("a"), config("b"), impairment).await
}

async fn lossy_link_loses_nothing_reliable(loss: f64, congestion: CongestionControl) {
    init_tracing();
    let impairment = Impairment {
        loss,
        duplicate: 0.02,
        reorder: 0.05,
        delay: Duration::ZERO,
    };
    // Join on a clean path, then impair it: this measures delivery under loss, not handshake luck (QUIC's
    // handshake timers back off to seconds at 20% loss).
    let (a, mut a_events, b, mut b_events, relay) =
        relayed_pair(Impairment::default(), Duration::from_secs(10), congestion).await;
    let b_id = expect_peers_added(&mut a_events, 1, Duration::from_secs(30)).await[0].id;
    expect_peers_added(&mut b_events, 1, Duration::from_secs(30)).await;
    relay.set_impairment(impairment);
    let started = Instant::now();

    // 10,000 reliable messages, interleaved with unreliable ones that may be lost.
    const N: u32 = 10_000;
    let sender = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..N {
                a.send(i.to_be_bytes().to_vec(), b_id, Reliability::Reliable)
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    // Unreliable sends never fail for loss; they only may not arrive.
                    a.send(vec![0xEE; 100], b_id, Reliability::Unreliable).await.unwrap();
                }
            }
        })
    };
    let mut next = 0u32;
    let mut datagrams = 0;
    within(Duration::from_secs(120), "10,000 messages", async {
        while next < N {
            match b_events.next().await {
                Some(Event::Message(m)) if m.reliability == Reliability::Reliable => {
                    let i = u32::from_be_bytes(m.data[..].try_into().unwrap());
                    assert_eq!(i, next, "once and in order at {loss} loss");
                    next += 1;
                }
                Some(Event::Message(_)) => datagrams += 1,
                Some(Event::PeerRemoved { reason, .. }) => panic!("link dropped at {loss} loss: {reason}"),
                Some(_) => {}
                None => panic!("session ended"),
            }
        }
    })
    .await;
    sender.await.unwrap();
    let messages_took = started.elapsed();

    // A 64 MiB stream with a checksum.
    const TOTAL: usize = 64 << 20;
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut s = a.stream("lossy.bin", b_id).await.unwrap();
            let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
            let mut chunk = vec![0u8; 64 * 1024];
            for k in 0..TOTAL / chunk.len() {
                for (j, byte) in chunk.iter_mut().enumerate() {
                    *byte = (k * 31 + j * 7) as u8;
                }
                hash.update(&chunk);
                s.write_all(&chunk).await.unwrap();
            }
            s.finish().await.unwrap();
            hash.finish().as_ref().to_vec()
        })
    };
    let mut incoming = expect(&mut b_events, Duration::from_secs(30), "stream", |e| match e {
        Event::Stream(s) => Some(s),
        _ => None,
    })
    .await;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    within(Duration::from_secs(240), "64 MiB stream", async {
        loop {
            let n = incoming.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            got += n;
        }
    })
    .await;
    assert_eq!(got, TOTAL);
    assert_eq!(
        hash.finish().as_ref(),
        &writer.await.unwrap()[..],
        "checksums equal at {loss} loss"
    );
    eprintln!(
        "{:.0}% loss: 10,000 messages in {messages_took:?} ({datagrams}/200 datagrams arrived), 64 MiB in {:?}; relay forwarded {} datagrams",
        loss * 100.0,
        started.elapsed() - messages_took,
        relay.forwarded.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_loses_nothing_reliable() {
    lossy_link_loses_nothing_reliable(0.05, CongestionControl::Cubic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_loss_loses_nothing_reliable() {
    // Cubic completes too, but takes minutes at 20% random loss (see `CongestionControl`); BBR is the setting
    // recommended for links this lossy.
    lossy_link_loses_nothing_reliable(0.20, CongestionControl::Bbr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_longer_than_the_idle_timeout_removes_and_restoring_rejoins() {
    init_tracing();
    let idle = Duration::from_secs(1);
    let (a, mut a_events, b, mut b_events, relay) =
        relayed_pair(Impairment::default(), idle, CongestionControl::default()).await;
    expect_peers_added(&mut a_events, 1, Duration::from_secs(10)).await;
    expect_peers_added(&mut b_events, 1, Duration::from_secs(10)).await;
    relay.set_cut(true);
    for events in [&mut a_events, &mut b_events] {
        let reason = expect_removal(events, idle * 5, "removal").await;
        assert_eq!(reason, RemovalReason::TimedOut);
    }
    tokio::time::sleep(idle * 2).await;
    relay.set_cut(false);
    // a keeps dialing with back-off; once the path is back, both sides see each other again and talk.
    let back = expect_peers_added(&mut a_events, 1, Duration::from_secs(30)).await;
    assert_eq!(back[0].id, b.local_peer().id);
    expect_peers_added(&mut b_events, 1, Duration::from_secs(10)).await;
    a.send("after the cut", b.local_peer().id, Reliability::Reliable)
        .await
        .unwrap();
    let m = expect_message(&mut b_events, Duration::from_secs(10), "message").await;
    assert_eq!(&m.data[..], b"after the cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_applies_back_pressure_without_hurting_others() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("sender")).await;
    // `slow` never reads its events; `fast` does.
    let (slow, mut slow_events) = start(&net, config("slow")).await;
    let (fast, mut fast_events) = start(&net, config("fast")).await;
    expect_peers_added(&mut a_events, 2, Duration::from_secs(10)).await;
    expect_peers_added(&mut slow_events, 2, Duration::from_secs(10)).await;
    expect_peers_added(&mut fast_events, 2, Duration::from_secs(10)).await;
    let rss_before = rss().unwrap_or(0);

    let flooder = {
        let (a, slow_id) = (a.clone(), slow.local_peer().id);
        tokio::spawn(async move {
            let payload = bytes::Bytes::from(vec![0u8; 1024]);
            let mut sent = 0u64;
            // Bounded: far more than the receiver's queue plus QUIC windows could hold.
            while sent < 200_000 {
                a.send(payload.clone(), slow_id, Reliability::Reliable).await.unwrap();
                sent += 1;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !flooder.is_finished(),
        "sends to a stalled receiver must wait (back-pressure)"
    );

    // The fast peer is unaffected.
    for i in 0..100u32 {
        a.send(i.to_be_bytes().to_vec(), fast.local_peer().id, Reliability::Reliable)
            .await
            .unwrap();
    }
    let mut next = 0u32;
    within(Duration::from_secs(10), "fast peer's messages", async {
        while next < 100 {
            if let Some(Event::Message(m)) = fast_events.next().await {
                assert_eq!(u32::from_be_bytes(m.data[..].try_into().unwrap()), next);
                next += 1;
            }
        }
    })
    .await;
    let growth = rss().unwrap_or(0).saturating_sub(rss_before);
    eprintln!(
        "slow consumer: RSS grew {} MiB while the sender was held back",
        growth >> 20
    );
    assert!(growth < 96 << 20, "memory must stay bounded: grew {} MiB", growth >> 20);
    flooder.abort();
    drop(slow_events);
}
