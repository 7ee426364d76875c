//! Discovery: publish ourselves and learn which peers of the same service type are around.
//!
//! A session only sees the [`Discovery`] trait. [`MemoryDiscovery`] connects sessions in one process (tests,
//! demos); the mDNS implementation finds peers on a LAN; apps can plug in their platform's own service.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::identity::PeerId;

mod adverts;
mod mdns;
mod memory;

pub use mdns::{
    instance_name, parse_record, service_domain, txt_entries, MdnsConfig, MdnsDiscovery, MAX_TRACKED_SERVICES,
    MDNS_PORT,
};
pub use memory::{MemoryDiscovery, MemoryNetwork};

/// How many discovery events may wait for the session before an implementation must drop or wait.
pub const DISCOVERY_QUEUE: usize = 256;

/// Longest a session waits for a subscription's farewell (see [`DiscoverySubscription::stop`]).
pub const FAREWELL_LIMIT: Duration = Duration::from_millis(500);

/// What is left of a stopped subscription: resolves once the implementation has finished saying goodbye (for
/// example sent a withdrawal and its repeat). Dropping it does not cancel the goodbye.
pub type Farewell = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What a session publishes about itself (made by the session; a [`Discovery`] implementation reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Advertisement {
    /// The DNS-SD service type (for example `chat`).
    pub service_type: String,
    /// Our id.
    pub id: PeerId,
    /// Our display name.
    pub display_name: String,
    /// The UDP port of our QUIC endpoint.
    pub port: u16,
    /// The address the endpoint is bound to; unspecified means every interface.
    pub bound_addr: SocketAddr,
    /// Our discovery info.
    pub discovery_info: BTreeMap<String, String>,
}

/// A peer found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveredPeer {
    /// The id it announces (proved later by the TLS handshake).
    pub id: PeerId,
    /// The name it announces.
    pub display_name: String,
    /// Where to reach its QUIC endpoint, best first.
    pub addrs: Vec<SocketAddr>,
    /// Its discovery info.
    pub discovery_info: BTreeMap<String, String>,
}

impl DiscoveredPeer {
    /// A peer announcing `id` and `display_name`, reachable at `addrs` (best first), with no discovery info.
    pub fn new(id: PeerId, display_name: impl Into<String>, addrs: Vec<SocketAddr>) -> Self {
        Self {
            id,
            display_name: display_name.into(),
            addrs,
            discovery_info: BTreeMap::new(),
        }
    }

    /// The same, with this discovery info.
    #[must_use]
    pub fn with_discovery_info(mut self, discovery_info: BTreeMap<String, String>) -> Self {
        self.discovery_info = discovery_info;
        self
    }
}

/// A change discovery observed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryEvent {
    /// A peer of our service type appeared or changed.
    Found(DiscoveredPeer),
    /// A peer stopped advertising.
    Lost(PeerId),
    /// An advert other than ours announces our own id, at these addresses (the same identity running twice, or
    /// a forger: the session checks with a TLS handshake before it believes it).
    OwnIdElsewhere(Vec<SocketAddr>),
    /// Discovery itself changed state: it failed, was refused permission, or runs again.
    State(DiscoveryState),
}

/// Whether discovery works, as the app sees it ([`crate::Event::DiscoveryStateChanged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryState {
    /// Advertising and browsing.
    Running,
    /// Stopped by the app (not looking for peers, or disconnected).
    Stopped,
    /// The platform refused it: the app lacks the local-network permission (iOS local network privacy,
    /// Android's nearby-devices or local-network permission). Peers cannot be found until it is granted; tickets
    /// still work.
    PermissionDenied,
    /// It failed, and why (for example no usable network interface, or the platform's service failing).
    Failed(String),
}

impl fmt::Display for DiscoveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Stopped => f.write_str("stopped"),
            Self::PermissionDenied => f.write_str("permission denied"),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The advertisement cannot be published (for example it does not fit a DNS-SD record).
    #[error("cannot advertise: {0}")]
    InvalidAdvertisement(String),
    /// The underlying service failed.
    #[error("discovery service failed: {0}")]
    Service(String),
    /// The discovery service has shut down.
    #[error("discovery service has shut down")]
    Closed,
}

/// A way to publish ourselves and find peers.
///
/// [`Discovery::start`] begins advertising `advertisement` and browsing for the same service type; it runs
/// until the returned [`DiscoverySubscription`] is dropped. A session calls it again after
/// `stop_looking_for_peers` / `start_looking_for_peers`.
pub trait Discovery: Send + Sync + 'static {
    /// Starts advertising and browsing.
    fn start(&self, advertisement: Advertisement) -> Result<DiscoverySubscription, DiscoveryError>;
}

/// A service of our type that discovery saw (for diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeenService {
    /// Its DNS-SD full name (or another label of the implementation).
    pub name: String,
    /// The peer it announces, if its record was valid.
    pub peer: Option<PeerId>,
    /// Why it was ignored, if it was.
    pub ignored: Option<String>,
}

