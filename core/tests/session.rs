//! Sessions over real loopback sockets with in-process discovery.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use multipeer::{
    ConnectionFailure, Event, Identity, LookingError, MemoryNetwork, Message, Reliability, RemovalReason, SendError,
    Session, SessionClosed, StreamError, To,
};

const T: Duration = Duration::from_secs(10);

fn message(e: Event) -> Option<Message> {
    match e {
        Event::Message(m) => Some(m),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_10000_reliable_messages_each_way_in_order() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b")).await;
    let b_peer = expect_peers_added(&mut a_events, 1, T).await.remove(0);
    let a_peer = expect_peers_added(&mut b_events, 1, T).await.remove(0);
    assert_eq!(b_peer.id, b.local_peer().id);
    assert_eq!(a_peer.display_name, "a");

    const N: u32 = 10_000;
    let send_all = |from: Session, to: multipeer::PeerId| async move {
        for i in 0..N {
            from.send(i.to_be_bytes().to_vec(), to, Reliability::Reliable)
                .await
                .unwrap();
        }
    };
    let receive_all = |mut events: multipeer::Events, from: multipeer::PeerId| async move {
        let mut next = 0u32;
        while next < N {
            let m = expect(&mut events, T, "message", message).await;
            assert_eq!(m.peer, from);
            assert_eq!(m.reliability, Reliability::Reliable);
            let i = u32::from_be_bytes(m.data[..].try_into().unwrap());
            assert_eq!(i, next, "messages arrive once and in order");
            next += 1;
        }
        // Nothing more (no duplicates) arrives.
        let extra = collect_for(&mut events, Duration::from_millis(200)).await;
        assert!(extra.iter().all(|e| !matches!(e, Event::Message(_))), "no duplicates");
        events
    };
    let (_, _, _a_events, _b_events) = tokio::join!(
        send_all(a.clone(), b_peer.id),
        send_all(b.clone(), a_peer.id),
        receive_all(a_events, b_peer.id),
        receive_all(b_events, a_peer.id),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_peers_form_a_full_mesh_and_a_ninth_is_refused() {
    init_tracing();
    let net = MemoryNetwork::new();
    let mut peers = Vec::new();
    for i in 0..8 {
        peers.push(start(&net, config(&format!("p{i}"))).await);
    }
    let ids: HashSet<_> = peers.iter().map(|(s, _)| s.local_peer().id).collect();
    for (session, events) in &mut peers {
        // Every membership event until 7 adds, so that a flap (a peer removed and added again) shows in full.
        let mut history = Vec::new();
        while history.iter().filter(|e| matches!(e, Event::PeerAdded(_))).count() < 7 {
            let event = expect(events, T, "membership", |e| {
                matches!(e, Event::PeerAdded(_) | Event::PeerRemoved { .. }).then_some(e)
            })
            .await;
            history.push(event);
        }
        let added: Vec<_> = history
            .iter()
            .filter_map(|e| match e {
                Event::PeerAdded(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let seen: HashSet<_> = added.iter().map(|p| p.id).collect();
        assert_eq!(seen.len(), 7, "7 distinct peers; membership events: {history:?}");
        assert!(!seen.contains(&session.local_peer().id));
        assert!(seen.is_subset(&ids));
    }
    // Exactly 7: no extra adds or removals while the mesh settles.
    for (session, events) in &mut peers {
        let extra = collect_for(events, Duration::from_millis(300)).await;
        assert!(
            extra
                .iter()
                .all(|e| !matches!(e, Event::PeerAdded(_) | Event::PeerRemoved { .. })),
            "unexpected membership change: {extra:?}"
        );
        assert_eq!(session.peers().len(), 7);
    }

    let (ninth, mut ninth_events) = start(&net, config("ninth")).await;
    let reason = expect(&mut ninth_events, T, "refusal", |e| match e {
        Event::ConnectionFailed { reason, .. } => Some(reason),
        Event::PeerAdded(p) => panic!("ninth peer must not join, but {p} added it"),
        _ => None,
    })
    .await;
    assert_eq!(reason, ConnectionFailure::SessionFull);
    let later = collect_for(&mut ninth_events, Duration::from_millis(500)).await;
    assert!(later.iter().all(|e| !matches!(e, Event::PeerAdded(_))));
    assert!(ninth.peers().is_empty());
    for (session, _) in &peers {
        assert_eq!(session.peers().len(), 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_datagrams_arrive_and_oversized_ones_are_refused() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (_b, mut b_events) = start(&net, config("b")).await;
    let b_id = expect_peers_added(&mut a_events, 1, T).await[0].id;
    expect_peers_added(&mut b_events, 1, T).await;

    let max = a.max_datagram_size(b_id).unwrap();
    assert!(max >= 1150, "usable datagram payload {max} at QUIC's minimum MTU");
    for i in 0..100u8 {
        a.send(vec![i; 64], b_id, Reliability::Unreliable).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = collect_for(&mut b_events, Duration::from_millis(500)).await;
    let datagrams: Vec<_> = got
        .into_iter()
        .filter_map(message)
        .filter(|m| m.reliability == Reliability::Unreliable)
        .collect();
    assert!(
        datagrams.len() >= 50,
        "only {} of 100 datagrams arrived on loopback",
        datagrams.len()
    );
    assert!(datagrams.iter().all(|m| m.data.len() == 64));

    // Path MTU discovery may raise the limit over time, never above one UDP datagram.
    let err = a
        .send(vec![0u8; 70_000], b_id, Reliability::Unreliable)
        .await
        .unwrap_err();
    match err {
        SendError::DatagramTooLarge { peer, size, max: now } => {
            assert_eq!((peer, size), (b_id, 70_000));
            assert!(now >= max && now < 70_000);
        }
        other => panic!("expected DatagramTooLarge, got {other:?}"),
    }
    a.send(vec![0u8; max], b_id, Reliability::Unreliable).await.unwrap();

    let big = vec![0u8; 4 * 1024 * 1024 + 1];
    assert!(matches!(
        a.send(big, b_id, Reliability::Reliable).await,
        Err(SendError::MessageTooLarge { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_seen_at_once() {
    init_tracing();
    let (a, mut a_events, b, mut b_events) = connected_pair().await;
    // A message sent just before leaving still arrives, before the removal.
    a.send("last words", To::All, Reliability::Reliable).await.unwrap();
    let started = std::time::Instant::now();
    a.disconnect().await.unwrap();
    let m = expect(&mut b_events, T, "last message", message).await;
    assert_eq!(&m.data[..], b"last words");
    let (peer, reason) = expect(
        &mut b_events,
        Duration::from_secs(1),
        "removal within 1 s",
        |e| match e {
            Event::PeerRemoved { peer, reason } => Some((peer, reason)),
            _ => None,
        },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(peer.id, a.local_peer().id);
    assert_eq!(reason, RemovalReason::Left);
    let local = expect_removal(&mut a_events, T, "local removal").await;
    assert_eq!(local, RemovalReason::LocalDisconnect);
    assert!(a.peers().is_empty());
    assert!(b.peers().is_empty());
    // Not looking any more: b does not come back until a starts looking again.
    let quiet = collect_for(&mut a_events, Duration::from_millis(500)).await;
    assert!(quiet.iter().all(|e| !matches!(e, Event::PeerAdded(_))));
    a.start_looking_for_peers().await.unwrap();
    expect_peers_added(&mut a_events, 1, T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_gone_without_goodbye_is_removed_after_the_idle_timeout() {
    init_tracing();
    let idle = Duration::from_secs(1);
    let net = MemoryNetwork::new();
    let (b, mut b_events) = start(&MemoryNetwork::new(), config("b").idle_timeout(idle)).await;
    let relay = UdpRelay::start(b.local_addr(), Impairment::default()).await;
    let discovery = StaticDiscovery {
        peers: vec![discovered(&b, relay.addr)],
    };
    let (a, mut a_events) = Session::builder(config("a").idle_timeout(idle).build().unwrap())
        .discovery(discovery)
        .start_with_events()
        .await
        .unwrap();
    drop(net);
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    // Keep-alives hold a quiet link up well past the idle timeout.
    tokio::time::sleep(idle * 3).await;
    assert_eq!(a.peers().len(), 1, "keep-alives keep a quiet link");
    relay.set_cut(true);
    let started = std::time::Instant::now();
    for events in [&mut a_events, &mut b_events] {
        let reason = expect_removal(events, idle * 4, "idle removal").await;
        assert_eq!(reason, RemovalReason::TimedOut);
    }
    let took = started.elapsed();
    assert!(took >= idle / 2, "removed too early: {took:?}");
    assert!(took < idle * 3, "removed too late: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_match_the_announced_id_is_rejected() {
    init_tracing();
    let (real, mut real_events) = start(&MemoryNetwork::new(), config("real")).await;
    // Discovery claims an id, but the host at that address holds a different key.
    let claimed = Identity::generate().peer_id();
    let mut record = discovered(&real, real.local_addr());
    record.id = claimed;
    let (a, mut a_events) = Session::builder(config("a").build().unwrap())
        .discovery(StaticDiscovery { peers: vec![record] })
        .start_with_events()
        .await
        .unwrap();
    let (peer, reason) = expect(&mut a_events, T, "identity mismatch", |e| match e {
        Event::ConnectionFailed { peer, reason } => Some((peer, reason)),
        Event::PeerAdded(p) => panic!("impostor {p} was admitted"),
        _ => None,
    })
    .await;
    assert_eq!(peer, claimed);
    assert_eq!(
        reason,
        ConnectionFailure::IdentityMismatch {
            presented: real.local_peer().id
        }
    );
    assert!(a.peers().is_empty());
    let seen = collect_for(&mut real_events, Duration::from_millis(300)).await;
    assert!(seen.iter().all(|e| !matches!(e, Event::PeerAdded(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrases_must_match() {
    init_tracing();
    let net = MemoryNetwork::new();
    // The passphrase guard counts failures per source address as well as per id: the two peers that share the
    // passphrase get loopback addresses of their own, as peers on a LAN have, so the failures of b and c (from
    // 127.0.0.1) do not hold them back from each other.
    let own = |n: u8| std::net::SocketAddr::from(([127, 0, 0, n], 0));
    let (_a, mut a_events) = start(&net, config("a").passphrase("open sesame").bind_addr(own(2))).await;
    let (_b, mut b_events) = start(&net, config("b").passphrase("wrong guess")).await;
    for events in [&mut a_events, &mut b_events] {
        let reason = expect(events, T, "passphrase refusal", |e| match e {
            Event::ConnectionFailed { reason, .. } => Some(reason),
            Event::PeerAdded(p) => panic!("{p} joined with a wrong passphrase"),
            _ => None,
        })
        .await;
        assert_eq!(reason, ConnectionFailure::WrongPassphrase);
    }
    // No passphrase at all is refused too; the right one is admitted.
    let (_c, mut c_events) = start(&net, config("c")).await;
    let reason = expect(&mut c_events, T, "refusal", |e| match e {
        Event::ConnectionFailed { reason, .. } => Some(reason),
        Event::PeerAdded(p) => panic!("{p} admitted a peer without passphrase"),
        _ => None,
    })
    .await;
    assert_eq!(reason, ConnectionFailure::WrongPassphrase);
    let (_d, mut d_events) = start(&net, config("d").passphrase("open sesame").bind_addr(own(3))).await;
    let joined = expect_peers_added(&mut d_events, 1, T).await;
    assert_eq!(joined[0].display_name, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_streams_carry_bytes_concurrently() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (_b, mut b_events) = start(&net, config("b")).await;
    let b_id = expect_peers_added(&mut a_events, 1, T).await[0].id;
    expect_peers_added(&mut b_events, 1, T).await;
    let mut writers = Vec::new();
    for i in 0..10u8 {
        let a = a.clone();
        writers.push(tokio::spawn(async move {
            let mut s = a.stream(&format!("file-{i}"), b_id).await.unwrap();
            s.write_all(&vec![i; 100_000]).await.unwrap();
            s.finish().await.unwrap();
        }));
    }
    let mut names = HashSet::new();
    for _ in 0..10 {
        let mut stream = expect(&mut b_events, T, "stream", |e| match e {
            Event::Stream(s) => Some(s),
            _ => None,
        })
        .await;
        let i: u8 = stream.name().strip_prefix("file-").unwrap().parse().unwrap();
        let mut data = Vec::new();
        stream.read_to_end(&mut data).await.unwrap();
        assert_eq!(data, vec![i; 100_000]);
        names.insert(stream.name().to_owned());
    }
    assert_eq!(names.len(), 10);
    for w in writers {
        w.await.unwrap();
    }
    assert!(matches!(a.stream("", b_id).await, Err(StreamError::InvalidName(_))));
    let stranger = Identity::generate().peer_id();
    assert_eq!(
        a.stream("x", stranger).await.unwrap_err(),
        StreamError::NotConnected(stranger)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplex_streams_carry_bytes_both_ways_concurrently() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init_tracing();
    let (a, _a_events, b, mut b_events) = connected_pair().await;
    let (a_id, b_id) = (a.local_peer().id, b.local_peer().id);
    // Both see the same roster: everyone, themselves included, ordered by id.
    let ids = |s: &multipeer::Session| s.roster().iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(
        ids(&a),
        if a_id < b_id {
            vec![a_id, b_id]
        } else {
            vec![b_id, a_id]
        }
    );
    // b echoes every duplex stream back, uppercased, until the opener shuts its half.
    let echo = tokio::spawn(async move {
        for _ in 0..20 {
            let stream = expect(&mut b_events, T, "duplex stream", |e| match e {
                Event::DuplexStream(s) => Some(s),
                _ => None,
            })
            .await;
            assert_eq!(stream.peer(), a_id);
            tokio::spawn(async move {
                let name = stream.name().to_owned();
                let (mut from, mut to) = stream.into_split();
                let mut data = Vec::new();
                from.read_to_end(&mut data).await.unwrap();
                to.write_all(name.as_bytes()).await.unwrap();
                to.write_all(&data.to_ascii_uppercase()).await.unwrap();
                to.finish().await.unwrap();
            });
        }
        b_events
    });
    let mut clients = Vec::new();
    for i in 0..20u32 {
        let a = a.clone();
        clients.push(tokio::spawn(async move {
            let name = format!("conn-{i}");
            let mut s = a.duplex_stream(&name, b_id).await.unwrap();
            let body = format!("request {i} ").repeat(5_000);
            s.write_all(body.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await.unwrap();
            assert_eq!(answer, [name.as_bytes(), body.to_ascii_uppercase().as_bytes()].concat());
        }));
    }
    for c in clients {
        within(T, "duplex client", c).await.unwrap();
    }
    within(T, "echo server", echo).await.unwrap();
    assert!(matches!(
        a.duplex_stream("", b_id).await,
        Err(StreamError::InvalidName(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_peers_are_expelled_and_kept_out_until_allowed() {
    init_tracing();
    let (a, mut a_events, b, mut b_events) = connected_pair().await;
    assert!(a.remove_peer(b.local_peer().id).await.unwrap());
    let local = expect_removal(&mut a_events, T, "removal").await;
    assert_eq!(local, RemovalReason::Removed);
    let remote = expect_removal(&mut b_events, T, "expulsion").await;
    assert_eq!(remote, RemovalReason::Expelled);
    // b's retries stay out.
    let quiet = collect_for(&mut a_events, Duration::from_millis(800)).await;
    assert!(quiet.iter().all(|e| !matches!(e, Event::PeerAdded(_))), "{quiet:?}");
    a.allow_peer(b.local_peer().id).await.unwrap();
    let back = expect_peers_added(&mut a_events, 1, T).await;
    assert_eq!(back[0].id, b.local_peer().id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_looking_keeps_peers_but_admits_no_newcomer() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    a.stop_looking_for_peers().await.unwrap();
    // A peer that is not looking neither dials nor admits anyone outside a session...
    let (_b, mut b_events) = start(&net, config("b")).await;
    let quiet = collect_for(&mut a_events, Duration::from_millis(800)).await;
    assert!(quiet.iter().all(|e| !matches!(e, Event::PeerAdded(_))));
    assert!(collect_for(&mut b_events, Duration::from_millis(10))
        .await
        .iter()
        .all(|e| !matches!(e, Event::PeerAdded(_))));
    assert!(a.peers().is_empty());
    // ...until it looks again; then it joins.
    a.start_looking_for_peers().await.unwrap();
    let added = expect_peers_added(&mut a_events, 1, T).await;
    assert_eq!(added[0].display_name, "b");
    // Not looking keeps the links it has. Newcomers are admitted by the session's leader: if that is a peer that
    // is not looking, they wait; either way no peer ends up linked to only part of the session.
    a.stop_looking_for_peers().await.unwrap();
    let (c, mut c_events) = start(&net, config("c")).await;
    let _ = collect_for(&mut c_events, Duration::from_millis(800)).await;
    let linked = c.peers().len();
    assert!(linked == 0 || linked == 2, "c is linked to {linked} of the two members");
    a.send("still here", To::All, Reliability::Reliable).await.unwrap();
    let m = expect_message(&mut b_events, T, "message").await;
    assert_eq!(&m.data[..], b"still here");
    a.start_looking_for_peers().await.unwrap();
    within(T, "c in the session", async {
        while c.peers().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(a.roster().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_decides_admission_with_discovery_info_and_context() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = Session::builder(config("a").build().unwrap())
        .discovery(net.discovery())
        .admission(|inv| {
            inv.discovery_info.get("room").map(String::as_str) == Some("blue") || inv.context.as_deref() == Some(b"vip")
        })
        .start_with_events()
        .await
        .unwrap();
    let (blue, mut blue_events) = start(&net, config("blue").discovery_info("room", "blue")).await;
    let (vip, _vip_events) = start(&net, config("vip").invitation_context(b"vip".to_vec())).await;
    let added = expect_peers_added(&mut a_events, 2, T).await;
    let names: HashSet<_> = added.iter().map(|p| p.display_name.as_str()).collect();
    assert_eq!(names, HashSet::from(["blue", "vip"]));
    expect_peers_added(&mut blue_events, 1, T).await;
    // A newcomer a's app declines is refused with a typed reason and kept out of the whole session, even if
    // another member admitted it first: one session, one roster.
    let (red, mut red_events) = start(&net, config("red").discovery_info("room", "red")).await;
    let reason = expect(&mut red_events, T, "declined", |e| match e {
        Event::ConnectionFailed {
            reason: ConnectionFailure::Declined,
            peer,
        } if peer == a.local_peer().id => Some(ConnectionFailure::Declined),
        _ => None,
    })
    .await;
    assert_eq!(reason, ConnectionFailure::Declined);
    within(T, "red out of every roster", async {
        while blue.peer(red.local_peer().id).is_some()
            || vip.peer(red.local_peer().id).is_some()
            || !red.peers().is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(a.peers().len(), 2);
    assert!(collect_for(&mut a_events, Duration::from_millis(300))
        .await
        .iter()
        .all(|e| !matches!(e, Event::PeerAdded(p) if p.display_name == "red")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_data_json_and_persistent_identity() {
    init_tracing();
    let dir = std::env::temp_dir().join(format!("multipeer-test-{}", std::process::id()));
    let path = dir.join("identity.key");
    let first = Identity::load_or_generate(&path).unwrap();
    let again = Identity::load_or_generate(&path).unwrap();
    assert_eq!(first.peer_id(), again.peer_id());
    std::fs::remove_dir_all(&dir).unwrap();

    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(
        &net,
        config("a")
            .identity(first)
            .initial_data(serde_json::json!({"color": "red", "level": 3})),
    )
    .await;
    assert_eq!(a.local_peer().id, again.peer_id());
    let (b, mut b_events) = start(&net, config("b")).await;
    let seen_a = expect_peers_added(&mut b_events, 1, T).await.remove(0);
    assert_eq!(seen_a.id, again.peer_id());
    assert_eq!(seen_a.initial_data, serde_json::json!({"color": "red", "level": 3}));
    assert_eq!(b.peer(seen_a.id).unwrap().initial_data["level"], 3);
    expect_peers_added(&mut a_events, 1, T).await;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Move {
        x: i32,
        y: i32,
    }
    a.send_json(&Move { x: 1, y: -2 }, To::All, Reliability::Reliable)
        .await
        .unwrap();
    let m = expect(&mut b_events, T, "json", message).await;
    assert_eq!(m.json::<Move>().unwrap(), Move { x: 1, y: -2 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_dropping_release_everything_and_later_calls_fail() {
    init_tracing();
    let (a, mut a_events, b, mut b_events) = connected_pair().await;
    let a_addr = a.local_addr();
    let clone = a.clone();
    a.shutdown().await.unwrap();
    assert!(clone.is_closed());
    assert_eq!(
        clone.send("x", To::All, Reliability::Reliable).await,
        Err(SendError::SessionClosed)
    );
    assert!(matches!(
        clone.stream("x", b.local_peer().id).await,
        Err(StreamError::SessionClosed)
    ));
    assert_eq!(clone.stop_looking_for_peers().await, Err(SessionClosed));
    assert!(matches!(
        clone.start_looking_for_peers().await,
        Err(LookingError::SessionClosed)
    ));
    assert_eq!(clone.shutdown().await, Err(SessionClosed));
    // The event stream ends, the socket is free again.
    within(T, "event stream end", async {
        while a_events.next().await.is_some() {}
    })
    .await;
    std::net::UdpSocket::bind(a_addr).expect("port released after shutdown");
    let reason = expect_removal(&mut b_events, T, "removal").await;
    assert_eq!(reason, RemovalReason::Left);

    // Dropping the last handle shuts down too.
    let b_addr = b.local_addr();
    drop(b);
    within(T, "event stream end after drop", async {
        while b_events.next().await.is_some() {}
    })
    .await;
    std::net::UdpSocket::bind(b_addr).expect("port released after the last handle dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_joins_peers_without_discovery_and_diagnostics_show_it() {
    init_tracing();
    // Two sessions that cannot discover each other.
    let (a, mut a_events) = start(&MemoryNetwork::new(), config("a")).await;
    let (b, mut b_events) = start(&MemoryNetwork::new(), config("b")).await;
    let ticket: multipeer::Ticket = b.ticket().to_string().parse().unwrap();
    assert_eq!(ticket.peer, b.local_peer().id);
    assert_eq!(ticket.addrs, vec![b.local_addr()]);
    assert!(matches!(
        a.connect_ticket(&a.ticket()).await,
        Err(multipeer::ConnectTicketError::OwnTicket)
    ));
    let other = multipeer::Ticket::new("other", ticket.peer, ticket.addrs.clone());
    assert!(matches!(
        a.connect_ticket(&other).await,
        Err(multipeer::ConnectTicketError::WrongService { .. })
    ));
    a.connect_ticket(&ticket).await.unwrap();
    assert_eq!(expect_peers_added(&mut a_events, 1, T).await[0].display_name, "b");
    assert_eq!(expect_peers_added(&mut b_events, 1, T).await[0].display_name, "a");

    let report = a.diagnostics().await.unwrap();
    assert_eq!(report.local_id, a.local_peer().id);
    assert_eq!(report.links.len(), 1);
    assert_eq!(report.links[0].remote_addr, b.local_addr());
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(report.attempts[0].state, "connected");
    assert!(report.to_string().contains("connected"));

    // A ticket for a peer that is not there shows up as failed attempts, with the reason.
    let ghost = multipeer::Ticket::new(
        "test",
        Identity::generate().peer_id(),
        vec!["127.0.0.1:9".parse().unwrap()],
    );
    a.connect_ticket(&ghost).await.unwrap();
    let failed = expect(&mut a_events, Duration::from_secs(15), "ghost failure", |e| match e {
        Event::ConnectionFailed { peer, reason } if peer == ghost.peer => Some(reason),
        _ => None,
    })
    .await;
    assert_eq!(failed, ConnectionFailure::Unreachable);
    let report = a.diagnostics().await.unwrap();
    let ghost_state = report.attempts.iter().find(|x| x.peer == ghost.peer).unwrap();
    assert!(ghost_state.failures >= 1);
    assert_eq!(ghost_state.last_failure.as_deref(), Some("unreachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ends_show_the_same_verification_code_and_other_pairs_differ() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b")).await;
    let (c, mut c_events) = start(&net, config("c")).await;
    expect_peers_added(&mut a_events, 2, T).await;
    expect_peers_added(&mut b_events, 2, T).await;
    expect_peers_added(&mut c_events, 2, T).await;
    let (a_id, b_id, c_id) = (a.local_peer().id, b.local_peer().id, c.local_peer().id);
    let ab = a.verification_code(b_id).unwrap();
    assert_eq!(b.verification_code(a_id).unwrap(), ab, "both ends agree");
    assert_eq!(ab.len(), 7, "six digits in two groups: {ab}");
    assert_eq!(c.verification_code(a_id).unwrap(), a.verification_code(c_id).unwrap());
    assert_ne!(a.verification_code(c_id).unwrap(), ab, "another pair, another code");
    assert!(a.verification_code(Identity::generate().peer_id()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_several_reports_who_got_it_and_who_did_not() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b")).await;
    let (c, mut c_events) = start(&net, config("c")).await;
    expect_peers_added(&mut a_events, 2, T).await;
    expect_peers_added(&mut b_events, 2, T).await;
    expect_peers_added(&mut c_events, 2, T).await;
    let (b_id, c_id) = (b.local_peer().id, c.local_peer().id);
    let stranger = Identity::generate().peer_id();

    // Every member, once each even if named twice: all get it.
    a.send(&b"twice"[..], To::Peers(vec![b_id, c_id, b_id]), Reliability::Reliable)
        .await
        .unwrap();
    for events in [&mut b_events, &mut c_events] {
        let m = expect(events, T, "message", message).await;
        assert_eq!(&m.data[..], b"twice");
    }
    // A stranger among them: the members get it, the error says who did not and why.
    let err = a
        .send(
            &b"some"[..],
            To::Peers(vec![b_id, stranger, c_id]),
            Reliability::Reliable,
        )
        .await
        .unwrap_err();
    match err {
        SendError::Recipients { delivered, failed } => {
            let delivered: HashSet<_> = delivered.into_iter().collect();
            assert_eq!(delivered, HashSet::from([b_id, c_id]));
            assert_eq!(failed.len(), 1);
            assert_eq!(failed[0].0, stranger);
            assert!(matches!(failed[0].1, SendError::NotConnected(p) if p == stranger));
        }
        other => panic!("expected a recipients error, got {other:?}"),
    }
    // Only the stranger: its own error.
    let err = a
        .send(&b"x"[..], To::Peers(vec![stranger]), Reliability::Reliable)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::NotConnected(p) if p == stranger));
    for events in [&mut b_events, &mut c_events] {
        let m = expect(events, T, "message", message).await;
        assert_eq!(&m.data[..], b"some");
        let extra = collect_for(events, Duration::from_millis(200)).await;
        assert!(
            extra.iter().all(|e| !matches!(e, Event::Message(_))),
            "each message once"
        );
    }
    for s in [a, b, c] {
        s.shutdown().await.unwrap();
    }
}
