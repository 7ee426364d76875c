//! Peers on a virtual LAN (network namespaces joined by a bridge): real mDNS over real multicast, real QUIC.
//!
//! Each test builds its own LAN (its own bridge in its own namespace), so tests in parallel never see each
//! other. Needs root and iproute2; without them each test prints one line and passes without checking anything.
//! The mDNS interoperability test also needs Python's `zeroconf` package (`python3 -m pip install zeroconf`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::netns::{harness_namespace_pid, namespace_exists, PeerProcess, VirtualLan};
use serde_json::{json, Value};

const PEER: &str = env!("CARGO_BIN_EXE_multipeer-test-peer");
const SERVICE: &str = "mplan";
/// From spawn to the `started` line.
const STARTUP: Duration = Duration::from_secs(20);
/// From both ends running to both reporting the peer (mDNS and QUIC; generous for a loaded 2-core machine).
const JOIN: Duration = Duration::from_secs(45);
/// How long we watch for something that must not happen.
const QUIET: Duration = Duration::from_secs(6);
/// Idle timeout for the tests that cut peers off.
const IDLE_MS: u64 = 2000;
/// Longest time a vanished peer may stay in the others' sessions: the idle timeout plus slack for a busy host.
const REMOVAL: Duration = Duration::from_millis(IDLE_MS + 8000);
/// One message on an established link.
const DELIVERY: Duration = Duration::from_secs(10);

/// A running peer process and what it announced.
struct Peer {
    proc: PeerProcess,
    id: String,
    port: u16,
}

fn spawn_peer(lan: &VirtualLan, host: usize, name: &str, service: &str, extra: &[&str]) -> PeerProcess {
    let mut args = vec!["--name", name, "--service", service];
    args.extend_from_slice(extra);
    lan.spawn(host, PEER, &args)
}

fn started(mut proc: PeerProcess) -> Peer {
    let (id, port) = proc.started(STARTUP);
    assert_eq!(id.len(), 64, "peer id is 64 hex digits: {id}");
    assert!(port != 0, "QUIC port announced");
    Peer { proc, id, port }
}

/// Starts peers `name<i>` on hosts `hosts` (all spawned before any is waited for).
fn start_peers(lan: &VirtualLan, hosts: std::ops::Range<usize>, service: &str, extra: &[&str]) -> Vec<Peer> {
    let procs: Vec<PeerProcess> = hosts
        .map(|i| spawn_peer(lan, i, &format!("peer{i}"), service, extra))
        .collect();
    procs.into_iter().map(started).collect()
}

/// The ids of `peers` other than `peers[me]`.
fn others(peers: &[Peer], me: usize) -> BTreeSet<String> {
    peers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != me)
        .map(|(_, p)| p.id.clone())
        .collect()
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until every peer in `peers` has exactly the others; returns when the last one got there.
fn wait_full_mesh(peers: &mut [Peer], limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    let mut last: Option<Instant> = None;
    for i in 0..peers.len() {
        let want = others(peers, i);
        let left = deadline.saturating_duration_since(Instant::now());
        let at = peers[i].proc.wait_peers(left, &want);
        last = Some(last.map_or(at, |l| l.max(at)));
    }
    last.unwrap_or_else(Instant::now)
}

fn send(p: &mut Peer, text: &str, reliable: bool, to: Option<&str>) {
    p.proc
        .send(json!({"cmd": "send", "text": text, "reliable": reliable, "to": to}));
}

fn expect_message(p: &mut Peer, from: &str, text: &str, reliable: bool) {
    let what = format!("message {text:?} from {}", &from[..8]);
    p.proc.expect(DELIVERY, &what, |v| {
        (v["event"] == "message" && v["from"] == from && v["text"] == text).then(|| {
            assert_eq!(v["reliable"], reliable, "reliability of {v}");
        })
    });
}

fn expect_removed(p: &mut Peer, id: &str, limit: Duration) -> String {
    let v = p.proc.expect_event(limit, "peer_removed", |v| v["id"] == id);
    v["reason"].as_str().unwrap_or_default().to_owned()
}

fn is_added(v: &Value, id: &str) -> bool {
    v["event"] == "peer_added" && v["id"] == id
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("mp-lan-{}-{tag}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The harness itself.

#[test]
fn harness_recognises_only_its_own_namespace_names() {
    assert_eq!(harness_namespace_pid("mp123s4"), Some(123));
    assert_eq!(harness_namespace_pid("mp123h4_10"), Some(123));
    assert_eq!(harness_namespace_pid("mp123h4"), None);
    assert_eq!(harness_namespace_pid("mp123x4"), None);
    assert_eq!(harness_namespace_pid("mpabc"), None);
    assert_eq!(harness_namespace_pid("mp"), None);
    assert_eq!(harness_namespace_pid("other"), None);
}

/// Joins 224.0.0.251 on the host's LAN address and prints each datagram received on port 5353 as a JSON line.
const MCAST_RECEIVER: &str = r#"
import json, socket, struct, sys, time
addr, limit = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5353))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.251"), socket.inet_aton(addr)))
print(json.dumps({"event": "ready"}), flush=True)
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        data, src = s.recvfrom(2048)
    except socket.timeout:
        break
    print(json.dumps({"event": "got", "data": data.decode(errors="replace"), "from": src[0]}), flush=True)
"#;

