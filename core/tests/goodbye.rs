//! Goodbyes that arrive: a session that stops, on its own or on a signal, withdraws its mDNS advertisement
//! (the goodbye and its repeat) and says goodbye to its peers, so nobody keeps a ghost of it.
//!
//! The virtual-LAN tests need root and iproute2 (without them each prints one line and passes without checking
//! anything); the ones with an independent DNS-SD client also need Python's `zeroconf` package.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::netns::{run_bounded, PeerProcess, VirtualLan};
use multipeer::{Advertisement, Discovery, DiscoveryError, DiscoverySubscription, Events, Session, FAREWELL_LIMIT};
use serde_json::{json, Value};

const PEER: &str = env!("CARGO_BIN_EXE_multipeer-test-peer");
const WATCH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/mdns_watch.py");
/// From spawn to the `started` line.
const STARTUP: Duration = Duration::from_secs(20);
/// From both ends running to both reporting the peer (generous for a loaded 2-core machine).
const JOIN: Duration = Duration::from_secs(45);
/// The requirement: from the signal to the other peers' `peer_removed`.
const REMOVED_AFTER_SIGNAL: Duration = Duration::from_secs(1);
/// From a goodbye to an independent browser's removal (it keeps a withdrawn record for 1 s, RFC 6762 §10.1).
const BROWSER_REMOVAL: Duration = Duration::from_secs(10);
/// How long the watchers run at most.
const WATCH_SECONDS: &str = "150";

/// Starts the test peer on `host` with SIGINT at its default action (a test runner started from a
/// non-interactive shell may have it ignored, and children inherit that).
fn spawn_peer(lan: &VirtualLan, host: usize, name: &str, service: &str) -> PeerProcess {
    lan.spawn(
        host,
        "env",
        &["--default-signal=INT", PEER, "--name", name, "--service", service],
    )
}

/// Whether python3 with `zeroconf` is installed (prints one skip line if not).
fn python_zeroconf(test: &str) -> bool {
    let probe = run_bounded("python3", &["-c", "import zeroconf"], Duration::from_secs(30));
    let ok = probe.is_ok_and(|out| out.status.success());
    if !ok {
        eprintln!("skipping {test}: needs python3 with zeroconf (python3 -m pip install zeroconf)");
    }
    ok
}

/// Runs `mdns_watch.py MODE` for `stype` on `host`.
fn watch(lan: &VirtualLan, host: usize, mode: &str, stype: &str) -> PeerProcess {
    lan.spawn(host, "python3", &[WATCH, mode, stype, &lan.addr(host), WATCH_SECONDS])
}

fn is_instance_of(v: &Value, field: &str, display_name: &str) -> bool {
    v[field]
        .as_str()
        .is_some_and(|name| name.starts_with(&format!("{display_name} (")))
}

// ---------------------------------------------------------------------------------------------------------
// Signals on the virtual LAN.

