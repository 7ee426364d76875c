//! Benchmarks of multipeer against raw quinn on loopback, in the same process run.
//!
//! ```text
//! cargo run --release -p multipeer-bench -- [--quick] [--only GROUP] [--out DIR]
//! cargo run --release -p multipeer-bench --no-default-features --features aws-lc-rs -- ...
//! ```
//!
//! Writes `bench.md` (a Markdown table) and `bench.json` into DIR (default `target/bench`). `--quick` runs
//! every measurement briefly, only to check the suite still works. `--only
//! join|mesh|rtt|throughput|bulk|file|idle|lan` runs one group; `--only profile` (or `profile-quinn`) only sends
//! 64 B messages 1 → 1 (`PROFILE_RECEIVERS`, `PROFILE_MESSAGES` change that), and `--only profile-join` (or
//! `profile-handshake`) only joins two sessions by ticket (or makes mutual-TLS quinn connections) `PROFILE_JOINS`
//! times, for a profiler. The crypto provider (ring by default, aws-lc-rs with the feature and without `ring`) is the
//! same for the library and the raw quinn baseline.
//!
//! The library and the baseline run the same traffic with the same task layout (which side runs on a spawned
//! task and which on the thread that blocks on `main`), in alternating rounds (see `compare.rs`). Small
//! messages are compared with quinn behind a queued writer (the fair baseline: what the library does), and
//! also with one write per message and with a `BufWriter` flushed only when full.
//!
//! The `lan` group forms meshes over real mDNS between `multipeer-test-peer` processes on a virtual LAN of
//! network namespaces (root and iproute2 needed; otherwise it is skipped with one line). Build the peer first:
//! `cargo build --release -p multipeer --features test-peer --bin multipeer-test-peer` (`cargo xtask bench`
//! does).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

mod compare;
mod files;
mod lan;
mod raw;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use multipeer::{Event, Events, MemoryNetwork, Reliability, Session, SessionConfig, To};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The rustls crypto provider of this build, for the library and the baseline.
pub(crate) const PROVIDER: &str = if cfg!(all(feature = "aws-lc-rs", not(feature = "ring"))) {
    "aws-lc-rs"
} else {
    "ring"
};

struct Scale {
    reps: usize,
    round_trips: usize,
    rtt_blocks: usize,
    messages: usize,
    bulk: usize,
    idle: Duration,
    lan_sizes: &'static [usize],
    lan_reps: usize,
    /// Alternating rounds of the comparisons: joins, first joins (each a process), messages, bulk.
    join_rounds: usize,
    first_rounds: usize,
    rounds: usize,
    bulk_rounds: usize,
}

