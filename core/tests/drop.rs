//! What dropping a session's handles and events does, over real loopback sockets; and sends to several peers.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use multipeer::{Identity, MemoryNetwork, Reliability, RemovalReason, SendError, To};
use tokio::io::AsyncBufReadExt;

const T: Duration = Duration::from_secs(10);
/// How soon a peer must see a dropped session leave.
const LEFT_WITHIN: Duration = Duration::from_secs(1);

/// The child process reads the ticket of the session to join from this variable.
const CHILD_TICKET: &str = "MULTIPEER_DROP_CHILD_TICKET";
/// How the child holds its events when `main` returns: `dropped` (declared after the session, so dropped
/// first) or `reader` (moved into a task that reads them, which the runtime cancels).
const CHILD_EVENTS: &str = "MULTIPEER_DROP_CHILD_EVENTS";
/// The child prints this line right before it returns from its `main`.
const LEAVING: &str = "child: returning from main";

/// The child process of the tests below (not a test on its own: it does nothing without [`CHILD_TICKET`]).
/// Like an app's `#[tokio::main]`, it runs on a multi-thread runtime that is dropped as soon as the main
/// future returns, and returns without calling `shutdown`.
#[test]
#[ignore = "run as a child process by the tests of returning from main"]
fn child_returns_from_main_without_shutdown() {
    let Ok(ticket) = std::env::var(CHILD_TICKET) else {
        return;
    };
    let reader = std::env::var(CHILD_EVENTS).as_deref() == Ok("reader");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let (session, mut events) = start(&MemoryNetwork::new(), config("child")).await;
        session.connect_ticket(&ticket.parse().unwrap()).await.unwrap();
        expect_peers_added(&mut events, 1, T).await;
        if reader {
            tokio::spawn(async move { while events.next().await.is_some() {} });
        }
        println!("{LEAVING}");
        // Returns holding the session (and the events, unless a task reads them): both are dropped here.
    });
    drop(runtime);
}

