//! Discovery for foreign code: implement [`ForeignDiscovery`] (Bonjour, NsdManager) or use an in-process network.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use multipeer::{Advertisement, Discovery, DiscoveryError, DiscoveryEvent, DiscoverySubscription};
use tokio::sync::mpsc;

use crate::MultipeerError;

/// What the session asks the foreign discovery to publish.
#[derive(Debug, Clone, uniffi::Record)]
pub struct LocalAdvertisement {
    /// DNS-SD type to advertise and browse, for example `_chat._udp`.
    pub service_type: String,
    /// Instance name to advertise (display name and short id).
    pub instance_name: String,
    /// Our peer id.
    pub peer_id: String,
    /// Our display name.
    pub display_name: String,
    /// The UDP port of our QUIC endpoint.
    pub port: u16,
    /// TXT record entries to publish (`id`, `pv`, `dn` and the app's discovery info).
    pub txt: HashMap<String, String>,
}

/// A peer the foreign discovery found: its TXT entries, port and addresses as resolved.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DiscoveredPeerRecord {
    /// TXT record entries as published.
    pub txt: HashMap<String, String>,
    /// Resolved addresses (IPv4 or IPv6 literals, IPv6 may carry `%scope`).
    pub addresses: Vec<String>,
    /// The port from the SRV record.
    pub port: u16,
}

/// Where a foreign discovery reports what it finds. Validation of records is done here, in Rust.
#[derive(uniffi::Object)]
pub struct DiscoverySink {
    tx: mpsc::Sender<DiscoveryEvent>,
}

#[uniffi::export]
impl DiscoverySink {
    /// Reports a resolved peer. Invalid records are refused with an error saying why.
    pub fn peer_found(&self, record: DiscoveredPeerRecord) -> Result<(), MultipeerError> {
        let txt: Vec<(String, Option<String>)> = record.txt.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let addrs: Vec<SocketAddr> = record
            .addresses
            .iter()
            .filter_map(|a| {
                let with_port = if a.contains(':') {
                    format!("[{a}]:{}", record.port)
                } else {
                    format!("{a}:{}", record.port)
                };
                with_port.parse::<SocketAddr>().ok().or_else(|| {
                    let (ip, scope) = a.split_once('%')?;
                    Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                        ip.parse().ok()?,
                        record.port,
                        0,
                        scope.parse().ok()?,
                    )))
                })
            })
            .collect();
        let peer = multipeer::discovery::parse_record(&txt, record.port, &addrs).map_err(|reason| {
            MultipeerError::Discovery {
                detail: reason.to_owned(),
            }
        })?;
        self.tx
            .try_send(DiscoveryEvent::Found(peer))
            .map_err(|e| MultipeerError::Discovery { detail: e.to_string() })
    }

    /// Reports how the platform's discovery is doing: running, refused permission, or failed (and why). The app
    /// sees it as `discovery_state_changed`.
    pub fn state_changed(&self, state: DiscoveryState) -> Result<(), MultipeerError> {
        self.tx
            .try_send(DiscoveryEvent::State(state.into()))
            .map_err(|e| MultipeerError::Discovery { detail: e.to_string() })
    }

    /// Reports that a peer's service went away.
    pub fn peer_lost(&self, peer_id: String) -> Result<(), MultipeerError> {
        let id = crate::parse_peer(&peer_id)?;
        self.tx
            .try_send(DiscoveryEvent::Lost(id))
            .map_err(|e| MultipeerError::Discovery { detail: e.to_string() })
    }
}

/// Whether discovery works.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DiscoveryState {
    /// Advertising and browsing.
    Running,
    /// Stopped by the app.
    Stopped,
    /// The platform refused it: the app lacks the local-network permission.
    PermissionDenied,
    /// It failed, and why.
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<DiscoveryState> for multipeer::DiscoveryState {
    fn from(state: DiscoveryState) -> Self {
        match state {
            DiscoveryState::Running => Self::Running,
            DiscoveryState::Stopped => Self::Stopped,
            DiscoveryState::PermissionDenied => Self::PermissionDenied,
            DiscoveryState::Failed { reason } => Self::Failed(reason),
        }
    }
}

impl From<&multipeer::DiscoveryState> for DiscoveryState {
    fn from(state: &multipeer::DiscoveryState) -> Self {
        match state {
            multipeer::DiscoveryState::Running => Self::Running,
            multipeer::DiscoveryState::Stopped => Self::Stopped,
            multipeer::DiscoveryState::PermissionDenied => Self::PermissionDenied,
            other => Self::Failed {
                reason: other.to_string(),
            },
        }
    }
}

/// A discovery implemented in Swift or Kotlin.
#[uniffi::export(with_foreign)]
pub trait ForeignDiscovery: Send + Sync {
    /// Start advertising `advertisement` and browsing its type; report peers to `sink`.
    fn start(&self, advertisement: LocalAdvertisement, sink: Arc<DiscoverySink>) -> Result<(), MultipeerError>;
    /// Stop advertising and browsing.
    fn stop(&self) -> Result<(), MultipeerError>;
}

/// Adapts a [`ForeignDiscovery`] to the session's discovery trait.
pub(crate) struct ForeignAdapter {
    foreign: Arc<dyn ForeignDiscovery>,
}

impl ForeignAdapter {
    pub(crate) fn new(foreign: Arc<dyn ForeignDiscovery>) -> Self {
        Self { foreign }
    }
}

impl Discovery for ForeignAdapter {
    fn start(&self, ad: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        let (tx, rx) = DiscoverySubscription::channel();
        let advertisement = LocalAdvertisement {
            service_type: format!("_{}._udp", ad.service_type),
            instance_name: multipeer::discovery::instance_name(&ad.display_name, &ad.id),
            peer_id: ad.id.to_string(),
            display_name: ad.display_name.clone(),
            port: ad.port,
            txt: multipeer::discovery::txt_entries(&ad).into_iter().collect(),
        };
        self.foreign
            .start(advertisement, Arc::new(DiscoverySink { tx }))
            .map_err(|e| DiscoveryError::Service(e.to_string()))?;
        let foreign = self.foreign.clone();
        Ok(DiscoverySubscription::new(rx, move || {
            if let Err(e) = foreign.stop() {
                tracing::warn!("foreign discovery failed to stop: {e}");
            }
        }))
    }
}

/// Sessions created with the same in-process network find each other (over loopback), without multicast.
#[derive(uniffi::Object, Default)]
pub struct InProcessNetwork {
    pub(crate) network: multipeer::MemoryNetwork,
}

#[uniffi::export]
impl InProcessNetwork {
    /// A new, empty network.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}
