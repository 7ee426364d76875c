//! Load: 8 peers all send to all at full speed (reliable and unreliable, plus one stream each) for 30 s.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use multipeer::{Event, MemoryNetwork, PeerId, Reliability, To};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PEERS: usize = 8;
const RUN: Duration = Duration::from_secs(30);
const STREAM_BYTES: usize = 4 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_peers_all_to_all_lose_nothing_reliable() {
    init_tracing();
    let net = MemoryNetwork::new();
    let mut peers = Vec::new();
    for i in 0..PEERS {
        peers.push(start(&net, config(&format!("load{i}"))).await);
    }
    for (_, events) in &mut peers {
        expect_peers_added(events, PEERS - 1, Duration::from_secs(20)).await;
    }
    let rss_before = rss().unwrap_or(0);
    let ids: Vec<PeerId> = peers.iter().map(|(s, _)| s.local_peer().id).collect();
    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for (i, (session, mut events)) in peers.into_iter().enumerate() {
        let next_peer = ids[(i + 1) % PEERS];
        // Sender: numbered reliable messages to all, a datagram every 16th, one stream to the next peer.
        let sender = {
            let session = session.clone();
            tokio::spawn(async move {
                let streamer = {
                    let session = session.clone();
                    tokio::spawn(async move {
                        let mut s = session.stream("load", next_peer).await.unwrap();
                        s.write_all(&vec![9u8; STREAM_BYTES]).await.unwrap();
                        s.finish().await.unwrap();
                    })
                };
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    session
                        .send(seq.to_be_bytes().to_vec(), To::All, Reliability::Reliable)
                        .await
                        .unwrap();
                    if seq % 16 == 0 {
                        let _ = session.send(vec![1u8; 200], To::All, Reliability::Unreliable).await;
                    }
                    seq += 1;
                }
                // The end marker carries the count.
                let mut done = b"done".to_vec();
                done.extend_from_slice(&seq.to_be_bytes());
                session.send(done, To::All, Reliability::Reliable).await.unwrap();
                streamer.await.unwrap();
                seq
            })
        };
        // Receiver: per-sender order, counts, end markers, the incoming stream.
        let receiver = tokio::spawn(async move {
            let mut expected: HashMap<PeerId, u64> = HashMap::new();
            let mut finished: HashMap<PeerId, u64> = HashMap::new();
            let mut datagrams = 0u64;
            let mut stream_bytes = 0usize;
            let mut stream_reader = None;
            while finished.len() < PEERS - 1 {
                match events.next().await.unwrap() {
                    Event::Message(m) if m.reliability == Reliability::Reliable => {
                        if m.data.len() == 12 && &m.data[..4] == b"done" {
                            let total = u64::from_be_bytes(m.data[4..].try_into().unwrap());
                            assert_eq!(
                                expected.get(&m.peer).copied().unwrap_or(0),
                                total,
                                "all messages arrived"
                            );
                            finished.insert(m.peer, total);
                        } else {
                            let seq = u64::from_be_bytes(m.data[..].try_into().unwrap());
                            let want = expected.entry(m.peer).or_insert(0);
                            assert_eq!(seq, *want, "once and in order");
                            *want += 1;
                        }
                    }
                    Event::Message(_) => datagrams += 1,
                    Event::Stream(mut s) => {
                        stream_reader = Some(tokio::spawn(async move {
                            let mut buf = Vec::new();
                            s.read_to_end(&mut buf).await.unwrap();
                            buf.len()
                        }));
                    }
                    Event::PeerRemoved { peer, reason } => panic!("{peer} removed under load: {reason}"),
                    _ => {}
                }
            }
            if let Some(r) = stream_reader {
                stream_bytes = r.await.unwrap();
            }
            // The events go back with the session: dropping them would shut it down.
            (finished.values().sum::<u64>(), datagrams, stream_bytes, session, events)
        });
        tasks.push((sender, receiver));
    }
    let mut sent_total = 0;
    let mut received_total = 0;
    let mut datagrams_total = 0;
    let mut sessions = Vec::new();
    let mut keep = Vec::new();
    within(RUN + Duration::from_secs(90), "load run", async {
        for (sender, receiver) in tasks {
            let sent = sender.await.unwrap();
            let (received, datagrams, stream_bytes, session, events) = receiver.await.unwrap();
            keep.push(events);
            assert_eq!(stream_bytes, STREAM_BYTES, "each peer's stream arrived whole");
            sent_total += sent * (PEERS as u64 - 1);
            received_total += received;
            datagrams_total += datagrams;
            sessions.push(session);
        }
    })
    .await;
    let growth = rss().unwrap_or(0).saturating_sub(rss_before);
    eprintln!(
        "load: {received_total} reliable messages delivered (of {sent_total} sent x receivers), {datagrams_total} datagrams, \
         {PEERS} streams of {} MiB, RSS grew {} MiB",
        STREAM_BYTES >> 20,
        growth >> 20
    );
    assert_eq!(received_total, sent_total);
    assert!(growth < 512 << 20, "RSS grew {} MiB", growth >> 20);
    for s in sessions {
        s.shutdown().await.unwrap();
    }
}