/// What a discovery implementation can tell about its state, to find out why peers are not found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryReport {
    /// Which implementation (`mdns`, `memory`, ...).
    pub implementation: String,
    /// What we advertise.
    pub advertised: Option<String>,
    /// Interface and multicast-group events (joined, address gone).
    pub interfaces: Vec<String>,
    /// Errors of the underlying service (for example a failed multicast join).
    pub errors: Vec<String>,
    /// Services of our type seen, most recent last (at most 64).
    pub seen_services: Vec<SeenService>,
}

impl DiscoveryReport {
    const KEEP: usize = 64;

    /// Records a seen service, replacing an earlier entry of the same name.
    pub fn seen(&mut self, service: SeenService) {
        self.seen_services.retain(|s| s.name != service.name);
        self.seen_services.push(service);
    }

    /// Keeps every list bounded.
    pub fn trim(&mut self) {
        for list in [&mut self.interfaces, &mut self.errors] {
            if list.len() > Self::KEEP {
                list.drain(..list.len() - Self::KEEP);
            }
        }
        if self.seen_services.len() > Self::KEEP {
            self.seen_services.drain(..self.seen_services.len() - Self::KEEP);
        }
    }
}

type ReportFn = Box<dyn Fn() -> DiscoveryReport + Send + Sync>;
type StopFn = Box<dyn FnOnce() -> Option<Farewell> + Send + Sync>;

/// A running advertisement and browse: found/lost events arrive here; dropping it stops both.
///
/// Stopping may take the implementation a moment (mDNS repeats its goodbye): [`DiscoverySubscription::stop`]
/// returns a future that waits for it, bounded by [`FAREWELL_LIMIT`]; a drop never waits, the goodbye goes on
/// without the caller.
pub struct DiscoverySubscription {
    events: mpsc::Receiver<DiscoveryEvent>,
    on_stop: Option<StopFn>,
    report: Option<ReportFn>,
}

impl DiscoverySubscription {
    /// Wraps a channel of events and what to do when the session stops the subscription.
    ///
    /// Implementations create the channel with [`DiscoverySubscription::channel`] (bounded by
    /// [`DISCOVERY_QUEUE`]).
    pub fn new(events: mpsc::Receiver<DiscoveryEvent>, on_stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            events,
            on_stop: Some(Box::new(move || {
                on_stop();
                None
            })),
            report: None,
        }
    }

    /// Like [`DiscoverySubscription::new`], for an implementation whose goodbye takes a moment: `on_stop` starts
    /// it and returns a future that resolves once it is complete. The goodbye must go on when that future is
    /// dropped unpolled (a dropped subscription does not wait for it), and should take well under
    /// [`FAREWELL_LIMIT`].
    pub fn with_farewell(
        events: mpsc::Receiver<DiscoveryEvent>,
        on_stop: impl FnOnce() -> Farewell + Send + Sync + 'static,
    ) -> Self {
        Self {
            events,
            on_stop: Some(Box::new(move || Some(on_stop()))),
            report: None,
        }
    }

    /// Attaches a way to report the implementation's state for diagnostics.
    pub fn with_report(mut self, report: impl Fn() -> DiscoveryReport + Send + Sync + 'static) -> Self {
        self.report = Some(Box::new(report));
        self
    }

    /// The implementation's report, if it gives one.
    pub fn report(&self) -> Option<DiscoveryReport> {
        self.report.as_ref().map(|r| r())
    }

    /// A bounded channel for discovery events.
    pub fn channel() -> (mpsc::Sender<DiscoveryEvent>, mpsc::Receiver<DiscoveryEvent>) {
        mpsc::channel(DISCOVERY_QUEUE)
    }

    /// The next event; `None` once the implementation has stopped.
    pub async fn next(&mut self) -> Option<DiscoveryEvent> {
        self.events.recv().await
    }

    /// Stops advertising and browsing now. The returned future resolves once the implementation's goodbye is
    /// complete, or after [`FAREWELL_LIMIT`] (await it on a Tokio runtime); dropping it does not cancel the
    /// goodbye.
    pub fn stop(mut self) -> Farewell {
        let farewell = self.on_stop.take().and_then(|stop| stop());
        Box::pin(async move {
            if let Some(farewell) = farewell {
                if tokio::time::timeout(FAREWELL_LIMIT, farewell).await.is_err() {
                    tracing::debug!("discovery farewell still going after {FAREWELL_LIMIT:?}; not waiting");
                }
            }
        })
    }
}

impl Drop for DiscoverySubscription {
    fn drop(&mut self) {
        if let Some(stop) = self.on_stop.take() {
            drop(stop());
        }
    }
}

impl fmt::Debug for DiscoverySubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoverySubscription").finish_non_exhaustive()
    }
}