/// Sends `token` to 224.0.0.251:5353 from the host's LAN address every 50 ms for `limit` seconds.
const MCAST_SENDER: &str = r#"
import socket, sys, time
addr, token, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    s.sendto(token.encode(), ("224.0.0.251", 5353))
    time.sleep(0.05)
"#;

#[test]
fn harness_multicast_reaches_hosts_of_the_same_lan_only() {
    let Some(lan_a) = VirtualLan::new(2) else { return };
    let Some(lan_b) = VirtualLan::new(2) else { return };
    let listen = |lan: &VirtualLan| {
        let mut p = lan.spawn(1, "python3", &["-c", MCAST_RECEIVER, &lan.addr(1), "15"]);
        p.expect_event(STARTUP, "ready", |_| true);
        p
    };
    let (mut rx_a, mut rx_b) = (listen(&lan_a), listen(&lan_b));
    let _tx_a = lan_a.spawn(0, "python3", &["-c", MCAST_SENDER, &lan_a.addr(0), "token-a", "15"]);
    let _tx_b = lan_b.spawn(0, "python3", &["-c", MCAST_SENDER, &lan_b.addr(0), "token-b", "15"]);
    // Both LANs use the same addresses: only the bridges keep them apart.
    assert_eq!(lan_a.addr(0).rsplit('.').next(), lan_b.addr(0).rsplit('.').next());
    let got_a = rx_a.expect_event(Duration::from_secs(10), "got", |v| v["data"] == "token-a");
    assert_eq!(got_a["from"], lan_a.addr(0).as_str());
    rx_b.expect_event(Duration::from_secs(10), "got", |v| v["data"] == "token-b");
    rx_a.expect_none(Duration::from_secs(1), "datagram from the other LAN", |v| {
        v["data"] == "token-b"
    });
    rx_b.expect_none(Duration::from_secs(1), "datagram from the other LAN", |v| {
        v["data"] == "token-a"
    });

    // A host whose link is down receives nothing; after link up it receives again (multicast route restored).
    lan_a.link_down(1);
    std::thread::sleep(Duration::from_millis(300));
    let seen_before = rx_a.events().len();
    std::thread::sleep(Duration::from_secs(1));
    let seen_while_down = rx_a.events().len();
    lan_a.link_up(1);
    assert_eq!(
        seen_before, seen_while_down,
        "datagrams arrived while the link was down"
    );
    let routes = lan_a.run(1, "ip", &["route", "show", "224.0.0.0/4"], Duration::from_secs(10));
    assert!(
        routes.stdout.contains("dev eth0"),
        "multicast route after link up: {routes:?}"
    );
    rx_a.take_all();
    rx_a.expect_event(Duration::from_secs(10), "got", |v| v["data"] == "token-a");
}

#[test]
fn harness_removes_namespaces_and_processes_even_when_the_test_panics() {
    let mut names = Vec::new();
    let mut pid = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(lan) = VirtualLan::new(2) else { return };
        names = lan.namespaces().to_vec();
        let p = lan.spawn(0, "sleep", &["60"]);
        pid = Some(p.pid());
        // Leak the process handle, so only the LAN's teardown can end it.
        std::mem::forget(p);
        panic!("deliberate panic inside a virtual LAN test");
    }));
    let Some(pid) = pid else { return }; // skipped: no virtual LAN here
    assert!(outcome.is_err());
    assert_eq!(names.len(), 3, "switch and two hosts: {names:?}");
    for name in &names {
        assert!(!namespace_exists(name), "namespace {name} left behind");
    }
    // The killed process is a zombie until reaped (its handle was leaked): check its state, bounded.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("gone");
        if state == "gone" || state == "Z" || state == "X" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still running after teardown (state {state})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Peers.

