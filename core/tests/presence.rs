//! Presence: who is nearby, before and independent of joining.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{config, expect, init_tracing};
use multipeer::discovery::MemoryNetwork;
use multipeer::{Event, NearbyPeer, Session};

const T: Duration = Duration::from_secs(10);

fn found(e: Event) -> Option<NearbyPeer> {
    match e {
        Event::PeerFound(p) => Some(p),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_found_and_lost_whether_or_not_they_join() {
    init_tracing();
    let net = MemoryNetwork::new();
    // Nobody is admitted by either side: presence alone.
    let start = |name: &'static str| {
        let net = net.clone();
        async move {
            Session::builder(config(name).discovery_info("room", "blue").build().unwrap())
                .discovery(net.discovery())
                .admission(|_| false)
                .start_with_events()
                .await
                .unwrap()
        }
    };
    let (a, mut a_events) = start("alice").await;
    let (b, mut b_events) = start("bob").await;
    let seen = expect(&mut a_events, T, "bob found", found).await;
    assert_eq!(seen.id, b.local_peer().id);
    assert_eq!(seen.display_name, "bob");
    assert_eq!(seen.discovery_info.get("room").map(String::as_str), Some("blue"));
    let seen = expect(&mut b_events, T, "alice found", found).await;
    assert_eq!(seen.id, a.local_peer().id);
    assert_eq!(
        a.nearby(),
        vec![NearbyPeer::new(b.local_peer().id, "bob", seen.discovery_info.clone())]
    );
    assert!(a.peers().is_empty() && b.peers().is_empty(), "nobody joined");

    b.shutdown().await.unwrap();
    let lost = expect(&mut a_events, T, "bob lost", |e| match e {
        Event::PeerLost(p) => Some(p),
        Event::PeerAdded(p) => panic!("{p:?} joined"),
        _ => None,
    })
    .await;
    assert_eq!(lost.id, b.local_peer().id);
    assert!(a.nearby().is_empty());
}
