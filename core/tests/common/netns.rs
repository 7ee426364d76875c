//! A virtual LAN of network namespaces for tests that need real multicast between hosts.
//!
//! Each [`VirtualLan`] is a "switch" namespace with a bridge, plus N host namespaces each joined to the bridge
//! by a veth pair (`eth0` inside the host, addressed `10.77.<k>.<i + 1>/24`, with a multicast route). Nothing
//! is attached to the machine's real interfaces, so multicast never leaves the LAN. Every LAN has its own
//! switch, so several LANs (parallel tests) never see each other.
//!
//! Processes started with [`VirtualLan::spawn`] print one JSON object per line on stdout; a reader thread
//! collects them, and [`PeerProcess::expect`] waits (bounded) for one that matches.
//!
//! Needs root and iproute2; [`VirtualLan::new`] prints one line and returns `None` when either is missing.
//! Everything created is removed on drop, also when the test panics; namespaces left behind by a test process
//! that died (SIGKILL, timeout) are removed by the next run.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The line printed when the machine cannot host a virtual LAN.
pub const SKIP_LINE: &str = "skipping virtual LAN test: needs root and iproute2 (ip netns)";

/// Longest time one `ip` command may take.
const IP_COMMAND_LIMIT: Duration = Duration::from_secs(15);
/// Stderr lines kept per process (the most recent ones).
const STDERR_KEEP: usize = 400;
/// Stderr lines shown in a failure message.
const STDERR_SHOW: usize = 60;
/// Events shown in a failure message.
const EVENTS_SHOW: usize = 80;

/// Distinguishes the LANs of one test process.
static LAN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Outcome of a finished command.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args`, waiting at most `limit`; `Err` if it cannot start or takes too long (then it is killed).
pub fn run_bounded(program: &str, args: &[&str], limit: Duration) -> Result<CommandOutput, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // Read the pipes in threads so a chatty command cannot block on a full pipe while we poll.
    let stdout = child.stdout.take().map(read_all_in_thread);
    let stderr = child.stderr.take().map(read_all_in_thread);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{program} {}` took longer than {limit:?}", args.join(" ")));
            }
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let collect = |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(CommandOutput {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn read_all_in_thread(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

/// Runs `ip args`; `Err` with the command and its stderr unless it exits 0.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = run_bounded("ip", args, IP_COMMAND_LIMIT)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr.trim()
        ))
    }
}

/// Runs `ip args` and panics with the command and its stderr if it fails.
fn ip_ok(args: &[&str]) -> String {
    match ip(args) {
        Ok(out) => out,
        Err(e) => panic!("virtual LAN setup: {e}"),
    }
}

/// Root and the `ip` binary: checked once per process. `Err` says what is missing.
fn prerequisites() -> Result<(), String> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let uid = run_bounded("id", &["-u"], IP_COMMAND_LIMIT).map_err(|e| format!("cannot tell the uid: {e}"))?;
            if uid.stdout.trim() != "0" {
                return Err(format!("not root (uid {})", uid.stdout.trim()));
            }
            let version = run_bounded("ip", &["-V"], IP_COMMAND_LIMIT)?;
            if !version.status.success() {
                return Err("`ip -V` failed".to_owned());
            }
            remove_stale_namespaces();
            Ok(())
        })
        .clone()
}

/// Parses a namespace name this harness makes (`mp<pid>s<k>` or `mp<pid>h<k>_<i>`), giving the pid.
pub fn harness_namespace_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("mp")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let pid: u32 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let ok = if let Some(k) = tail.strip_prefix('s') {
        all_digits(k)
    } else if let Some(hk) = tail.strip_prefix('h') {
        matches!(hk.split_once('_'), Some((k, i)) if all_digits(k) && all_digits(i))
    } else {
        false
    };
    ok.then_some(pid)
}

/// Removes namespaces of this harness whose test process no longer exists (left by a run that was killed).
fn remove_stale_namespaces() {
    let Ok(list) = ip(&["netns", "list"]) else { return };
    let own = std::process::id();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = harness_namespace_pid(name) else {
            continue;
        };
        if pid == own || process_alive(pid) {
            continue;
        }
        kill_namespace_processes(name);
        let _ = ip(&["netns", "del", name]);
    }
}