#[test]
fn two_hosts_discover_each_other_connect_and_exchange_messages() {
    let Some(lan) = VirtualLan::new(2) else { return };
    let a = spawn_peer(&lan, 0, "alice", SERVICE, &[]);
    let b = spawn_peer(&lan, 1, "bob", SERVICE, &[]);
    let (mut a, mut b) = (started(a), started(b));
    assert_ne!(a.id, b.id);

    let added = a.proc.expect_event(JOIN, "peer_added", |v| v["id"] == b.id.as_str());
    assert_eq!(added["name"], "bob");
    let added = b.proc.expect_event(JOIN, "peer_added", |v| v["id"] == a.id.as_str());
    assert_eq!(added["name"], "alice");
    assert_eq!(a.proc.query_peers(DELIVERY), ids(&[&b.id]));
    assert_eq!(b.proc.query_peers(DELIVERY), ids(&[&a.id]));

    // Reliable, to everyone and to one peer, in order.
    for n in 0..20 {
        send(&mut a, &format!("a->all #{n}"), true, None);
    }
    let b_id = b.id.clone();
    send(&mut a, "a->b direct", true, Some(&b_id));
    let a_id = a.id.clone();
    send(&mut b, "b->a direct", true, Some(&a_id));
    for n in 0..20 {
        expect_message(&mut b, &a_id, &format!("a->all #{n}"), true);
    }
    expect_message(&mut b, &a_id, "a->b direct", true);
    expect_message(&mut a, &b_id, "b->a direct", true);
    let order: Vec<String> = b
        .proc
        .events()
        .iter()
        .filter(|v| v["event"] == "message" && v["from"] == a_id.as_str())
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = (0..20).map(|n| format!("a->all #{n}")).collect();
    expected.push("a->b direct".into());
    assert_eq!(order, expected, "reliable messages in order");

    // Unreliable: datagrams may be lost in principle, but on an idle virtual LAN they get through.
    for n in 0..10 {
        send(&mut a, &format!("datagram a #{n}"), false, None);
        send(&mut b, &format!("datagram b #{n}"), false, Some(&a_id));
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + DELIVERY;
    let count = |p: &Peer, prefix: &str| {
        p.proc
            .events()
            .iter()
            .filter(|v| v["event"] == "message" && v["text"].as_str().is_some_and(|t| t.starts_with(prefix)))
            .inspect(|v| assert_eq!(v["reliable"], false, "datagram delivered as reliable: {v}"))
            .count()
    };
    while (count(&b, "datagram a") < 10 || count(&a, "datagram b") < 10) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (at_b, at_a) = (count(&b, "datagram a"), count(&a, "datagram b"));
    eprintln!("unreliable messages delivered: a->b {at_b}/10, b->a {at_a}/10");
    assert!(
        at_b >= 1 && at_a >= 1,
        "no datagram got through (a->b {at_b}, b->a {at_a})"
    );
    assert!(at_b <= 10 && at_a <= 10, "datagrams duplicated");

    // A clean shutdown: exit code 0, and the other side sees it leave at once (GOODBYE, not the idle timeout).
    a.proc.send(json!({"cmd": "shutdown"}));
    let status = a.proc.wait_exit(DELIVERY).expect("shutdown exits");
    assert!(status.success(), "shutdown exit status {status}");
    assert_eq!(expect_removed(&mut b, &a_id, DELIVERY), "left");
}

#[test]
fn eight_hosts_form_a_full_mesh_and_a_full_session_refuses_a_ninth() {
    let Some(lan) = VirtualLan::new(9) else { return };
    let t0 = Instant::now();
    let mut peers = start_peers(&lan, 0..8, SERVICE, &["--max-peers", "8"]);
    let all_started = t0.elapsed();
    let done = wait_full_mesh(&mut peers, Duration::from_secs(60));
    let mesh_time = done.duration_since(t0);
    eprintln!(
        "8 hosts: spawn to full mesh (every host has the 7 others) in {mesh_time:?} (all 8 had started after \
         {all_started:?})"
    );
    for i in 0..peers.len() {
        let want = others(&peers, i);
        assert_eq!(peers[i].proc.query_peers(DELIVERY), want, "peers of host {i}");
    }

    // The ninth host finds the eight and is told once that the session is full, by its leader (the smallest id).
    let mut ninth = started(spawn_peer(&lan, 8, "ninth", SERVICE, &["--max-peers", "8"]));
    let leader = peers.iter().map(|p| p.id.clone()).min().unwrap();
    let v = ninth.proc.expect_event(JOIN, "connection_failed", |_| true);
    assert_eq!(v["reason"], "session_full", "{v}");
    assert_eq!(v["peer"].as_str(), Some(leader.as_str()), "told by the leader: {v}");
    ninth
        .proc
        .expect_none(QUIET, "a second 'full'", |v| v["event"] == "connection_failed");
    ninth
        .proc
        .expect_none(QUIET, "peer_added on the refused host", |v| v["event"] == "peer_added");
    for (i, p) in peers.iter_mut().enumerate() {
        assert!(
            !p.proc.events().iter().any(|v| is_added(v, &ninth.id)),
            "host {i} added the ninth host"
        );
    }
    for i in 0..peers.len() {
        let want = others(&peers, i);
        assert_eq!(
            peers[i].proc.query_peers(DELIVERY),
            want,
            "peers of host {i} after the ninth came"
        );
    }
    assert_eq!(ninth.proc.query_peers(DELIVERY), BTreeSet::new());
}

/// `n` hosts started at once with `max_peers` 8 settle (within `limit`) into one session of 8 with the same
/// roster on every member; every other host has no link and was told once that the session is full.
fn crowd_on_the_lan(n: usize, limit: Duration) {
    let Some(lan) = VirtualLan::new(n) else { return };
    let t0 = Instant::now();
    let mut peers = start_peers(&lan, 0..n, SERVICE, &["--max-peers", "8"]);
    let mut last = String::new();
    loop {
        let links: Vec<BTreeSet<String>> = peers.iter_mut().map(|p| p.proc.query_peers(DELIVERY)).collect();
        let rosters: Vec<BTreeSet<String>> = links
            .iter()
            .zip(&peers)
            .map(|(l, p)| l.iter().cloned().chain([p.id.clone()]).collect())
            .collect();
        let members: Vec<usize> = (0..n).filter(|i| !links[*i].is_empty()).collect();
        let same = members.iter().all(|i| rosters[*i] == rosters[members[0]]);
        let told = |p: &Peer| {
            p.proc
                .events()
                .iter()
                .filter(|v| v["event"] == "connection_failed" && v["reason"] == "session_full")
                .count()
        };
        let outsiders_told = (0..n).filter(|i| links[*i].is_empty()).all(|i| told(&peers[i]) >= 1);
        if members.len() == 8 && same && outsiders_told {
            eprintln!("{n} hosts: one session of 8 in {:?} from spawn", t0.elapsed());
            break;
        }
        last = format!(
            "{} members, same roster: {same}, outsiders told: {outsiders_told}",
            members.len()
        );
        assert!(
            t0.elapsed() < limit,
            "{n} hosts did not settle within {limit:?}: {last}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Stable, and nobody outside is told again and again.
    for p in peers.iter_mut() {
        p.proc.take_all();
    }
    for p in peers.iter_mut() {
        p.proc
            .expect_none(Duration::from_millis(300), "a change after settling", |v| {
                v["event"] == "peer_added" || v["event"] == "peer_removed"
            });
    }
    let _ = last;
}

#[test]
fn twelve_hosts_started_together_form_one_session_of_eight() {
    crowd_on_the_lan(12, Duration::from_secs(60));
}

#[test]
fn sixteen_hosts_started_together_form_one_session_of_eight() {
    crowd_on_the_lan(16, Duration::from_secs(90));
}

#[test]
fn hosts_of_another_service_type_never_join() {
    let Some(lan) = VirtualLan::new(4) else { return };
    let mut ours = start_peers(&lan, 0..2, SERVICE, &[]);
    let mut theirs = start_peers(&lan, 2..4, "mpother", &[]);
    // Both pairs find each other, so discovery works on this LAN; the service type alone keeps them apart.
    wait_full_mesh(&mut ours, JOIN);
    wait_full_mesh(&mut theirs, JOIN);
    let foreign: Vec<String> = theirs.iter().map(|p| p.id.clone()).collect();
    let our_ids: Vec<String> = ours.iter().map(|p| p.id.clone()).collect();
    for p in &mut ours {
        p.proc.expect_none(QUIET / 2, "contact with another service type", |v| {
            foreign.iter().any(|f| v["id"] == f.as_str() || v["peer"] == f.as_str())
        });
    }
    for p in &mut theirs {
        p.proc.expect_none(QUIET / 2, "contact with another service type", |v| {
            our_ids.iter().any(|f| v["id"] == f.as_str() || v["peer"] == f.as_str())
        });
    }
    for (i, p) in ours.iter_mut().enumerate() {
        assert_eq!(p.proc.query_peers(DELIVERY).len(), 1, "peers of host {i}");
    }
}

#[test]
fn a_host_that_stopped_looking_keeps_its_links_but_takes_no_newcomer() {
    let Some(lan) = VirtualLan::new(3) else { return };
    let mut peers = start_peers(&lan, 0..2, SERVICE, &[]);
    wait_full_mesh(&mut peers, JOIN);
    let (id0, id1) = (peers[0].id.clone(), peers[1].id.clone());
    peers[0].proc.send(json!({"cmd": "stop_looking"}));
    // The answer to a later command shows the stop was handled (commands are handled in order).
    assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&id1]));
    peers[0]
        .proc
        .expect_none(Duration::from_millis(500), "error after stop_looking", |v| {
            v["event"] == "error"
        });

    let mut newcomer = started(spawn_peer(&lan, 2, "newcomer", SERVICE, &[]));
    let id2 = newcomer.id.clone();
    // Newcomers are admitted by the session's leader (the smaller id). If that is the host that stopped
    // looking, the newcomer waits; otherwise it joins, and then links with both members: one session, one
    // roster, never a newcomer linked to only part of it.
    let leader_stopped = id0 < id1;
    if leader_stopped {
        newcomer
            .proc
            .expect_none(QUIET, "a newcomer joining while the leader does not look", |v| {
                v["event"] == "peer_added"
            });
        assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&id1]));
    } else {
        for id in [&id0, &id1] {
            newcomer
                .proc
                .expect_event(JOIN, "peer_added", |v| v["id"] == id.as_str());
        }
        // Each side reports a link when its own end of it is established, so host 0's report may come a
        // moment after the newcomer's: wait for it, then ask.
        peers[0]
            .proc
            .expect_event(JOIN, "peer_added", |v| v["id"] == id2.as_str());
        assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&id1, &id2]));
    }
    // Its existing link stays and works.
    send(&mut peers[0], "still here", true, Some(&id1));
    expect_message(&mut peers[1], &id0, "still here", true);
    send(&mut peers[1], "hello back", true, Some(&id0));
    expect_message(&mut peers[0], &id1, "hello back", true);
    assert!(
        !peers[0].proc.events().iter().any(|v| v["event"] == "peer_removed"),
        "host 0 lost a link: {:?}",
        peers[0].proc.events()
    );

    // Looking again, all three are one session.
    peers[0].proc.send(json!({"cmd": "start_looking"}));
    if leader_stopped {
        newcomer
            .proc
            .expect_event(JOIN, "peer_added", |v| v["id"] == id0.as_str());
        newcomer
            .proc
            .expect_event(JOIN, "peer_added", |v| v["id"] == id1.as_str());
    }
    assert_eq!(newcomer.proc.query_peers(DELIVERY), ids(&[&id0, &id1]));
}

