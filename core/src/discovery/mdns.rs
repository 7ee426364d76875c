//! mDNS / DNS-SD discovery on the local network, wrapping `mdns-sd`'s daemon in a small actor.
//!
//! Each session advertises `_<service_type>._udp.local.` with the instance name `<display name> (<short id>)`,
//! the QUIC port, every usable address, and TXT entries `id` (peer id), `pv` (protocol version), `dn`
//! (display name) plus the app's discovery info. Services of our type with missing or malformed TXT entries
//! are ignored (and listed in the diagnostics report).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mdns_sd::{
    DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo, UnregisterStatus,
};
use tokio::sync::mpsc;

use super::adverts::{Adverts, Outcome};
use super::{
    Advertisement, DiscoveredPeer, Discovery, DiscoveryError, DiscoveryEvent, DiscoveryReport, DiscoverySubscription,
    Farewell, SeenService,
};
use crate::config::{validate_discovery_info, validate_display_name, RESERVED_DISCOVERY_KEYS};
use crate::identity::PeerId;
use crate::proto::PROTOCOL_VERSION;

/// The standard mDNS port.
pub const MDNS_PORT: u16 = 5353;
/// Most remote services remembered at once (further ones are ignored until others go away).
pub const MAX_TRACKED_SERVICES: usize = 256;
/// Longest DNS-SD instance name, in bytes.
const MAX_INSTANCE_LEN: usize = 63;

/// Options of [`MdnsDiscovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdnsConfig {
    /// UDP port of mDNS (5353 on real networks; another port isolates tests).
    pub port: u16,
    /// Interfaces to use, by name (for example `["wlan0"]`); empty means all.
    pub interfaces: Vec<String>,
}

impl Default for MdnsConfig {
    fn default() -> Self {
        Self {
            port: MDNS_PORT,
            interfaces: Vec::new(),
        }
    }
}

impl MdnsConfig {
    /// Uses a non-standard mDNS port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Restricts discovery to the named interfaces.
    pub fn interfaces(mut self, interfaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.interfaces = interfaces.into_iter().map(Into::into).collect();
        self
    }
}

/// Discovery with multicast DNS on the local network: the default of a session.
#[derive(Debug, Clone, Default)]
pub struct MdnsDiscovery {
    config: MdnsConfig,
}

impl MdnsDiscovery {
    /// mDNS on every interface, port 5353.
    pub fn new() -> Self {
        Self::default()
    }

    /// mDNS with options.
    pub fn with_config(config: MdnsConfig) -> Self {
        Self { config }
    }
}

/// The DNS-SD service type for a multipeer service type, e.g. `_chat._udp.local.`.
pub fn service_domain(service_type: &str) -> String {
    format!("_{service_type}._udp.local.")
}

/// The instance name: display name (cut to fit) and short id, which keeps names of two devices apart.
pub fn instance_name(display_name: &str, id: &PeerId) -> String {
    let suffix = format!(" ({})", id.short());
    let mut name = display_name.to_owned();
    while name.len() + suffix.len() > MAX_INSTANCE_LEN {
        name.pop();
    }
    name + &suffix
}

/// The TXT entries we publish.
pub fn txt_entries(ad: &Advertisement) -> Vec<(String, String)> {
    let mut txt = vec![
        ("id".to_owned(), ad.id.to_string()),
        ("pv".to_owned(), PROTOCOL_VERSION.to_string()),
        ("dn".to_owned(), ad.display_name.clone()),
    ];
    txt.extend(ad.discovery_info.iter().map(|(k, v)| (k.clone(), v.clone())));
    txt
}