/// Does process `pid` exist and run (a zombie, not reaped yet, does not count)?
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may itself contain ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// SIGKILLs every process inside namespace `name`.
fn kill_namespace_processes(name: &str) {
    let Ok(pids) = ip(&["netns", "pids", name]) else { return };
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if !pids.is_empty() {
        let mut args = vec!["-9"];
        args.extend(pids);
        let _ = run_bounded("kill", &args, IP_COMMAND_LIMIT);
    }
}

/// A bridge in a namespace of its own, and hosts (namespaces) plugged into it.
pub struct VirtualLan {
    k: u32,
    switch: String,
    hosts: Vec<String>,
    /// Every namespace made so far, removed on drop.
    created: Vec<String>,
}

impl VirtualLan {
    /// Builds a LAN of `hosts` hosts, or prints [`SKIP_LINE`] and returns `None` if this machine cannot.
    /// Panics if the machine can but a setup step fails (what was made is removed).
    pub fn new(hosts: usize) -> Option<Self> {
        assert!((1..=250).contains(&hosts), "a virtual LAN has 1..=250 hosts");
        if let Err(why) = prerequisites() {
            eprintln!("{SKIP_LINE}: {why}");
            return None;
        }
        let k = LAN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let switch = format!("mp{pid}s{k}");
        // The first namespace doubles as the check that `ip netns add` works here (it needs CAP_SYS_ADMIN and
        // a writable /run/netns).
        if let Err(why) = ip(&["netns", "add", &switch]) {
            eprintln!("{SKIP_LINE}: {why}");
            return None;
        }
        let mut lan = Self {
            k,
            switch: switch.clone(),
            hosts: Vec::new(),
            created: vec![switch.clone()],
        };
        let sw = switch.as_str();
        ip_ok(&["-n", sw, "link", "set", "lo", "up"]);
        // Snooping off: the bridge floods all multicast, like a plain switch.
        ip_ok(&["-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]);
        ip_ok(&["-n", sw, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let host = format!("mp{pid}h{k}_{i}");
            ip_ok(&["netns", "add", &host]);
            lan.created.push(host.clone());
            let veth = format!("v{i}");
            ip_ok(&[
                "-n", sw, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &host,
            ]);
            ip_ok(&["-n", sw, "link", "set", &veth, "master", "br0", "up"]);
            let addr = format!("{}/24", lan.addr_of(k, i));
            ip_ok(&["-n", &host, "link", "set", "lo", "up"]);
            ip_ok(&["-n", &host, "addr", "add", &addr, "dev", "eth0"]);
            ip_ok(&["-n", &host, "link", "set", "eth0", "up"]);
            // No default route exists: without this, joining 224.0.0.251 fails with ENODEV.
            ip_ok(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
            lan.hosts.push(host);
        }
        Some(lan)
    }

    fn addr_of(&self, k: u32, i: usize) -> String {
        format!("10.77.{}.{}", k % 256, i + 1)
    }

    /// How many hosts the LAN has.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// The IPv4 address of host `i`.
    pub fn addr(&self, i: usize) -> String {
        self.addr_of(self.k, i)
    }

    /// The namespace name of host `i`.
    pub fn namespace(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// The namespace of the switch.
    pub fn switch_namespace(&self) -> &str {
        &self.switch
    }

    /// Runs `program args` to completion inside host `i` (bounded by `limit`).
    pub fn run(&self, i: usize, program: &str, args: &[&str], limit: Duration) -> CommandOutput {
        let mut full = vec!["netns", "exec", self.hosts[i].as_str(), program];
        full.extend_from_slice(args);
        match run_bounded("ip", &full, limit) {
            Ok(out) => out,
            Err(e) => panic!("running {program} in host {i}: {e}"),
        }
    }

    /// Starts `program args` inside host `i` with piped stdin and stdout (JSON lines) and captured stderr.
    pub fn spawn(&self, i: usize, program: &str, args: &[&str]) -> PeerProcess {
        PeerProcess::spawn(format!("h{i}"), &self.hosts[i], program, args)
    }

    /// Takes host `i`'s interface down (like pulling its cable).
    pub fn link_down(&self, i: usize) {
        ip_ok(&["-n", &self.hosts[i], "link", "set", "eth0", "down"]);
    }

    /// Brings host `i`'s interface back up, restoring the multicast route (the kernel drops it on down).
    pub fn link_up(&self, i: usize) {
        let host = self.hosts[i].as_str();
        ip_ok(&["-n", host, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", host, "route", "replace", "224.0.0.0/4", "dev", "eth0"]);
    }

    /// The namespaces this LAN made (all removed on drop).
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }
}

impl Drop for VirtualLan {
    fn drop(&mut self) {
        // Processes keep a namespace alive after `ip netns del`: kill them first (hosts, then the switch).
        for name in self.created.iter().rev() {
            kill_namespace_processes(name);
        }
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("virtual LAN teardown: {e}");
            }
        }
    }
}

/// Is a namespace of this name present?
pub fn namespace_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[derive(Default)]
struct Output {
    /// Every JSON line on stdout, in order.
    events: Vec<Value>,
    /// When each event was read.
    times: Vec<Instant>,
    /// Stdout lines that were not JSON objects.
    garbage: Vec<String>,
    /// The most recent stderr lines.
    stderr: VecDeque<String>,
    /// Stdout reached end of file.
    stdout_closed: bool,
}

/// A process running inside a host of a [`VirtualLan`]: commands in on stdin, JSON events out on stdout.
///
/// Events are kept in order; [`PeerProcess::expect`] takes the first not-yet-taken one that matches, so events
/// that arrive while waiting for something else are not lost. Dropping it kills the process.
pub struct PeerProcess {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<(Mutex<Output>, Condvar)>,
    /// Indices into `events` already returned by `expect`.
    taken: Vec<bool>,
    spawned_at: Instant,
}

impl PeerProcess {
    fn spawn(label: String, namespace: &str, program: &str, args: &[&str]) -> Self {
        let echo = std::env::var_os("LAN_TEST_ECHO").is_some();
        let mut child = Command::new("ip")
            .args(["netns", "exec", namespace, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in {label}: {e}"));
        let spawned_at = Instant::now();
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let output = output.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cond) = &*output;
                    let mut out = lock.lock().unwrap();
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v.is_object() => {
                            out.events.push(v);
                            out.times.push(Instant::now());
                        }
                        // Plain-text programs (the chat example) are followed line by line as `{"line": ...}`.
                        _ => {
                            out.events.push(serde_json::json!({ "line": line }));
                            out.times.push(Instant::now());
                            out.garbage.push(line);
                        }
                    }
                    cond.notify_all();
                }
                let (lock, cond) = &*output;
                lock.lock().unwrap().stdout_closed = true;
                cond.notify_all();
            });
        }
        {
            let output = output.clone();
            let label = label.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("[{label}] {line}");
                    }
                    let mut out = output.0.lock().unwrap();
                    if out.stderr.len() == STDERR_KEEP {
                        out.stderr.pop_front();
                    }
                    out.stderr.push_back(line);
                }
            });
        }
        let stdin = child.stdin.take();
        Self {
            label,
            child,
            stdin,
            output,
            taken: Vec::new(),
            spawned_at,
        }
    }

    /// The label (`h<i>`) used in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// When the process was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Writes `command` as one line on the process's stdin.
    pub fn send(&mut self, command: Value) {
        self.send_line(&command.to_string());
    }

    /// Writes one line of text to the process's stdin (for plain-text programs such as the chat example).
    pub fn send_line(&mut self, text: &str) {
        let label = self.label.clone();
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{label}: stdin already closed"));
        let mut line = text.to_owned();
        line.push('\n');
        if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush()) {
            panic!("{label}: cannot send {text}: {e}\n{}", self.describe());
        }
    }

    /// Closes stdin (the process sees end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits at most `limit` for the first event not taken yet for which `pick` returns `Some`, takes it and
    /// returns the value. Panics with `what`, the events seen and the process's stderr on timeout, or if the
    /// process closes stdout first.
    pub fn expect<T>(&mut self, limit: Duration, what: &str, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        let (lock, cond) = &*self.output;
        let mut out = lock.lock().unwrap();
        let mut scanned = 0;
        loop {
            self.taken.resize(out.events.len(), false);
            for idx in scanned..out.events.len() {
                if !self.taken[idx] {
                    if let Some(found) = pick(&out.events[idx]) {
                        self.taken[idx] = true;
                        return found;
                    }
                }
            }
            scanned = out.events.len();
            let now = Instant::now();
            if out.stdout_closed || now >= deadline {
                let why = if out.stdout_closed {
                    "the process closed stdout (exited?)".to_owned()
                } else {
                    format!("timed out after {limit:?}")
                };
                drop(out);
                panic!("{}: {why} waiting for {what}\n{}", self.label, self.describe());
            }
            out = cond.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Waits at most `limit` for an event named `event` (the `event` field) for which `pred` holds.
    pub fn expect_event(&mut self, limit: Duration, event: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        self.expect(limit, &format!("event {event:?}"), |v| {
            (v["event"] == event && pred(v)).then(|| v.clone())
        })
    }

    /// Waits for `started` and returns the peer id and QUIC port.
    pub fn started(&mut self, limit: Duration) -> (String, u16) {
        let v = self.expect_event(limit, "started", |_| true);
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("started without id: {v}"))
            .to_owned();
        let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
        (id, port.unwrap_or_else(|| panic!("started without port: {v}")))
    }

    /// Waits the whole of `window` and panics if any event not taken yet matches `pred` (already buffered ones
    /// included). Use it to check that something does *not* happen.
    pub fn expect_none(&mut self, window: Duration, what: &str, mut pred: impl FnMut(&Value) -> bool) {
        let deadline = Instant::now() + window;
        let (lock, cond) = &*self.output;
        let mut out = lock.lock().unwrap();
        let mut scanned = 0;
        loop {
            self.taken.resize(out.events.len(), false);
            if let Some(idx) = (scanned..out.events.len()).find(|&i| !self.taken[i] && pred(&out.events[i])) {
                let bad = out.events[idx].clone();
                drop(out);
                panic!("{}: unexpected {what}: {bad}\n{}", self.label, self.describe());
            }
            scanned = out.events.len();
            let now = Instant::now();
            if now >= deadline || out.stdout_closed {
                return;
            }
            out = cond.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// The peers this process currently has, from its `peer_added` / `peer_removed` events so far.
    pub fn current_peers(&self) -> BTreeSet<String> {
        fold_peers(&self.output.0.lock().unwrap().events)
    }

    /// Waits at most `limit` until the peers this process reported (added minus removed) are exactly `want`.
    /// Returns when the event that completed the set was read.
    pub fn wait_peers(&mut self, limit: Duration, want: &BTreeSet<String>) -> Instant {
        let start = Instant::now();
        let deadline = start + limit;
        let (lock, cond) = &*self.output;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(at) = peers_reached_at(&out.events, &out.times, want) {
                return at;
            }
            let now = Instant::now();
            if now >= deadline || out.stdout_closed {
                let have = fold_peers(&out.events);
                drop(out);
                panic!(
                    "{}: after {:?} its peers are {:?}, wanted {:?}\n{}",
                    self.label,
                    start.elapsed(),
                    short_ids(&have),
                    short_ids(want),
                    self.describe()
                );
            }
            out = cond.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Asks the process for its peers (`peers` command) and returns the answer.
    pub fn query_peers(&mut self, limit: Duration) -> BTreeSet<String> {
        self.send(serde_json::json!({"cmd": "peers"}));
        let v = self.expect_event(limit, "peers", |_| true);
        let ids = v["ids"].as_array().unwrap_or_else(|| panic!("peers without ids: {v}"));
        ids.iter()
            .map(|id| id.as_str().unwrap_or_else(|| panic!("non-string id in {v}")).to_owned())
            .collect()
    }

    /// Asks for the peer list (the `peers` command) until it equals `want`, at most `limit` (for an app that
    /// reads no events, whose membership shows only in answers to commands). Panics with the last answer.
    pub fn poll_peers(&mut self, limit: Duration, want: &BTreeSet<String>) {
        let deadline = Instant::now() + limit;
        for _ in 0..1_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let have = self.query_peers(left.max(Duration::from_secs(1)));
            if &have == want {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: its peers are {:?}, wanted {:?}",
                    self.label,
                    short_ids(&have),
                    short_ids(want)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{}: peers never became {:?}", self.label, short_ids(want));
    }

    /// Marks every event so far as taken: later `expect` / `expect_none` calls see only what arrives after.
    pub fn take_all(&mut self) {
        let n = self.output.0.lock().unwrap().events.len();
        self.taken.clear();
        self.taken.resize(n, true);
    }

    /// All events so far (taken or not).
    pub fn events(&self) -> Vec<Value> {
        self.output.0.lock().unwrap().events.clone()
    }

    /// Sends SIGKILL and reaps the process (bounded).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.wait_exit(Duration::from_secs(10));
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// A report for failure messages: recent events, stray stdout and stderr.
    pub fn describe(&self) -> String {
        let out = self.output.0.lock().unwrap();
        let mut s = format!(
            "--- {} events ({} in all, {:?} since spawn):\n",
            self.label,
            out.events.len(),
            { self.spawned_at.elapsed() }
        );
        for v in out.events.iter().skip(out.events.len().saturating_sub(EVENTS_SHOW)) {
            s.push_str(&format!("  {v}\n"));
        }
        if !out.garbage.is_empty() {
            s.push_str(&format!("--- {} stdout lines that are not JSON objects:\n", self.label));
            for l in out.garbage.iter().take(20) {
                s.push_str(&format!("  {l}\n"));
            }
        }
        s.push_str(&format!(
            "--- {} stderr (last lines; set LAN_TEST_ECHO=1 to see all):\n",
            self.label
        ));
        for l in out.stderr.iter().skip(out.stderr.len().saturating_sub(STDERR_SHOW)) {
            s.push_str(&format!("  {l}\n"));
        }
        s
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
    }
}

/// Peers present after applying `peer_added` / `peer_removed` events in order.
fn fold_peers(events: &[Value]) -> BTreeSet<String> {
    let mut peers = BTreeSet::new();
    for v in events {
        let id = v["id"].as_str().map(str::to_owned);
        match (v["event"].as_str(), id) {
            (Some("peer_added"), Some(id)) => {
                peers.insert(id);
            }
            (Some("peer_removed"), Some(id)) => {
                peers.remove(&id);
            }
            _ => {}
        }
    }
    peers
}

/// If the peers after all `events` are `want`, when the event that made them so was read (the spawn time
/// stand-in `times[0]` if `want` is empty and nothing changed).
fn peers_reached_at(events: &[Value], times: &[Instant], want: &BTreeSet<String>) -> Option<Instant> {
    let mut peers = BTreeSet::new();
    let mut reached = None;
    for (v, at) in events.iter().zip(times) {
        let Some(id) = v["id"].as_str() else { continue };
        let changed = match v["event"].as_str() {
            Some("peer_added") => peers.insert(id.to_owned()),
            Some("peer_removed") => peers.remove(id),
            _ => false,
        };
        if changed {
            reached = (&peers == want).then_some(*at);
        }
    }
    if &peers != want {
        return None;
    }
    reached
        .or_else(|| times.first().copied())
        .or_else(|| Some(Instant::now()))
}

/// First 8 characters of each id, for messages.
pub fn short_ids(ids: &BTreeSet<String>) -> Vec<&str> {
    ids.iter().map(|id| &id[..id.len().min(8)]).collect()
}