#[test]
fn a_host_whose_link_goes_down_is_removed_and_rejoins_when_it_comes_back() {
    let Some(lan) = VirtualLan::new(3) else { return };
    let idle = IDLE_MS.to_string();
    let mut peers = start_peers(&lan, 0..3, SERVICE, &["--idle-ms", &idle]);
    wait_full_mesh(&mut peers, JOIN);
    let id2 = peers[2].id.clone();

    lan.link_down(2);
    let cut = Instant::now();
    for (i, p) in peers[..2].iter_mut().enumerate() {
        let reason = expect_removed(p, &id2, REMOVAL);
        eprintln!(
            "link down: host {i} removed host 2 after {:?} ({reason})",
            cut.elapsed()
        );
        assert!(
            reason == "timed_out" || reason == "connection_lost",
            "host {i} removed host 2 for {reason}"
        );
    }
    // The cut-off host loses both others too.
    let (id0, id1) = (peers[0].id.clone(), peers[1].id.clone());
    peers[2].proc.wait_peers(REMOVAL, &BTreeSet::new());
    eprintln!("link down: host 2 alone after {:?}", cut.elapsed());
    // The two still connected keep each other.
    assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&id1]));
    send(&mut peers[0], "while 2 is away", true, Some(&id1));
    expect_message(&mut peers[1], &id0, "while 2 is away", true);

    lan.link_up(2);
    let up = Instant::now();
    wait_full_mesh(&mut peers, JOIN);
    eprintln!("link up: full mesh again after {:?}", up.elapsed());
    // Rejoined by the same processes: none exited (nor was restarted) on the way.
    for p in &mut peers {
        assert!(p.proc.wait_exit(Duration::ZERO).is_none(), "{} exited", p.proc.label());
    }
    send(&mut peers[2], "back again", true, None);
    expect_message(&mut peers[0], &id2, "back again", true);
    expect_message(&mut peers[1], &id2, "back again", true);
}