/// Parses a peer's TXT entries, port and addresses, checking everything a remote host could get wrong.
pub fn parse_record(
    txt: &[(String, Option<String>)],
    port: u16,
    addrs: &[SocketAddr],
) -> Result<DiscoveredPeer, &'static str> {
    let get = |key: &str| {
        txt.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_deref())
    };
    let peer_id: PeerId = get("id").ok_or("missing id")?.parse().map_err(|_| "malformed id")?;
    if get("pv").ok_or("missing protocol version")? != PROTOCOL_VERSION.to_string() {
        return Err("unsupported protocol version");
    }
    let display_name = get("dn").ok_or("missing display name")?.to_owned();
    validate_display_name(&display_name).map_err(|_| "invalid display name")?;
    if port == 0 {
        return Err("port 0");
    }
    if addrs.is_empty() {
        return Err("no address");
    }
    let info = txt
        .iter()
        .filter(|(k, _)| !RESERVED_DISCOVERY_KEYS.iter().any(|r| r.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()));
    let discovery_info = validate_discovery_info(info).map_err(|_| "discovery info out of limits")?;
    let mut addrs = addrs.to_vec();
    // IPv4 first, then routable IPv6, then link-local IPv6: the likeliest to work first.
    addrs.sort_by_key(|a| match a {
        SocketAddr::V4(_) => 0,
        SocketAddr::V6(v6) if v6.ip().segments()[0] & 0xffc0 != 0xfe80 => 1,
        SocketAddr::V6(_) => 2,
    });
    addrs.dedup();
    addrs.truncate(8);
    Ok(DiscoveredPeer {
        id: peer_id,
        display_name,
        addrs,
        discovery_info,
    })
}

fn socket_addrs(service: &ResolvedService) -> Vec<SocketAddr> {
    let port = service.get_port();
    service
        .get_addresses()
        .iter()
        .filter_map(|ip| match ip {
            ScopedIp::V4(_) => Some(SocketAddr::new(ip.to_ip_addr(), port)),
            ScopedIp::V6(v6) => Some(SocketAddr::V6(SocketAddrV6::new(
                *v6.addr(),
                port,
                0,
                v6.scope_id().index,
            ))),
            _ => None,
        })
        .filter(|a| !a.ip().is_unspecified() && !a.ip().is_multicast())
        .collect()
}

fn mdns_error(e: mdns_sd::Error) -> DiscoveryError {
    DiscoveryError::Service(e.to_string())
}

impl Discovery for MdnsDiscovery {
    fn start(&self, ad: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| DiscoveryError::Service("mDNS discovery needs a Tokio runtime".into()))?;
        let daemon = ServiceDaemon::new_with_port(self.config.port).map_err(mdns_error)?;
        if !self.config.interfaces.is_empty() {
            daemon.disable_interface(IfKind::All).map_err(mdns_error)?;
            let names: Vec<IfKind> = self.config.interfaces.iter().cloned().map(IfKind::Name).collect();
            daemon.enable_interface(names).map_err(mdns_error)?;
        }
        let monitor = daemon.monitor().map_err(mdns_error)?;
        let domain = service_domain(&ad.service_type);
        let instance = instance_name(&ad.display_name, &ad.id);
        let host = format!("{}.local.", ad.id.short());
        let ips: Vec<IpAddr> = if ad.bound_addr.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![ad.bound_addr.ip()]
        };
        let txt = txt_entries(&ad);
        let txt_refs: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut info = ServiceInfo::new(&domain, &instance, &host, &ips[..], ad.port, &txt_refs[..])
            .map_err(|e| DiscoveryError::InvalidAdvertisement(e.to_string()))?;
        // The instance name carries the key-derived id, so it cannot collide: probing buys nothing (PROTOCOL.md).
        info.set_requires_probe(false);
        let info = if ips.is_empty() { info.enable_addr_auto() } else { info };
        let fullname = info.get_fullname().to_owned();
        daemon.register(info).map_err(mdns_error)?;
        let browse = daemon.browse(&domain).map_err(mdns_error)?;

        let report = Arc::new(Mutex::new(DiscoveryReport {
            implementation: "mdns".into(),
            advertised: Some(format!("{fullname} port {} txt {:?}", ad.port, txt)),
            ..DiscoveryReport::default()
        }));
        let (tx, rx) = DiscoverySubscription::channel();
        let browser = Browser {
            adverts: Adverts::new(MAX_TRACKED_SERVICES),
            pending: Pending::default(),
            report: report.clone(),
            own_id: ad.id,
            own_fullname: fullname.clone(),
            own_port: ad.port,
        };
        let task = runtime.spawn(run(browse, monitor, tx, browser));
        let stop_daemon = daemon.clone();
        let report_view = report.clone();
        Ok(DiscoverySubscription::with_farewell(rx, move || {
            task.abort();
            farewell(stop_daemon, fullname, domain)
        })
        .with_report(move || report_view.lock().unwrap_or_else(PoisonError::into_inner).clone()))
    }
}

