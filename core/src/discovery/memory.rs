//! Discovery between sessions of one process, for tests and demos.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{
    Advertisement, DiscoveredPeer, Discovery, DiscoveryError, DiscoveryEvent, DiscoveryReport, DiscoverySubscription,
    SeenService,
};

/// A shared in-process "network" on which [`MemoryDiscovery`] instances see each other.
///
/// ```
/// let network = multipeer::MemoryNetwork::new();
/// let discovery = network.discovery(); // give each session its own
/// # let _ = discovery;
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Registry>>,
}

#[derive(Debug, Default)]
struct Registry {
    next_key: u64,
    members: HashMap<u64, Member>,
}

#[derive(Debug)]
struct Member {
    advertisement: Advertisement,
    events: mpsc::Sender<DiscoveryEvent>,
}

impl MemoryNetwork {
    /// A new, empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// A discovery handle on this network.
    pub fn discovery(&self) -> MemoryDiscovery {
        MemoryDiscovery { network: self.clone() }
    }

    /// Announces an arbitrary advertisement, as a misbehaving or remote peer might. Returns a guard that
    /// withdraws it when dropped.
    pub fn announce(&self, advertisement: Advertisement) -> DiscoverySubscription {
        self.join(advertisement)
    }

    fn join(&self, advertisement: Advertisement) -> DiscoverySubscription {
        let (tx, rx) = DiscoverySubscription::channel();
        let key = {
            let mut registry = lock(&self.inner);
            let key = registry.next_key;
            registry.next_key += 1;
            for other in registry.members.values() {
                if other.advertisement.service_type != advertisement.service_type
                    || other.advertisement.id == advertisement.id
                {
                    continue;
                }
                deliver(&other.events, DiscoveryEvent::Found(found(&advertisement)));
                deliver(&tx, DiscoveryEvent::Found(found(&other.advertisement)));
            }
            registry.members.insert(
                key,
                Member {
                    advertisement,
                    events: tx,
                },
            );
            key
        };
        let network = self.inner.clone();
        let view = self.inner.clone();
        let report = move || {
            let registry = lock(&view);
            let mut report = DiscoveryReport {
                implementation: "memory".into(),
                ..DiscoveryReport::default()
            };
            for (other_key, member) in &registry.members {
                if *other_key == key {
                    report.advertised = Some(format!("{:?}", member.advertisement));
                } else {
                    report.seen(SeenService {
                        name: member.advertisement.display_name.clone(),
                        peer: Some(member.advertisement.id),
                        ignored: None,
                    });
                }
            }
            report.trim();
            report
        };
        DiscoverySubscription::new(rx, move || {
            let mut registry = lock(&network);
            if let Some(gone) = registry.members.remove(&key) {
                for other in registry.members.values() {
                    if other.advertisement.service_type == gone.advertisement.service_type {
                        deliver(&other.events, DiscoveryEvent::Lost(gone.advertisement.id));
                    }
                }
            }
        })
        .with_report(report)
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    // The registry holds no invariant a panic could break halfway.
    registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn deliver(to: &mpsc::Sender<DiscoveryEvent>, event: DiscoveryEvent) {
    if let Err(e) = to.try_send(event) {
        tracing::warn!("memory discovery: event dropped: {e}");
    }
}

fn found(ad: &Advertisement) -> DiscoveredPeer {
    let ip = if ad.bound_addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ad.bound_addr.ip()
    };
    DiscoveredPeer {
        id: ad.id,
        display_name: ad.display_name.clone(),
        addrs: vec![SocketAddr::new(ip, ad.port)],
        discovery_info: ad.discovery_info.clone(),
    }
}

/// In-process discovery: every session started with a handle from the same [`MemoryNetwork`] sees the others
/// of its service type, at the address its endpoint is bound to (loopback when bound to all interfaces).
#[derive(Debug, Clone)]
pub struct MemoryDiscovery {
    network: MemoryNetwork,
}

impl Discovery for MemoryDiscovery {
    fn start(&self, advertisement: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        Ok(self.network.join(advertisement))
    }
}