#[test]
fn a_killed_host_is_removed_and_rejoins_with_the_same_id_after_restart() {
    let Some(lan) = VirtualLan::new(3) else { return };
    let dir = TempDir::new("identity");
    let key = dir.0.join("h2.key");
    let key = key.to_str().unwrap();
    let idle = IDLE_MS.to_string();
    let common_args = ["--idle-ms", idle.as_str()];
    let mut peers = start_peers(&lan, 0..2, SERVICE, &common_args);
    let third = spawn_peer(&lan, 2, "phoenix", SERVICE, &["--idle-ms", &idle, "--identity", key]);
    peers.push(started(third));
    assert!(std::path::Path::new(key).exists(), "identity file created");
    wait_full_mesh(&mut peers, JOIN);
    let (id0, id1, id2) = (peers[0].id.clone(), peers[1].id.clone(), peers[2].id.clone());

    peers[2].proc.kill();
    let killed = Instant::now();
    for (i, p) in peers[..2].iter_mut().enumerate() {
        let reason = expect_removed(p, &id2, REMOVAL);
        eprintln!(
            "kill -9: host {i} removed host 2 after {:?} ({reason})",
            killed.elapsed()
        );
        assert!(
            reason == "timed_out" || reason == "connection_lost",
            "host {i} removed host 2 for {reason}"
        );
    }
    assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&id1]));
    for p in &mut peers[..2] {
        p.proc.take_all();
    }

    let again = spawn_peer(&lan, 2, "phoenix", SERVICE, &["--idle-ms", &idle, "--identity", key]);
    let restarted = Instant::now();
    peers[2] = started(again);
    assert_eq!(peers[2].id, id2, "same identity file, same id");
    wait_full_mesh(&mut peers, JOIN);
    eprintln!("kill -9: restarted host rejoined after {:?}", restarted.elapsed());
    for p in &mut peers[..2] {
        let v = p.proc.expect_event(DELIVERY, "peer_added", |v| v["id"] == id2.as_str());
        assert_eq!(v["name"], "phoenix");
    }
    send(&mut peers[2], "risen", true, None);
    expect_message(&mut peers[0], &id2, "risen", true);
    expect_message(&mut peers[1], &id2, "risen", true);
    assert_eq!(peers[2].proc.query_peers(DELIVERY), ids(&[&id0, &id1]));
}

/// Browses a service type with python-zeroconf on one interface and prints what it resolved as one JSON line.
const ZEROCONF_BROWSE: &str = r#"
import json, sys, time
from zeroconf import IPVersion, ServiceBrowser, Zeroconf
stype, iface, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
want = sys.argv[4] if len(sys.argv) > 4 else None
deadline = time.monotonic() + limit
zc = Zeroconf(interfaces=[iface], ip_version=IPVersion.V4Only)
names = []
class Listener:
    def add_service(self, zc, type_, name): names.append(name)
    def update_service(self, zc, type_, name): pass
    def remove_service(self, zc, type_, name): pass
browser = ServiceBrowser(zc, stype, Listener())
result = None
while result is None and time.monotonic() < deadline:
    for name in list(names):
        info = zc.get_service_info(stype, name, timeout=2000)
        if info is not None and info.port:
            txt = {k.decode(): (None if v is None else v.decode()) for k, v in info.properties.items()}
            if want is not None and txt.get("id") != want:
                continue
            result = {"event": "resolved", "name": name, "server": info.server, "port": info.port,
                      "addresses": info.parsed_addresses(), "txt": txt}
            break
    time.sleep(0.1)
print(json.dumps(result or {"event": "not_found", "names": names}), flush=True)
browser.cancel()
zc.close()
"#;

/// Whether python3 with `zeroconf` is installed (prints one skip line if not).
fn python_zeroconf(test: &str) -> bool {
    let probe = common::netns::run_bounded("python3", &["-c", "import zeroconf"], Duration::from_secs(30));
    let ok = probe.is_ok_and(|out| out.status.success());
    if !ok {
        eprintln!("skipping {test}: needs python3 with zeroconf (python3 -m pip install zeroconf)");
    }
    ok
}