/// Longest wait for the daemon to confirm the withdrawal (its first goodbye has left by then).
const UNREGISTER_LIMIT: Duration = Duration::from_millis(100);
/// Longest wait, after the first goodbye, for its repeat (mdns-sd sends it 120 ms later) before shutting down.
const REPEAT_LIMIT: Duration = Duration::from_millis(300);
/// How often the farewell asks the daemon whether the repeat has left.
const REPEAT_POLL: Duration = Duration::from_millis(15);
/// The daemon's count of repeated goodbye packets, in its metrics.
const REPEAT_COUNTER: &str = "unregister-resend";

/// Withdraws our service and stops the daemon, on a thread of its own so that neither a drop nor the runtime
/// has to wait: the goodbye (records with TTL 0) leaves at once, its repeat 120 ms later (RFC 6762 §10.1), and
/// only then does the daemon shut down, at most [`UNREGISTER_LIMIT`] + [`REPEAT_LIMIT`] after the stop. The
/// returned future resolves when the daemon has been told to shut down.
fn farewell(daemon: ServiceDaemon, fullname: String, domain: String) -> Farewell {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let fallback = daemon.clone();
    let fallback_name = fullname.clone();
    let work = move || {
        let start = Instant::now();
        let _ = daemon.stop_browse(&domain);
        let confirmed = daemon
            .unregister(&fullname)
            .ok()
            .and_then(|status| status.recv_timeout(UNREGISTER_LIMIT).ok());
        let repeats = match confirmed {
            Some(UnregisterStatus::OK) => wait_for_repeat(&daemon, Instant::now() + REPEAT_LIMIT),
            _ => 0,
        };
        let _ = daemon.shutdown();
        tracing::debug!(repeats, took = ?start.elapsed(), "mDNS goodbye said");
        let _ = done.send(());
    };
    let spawned = std::thread::Builder::new()
        .name("multipeer-mdns-goodbye".into())
        .spawn(work);
    if let Err(e) = spawned {
        // Without a thread of its own, stop at once: one goodbye rather than none.
        tracing::debug!("no thread for the mDNS goodbye ({e}); stopping at once");
        let _ = fallback.unregister(&fallback_name);
        let _ = fallback.shutdown();
    }
    Box::pin(async move {
        let _ = finished.await;
    })
}

/// Waits until the daemon has sent the repeats of its goodbye (its counter rose and stayed put for one poll),
/// or until `deadline`; returns how many it counted.
fn wait_for_repeat(daemon: &ServiceDaemon, deadline: Instant) -> i64 {
    let mut last = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return last;
        }
        std::thread::sleep(REPEAT_POLL.min(deadline - now));
        let count = daemon
            .get_metrics()
            .ok()
            .and_then(|metrics| {
                metrics
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok()
            })
            .and_then(|metrics| metrics.get(REPEAT_COUNTER).copied())
            .unwrap_or(0);
        if count > 0 && count == last {
            return count;
        }
        last = count;
    }
}

fn note(report: &Mutex<DiscoveryReport>, f: impl FnOnce(&mut DiscoveryReport)) {
    let mut report = report.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut report);
    report.trim();
}

