//! The session's own lifecycle as the app sees it: discovery state changes (including a platform refusing
//! permission) and one final `SessionEnded`, whether the app shut down or just let go.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{config, expect, init_tracing, start};
use multipeer::discovery::MemoryNetwork;
use multipeer::{
    Advertisement, Discovery, DiscoveryError, DiscoveryEvent, DiscoveryState, DiscoverySubscription, EndReason, Event,
    Events, Session,
};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

async fn state(events: &mut Events) -> DiscoveryState {
    expect(events, T, "a discovery state", |e| match e {
        Event::DiscoveryStateChanged(state) => Some(state),
        _ => None,
    })
    .await
}

/// Every event until the stream ends.
async fn rest(events: &mut Events) -> Vec<Event> {
    let mut all = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(event) = events.next().await {
            all.push(event);
        }
    })
    .await
    .expect("the event stream to end");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_stream_with_session_ended_after_every_removal() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (_b, mut b_events) = start(&net, config("b")).await;
    common::expect_peers_added(&mut a_events, 1, T).await;
    common::expect_peers_added(&mut b_events, 1, T).await;
    a.stop_looking_for_peers().await.unwrap();
    a.shutdown().await.unwrap();
    let events = rest(&mut a_events).await;
    assert!(
        matches!(events.last(), Some(Event::SessionEnded(EndReason::Shutdown))),
        "{events:?}"
    );
    let ended = events.iter().filter(|e| matches!(e, Event::SessionEnded(_))).count();
    assert_eq!(ended, 1);
    let removed_at = events
        .iter()
        .position(|e| matches!(e, Event::PeerRemoved { .. }))
        .unwrap();
    assert!(removed_at < events.len() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_every_handle_ends_the_stream_with_released() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    assert_eq!(state(&mut a_events).await, DiscoveryState::Running);
    drop(a);
    let events = rest(&mut a_events).await;
    assert!(
        matches!(events.last(), Some(Event::SessionEnded(EndReason::Released))),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_starting_to_look_is_reported() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    assert_eq!(state(&mut a_events).await, DiscoveryState::Running);
    a.stop_looking_for_peers().await.unwrap();
    assert_eq!(state(&mut a_events).await, DiscoveryState::Stopped);
    a.start_looking_for_peers().await.unwrap();
    assert_eq!(state(&mut a_events).await, DiscoveryState::Running);
}

/// A platform discovery whose sender the test keeps, to report what the platform says.
#[derive(Clone, Default)]
struct Platform(Arc<Mutex<Option<mpsc::Sender<DiscoveryEvent>>>>);

impl Discovery for Platform {
    fn start(&self, _: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        let (tx, rx) = mpsc::channel(8);
        *self.0.lock().unwrap() = Some(tx);
        Ok(DiscoverySubscription::new(rx, || {}))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_refusing_permission_or_failing_reaches_the_app() {
    init_tracing();
    let platform = Platform::default();
    let (session, mut events) = Session::builder(config("a").build().unwrap())
        .discovery(platform.clone())
        .start_with_events()
        .await
        .unwrap();
    assert_eq!(state(&mut events).await, DiscoveryState::Running);
    let sender = platform.0.lock().unwrap().clone().unwrap();
    sender
        .send(DiscoveryEvent::State(DiscoveryState::PermissionDenied))
        .await
        .unwrap();
    assert_eq!(state(&mut events).await, DiscoveryState::PermissionDenied);
    // The platform's service goes away altogether: reported as failed, and the session runs on.
    platform.0.lock().unwrap().take();
    drop(sender);
    assert!(matches!(state(&mut events).await, DiscoveryState::Failed(_)));
    assert!(!session.is_closed());
    session.shutdown().await.unwrap();
}