/// Browses `stype` with Python zeroconf on `host` (at most 25 s) and returns what it printed: the first service
/// resolved (with TXT `id` equal to `want`, if given), or `not_found`.
fn zeroconf_resolve(lan: &VirtualLan, host: usize, stype: &str, want: Option<&str>) -> Value {
    let addr = lan.addr(host);
    let mut args = vec!["-c", ZEROCONF_BROWSE, stype, &addr, "25"];
    args.extend(want);
    let out = lan.run(host, "python3", &args, Duration::from_secs(60));
    let line = out.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("browser printed {:?} ({e}); stderr: {}", out.stdout, out.stderr))
}

/// An app that reads none of its events while a peer floods it with large messages: its mDNS responder still
/// answers an independent DNS-SD client, and its session still answers commands at once.
#[test]
fn an_app_that_reads_nothing_stalls_neither_its_mdns_answers_nor_its_session() {
    if !python_zeroconf("mDNS answers while the app reads nothing") {
        return;
    }
    let Some(lan) = VirtualLan::new(3) else { return };
    let mut quiet = started(spawn_peer(&lan, 0, "quiet", "mpqt", &["--no-read"]));
    let mut loud = started(spawn_peer(&lan, 1, "loud", "mpqt", &[]));
    let quiet_id = quiet.id.clone();
    loud.proc
        .expect_event(JOIN, "peer_added", |v| v["id"] == quiet_id.as_str());
    // The quiet side admits the loud one on its own schedule (it may finish its handshake later).
    quiet.proc.poll_peers(JOIN, &ids(&[&loud.id]));
    // 200 messages of 1 MiB: far beyond what the quiet app may have waiting (16 MiB per peer).
    loud.proc
        .send(json!({"cmd": "flood", "to": quiet_id, "count": 200, "bytes": 1 << 20}));
    let started_at = Instant::now();
    assert_eq!(
        quiet.proc.query_peers(DELIVERY),
        ids(&[&loud.id]),
        "the session answers"
    );
    let found = zeroconf_resolve(&lan, 2, "_mpqt._udp.local.", Some(&quiet_id));
    assert_eq!(found["event"], "resolved", "no answer from the quiet host: {found}");
    assert_eq!(found["port"], quiet.port);
    // Still answering after the browse, with the flood held back by flow control.
    assert_eq!(quiet.proc.query_peers(DELIVERY), ids(&[&loud.id]));
    eprintln!(
        "quiet host answered DNS-SD and commands {:?} into the flood",
        started_at.elapsed()
    );
}

#[test]
fn an_independent_mdns_client_sees_the_service_with_port_txt_and_address() {
    if !python_zeroconf("mDNS interoperability test") {
        return;
    }
    let Some(lan) = VirtualLan::new(2) else { return };
    let name = "Zed Peer";
    let mut peer = started(spawn_peer(&lan, 0, name, "mpzc", &[]));
    let stype = "_mpzc._udp.local.";
    let found = zeroconf_resolve(&lan, 1, stype, None);
    assert_eq!(
        found["event"], "resolved",
        "zeroconf did not resolve our service: {found}"
    );
    eprintln!("zeroconf resolved: {found}");
    assert_eq!(found["port"], peer.port, "SRV port is the QUIC port");
    assert_eq!(found["txt"]["id"], peer.id.as_str(), "TXT id");
    assert_eq!(found["txt"]["pv"], "3", "TXT pv");
    assert_eq!(found["txt"]["dn"], name, "TXT dn");
    let instance = found["name"].as_str().unwrap();
    assert!(
        instance.ends_with(&format!(".{stype}")),
        "instance {instance} of {stype}"
    );
    assert!(
        instance.starts_with(name),
        "instance name {instance} starts with the display name"
    );
    let addrs: Vec<&str> = found["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        addrs.contains(&lan.addr(0).as_str()),
        "A record {addrs:?} has {}",
        lan.addr(0)
    );
    assert!(
        !addrs.iter().any(|a| a.starts_with("127.")),
        "loopback advertised: {addrs:?}"
    );
    assert!(
        found["server"].as_str().is_some_and(|s| s.ends_with(".local.")),
        "SRV target {found}"
    );
    // The peer is still fine after being browsed.
    assert_eq!(peer.proc.query_peers(DELIVERY), BTreeSet::new());
}

const FLOOD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/mdns_flood.py");