/// Discovery events not yet taken by the session, latest state per peer first seen first. The browse task
/// never waits for the session, so neither does the mdns-sd daemon thread: a slow session sees fewer, newer
/// events. At most [`MAX_PENDING_PEERS`] peers are held; further ones are dropped until the session catches up.
#[derive(Debug, Default)]
struct Pending {
    order: VecDeque<PeerId>,
    latest: HashMap<PeerId, DiscoveryEvent>,
}

/// Most peers with discovery events waiting for the session (a found and a lost for every tracked service).
const MAX_PENDING_PEERS: usize = 2 * MAX_TRACKED_SERVICES;

impl Pending {
    /// Records `event` for `peer`, replacing what was waiting for it; `false` if dropped for lack of room.
    fn put(&mut self, peer: PeerId, event: DiscoveryEvent) -> bool {
        if let Some(waiting) = self.latest.get_mut(&peer) {
            *waiting = event;
            return true;
        }
        if self.latest.len() >= MAX_PENDING_PEERS {
            return false;
        }
        self.latest.insert(peer, event);
        self.order.push_back(peer);
        true
    }

    /// The oldest peer's latest event.
    fn pop(&mut self) -> Option<DiscoveryEvent> {
        while let Some(peer) = self.order.pop_front() {
            if let Some(event) = self.latest.remove(&peer) {
                return Some(event);
            }
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// What the browse task keeps.
struct Browser {
    adverts: Adverts,
    pending: Pending,
    report: Arc<Mutex<DiscoveryReport>>,
    own_id: PeerId,
    own_fullname: String,
    own_port: u16,
}

impl Browser {
    fn queue(&mut self, event: DiscoveryEvent) {
        let peer = match &event {
            DiscoveryEvent::Found(p) => p.id,
            DiscoveryEvent::Lost(id) => *id,
            _ => self.own_id,
        };
        if !self.pending.put(peer, event) {
            tracing::debug!(peer = %peer.short(), "session behind on discovery; event dropped");
        }
    }

    fn service(&mut self, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let fullname = service.get_fullname().to_owned();
                let txt: Vec<(String, Option<String>)> = service
                    .get_properties()
                    .iter()
                    .map(|p| {
                        (
                            p.key().to_owned(),
                            p.val().map(|v| String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect();
                match parse_record(&txt, service.get_port(), &socket_addrs(&service)) {
                    Ok(peer) if peer.id == self.own_id => {
                        // Our own advert comes back to us; another one with our id is worth a check.
                        if fullname != self.own_fullname || peer.addrs.iter().any(|a| a.port() != self.own_port) {
                            self.queue(DiscoveryEvent::OwnIdElsewhere(peer.addrs));
                        }
                    }
                    Ok(peer) => {
                        let id = peer.id;
                        let Outcome::Recorded(events) = self.adverts.resolved(&fullname, peer) else {
                            tracing::debug!(%fullname, "too many services; ignored");
                            return;
                        };
                        let seen = SeenService {
                            name: fullname,
                            peer: Some(id),
                            ignored: None,
                        };
                        note(&self.report, |r| r.seen(seen));
                        for event in events {
                            self.queue(event);
                        }
                    }
                    Err(reason) => {
                        tracing::debug!(%fullname, "ignoring service: {reason}");
                        let seen = SeenService {
                            name: fullname,
                            peer: None,
                            ignored: Some(reason.to_owned()),
                        };
                        note(&self.report, |r| r.seen(seen));
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                if let Some(event) = self.adverts.removed(&fullname) {
                    self.queue(event);
                }
            }
            _ => {}
        }
    }
}

async fn run(
    browse: mdns_sd::Receiver<ServiceEvent>,
    monitor: mdns_sd::Receiver<DaemonEvent>,
    tx: mpsc::Sender<DiscoveryEvent>,
    mut browser: Browser,
) {
    let report = browser.report.clone();
    loop {
        tokio::select! {
            event = browse.recv_async() => {
                let Ok(event) = event else { break };
                browser.service(event);
            }
            // Hands over what waits as the session takes it, never waiting for the session otherwise.
            permit = tx.reserve(), if !browser.pending.is_empty() => {
                let Ok(permit) = permit else { break };
                if let Some(event) = browser.pending.pop() {
                    permit.send(event);
                }
            }
            event = monitor.recv_async() => {
                let Ok(event) = event else { break };
                match event {
                    DaemonEvent::IpAdd(ip) => note(&report, |r| r.interfaces.push(format!("joined multicast group for {ip}"))),
                    DaemonEvent::IpDel(ip) => note(&report, |r| r.interfaces.push(format!("address {ip} went away"))),
                    DaemonEvent::Error(e) => {
                        tracing::debug!("mDNS: {e}");
                        note(&report, |r| r.errors.push(e.to_string()));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(entries: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn records_are_validated() {
        let id = crate::Identity::generate().peer_id();
        let addr = vec![SocketAddr::from(([10, 0, 0, 2], 4000))];
        let good = txt(&[("id", &id.to_string()), ("pv", "3"), ("dn", "Bob"), ("room", "x")]);
        let peer = parse_record(&good, 4000, &addr).unwrap();
        assert_eq!(peer.id, id);
        assert_eq!(peer.discovery_info.get("room").map(String::as_str), Some("x"));
        assert_eq!(
            parse_record(&txt(&[("pv", "3"), ("dn", "B")]), 1, &addr).unwrap_err(),
            "missing id"
        );
        assert_eq!(
            parse_record(&txt(&[("id", "zz"), ("pv", "3"), ("dn", "B")]), 1, &addr).unwrap_err(),
            "malformed id"
        );
        let v1 = txt(&[("id", &id.to_string()), ("pv", "1"), ("dn", "B")]);
        assert_eq!(parse_record(&v1, 1, &addr).unwrap_err(), "unsupported protocol version");
        let no_name = txt(&[("id", &id.to_string()), ("pv", "3"), ("dn", "")]);
        assert_eq!(parse_record(&no_name, 1, &addr).unwrap_err(), "invalid display name");
        assert_eq!(parse_record(&good, 0, &addr).unwrap_err(), "port 0");
        assert_eq!(parse_record(&good, 1, &[]).unwrap_err(), "no address");
    }

    #[test]
    fn instance_names_fit_and_differ() {
        let a = crate::Identity::generate().peer_id();
        let b = crate::Identity::generate().peer_id();
        let long = "é".repeat(31);
        assert!(instance_name(&long, &a).len() <= 63);
        assert_ne!(instance_name("Phone", &a), instance_name("Phone", &b));
    }

    #[test]
    fn pending_events_coalesce_per_peer_and_stay_bounded() {
        let a = crate::Identity::generate().peer_id();
        let b = crate::Identity::generate().peer_id();
        let found = |id: PeerId, port: u16| {
            DiscoveryEvent::Found(DiscoveredPeer {
                id,
                display_name: "x".into(),
                addrs: vec![SocketAddr::from(([10, 0, 0, 2], port))],
                discovery_info: Default::default(),
            })
        };
        let mut pending = Pending::default();
        assert!(pending.put(a, found(a, 1)));
        assert!(pending.put(b, found(b, 1)));
        assert!(pending.put(a, found(a, 2)));
        assert!(pending.put(a, DiscoveryEvent::Lost(a)));
        // One event per peer, in the order first seen, each the latest.
        assert_eq!(pending.pop(), Some(DiscoveryEvent::Lost(a)));
        assert_eq!(pending.pop(), Some(found(b, 1)));
        assert_eq!(pending.pop(), None);
        for _ in 0..MAX_PENDING_PEERS {
            let id = crate::Identity::generate().peer_id();
            assert!(pending.put(id, DiscoveryEvent::Lost(id)));
        }
        assert!(!pending.put(a, DiscoveryEvent::Lost(a)));
        assert!(pending.latest.len() == MAX_PENDING_PEERS && pending.order.len() == MAX_PENDING_PEERS);
    }
}
