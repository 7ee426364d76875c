//! Misbehaving peers get a closed connection with a protocol error code; other peers carry on.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::raw::{self, RawOptions};
use common::*;
use multipeer::proto::codes;
use multipeer::{Event, MemoryNetwork, Reliability, RemovalReason, To};

const T: Duration = Duration::from_secs(10);

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_the_offending_connection() {
    init_tracing();
    // Every hostile peer below has an id smaller than both sessions': once admitted it leads, and `a` must hand the
    // lead back (and `b` learn of it) when it closes the connection, before the next one arrives.
    let (leader, member) = ordered_identities_above([0x40; 32]);
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a").identity(leader)).await;
    let (b, mut b_events) = start(&net, config("b").identity(member)).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let below = RawOptions {
        below: Some(a.local_peer().id),
        ..RawOptions::default()
    };

    let control = |frames: &[Vec<u8>]| {
        let mut bytes = vec![0u8];
        for f in frames {
            bytes.extend_from_slice(f);
        }
        bytes
    };
    // Stands for the hello, which names the connection's own id: filled in per connection.
    let hello = raw::frame(1, b"@@hello@@");
    // Each case: what the hostile peer sends, and whether it passes admission and joins first.
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("message before admission", control(&[raw::frame(2, b"hi")]), false),
        ("hello before admission", control(std::slice::from_ref(&hello)), false),
        ("unknown stream kind", vec![0x42, 1, 2, 3], false),
        (
            "admission message that is garbage",
            control(&[raw::frame(4, b"\x01garbage")]),
            false,
        ),
        ("hello that is not JSON", raw::frame(1, b"{nope"), false),
        ("message before hello", raw::frame(2, b"hi"), false),
        (
            "oversized frame",
            [hello.clone(), vec![2, 0xff, 0xff, 0xff, 0xff]].concat(),
            true,
        ),
        (
            "unknown frame type",
            [hello.clone(), raw::frame(0x77, b"")].concat(),
            true,
        ),
        ("hello sent twice", [hello.clone(), hello.clone()].concat(), true),
        (
            "admission message after hello",
            [hello.clone(), raw::frame(4, b"\x03")].concat(),
            true,
        ),
        ("truncated goodbye", [hello.clone(), vec![3, 0, 0, 0, 9]].concat(), true),
    ];
    for (i, (what, bytes, joins)) in cases.into_iter().enumerate() {
        let (conn, id) = raw::connect_as(a.local_addr(), below.clone()).await.unwrap();
        let real = raw::frame(1, &raw::hello("mallory", id));
        let bytes = replace(&bytes, &hello, &real);
        let code = if i < 4 {
            raw::send_and_get_close_code(&conn, &bytes).await
        } else {
            // Passes admission, then misbehaves on its control stream.
            let (mut control, _theirs, _code) = raw::admit(&conn, id, None).await.unwrap();
            control.write_all(&bytes).await.unwrap();
            match tokio::time::timeout(T, conn.closed()).await {
                Ok(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
                other => panic!("{what}: {other:?}"),
            }
        };
        assert_eq!(code, Some(u64::from(codes::PROTOCOL_ERROR)), "{what}");
        if joins {
            let name = expect(&mut a_events, T, "hostile peer added", |e| match e {
                Event::PeerAdded(p) => Some(p.display_name),
                _ => None,
            })
            .await;
            assert_eq!(name, "mallory");
            let reason = expect_removal(&mut a_events, T, "hostile peer removed").await;
            assert!(matches!(reason, RemovalReason::ProtocolError(_)), "{what}: {reason:?}");
        }
        // The honest peer is unaffected.
        a.send(what.as_bytes().to_vec(), To::All, Reliability::Reliable)
            .await
            .unwrap();
        let m = expect_message(&mut b_events, T, "message").await;
        assert_eq!(&m.data[..], what.as_bytes());
    }
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_resource_streams_are_refused_and_others_carry_on() {
    use multipeer::proto::resource::{encode_offer, Offer};
    init_tracing();
    let inbox = TempDir::new("hostile-resources");
    let net = MemoryNetwork::new();
    // `a` leads the session (smaller id), so it is the one that admits the raw peers below.
    let (leader, member) = ordered_identities();
    let (a, mut a_events) = start(&net, config("a").resource_directory(&inbox.0).identity(leader)).await;
    let (b, mut b_events) = start(&net, config("b").identity(member)).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    // An unknown kind of bidirectional stream, and a duplex stream with an empty name: protocol error,
    // connection closed.
    for bytes in [&[0x09u8, 1, 2, 3][..], &[0x03, 0, 0][..]] {
        let (conn, _control) = raw::join(a.local_addr(), "mallory").await;
        expect_peers_added(&mut a_events, 1, T).await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        let closed = tokio::time::timeout(T, conn.closed()).await.unwrap();
        assert!(
            matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code.into_inner() == u64::from(codes::PROTOCOL_ERROR)),
            "{bytes:?}: {closed:?}"
        );
    }

    // An offer followed by more data than announced: the transfer fails, nothing is saved.
    let (conn, _control) = raw::join(a.local_addr(), "mallory").await;
    expect_peers_added(&mut a_events, 1, T).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let offer = encode_offer(&Offer {
        id: [1; 16],
        size: 10,
        name: "../x".into(),
    })
    .unwrap();
    send.write_all(&offer).await.unwrap();
    let _ = send.write_all(&[0u8; 10 + 32 + 100]).await;
    let result = expect(&mut a_events, T, "hostile resource finished", |e| match e {
        Event::ResourceFinished { result, .. } => Some(result),
        _ => None,
    })
    .await;
    assert!(
        matches!(result, Err(multipeer::ResourceError::Protocol(_))),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(&inbox.0).unwrap().count(), 0, "nothing saved");
    drop(conn);

    // The honest peer is unaffected.
    b.send("still fine", To::All, Reliability::Reliable).await.unwrap();
    let m = expect_message(&mut a_events, T, "message").await;
    assert_eq!(&m.data[..], b"still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_without_certificate_or_with_another_protocol_fail() {
    init_tracing();
    let (a, mut a_events) = start(&MemoryNetwork::new(), config("a")).await;
    let no_cert = raw::connect(
        a.local_addr(),
        RawOptions {
            client_cert: false,
            ..RawOptions::default()
        },
    )
    .await;
    // TLS 1.3 client auth completes after the client's Finished: the refusal arrives as a close.
    if let Ok(conn) = no_cert {
        let reason = tokio::time::timeout(T, conn.closed()).await.expect("closed");
        assert!(!matches!(reason, quinn::ConnectionError::TimedOut), "{reason:?}");
    }
    let wrong_alpn = raw::connect(
        a.local_addr(),
        RawOptions {
            alpn: b"multipeer/999".to_vec(),
            ..RawOptions::default()
        },
    )
    .await;
    assert!(wrong_alpn.is_err(), "another protocol version must not connect");
    let quiet = collect_for(&mut a_events, Duration::from_millis(300)).await;
    assert!(quiet.iter().all(|e| !matches!(e, Event::PeerAdded(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_receives_events_in_order() {
    use std::sync::{Arc, Mutex};
    init_tracing();
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);
    impl multipeer::SessionDelegate for Recorder {
        fn peer_added(&self, peer: &multipeer::Peer) {
            self.0.lock().unwrap().push(format!("added {}", peer.display_name));
        }
        fn peer_removed(&self, peer: &multipeer::Peer, reason: &RemovalReason) {
            self.0
                .lock()
                .unwrap()
                .push(format!("removed {} {reason}", peer.display_name));
        }
        fn received(&self, message: multipeer::Message) {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&message.data).into_owned());
        }
    }
    let net = MemoryNetwork::new();
    let recorder = Recorder::default();
    let a = multipeer::Session::builder(config("a").build().unwrap())
        .discovery(net.discovery())
        .start(recorder.clone())
        .await
        .unwrap();
    let (b, mut b_events) = start(&net, config("b")).await;
    expect_peers_added(&mut b_events, 1, T).await;
    for i in 0..3 {
        b.send(format!("m{i}"), To::All, Reliability::Reliable).await.unwrap();
    }
    b.shutdown().await.unwrap();
    within(T, "delegate calls", async {
        while recorder.0.lock().unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        ["added b", "m0", "m1", "m2", "removed b left"]
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_at_once_stay_bounded_and_others_carry_on() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    init_tracing();
    let (a, _a_events, b, mut b_events) = connected_pair().await;
    // A hostile peer joins properly, then opens 2,000 streams at once and never finishes any.
    let (conn, _control) = raw::join(a.local_addr(), "stream-flood").await;
    let opened = Arc::new(AtomicUsize::new(0));
    let mut openers = Vec::new();
    for i in 0..2_000 {
        let (conn, opened) = (conn.clone(), opened.clone());
        openers.push(tokio::spawn(async move {
            let mut s = conn.open_uni().await?;
            opened.fetch_add(1, Ordering::Relaxed);
            let name = format!("s{i}");
            let mut preamble = vec![1u8];
            preamble.extend_from_slice(&(name.len() as u16).to_be_bytes());
            preamble.extend_from_slice(name.as_bytes());
            s.write_all(&preamble)
                .await
                .map_err(|_| quinn::ConnectionError::LocallyClosed)?;
            // Hold the stream open.
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, quinn::ConnectionError>(s)
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = opened.load(Ordering::Relaxed);
    assert!(n <= 64, "the peer could open {n} streams at once; the limit is 64");
    assert!(n >= 32, "the flood itself must have run: only {n} streams opened");
    // Honest peers carry on.
    a.send("still fine", b.local_peer().id, Reliability::Reliable)
        .await
        .unwrap();
    let m = expect_message(&mut b_events, T, "message").await;
    assert_eq!(&m.data[..], b"still fine");
    for opener in openers {
        opener.abort();
    }
    conn.close(0u32.into(), b"done");
}
