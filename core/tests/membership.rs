//! More peers than seats, all started at once: one session of `max_peers` with the same roster everywhere, and
//! every other peer told once that the session is full.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use multipeer::{ConnectionFailure, Event, MemoryNetwork, PeerId, Session};

/// Starts `n` sessions at once on one in-process network and waits (at most `limit`) until they settle.
/// Returns the time it took.
async fn crowd(n: usize, limit: Duration) -> Duration {
    let net = MemoryNetwork::new();
    let started = Instant::now();
    let mut sessions: Vec<Session> = Vec::new();
    let mut full_told = Vec::new();
    let mut readers = Vec::new();
    for i in 0..n {
        let (session, mut events) = start(&net, config(&format!("p{i}"))).await;
        let told = Arc::new(AtomicUsize::new(0));
        let counter = told.clone();
        readers.push(tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Event::ConnectionFailed {
                        reason: ConnectionFailure::SessionFull,
                        ..
                    } => {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    // Being in a session again makes a later "full" news again.
                    Event::PeerAdded(_) => counter.store(0, Ordering::SeqCst),
                    _ => {}
                }
            }
        }));
        sessions.push(session);
        full_told.push(told);
    }
    let settled = |sessions: &[Session], told: &[Arc<AtomicUsize>]| -> Result<(), String> {
        let rosters: Vec<BTreeSet<PeerId>> = sessions
            .iter()
            .map(|s| s.roster().iter().map(|p| p.id).collect())
            .collect();
        let members = rosters.iter().filter(|r| r.len() > 1).count();
        if members != n.min(8) {
            return Err(format!("{members} members"));
        }
        let session = rosters.iter().find(|r| r.len() > 1).cloned().unwrap_or_default();
        for (i, r) in rosters.iter().enumerate() {
            if r.len() > 1 && *r != session {
                return Err(format!("peer {i} holds another roster"));
            }
            if r.len() == 1 && told[i].load(Ordering::SeqCst) != 1 {
                return Err(format!(
                    "peer {i} was told full {} times",
                    told[i].load(Ordering::SeqCst)
                ));
            }
        }
        Ok(())
    };
    let mut last = String::new();
    while started.elapsed() < limit {
        match settled(&sessions, &full_told) {
            Ok(()) => break,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    if let Err(e) = settled(&sessions, &full_told) {
        panic!("{n} peers did not settle within {limit:?}: {e} (before: {last})");
    }
    // Settled means stable: nothing changes over the next second.
    let before: Vec<usize> = sessions.iter().map(|s| s.roster().len()).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: Vec<usize> = sessions.iter().map(|s| s.roster().len()).collect();
    assert_eq!(before, after, "the session changed after settling");
    assert!(settled(&sessions, &full_told).is_ok());
    for s in &sessions {
        s.shutdown().await.unwrap();
    }
    for r in readers {
        r.abort();
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_peers_started_together_form_one_session_of_eight() {
    init_tracing();
    let took = crowd(9, Duration::from_secs(30)).await;
    eprintln!("9 peers settled in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_peers_started_together_form_one_session_of_eight() {
    init_tracing();
    let took = crowd(12, Duration::from_secs(30)).await;
    eprintln!("12 peers settled in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_peers_started_together_form_one_session_of_eight() {
    init_tracing();
    let took = crowd(16, Duration::from_secs(45)).await;
    eprintln!("16 peers settled in {took:?}");
}