/// What mesh formation over mDNS should stay under, and what mDNS probing alone would cost.
const LAN_AIM_MS: f64 = 400.0;
const PROBE_FLOOR_MS: f64 = 750.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn stats(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Median, minimum and maximum of per-round figures.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(|a, b| a.total_cmp(b));
        Self {
            median: percentile(&samples, 0.5),
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `median (min–max) unit`, each figure divided by `scale` and shown with `decimals`.
    fn show(&self, scale: f64, decimals: usize, unit: &str) -> String {
        let f = |x: f64| format!("{:.*}", decimals, x / scale);
        format!("{} ({}–{}) {unit}", f(self.median), f(self.min), f(self.max))
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

fn config(name: &str, passphrase: Option<&str>) -> SessionConfig {
    let mut builder = SessionConfig::builder("bench", name).bind_addr("127.0.0.1:0".parse().unwrap());
    if let Some(pass) = passphrase {
        builder = builder.passphrase(pass);
    }
    builder.build().unwrap()
}

async fn start(net: &MemoryNetwork, name: &str) -> (Session, Events) {
    start_with(net, name, None).await
}

async fn start_with(net: &MemoryNetwork, name: &str, passphrase: Option<&str>) -> (Session, Events) {
    Session::builder(config(name, passphrase))
        .discovery(net.discovery())
        .start_with_events()
        .await
        .unwrap()
}

/// Waits until `n` peers are connected at once, as `PeerAdded` and `PeerRemoved` tell: while sessions merge, a
/// forming mesh may drop a link and add it again, so counting additions is not enough. Returns how many
/// `PeerRemoved` came meanwhile.
async fn added(events: &mut Events, n: usize) -> usize {
    let mut peers = std::collections::HashSet::new();
    let mut removed = 0;
    while peers.len() < n {
        match events.next().await {
            Some(Event::PeerAdded(peer)) => {
                peers.insert(peer.id);
            }
            Some(Event::PeerRemoved { peer, .. }) => {
                peers.remove(&peer.id);
                removed += 1;
            }
            Some(_) => {}
            None => panic!("the session ended while waiting for peers"),
        }
    }
    removed
}

/// How long one step of a measurement may take before the bench gives up.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Waits for `step` of `session`, at most [`STEP_LIMIT`]; past it, shows the session's diagnostics and stops
/// the bench.
async fn bounded<T>(session: &Session, what: &str, step: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_LIMIT, step).await {
        Ok(value) => value,
        Err(_) => {
            let diagnostics = session.diagnostics().await;
            panic!("{what}: nothing for {STEP_LIMIT:?}; {diagnostics:#?}")
        }
    }
}

async fn next_message(events: &mut Events) -> Bytes {
    loop {
        match events.next().await {
            Some(Event::Message(m)) => return m.data,
            Some(_) => {}
            None => panic!("session ended"),
        }
    }
}

/// Time until every one of `n` sessions started together has seen the `n - 1` others (p50, p99), and how many
/// `PeerRemoved` they saw meanwhile in all (a link dropped and made again while the sessions merged).
async fn mesh(n: usize, reps: usize) -> (f64, f64, usize) {
    mesh_with(n, reps, None).await
}

/// [`mesh`], with every session using `passphrase`.
async fn mesh_with(n: usize, reps: usize, passphrase: Option<&str>) -> (f64, f64, usize) {
    let mut samples = Vec::new();
    let mut removed = 0;
    for _ in 0..reps {
        let net = MemoryNetwork::new();
        let started = Instant::now();
        let mut peers = Vec::new();
        for i in 0..n {
            peers.push(start_with(&net, &format!("p{i}"), passphrase).await);
        }
        let waits = peers.iter_mut().map(|(s, e)| bounded(s, "the mesh", added(e, n - 1)));
        removed += futures_join_all(waits).await.into_iter().sum::<usize>();
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        for (s, _) in &peers {
            s.shutdown().await.unwrap();
        }
    }
    let (p50, p99) = stats(samples);
    (p50, p99, removed)
}

/// One ticket join, in milliseconds.
struct Join {
    /// From `connect_ticket` until both sessions have the other as a member.
    ms: f64,
    /// The same, from before the two sessions were started.
    from_nothing_ms: f64,
    /// Whether the joiner's id was the larger one.
    joiner_larger: bool,
}

/// A ticket join between two sessions (with `passphrase`, if any) that cannot discover each other.
async fn ticket_join(passphrase: Option<&str>) -> Join {
    let t0 = Instant::now();
    let (na, nb) = (MemoryNetwork::new(), MemoryNetwork::new());
    let (a, mut a_events) = start_with(&na, "a", passphrase).await;
    let (b, mut b_events) = start_with(&nb, "b", passphrase).await;
    let ticket = b.ticket();
    let started = Instant::now();
    a.connect_ticket(&ticket).await.unwrap();
    bounded(&a, "a's join", added(&mut a_events, 1)).await;
    bounded(&b, "b's join", added(&mut b_events, 1)).await;
    let join = Join {
        ms: started.elapsed().as_secs_f64() * 1e3,
        from_nothing_ms: t0.elapsed().as_secs_f64() * 1e3,
        joiner_larger: a.local_peer().id > b.local_peer().id,
    };
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    join
}

/// Microseconds of CPU for one admission exchange, both sides, with no I/O (mean of `n`).
fn admission_cpu(passphrase: Option<&str>, n: usize) -> f64 {
    use multipeer::proto::auth::{Acceptor, Answered, Binding, Dialer, SystemEntropy};
    let (exporter, d, a) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let binding = Binding {
        exporter: &exporter,
        dialer: &d,
        acceptor: &a,
    };
    let started = Instant::now();
    for _ in 0..n {
        let (acceptor, offer) = Acceptor::offer(&a, passphrase, &mut SystemEntropy).unwrap();
        let (dialer, answer) = Dialer::answer(&binding, passphrase, &offer, &mut SystemEntropy).unwrap();
        let (reveal, answered) = acceptor.answer(&binding, &answer, &mut SystemEntropy).unwrap();
        let (confirm, code) = dialer.finish(&binding, &reveal).unwrap();
        let theirs = match (answered, confirm) {
            (Answered::Admitted(theirs), None) => theirs,
            (Answered::Confirm(confirming), Some(confirm)) => confirming.finish(&confirm).unwrap(),
            _ => unreachable!("both sides agree on whether a CONFIRM follows"),
        };
        assert_eq!(theirs, code);
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn futures_join_all<T, F: std::future::Future<Output = T>>(futures: impl Iterator<Item = F>) -> Vec<T> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Two connected sessions with an echo task on the second.
async fn echo_pair(reliability: Reliability) -> (Session, Events, Session, tokio::task::JoinHandle<()>) {
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, "a").await;
    let (b, mut b_events) = start(&net, "b").await;
    bounded(&a, "a's join", added(&mut a_events, 1)).await;
    bounded(&b, "b's join", added(&mut b_events, 1)).await;
    let echo = {
        let b = b.clone();
        tokio::spawn(async move {
            while let Some(event) = b_events.next().await {
                if let Event::Message(m) = event {
                    if b.send(m.data, m.peer, reliability).await.is_err() {
                        break;
                    }
                }
            }
        })
    };
    (a, a_events, b, echo)
}

/// Round-trip times in µs.
async fn multipeer_rtt(size: usize, reliability: Reliability, n: usize) -> Vec<f64> {
    let (a, mut events, b, echo) = echo_pair(reliability).await;
    let b_id = b.local_peer().id;
    let payload = Bytes::from(vec![7u8; size]);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.send(payload.clone(), b_id, reliability).await.unwrap();
        // A lost datagram would stall the loop: bound the wait and skip the sample.
        if tokio::time::timeout(Duration::from_secs(1), next_message(&mut events))
            .await
            .is_ok()
        {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    echo.abort();
    samples
}

async fn multipeer_throughput(size: usize, receivers: usize, n: usize) -> f64 {
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, "sender").await;
    let mut rx = Vec::new();
    for i in 0..receivers {
        rx.push(start(&net, &format!("r{i}")).await);
    }
    bounded(&a, "the sender's mesh", added(&mut a_events, receivers)).await;
    for (s, e) in &mut rx {
        // Every receiver linked with every other and the sender: the mesh is whole, no link comes and goes.
        bounded(s, "a receiver's mesh", added(e, receivers)).await;
    }
    let payload = Bytes::from(vec![1u8; size]);
    // How far the sender got, for a receiver that waits too long.
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let counters: Vec<_> = rx
        .into_iter()
        .map(|(s, mut e)| {
            let sent = sent.clone();
            tokio::spawn(async move {
                // One bound for the whole count (a timer per message would cost the library's side alone).
                let (mut got, mut other) = (0, Vec::new());
                let counted = tokio::time::timeout(STEP_LIMIT, async {
                    while got < n {
                        match e.next().await {
                            Some(Event::Message(_)) => got += 1,
                            Some(event) => other.push(format!("after {got} messages: {event:?}")),
                            None => panic!("session ended"),
                        }
                    }
                })
                .await;
                if counted.is_err() {
                    let diagnostics = s.diagnostics().await;
                    let sent = sent.load(Ordering::Relaxed);
                    panic!(
                        "{got} of {n} messages after {STEP_LIMIT:?} (the sender is at {sent}); other events: \
                         {other:#?}; {diagnostics:#?}"
                    );
                }
                // Dropping the events would shut the session down: keep them until the end.
                (s, e)
            })
        })
        .collect();
    for i in 0..n {
        a.send(payload.clone(), To::All, Reliability::Reliable).await.unwrap();
        sent.store(i + 1, Ordering::Relaxed);
    }
    let mut sessions = Vec::new();
    for c in counters {
        sessions.push(c.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    a.shutdown().await.unwrap();
    for (s, _events) in sessions {
        s.shutdown().await.unwrap();
    }
    n as f64 / secs
}

/// MB/s of one named stream carrying `total` bytes in 64 KiB writes: read on a spawned task, written from this
/// one, as the baseline does.
async fn multipeer_bulk(total: usize) -> f64 {
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, "a").await;
    let (b, mut b_events) = start(&net, "b").await;
    bounded(&a, "a's join", added(&mut a_events, 1)).await;
    bounded(&b, "b's join", added(&mut b_events, 1)).await;
    let started = Instant::now();
    let b_id = b.local_peer().id;
    let reader = tokio::spawn(async move {
        let mut stream = loop {
            if let Some(Event::Stream(s)) = b_events.next().await {
                break s;
            }
        };
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        // The events go back with the session: dropping them would shut it down.
        (got, b, b_events)
    });
    let mut s = a.stream("bulk", b_id).await.unwrap();
    let chunk = vec![3u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
    s.finish().await.unwrap();
    let (got, b, _b_events) = reader.await.unwrap();
    assert_eq!(got, total);
    let secs = started.elapsed().as_secs_f64();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    total as f64 / secs / 1e6
}

/// CPU time (user + system) of this process, from `/proc/self/stat` (in USER_HZ = 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// CPU share of one core and RSS of an idle 8-peer mesh (all 8 sessions in this process).
async fn idle(duration: Duration) -> (f64, f64) {
    let rss_before = rss_bytes();
    let net = MemoryNetwork::new();
    let mut peers = Vec::new();
    for i in 0..8 {
        peers.push(start(&net, &format!("idle{i}")).await);
    }
    for (s, e) in &mut peers {
        bounded(s, "the idle mesh", added(e, 7)).await;
    }
    let rss_per_session = (rss_bytes().saturating_sub(rss_before)) as f64 / 8.0 / 1e6;
    let cpu = cpu_seconds();
    tokio::time::sleep(duration).await;
    let share = (cpu_seconds() - cpu) / duration.as_secs_f64() * 100.0;
    for (s, _) in &peers {
        s.shutdown().await.unwrap();
    }
    (share, rss_per_session)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(compare::FIRST) {
        compare::first_join_child(args.get(1).map_or("library", String::as_str)).await;
        return;
    }
    if args.first().map(String::as_str) == Some(files::PEER_ARG) {
        return files::peer_main(&args[1..]).await;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "target/bench".into());
    // `--only join|mesh|rtt|throughput|bulk|file|idle|lan` runs one group.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let scale = if quick {
        Scale {
            reps: 2,
            round_trips: 200,
            rtt_blocks: 1,
            messages: 2_000,
            bulk: 16 << 20,
            idle: Duration::from_secs(2),
            lan_sizes: &[2],
            lan_reps: 1,
            join_rounds: 2,
            first_rounds: 1,
            rounds: 1,
            bulk_rounds: 1,
        }
    } else {
        Scale {
            reps: 10,
            round_trips: 20_000,
            rtt_blocks: 10,
            messages: 200_000,
            bulk: 1 << 30,
            idle: Duration::from_secs(60),
            lan_sizes: &[2, 4, 8],
            lan_reps: 10,
            join_rounds: 20,
            first_rounds: 10,
            rounds: 5,
            bulk_rounds: 3,
        }
    };
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut figures = serde_json::Map::new();
    let mut put = |key: &str, value: Value| {
        figures.insert(key.to_owned(), value);
    };

    // First, while the process is fresh, so RSS growth is the sessions' own.
    if run("idle") {
        let (cpu, rss) = idle(scale.idle).await;
        rows.push((
            format!("idle 8-peer mesh (all 8 in this process), {} s", scale.idle.as_secs()),
            format!("{cpu:.2}% of one core, {rss:.1} MB RSS per session"),
            "—".into(),
            "—".into(),
        ));
        put(
            "idle",
            json!({"cpu_percent_of_core_all_8": cpu, "rss_mb_per_session": rss}),
        );
    }

    if run("join") {
        // Warm joins, first joins, and the CPU cost of the admission exchange alone (both sides, no I/O).
        let out = compare::join(&scale).await;
        rows.extend(out.rows);
        for (k, v) in out.figures {
            put(&k, v);
        }
        let n = if quick { 20 } else { 2_000 };
        let (plain, spake) = (admission_cpu(None, n), admission_cpu(Some("correct horse"), n));
        rows.push((
            "admission exchange CPU, both sides: pairing code only / with SPAKE2".into(),
            format!("{plain:.1} / {spake:.1} µs"),
            "—".into(),
            "—".into(),
        ));
        put("admission_cpu_us", json!({"code_only": plain, "spake2": spake}));
    }
    for n in [2, 4, 8].into_iter().filter(|_| run("mesh")) {
        let (p50, p99, removed) = mesh(n, scale.reps).await;
        rows.push((
            format!("mesh formation, {n} peers, in-process discovery: p50 / p99; links dropped and made again while forming"),
            format!("{p50:.1} / {p99:.1} ms; {removed} in {} formations", scale.reps),
            "—".into(),
            "—".into(),
        ));
        put(
            &format!("mesh_{n}_ms"),
            json!({"p50": p50, "p99": p99, "removed": removed}),
        );
    }
    for (label, size, reliability) in [
        ("reliable round trip 64 B", 64, Reliability::Reliable),
        ("reliable round trip 1 KiB", 1024, Reliability::Reliable),
        ("datagram round trip 64 B", 64, Reliability::Unreliable),
    ]
    .into_iter()
    .filter(|_| run("rtt"))
    {
        // Alternating blocks, each on fresh connections: where the runtime happens to place the tasks moves
        // round trips between two levels on a busy 2-core machine, so both sides get the same mix.
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..scale.rtt_blocks {
            let n = scale.round_trips / scale.rtt_blocks;
            ours.extend(multipeer_rtt(size, reliability, n).await);
            base.extend(raw::rtt(size, reliability == Reliability::Reliable, n).await);
        }
        let (ours, base) = (stats(ours), stats(base));
        rows.push((
            label.into(),
            format!("{:.0} / {:.0} µs", ours.0, ours.1),
            format!("{:.0} / {:.0} µs", base.0, base.1),
            format!("{:.2}× (p50)", ours.0 / base.0),
        ));
        put(
            &format!("rtt_{size}_{reliability:?}_us"),
            json!({"p50": ours.0, "p99": ours.1, "quinn_p50": base.0, "quinn_p99": base.1}),
        );
    }
    if let Some(which) = only.as_deref().filter(|o| o.starts_with("profile")) {
        // Only 64 B messages, 1 → 1 (or 1 → PROFILE_RECEIVERS), for a profiler (not part of the table): the library (`profile`) or the
        // fair quinn baseline (`profile-quinn`). PROFILE_MESSAGES sets the count.
        let n = std::env::var("PROFILE_MESSAGES").ok().and_then(|n| n.parse().ok());
        let n = n.unwrap_or(scale.messages * 10);
        // PROFILE_RECEIVERS: 1 → N instead.
        let to = std::env::var("PROFILE_RECEIVERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if which == "profile-join" || which == "profile-handshake" {
            // Joins by ticket (or mutual-TLS quinn handshakes) one after another, for a profiler; PROFILE_JOINS
            // sets the count.
            let joins = std::env::var("PROFILE_JOINS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(500usize)
                .max(1);
            let started = Instant::now();
            let mut total = 0.0;
            for _ in 0..joins {
                total += if which == "profile-join" {
                    ticket_join(None).await.ms
                } else {
                    raw::handshake(true).await
                };
            }
            println!(
                "{joins} joins: {:.3} ms each, {:.1} s in all",
                total / joins as f64,
                started.elapsed().as_secs_f64()
            );
            return;
        }
        let rate = if which == "profile-quinn" {
            raw::throughput(64, to, n, raw::Writer::Queued).await
        } else {
            multipeer_throughput(64, to, n).await
        };
        println!("{rate:.0} msg/s");
        return;
    }
    for group in ["throughput", "bulk"].into_iter().filter(|g| run(g)) {
        let out = if group == "bulk" {
            compare::bulk(&scale).await
        } else {
            compare::throughput(&scale).await
        };
        rows.extend(out.rows);
        for (k, v) in out.figures {
            put(&k, v);
        }
    }
    if run("file") {
        // A resource against a plain stream of the same size, both through the library to a child process.
        let (file_rows, figures) = files::file_group(scale.bulk, if quick { 1 } else { 3 }).await;
        rows.extend(file_rows);
        put("file_mb_per_s", figures);
    }
    if run("lan") {
        let (sizes, reps) = (scale.lan_sizes, scale.lan_reps);
        match tokio::task::spawn_blocking(move || lan::formation(sizes, reps))
            .await
            .unwrap()
        {
            Ok(results) => {
                for f in results {
                    let mut samples = f.samples.clone();
                    samples.sort_by(|a, b| a.total_cmp(b));
                    let p50 = percentile(&samples, 0.5);
                    let max = samples.last().copied().unwrap_or(f64::NAN);
                    let failed = if f.failures > 0 {
                        format!(", {} of {} did not form", f.failures, reps)
                    } else {
                        String::new()
                    };
                    rows.push((
                        format!(
                            "mesh formation, {} peers, mDNS on a virtual LAN (process start to full mesh)",
                            f.peers
                        ),
                        format!("{p50:.0} / {max:.0} ms (p50 / max of {}{failed})", samples.len()),
                        "—".into(),
                        format!("{:.2}× of the 400 ms aim (probing alone: 750 ms)", p50 / LAN_AIM_MS),
                    ));
                    put(
                        &format!("lan_mesh_{}_ms", f.peers),
                        json!({"p50": p50, "max": max, "samples": samples, "failures": f.failures,
                               "aim_ms": LAN_AIM_MS, "probe_floor_ms": PROBE_FLOOR_MS}),
                    );
                }
            }
            Err(why) => {
                if !why.is_empty() {
                    eprintln!("skipping the lan group: {why}");
                }
                let why = if why.is_empty() {
                    "needs root and iproute2".to_owned()
                } else {
                    why
                };
                put("lan_skipped", json!(why));
            }
        }
    }
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_else(|| "unknown CPU".into())
    );
    let mut md = format!(
        "Machine: {machine}; loopback (the mDNS rows: a virtual LAN of network namespaces); {PROVIDER} crypto \
         provider; system allocator; {}.\n\n",
        if quick {
            "quick mode (smoke test only)"
        } else {
            "full run"
        }
    );
    md.push_str("| measurement | multipeer (p50 / p99) | raw quinn (p50 / p99) | ratio |\n|---|---|---|---|\n");
    for (a, b, c, d) in &rows {
        md.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(format!("{out}/bench.md"), &md).unwrap();
    let json = json!({"machine": machine, "provider": PROVIDER, "quick": quick, "figures": figures});
    std::fs::write(
        format!("{out}/bench.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    println!("{md}");
}