/// `signal` to a peer process: its session shuts down cleanly, the other peer sees it leave within
/// [`REMOVED_AFTER_SIGNAL`], and an independent DNS-SD browser on a third host sees the service withdrawn.
fn a_signal_says_goodbye(signal: &str, service: &str) {
    let zeroconf = python_zeroconf(&format!("the DNS-SD half of the {signal} test"));
    let Some(lan) = VirtualLan::new(3) else { return };
    let stype = format!("_{service}._udp.local.");
    let mut stay = spawn_peer(&lan, 0, "stay", service);
    let mut leaver = spawn_peer(&lan, 1, "leaver", service);
    let mut browser = zeroconf.then(|| watch(&lan, 2, "browse", &stype));
    let (stay_id, _) = stay.started(STARTUP);
    let (leaver_id, _) = leaver.started(STARTUP);
    stay.wait_peers(JOIN, &BTreeSet::from([leaver_id.clone()]));
    leaver.wait_peers(JOIN, &BTreeSet::from([stay_id]));
    if let Some(browser) = &mut browser {
        browser.expect_event(JOIN, "added", |v| is_instance_of(v, "name", "leaver"));
    }

    let signalled = Instant::now();
    let kill = run_bounded(
        "kill",
        &["-s", signal, &leaver.pid().to_string()],
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(kill.status.success(), "kill -s {signal}: {}", kill.stderr);
    let removed = stay.expect_event(JOIN, "peer_removed", |v| v["id"] == leaver_id.as_str());
    let took = signalled.elapsed();
    eprintln!("{signal}: the other peer saw peer_removed {took:?} after the signal ({removed})");
    assert_eq!(removed["reason"], "left", "a clean leave, not a timeout: {removed}");
    assert!(
        took <= REMOVED_AFTER_SIGNAL,
        "peer_removed {took:?} after {signal}, more than {REMOVED_AFTER_SIGNAL:?}"
    );

    let got = leaver.expect_event(Duration::from_secs(10), "signal", |_| true);
    assert_eq!(got["signal"], format!("SIG{signal}"));
    leaver.expect_event(Duration::from_secs(10), "shut_down", |_| true);
    let status = leaver
        .wait_exit(Duration::from_secs(10))
        .expect("the peer exits after shutting down");
    assert!(status.success(), "exit status after {signal}: {status}");
    eprintln!(
        "{signal}: the peer had shut down and exited {:?} after the signal",
        signalled.elapsed()
    );

    if let Some(browser) = &mut browser {
        browser.expect_event(BROWSER_REMOVAL, "removed", |v| is_instance_of(v, "name", "leaver"));
        eprintln!(
            "{signal}: python-zeroconf removed the service {:?} after the signal",
            signalled.elapsed()
        );
    }
}

#[test]
fn sigterm_shuts_the_session_down_and_says_goodbye_on_the_lan() {
    a_signal_says_goodbye("TERM", "mpbyeterm");
}

#[test]
fn sigint_shuts_the_session_down_and_says_goodbye_on_the_lan() {
    a_signal_says_goodbye("INT", "mpbyeint");
}

/// A clean shutdown sends the mDNS goodbye (the PTR record with TTL 0) and its repeat: a passive listener on
/// another host counts at least two copies.
#[test]
fn a_clean_shutdown_sends_the_mdns_goodbye_twice() {
    if !python_zeroconf("the goodbye repeat test") {
        return;
    }
    let Some(lan) = VirtualLan::new(2) else { return };
    let stype = "_mpbyetwice._udp.local.";
    let mut listener = watch(&lan, 1, "listen", stype);
    listener.expect_event(STARTUP, "ready", |_| true);
    let mut leaver = spawn_peer(&lan, 0, "leaver", "mpbyetwice");
    leaver.started(STARTUP);
    // Its announcement reaches the listener: the path works.
    listener.expect_event(JOIN, "ptr", |v| is_instance_of(v, "alias", "leaver") && v["ttl"] != 0);

    let asked = Instant::now();
    leaver.send(json!({"cmd": "shutdown"}));
    leaver.expect_event(Duration::from_secs(10), "shut_down", |_| true);
    let shutdown_took = asked.elapsed();
    let goodbye = |v: &Value| is_instance_of(v, "alias", "leaver") && v["ttl"] == 0;
    let first = listener.expect_event(Duration::from_secs(5), "ptr", goodbye);
    let second = listener.expect_event(Duration::from_secs(5), "ptr", goodbye);
    let gap = second["t"].as_f64().unwrap() - first["t"].as_f64().unwrap();
    eprintln!(
        "shutdown took {shutdown_took:?}; goodbye repeated {:.0} ms after the first",
        gap * 1000.0
    );
    assert!(gap > 0.05, "the repeat is a separate, later packet: {first} {second}");
    assert!(
        shutdown_took < Duration::from_secs(5),
        "shutdown of a lone peer took {shutdown_took:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The session and a discovery whose goodbye takes a moment (in process).

/// A discovery whose farewell takes `takes` (or never ends); records when it ends and, at each start, whether
/// the previous farewell had ended.
#[derive(Clone)]
struct SlowGoodbye {
    takes: Option<Duration>,
    said: Arc<AtomicBool>,
    starts: Arc<Mutex<Vec<bool>>>,
}

impl SlowGoodbye {
    fn new(takes: Option<Duration>) -> Self {
        Self {
            takes,
            said: Arc::new(AtomicBool::new(true)),
            starts: Arc::default(),
        }
    }
}

impl Discovery for SlowGoodbye {
    fn start(&self, _: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        self.starts.lock().unwrap().push(self.said.load(Ordering::SeqCst));
        self.said.store(false, Ordering::SeqCst);
        let (tx, rx) = DiscoverySubscription::channel();
        let (takes, said) = (self.takes, self.said.clone());
        // The goodbye runs on a task of its own, as a real implementation's would, whether awaited or not.
        Ok(DiscoverySubscription::with_farewell(rx, move || {
            drop(tx);
            let goodbye = tokio::spawn(async move {
                match takes {
                    Some(takes) => tokio::time::sleep(takes).await,
                    None => std::future::pending().await,
                }
                said.store(true, Ordering::SeqCst);
            });
            Box::pin(async move {
                let _ = goodbye.await;
            })
        }))
    }
}

/// A session on loopback using `discovery`, with its events (dropping them would shut it down).
async fn session_with(discovery: SlowGoodbye) -> (Session, Events) {
    Session::builder(common::config("slow").build().unwrap())
        .discovery(discovery)
        .start_with_events()
        .await
        .unwrap()
}

#[tokio::test]
async fn shutdown_returns_after_the_discovery_goodbye() {
    let discovery = SlowGoodbye::new(Some(Duration::from_millis(150)));
    let (session, _events) = session_with(discovery.clone()).await;
    common::within(Duration::from_secs(10), "shutdown", session.shutdown())
        .await
        .unwrap();
    assert!(
        discovery.said.load(Ordering::SeqCst),
        "shutdown returned before the goodbye was said"
    );
}

#[tokio::test]
async fn shutdown_waits_for_a_stuck_discovery_goodbye_only_a_bounded_time() {
    let (session, _events) = session_with(SlowGoodbye::new(None)).await;
    let start = Instant::now();
    common::within(FAREWELL_LIMIT + Duration::from_secs(10), "shutdown", session.shutdown())
        .await
        .unwrap();
    eprintln!("shutdown with a stuck discovery goodbye took {:?}", start.elapsed());
}

/// Stopping looking for peers does not wait for the goodbye; looking again does (the old goodbye's repeat
/// would otherwise withdraw the new advertisement).
#[tokio::test]
async fn stop_looking_leaves_the_goodbye_running_and_start_looking_waits_for_it() {
    let discovery = SlowGoodbye::new(Some(Duration::from_millis(300)));
    let (session, _events) = session_with(discovery.clone()).await;
    let start = Instant::now();
    session.stop_looking_for_peers().await.unwrap();
    let took = start.elapsed();
    eprintln!("stop_looking_for_peers took {took:?}");
    assert!(took < FAREWELL_LIMIT, "stop_looking_for_peers waited {took:?}");
    common::within(
        Duration::from_secs(10),
        "start looking",
        session.start_looking_for_peers(),
    )
    .await
    .unwrap();
    assert_eq!(
        *discovery.starts.lock().unwrap(),
        [true, true],
        "the second start came after the first goodbye"
    );
    session.shutdown().await.unwrap();
}