#[test]
fn forged_and_garbage_mdns_services_do_not_keep_real_peers_apart() {
    if !python_zeroconf("mDNS flood test") {
        return;
    }
    let Some(lan) = VirtualLan::new(3) else { return };
    // 500 services of our type, re-announced every second: 480 with garbage TXT records, 20 well-formed ones
    // announcing random ids at a port where nothing listens.
    let (services, forged) = (500, 20);
    let mut flood = lan.spawn(
        2,
        "python3",
        &[
            FLOOD_SCRIPT,
            "_mpflood._udp.local.",
            &lan.addr(2),
            &services.to_string(),
            &forged.to_string(),
            "90",
        ],
    );
    flood.expect_event(STARTUP, "flooding", |_| true);
    let mut peers = start_peers(&lan, 0..2, "mpflood", &[]);
    for i in 0..2 {
        let want = others(&peers, i);
        let at = peers[i].proc.wait_peers(JOIN, &want);
        let ms = (at - peers[i].proc.spawned_at()).as_millis();
        eprintln!("peer {i} joined the real peer {ms} ms after spawn");
    }
    let sample = |peers: &mut Vec<Peer>| -> Vec<(u64, u64, Value)> {
        peers
            .iter_mut()
            .map(|p| {
                p.proc.send(json!({"cmd": "diagnostics"}));
                let d = p.proc.expect_event(DELIVERY, "diagnostics", |_| true);
                let (rss, threads) = common::process_rss_and_threads(p.proc.pid()).unwrap();
                (rss, threads, d)
            })
            .collect()
    };
    let before = sample(&mut peers);
    // Ten more seconds under the flood: memory and threads stay put, messages still flow.
    std::thread::sleep(Duration::from_secs(10));
    let after = sample(&mut peers);
    for (i, ((rss0, threads0, _), (rss1, threads1, diag))) in before.iter().zip(&after).enumerate() {
        eprintln!(
            "peer {i}: RSS {} -> {} KiB, threads {threads0} -> {threads1}, diagnostics {diag}",
            rss0 / 1024,
            rss1 / 1024
        );
        assert!(
            diag["ignored"].as_u64().unwrap() > 0,
            "the garbage reached the peer: {diag}"
        );
        assert_eq!(diag["links"], 1, "exactly the real peer is connected: {diag}");
        assert!(*rss1 < 128 << 20, "RSS bounded: {rss1}");
        assert!(
            rss1.saturating_sub(*rss0) < 16 << 20,
            "RSS grows under the flood: {rss0} -> {rss1}"
        );
        assert!(
            *threads1 <= threads0 + 2 && *threads1 < 64,
            "threads {threads0} -> {threads1}"
        );
    }
    let to = peers[1].id.clone();
    peers[0]
        .proc
        .send(json!({"cmd": "send", "text": "still here", "to": to}));
    peers[1]
        .proc
        .expect_event(DELIVERY, "message", |v| v["text"] == "still here");
    flood.kill();
}

const FORGE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/mdns_forge.py");

/// Stray adverts that carry real peers' ids (a lingering record, one identity on two devices, a forger) appear
/// and go away; then a link outage. The real peers reconnect as usual: a stray advert neither replaces a peer's
/// addresses nor takes the peer with it when it goes. Each real peer also sees an advert with its own id, checks
/// it (no handshake proves the key there) and carries on: a forged advert never makes a session withdraw.
#[test]
fn stray_adverts_with_real_ids_neither_replace_nor_remove_real_peers() {
    if !python_zeroconf("stray adverts test") {
        return;
    }
    let Some(lan) = VirtualLan::new(3) else { return };
    let idle = IDLE_MS.to_string();
    let mut peers = start_peers(&lan, 0..2, SERVICE, &["--idle-ms", &idle]);
    wait_full_mesh(&mut peers, JOIN);
    let (id0, id1) = (peers[0].id.clone(), peers[1].id.clone());
    let stype = format!("_{SERVICE}._udp.local.");
    let addr = lan.addr(2);
    let mut forge = lan.spawn(2, "python3", &[FORGE_SCRIPT, "stray", &stype, &addr, "3", &id0, &id1]);
    forge.expect_event(STARTUP, "announced", |_| true);
    forge.expect_event(JOIN, "withdrawn", |_| true);
    // The goodbyes are handled (they reach each peer's cache within a second): the links never noticed.
    for p in &mut peers {
        p.proc
            .expect_none(Duration::from_secs(2), "a removal caused by stray adverts", |v| {
                v["event"] == "peer_removed"
            });
    }

    lan.link_down(1);
    expect_removed(&mut peers[0], &id1, REMOVAL);
    peers[1].proc.wait_peers(REMOVAL, &BTreeSet::new());
    lan.link_up(1);
    let up = Instant::now();
    wait_full_mesh(&mut peers, JOIN);
    eprintln!(
        "stray adverts, then an outage: full mesh again {:?} after the link came back",
        up.elapsed()
    );
    send(&mut peers[1], "after the strays", true, Some(&id0));
    expect_message(&mut peers[0], &id1, "after the strays", true);
}

/// Asks a peer for its diagnostics.
fn diagnostics(p: &mut Peer) -> Value {
    p.proc.send(json!({"cmd": "diagnostics"}));
    p.proc.expect_event(DELIVERY, "diagnostics", |_| true)
}

