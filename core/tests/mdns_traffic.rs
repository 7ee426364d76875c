//! How much mDNS traffic idle peers make: every packet to or from UDP port 5353 on a virtual LAN, captured on
//! the LAN's bridge while 4 (and, separately, 8) peers sit idle for two minutes.
//!
//! Prints packets per second over the whole run and after the first minute (the steady state), per source
//! address and per record type, and fails only on a generous bound: the numbers are noisy, the bound is there
//! to catch a return of traffic that grows without end or with the square of the peers.
//!
//! Needs root, iproute2 and `tcpdump`; without them each test prints one line and passes without checking.
//! `MDNS_TRAFFIC_SECS` sets the length of a run (at least 70 s; 120 by default).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::netns::{run_bounded, PeerProcess, VirtualLan};

const PEER: &str = env!("CARGO_BIN_EXE_multipeer-test-peer");
const SERVICE: &str = "mpquiet";
/// From spawn to the `started` line.
const STARTUP: Duration = Duration::from_secs(20);
/// From all peers running to every peer having all the others.
const JOIN: Duration = Duration::from_secs(60);
/// The start-up phase left out of the steady-state rate.
const WARM_UP: Duration = Duration::from_secs(60);
/// Longest time tcpdump may take to start capturing or to stop.
const TCPDUMP_LIMIT: Duration = Duration::from_secs(15);

/// The length of one run.
fn run_length() -> Duration {
    let secs = std::env::var("MDNS_TRAFFIC_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_secs(secs.max(WARM_UP.as_secs() + 10))
}

#[test]
fn four_idle_peers_stay_quiet() {
    idle_peers(4, 1.0);
}

#[test]
fn eight_idle_peers_stay_quiet() {
    idle_peers(8, 2.0);
}

/// Runs `n` idle peers for [`run_length`], prints the traffic and checks the steady-state rate is below `bound`.
fn idle_peers(n: usize, bound: f64) {
    if run_bounded("tcpdump", &["--version"], TCPDUMP_LIMIT).is_err() {
        eprintln!("skipping mDNS traffic test: needs tcpdump");
        return;
    }
    let Some(lan) = VirtualLan::new(n) else { return };
    let file = std::env::temp_dir().join(format!("mp-mdns-{}-{n}-{}.pcap", std::process::id(), nanos()));
    let capture = Capture::start(&lan, file);
    let start = SystemTime::now();
    let began = Instant::now();
    let mut peers: Vec<PeerProcess> = (0..n)
        .map(|i| lan.spawn(i, PEER, &["--name", &format!("idle{i}"), "--service", SERVICE]))
        .collect();
    let ids: Vec<String> = peers.iter_mut().map(|p| p.started(STARTUP).0).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        let want = ids
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, id)| id.clone())
            .collect();
        p.wait_peers(JOIN, &want);
    }
    eprintln!("{n} peers: full mesh after {:?}", began.elapsed());
    // The measurement window: the peers do nothing but keep their mDNS state.
    std::thread::sleep(run_length().saturating_sub(began.elapsed()));
    let packets = capture.stop();
    drop(peers);
    let report = Report::new(&packets, start, run_length());
    eprintln!("{}", report.render(n));
    assert!(
        report.steady_rate() < bound,
        "{n} idle peers sent {:.2} mDNS packets/s after the first minute (bound {bound})",
        report.steady_rate()
    );
}

fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// tcpdump on the LAN's bridge, writing every UDP 5353 packet (multicast and unicast) to a file.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(lan: &VirtualLan, file: PathBuf) -> Self {
        let path = file.to_str().unwrap();
        // Promiscuous (tcpdump's default): the bridge then hands over unicast between hosts too.
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                lan.switch_namespace(),
                "tcpdump",
                "-i",
                "br0",
                "-U",
                "-n",
            ])
            .args(["-w", path, "udp port 5353"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tcpdump says "listening on br0" once it captures.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let capture = Self { child, file };
        rx.recv_timeout(TCPDUMP_LIMIT).expect("tcpdump started capturing");
        capture
    }

    /// Stops tcpdump (it flushes the file on SIGTERM) and returns the packets captured.
    fn stop(mut self) -> Vec<Packet> {
        let pid = self.child.id().to_string();
        let _ = run_bounded("kill", &["-TERM", &pid], TCPDUMP_LIMIT);
        let deadline = Instant::now() + TCPDUMP_LIMIT;
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let bytes = std::fs::read(&self.file).unwrap_or_default();
        parse_pcap(&bytes)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// One captured mDNS packet, decoded as far as the report needs.
#[derive(Debug, Clone)]
struct Packet {
    /// Capture time since the Unix epoch.
    at: Duration,
    source: IpAddr,
    multicast: bool,
    response: bool,
    /// Question types (queries) or answer types (responses), e.g. `PTR`, `SRV`.
    types: Vec<&'static str>,
}

/// Parses a classic pcap file of Ethernet frames; frames that are not UDP over IPv4 / IPv6 are skipped.
fn parse_pcap(bytes: &[u8]) -> Vec<Packet> {
    let mut packets = Vec::new();
    if bytes.len() < 24 || bytes[..4] != [0xd4, 0xc3, 0xb2, 0xa1] {
        return packets;
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let mut offset = 24;
    while offset + 16 <= bytes.len() {
        let at = Duration::new(u64::from(u32_at(offset)), u32_at(offset + 4) * 1000);
        let len = u32_at(offset + 8) as usize;
        let frame = &bytes[offset + 16..(offset + 16 + len).min(bytes.len())];
        offset += 16 + len;
        if let Some(packet) = parse_frame(frame, at) {
            packets.push(packet);
        }
    }
    packets
}

fn parse_frame(frame: &[u8], at: Duration) -> Option<Packet> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let ip = frame.get(14..)?;
    let (source, multicast, udp) = match ethertype {
        0x0800 => {
            let header = usize::from(ip.first()? & 0x0f) * 4;
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (IpAddr::from(src), dst[0] >= 224, ip.get(header..)?)
        }
        // UDP directly after the fixed header: mDNS carries no extension headers.
        0x86dd if ip.get(6) == Some(&17) => {
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            (IpAddr::from(src), ip.get(24) == Some(&0xff), ip.get(40..)?)
        }
        _ => return None,
    };
    let dns = udp.get(8..)?;
    let response = dns.get(2)? & 0x80 != 0;
    let types = record_types(dns, response).unwrap_or_default();
    Some(Packet {
        at,
        source,
        multicast,
        response,
        types,
    })
}

/// The question types of a query, or the answer types of a response.
fn record_types(dns: &[u8], response: bool) -> Option<Vec<&'static str>> {
    let count = |o: usize| usize::from(u16::from_be_bytes([dns[o], dns[o + 1]]));
    dns.get(..12)?;
    let (questions, answers) = (count(4), count(6));
    let mut at = 12;
    let mut types = Vec::new();
    for _ in 0..questions {
        at = skip_name(dns, at)?;
        if !response {
            types.push(type_name(u16::from_be_bytes(dns.get(at..at + 2)?.try_into().ok()?)));
        }
        at += 4;
    }
    if response {
        for _ in 0..answers {
            at = skip_name(dns, at)?;
            types.push(type_name(u16::from_be_bytes(dns.get(at..at + 2)?.try_into().ok()?)));
            let rdlength = usize::from(u16::from_be_bytes(dns.get(at + 8..at + 10)?.try_into().ok()?));
            at += 10 + rdlength;
        }
    }
    Some(types)
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(dns: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *dns.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
    None
}

fn type_name(t: u16) -> &'static str {
    match t {
        1 => "A",
        12 => "PTR",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        47 => "NSEC",
        255 => "ANY",
        _ => "other",
    }
}

/// Counts of a run.
struct Report {
    total: usize,
    length: Duration,
    steady: Vec<Packet>,
}

impl Report {
    fn new(packets: &[Packet], start: SystemTime, length: Duration) -> Self {
        let start = start.duration_since(UNIX_EPOCH).unwrap();
        let steady = packets
            .iter()
            .filter(|p| p.at >= start + WARM_UP && p.at < start + length)
            .cloned()
            .collect();
        Self {
            total: packets.iter().filter(|p| p.at < start + length).count(),
            length,
            steady,
        }
    }

    /// Packets per second after the first minute.
    fn steady_rate(&self) -> f64 {
        self.steady.len() as f64 / (self.length - WARM_UP).as_secs_f64()
    }

    fn render(&self, n: usize) -> String {
        let mut s = format!(
            "mDNS traffic of {n} idle peers: {} packets in {:?} = {:.2}/s; after the first minute {} packets = {:.2}/s",
            self.total,
            self.length,
            self.total as f64 / self.length.as_secs_f64(),
            self.steady.len(),
            self.steady_rate()
        );
        let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for p in &self.steady {
            *by_source.entry(p.source.to_string()).or_default() += 1;
            let kind = format!(
                "{} {} {}",
                if p.multicast { "multicast" } else { "unicast" },
                if p.response { "answer" } else { "query" },
                p.types.join("+")
            );
            *by_kind.entry(kind).or_default() += 1;
        }
        s.push_str("\n  after the first minute, per source:");
        for (source, count) in &by_source {
            s.push_str(&format!("\n    {source}: {count}"));
        }
        s.push_str("\n  after the first minute, per kind:");
        for (kind, count) in &by_kind {
            s.push_str(&format!("\n    {kind}: {count}"));
        }
        s
    }
}