/// Runs the child in `events` mode against a fresh session; returns how long after the child said it was
/// leaving this side saw it go, and why.
async fn child_leaves(events_mode: &str) -> (Duration, RemovalReason) {
    let (parent, mut events) = start(&MemoryNetwork::new(), config("parent")).await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_returns_from_main_without_shutdown",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_TICKET, parent.ticket().to_string())
        .env(CHILD_EVENTS, events_mode)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    expect_peers_added(&mut events, 1, T).await;
    within(T, "the child to return from main", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(LEAVING) {
                return;
            }
        }
        panic!("the child ended without returning from main");
    })
    .await;
    let leaving = Instant::now();
    let reason = expect_removal(&mut events, T, "the child to go").await;
    let took = leaving.elapsed();
    let status = within(T, "the child to exit", child.wait()).await.unwrap();
    assert!(status.success(), "child failed: {status}");
    (took, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_returning_from_main_without_shutdown_says_goodbye() {
    init_tracing();
    let (took, reason) = child_leaves("dropped").await;
    eprintln!("child returned from main (events dropped first): seen as {reason} after {took:?}");
    assert_eq!(reason, RemovalReason::Left);
    assert!(took < LEFT_WITHIN, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_returning_from_main_while_a_task_reads_events_says_goodbye() {
    init_tracing();
    let (took, reason) = child_leaves("reader").await;
    eprintln!("child returned from main (events in a task): seen as {reason} after {took:?}");
    assert_eq!(reason, RemovalReason::Left);
    assert!(took < LEFT_WITHIN, "took {took:?}");
}

/// Drops `session` (the last handle) and checks that `events` of its peer see it leave in time.
async fn expect_left_after(drop_it: impl FnOnce(), events: &mut multipeer::Events, what: &str) {
    let dropped = Instant::now();
    drop_it();
    let reason = expect_removal(events, T, "the dropped peer to go").await;
    let took = dropped.elapsed();
    eprintln!("{what}: seen as {reason} after {took:?}");
    assert_eq!(reason, RemovalReason::Left);
    assert!(took < LEFT_WITHIN, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_says_goodbye() {
    init_tracing();
    let (a, a_events, _b, mut b_events) = connected_pair().await;
    let extra = a.clone();
    drop(a);
    // Not the last handle yet: nothing happens.
    assert!(!extra.is_closed());
    expect_left_after(move || drop(extra), &mut b_events, "last handle dropped").await;
    drop(a_events);
}

#[tokio::test]
async fn dropping_the_last_handle_on_a_current_thread_runtime_says_goodbye() {
    init_tracing();
    let (a, _a_events, _b, mut b_events) = connected_pair().await;
    expect_left_after(
        move || drop(a),
        &mut b_events,
        "last handle dropped (current-thread runtime)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_stopping_right_after_the_last_handle_is_dropped_still_says_goodbye() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (b, mut b_events) = start(&net, config("b")).await;
    // A runtime of its own, started and stopped off the test's runtime (blocking on it there is not allowed).
    let a_net = net.clone();
    let (runtime, a, mut a_events) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (a, a_events) = runtime.block_on(start(&a_net, config("a")));
        (runtime, a, a_events)
    })
    .join()
    .unwrap();
    expect_peers_added(&mut b_events, 1, T).await;
    expect_peers_added(&mut a_events, 1, T).await;
    // The session's task is cancelled with its runtime right after the handles go.
    let stop = move || {
        std::thread::spawn(move || {
            drop(a_events);
            drop(a);
            drop(runtime);
        })
        .join()
        .unwrap();
    };
    expect_left_after(stop, &mut b_events, "runtime dropped after the last handle").await;
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_events_shuts_the_session_down_with_a_goodbye() {
    init_tracing();
    let (a, a_events, b, mut b_events) = connected_pair().await;
    expect_left_after(move || drop(a_events), &mut b_events, "events dropped").await;
    // The session shut down before it said goodbye.
    assert!(a.is_closed());
    assert_eq!(
        a.send("late", b.local_peer().id, Reliability::Reliable).await,
        Err(SendError::SessionClosed)
    );
    assert!(b.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_send_reaches_every_connected_recipient_once_and_reports_the_rest() {
    init_tracing();
    let (a, _a_events, b, mut b_events) = connected_pair().await;
    let b_id = b.local_peer().id;
    let ghost = Identity::generate().peer_id();
    let other_ghost = Identity::generate().peer_id();

    for reliability in [Reliability::Reliable, Reliability::Unreliable] {
        // One recipient connected, one not: the connected one gets it, the other is reported.
        let result = a
            .send("partial", To::Peers(vec![ghost, b_id, ghost]), reliability)
            .await;
        assert_eq!(
            result,
            Err(SendError::Recipients {
                delivered: vec![b_id],
                failed: vec![(ghost, SendError::NotConnected(ghost))],
            }),
            "{reliability:?}"
        );
        let m = expect_message(&mut b_events, T, "the partial send").await;
        assert_eq!(&m.data[..], b"partial");
        assert_eq!(m.reliability, reliability);
    }

    // A recipient listed twice gets the message once; the next message is the marker.
    a.send("twice", To::Peers(vec![b_id, b_id]), Reliability::Reliable)
        .await
        .unwrap();
    a.send("marker", b_id, Reliability::Reliable).await.unwrap();
    assert_eq!(&expect_message(&mut b_events, T, "twice").await.data[..], b"twice");
    assert_eq!(&expect_message(&mut b_events, T, "marker").await.data[..], b"marker");

    // Every recipient failing is an error too; one recipient fails with its own error.
    let result = a
        .send("none", To::Peers(vec![ghost, other_ghost]), Reliability::Reliable)
        .await;
    assert_eq!(
        result,
        Err(SendError::Recipients {
            delivered: vec![],
            failed: vec![
                (ghost, SendError::NotConnected(ghost)),
                (other_ghost, SendError::NotConnected(other_ghost)),
            ],
        })
    );
    let message = result.unwrap_err().to_string();
    assert!(message.contains("not sent to 2 of 2 recipients"), "{message}");
    assert_eq!(
        a.send("one", To::Peers(vec![ghost]), Reliability::Reliable).await,
        Err(SendError::NotConnected(ghost))
    );
    assert_eq!(a.send("nobody", To::Peers(vec![]), Reliability::Reliable).await, Ok(()));
}