/// One instance name re-announced with 5,000 fresh ids: each new id replaces the old one (a `Lost` for it), so
/// the candidate table stays small and bounded, memory stays put, and all of it drains once the name goes.
#[test]
fn one_name_re_announced_with_fresh_ids_leaves_bounded_candidates_that_drain() {
    if !python_zeroconf("advert churn test") {
        return;
    }
    let Some(lan) = VirtualLan::new(3) else { return };
    let mut peers = start_peers(&lan, 0..2, SERVICE, &[]);
    wait_full_mesh(&mut peers, JOIN);
    let (rss0, _) = common::process_rss_and_threads(peers[0].proc.pid()).unwrap();
    let stype = format!("_{SERVICE}._udp.local.");
    let addr = lan.addr(2);
    let mut forge = lan.spawn(2, "python3", &[FORGE_SCRIPT, "churn", &stype, &addr, "5000"]);
    forge.expect_event(STARTUP, "churning", |_| true);
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Sample while the churn runs (bounded in count and time).
    for _ in 0..2_000 {
        let d = diagnostics(&mut peers[0]);
        most = most.max(d["candidates"].as_u64().unwrap());
        let done = forge.events().iter().any(|v| v["event"] == "withdrawn");
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    forge.expect_event(JOIN, "withdrawn", |_| true);
    let (rss1, _) = common::process_rss_and_threads(peers[0].proc.pid()).unwrap();
    eprintln!(
        "5,000 ids under one name: at most {most} candidates seen; RSS {} -> {} KiB",
        rss0 / 1024,
        rss1 / 1024
    );
    assert!(most >= 2, "the churned adverts never reached the peer");
    // The real peer plus the churner's current id, and a few replaced ones not yet handed over.
    assert!(most <= 8, "candidates grew to {most}");
    assert!(rss1.saturating_sub(rss0) < 16 << 20, "RSS grew: {rss0} -> {rss1}");
    // After the goodbye only the real peer is left.
    let mut left = u64::MAX;
    for _ in 0..200 {
        left = diagnostics(&mut peers[0])["candidates"].as_u64().unwrap();
        if left == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(left, 1, "candidates did not drain");
    assert_eq!(peers[0].proc.query_peers(DELIVERY), ids(&[&peers[1].id]));
}

/// A display name with a dot, an apostrophe, spaces and an emoji, 63 bytes long: an independent DNS-SD client
/// lists the instance as written (one label: the dot is part of the name, RFC 6763 §4.3), cut to fit the short
/// id that keeps two devices' names apart, and reads the whole name from the TXT record.
#[test]
fn a_display_name_with_dots_spaces_and_emoji_is_listed_as_written() {
    if !python_zeroconf("DNS-SD instance name test") {
        return;
    }
    let Some(lan) = VirtualLan::new(2) else { return };
    let mut name = String::from("Zoë's i.Phone 🎲 v2.1 ");
    while name.len() < 63 {
        name.push('x');
    }
    assert_eq!(name.len(), 63);
    let peer = started(spawn_peer(&lan, 0, &name, "mpname", &[]));
    let id: multipeer::PeerId = peer.id.parse().unwrap();
    let instance = multipeer::discovery::instance_name(&name, &id);
    assert!(
        instance.starts_with("Zoë's i.Phone 🎲 v2.1 ") && instance.len() <= 63,
        "{instance}"
    );
    let found = zeroconf_resolve(&lan, 1, "_mpname._udp.local.", Some(&peer.id));
    assert_eq!(found["event"], "resolved", "not resolved: {found}");
    assert_eq!(
        found["name"],
        format!("{instance}._mpname._udp.local."),
        "listed as {found}"
    );
    assert_eq!(found["txt"]["dn"], name.as_str());
    eprintln!("listed as {}", found["name"]);
}

/// The same identity started twice (an app opened twice): the younger session proves the other holds the same key,
/// reports it once (`identity_in_use`) and withdraws; the older one keeps its session, which stays steady.
#[test]
fn the_same_identity_started_twice_is_reported_once_and_does_not_flap() {
    let Some(lan) = VirtualLan::new(3) else { return };
    let dir = TempDir::new("twin");
    let key = dir.0.join("twin.key");
    let key = key.to_str().unwrap();
    let mut peers = vec![
        started(spawn_peer(&lan, 0, "original", SERVICE, &["--identity", key])),
        started(spawn_peer(&lan, 1, "other", SERVICE, &[])),
    ];
    wait_full_mesh(&mut peers, JOIN);
    let (id0, id1) = (peers[0].id.clone(), peers[1].id.clone());
    let mut twin = started(spawn_peer(&lan, 2, "twin", SERVICE, &["--identity", key]));
    assert_eq!(twin.id, id0, "same identity file, same id");
    let report = twin
        .proc
        .expect_event(JOIN, "connection_failed", |v| v["reason"] == "identity_in_use");
    assert_eq!(report["peer"], id0.as_str(), "reported with our own id");
    let reported = Instant::now();
    // The twin withdraws; the original keeps (or gets back) its link with the other peer: a message from it
    // arrives. From then on nothing flaps.
    twin.proc.poll_peers(JOIN, &BTreeSet::new());
    peers[0].proc.poll_peers(JOIN, &ids(&[&id1]));
    peers[1].proc.poll_peers(JOIN, &ids(&[&id0]));
    send(&mut peers[0], "still the original", true, Some(&id1));
    expect_message(&mut peers[1], &id0, "still the original", true);
    let churn_before = peers[1].proc.events().len();
    peers[1].proc.take_all();
    peers[1]
        .proc
        .expect_none(QUIET, "the twin's id flapping at the other peer", |v| {
            v["event"] == "peer_removed" || v["event"] == "peer_added"
        });
    twin.proc
        .expect_none(Duration::ZERO, "a second report", |v| v["reason"] == "identity_in_use");
    assert!(
        !peers[0].proc.events().iter().any(|v| v["reason"] == "identity_in_use"),
        "the original withdrew too"
    );
    assert_eq!(twin.proc.query_peers(DELIVERY), BTreeSet::new(), "the twin withdrew");
    let flaps = peers[1].proc.events()[..churn_before]
        .iter()
        .filter(|v| v["event"] == "peer_removed")
        .count();
    assert!(flaps <= 1, "the other peer lost the original {flaps} times");
    eprintln!(
        "same identity twice: reported {:?} after the twin's start; {flaps} removal(s) at the other peer before",
        reported.duration_since(twin.proc.spawned_at())
    );
}
