//! A 256 MiB named stream arrives intact without the library buffering it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use multipeer::{Event, MemoryNetwork};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOTAL: usize = 256 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_stream_arrives_intact_with_bounded_memory() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("sender")).await;
    let (_b, mut b_events) = start(&net, config("receiver")).await;
    let b_id = expect_peers_added(&mut a_events, 1, Duration::from_secs(10)).await[0].id;
    expect_peers_added(&mut b_events, 1, Duration::from_secs(10)).await;
    let rss_before = rss().unwrap_or(0);

    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let mut stream = a.stream("bulk.bin", b_id).await.unwrap();
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut chunk = vec![0u8; CHUNK];
        let mut state = 0x1234_5678u32;
        for _ in 0..TOTAL / CHUNK {
            for b in chunk.iter_mut() {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (state >> 24) as u8;
            }
            hash.update(&chunk);
            stream.write_all(&chunk).await.unwrap();
        }
        stream.finish().await.unwrap();
        hash.finish().as_ref().to_vec()
    });

    let mut incoming = expect(&mut b_events, Duration::from_secs(10), "stream", |e| match e {
        Event::Stream(s) => Some(s),
        _ => None,
    })
    .await;
    assert_eq!(incoming.name(), "bulk.bin");
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0usize;
    let mut max_growth = 0u64;
    within(Duration::from_secs(300), "stream end", async {
        loop {
            let n = incoming.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            received += n;
            if received % (16 * 1024 * 1024) < n {
                max_growth = max_growth.max(rss().unwrap_or(0).saturating_sub(rss_before));
            }
        }
    })
    .await;
    let sent_hash = sender.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "256 MiB in {secs:.2} s ({:.0} MB/s); RSS grew at most {} MiB",
        TOTAL as f64 / secs / 1e6,
        max_growth >> 20
    );
    assert_eq!(received, TOTAL);
    assert_eq!(hash.finish().as_ref(), &sent_hash[..], "checksums equal");
    // Flow-control windows bound what is buffered (16 MiB per connection and direction).
    assert!(
        max_growth < 96 << 20,
        "RSS grew by {} MiB: the stream was buffered",
        max_growth >> 20
    );
}
