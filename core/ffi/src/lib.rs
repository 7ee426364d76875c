//! UniFFI bindings of `multipeer` for Swift and Kotlin.
//!
//! This is the only place that exports to foreign languages; it adapts the Rust API and re-implements
//! nothing. Callbacks of the foreign [`SessionDelegate`] arrive one at a time, in order, on one dedicated
//! thread per session (never the caller's, never the UI thread: hop to your main thread yourself). Messages
//! wait in a queue bounded in bytes ([`multipeer::EVENT_BYTES_PER_PEER`] per peer); a slow callback holds back
//! further messages (and, through QUIC flow control, the senders) but never blocks the session's network work
//! or its membership events. A callback that throws is
//! logged and ignored. Decisions the app takes time over (an [`Invitation`], a [`ResourceOffer`]) arrive as
//! objects it keeps and answers later, from any thread.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use multipeer::{Event, Reliability, To};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

mod discovery;
mod error;
mod log;
mod pending;
mod resource;
mod stream;

pub use discovery::{
    DiscoveredPeerRecord, DiscoverySink, DiscoveryState, ForeignDiscovery, InProcessNetwork, LocalAdvertisement,
};
pub use error::MultipeerError;
pub use log::{clear_log_sink, set_log_sink, LogLevel, LogRecord, LogSink};
pub use pending::{Invitation, InvitationMode, ResourceAcceptance, ResourceOffer};
pub use resource::{RefusalReason, ResourceProgress, ResourceResult, ResourceTransfer};
pub use stream::{DuplexStream, OutgoingStream};

uniffi::setup_scaffolding!();

/// Session configuration; validated like the Rust `SessionConfig`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SessionConfig {
    /// DNS-SD service type, 1-15 characters of a-z, 0-9 and '-'.
    pub service_type: String,
    /// The name other peers see (1-63 bytes).
    pub display_name: String,
    /// Most peers including this one, 2..=8.
    #[uniffi(default = 8)]
    pub max_peers: u8,
    /// Key/value pairs published with discovery.
    pub discovery_info: HashMap<String, String>,
    /// JSON every peer receives when it connects.
    #[uniffi(default = None)]
    pub initial_data_json: Option<String>,
    /// A saved identity ([`generate_identity`]); a fresh one if absent.
    #[uniffi(default = None)]
    pub identity: Option<Vec<u8>>,
    /// Admission passphrase.
    #[uniffi(default = None)]
    pub passphrase: Option<String>,
    /// Idle timeout in milliseconds (default 5000).
    #[uniffi(default = None)]
    pub idle_timeout_ms: Option<u64>,
    /// Congestion controller: Cubic (default) is fastest on clean links; BBR keeps lossy Wi-Fi fast.
    #[uniffi(default = None)]
    pub congestion_control: Option<CongestionControl>,
    /// Who decides that an offered resource is received: `Auto` (default) or `Manual` (`resource_offered`).
    #[uniffi(default = None)]
    pub resource_acceptance: Option<ResourceAcceptance>,
    /// Directory received resources (files) are saved in. It must be private to the app's user (owned by it, not
    /// writable by group or others); a missing one is created with mode 0700. Default: a per-user data directory
    /// (`$XDG_DATA_HOME/multipeer/resources` and the like); apps should choose a directory of their own container.
    #[uniffi(default = None)]
    pub resource_directory: Option<String>,
    /// Largest resource accepted from a peer, in bytes (default 4 GiB); larger offers are refused as too large
    /// before the app is asked (`resource_offered`).
    #[uniffi(default = None)]
    pub max_resource_size: Option<u64>,
    /// Most bytes one peer may place in the resource directory during a session (default 16 GiB); offers beyond
    /// it are refused as too large.
    #[uniffi(default = None)]
    pub max_resource_bytes_per_peer: Option<u64>,
    /// How long an interrupted transfer waits for its peer to come back and resume, in milliseconds; after that
    /// both ends report it failed.
    #[uniffi(default = None)]
    pub resume_window_ms: Option<u64>,
    /// Whether a received resource replaces an existing file of the same name (default `false`: it is saved as
    /// `name (1).ext`, `name (2).ext`, ...).
    #[uniffi(default = false)]
    pub overwrite_resources: bool,
    /// Who decides that a peer joins: `Auto` (default) or `Manual` (`invite` and `invitation_received`).
    #[uniffi(default = None)]
    pub invitation_mode: Option<InvitationMode>,
    /// How long an invitation or a resource offer waits for this app's answer before it is declined, in
    /// milliseconds (default 30000, at most 60000).
    #[uniffi(default = None)]
    pub answer_timeout_ms: Option<u64>,
}

/// QUIC congestion controller of a session's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CongestionControl {
    /// Loss-based; best throughput on clean links (the default).
    Cubic,
    /// Model-based; keeps throughput up on lossy links such as busy Wi-Fi.
    Bbr,
}

impl From<CongestionControl> for multipeer::CongestionControl {
    fn from(c: CongestionControl) -> Self {
        match c {
            CongestionControl::Cubic => Self::Cubic,
            CongestionControl::Bbr => Self::Bbr,
        }
    }
}

/// A peer discovery sees nearby, in the session or not (what it announces; unproved until it joins).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NearbyPeerInfo {
    /// Its id (64 hex characters).
    pub id: String,
    /// A 10-character form of the id, for display.
    pub short_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its discovery info.
    pub discovery_info: HashMap<String, String>,
}

impl From<&multipeer::NearbyPeer> for NearbyPeerInfo {
    fn from(p: &multipeer::NearbyPeer) -> Self {
        Self {
            id: p.id.to_string(),
            short_id: p.id.short(),
            display_name: p.display_name.clone(),
            discovery_info: p.discovery_info.clone().into_iter().collect(),
        }
    }
}

/// A peer in the session.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PeerInfo {
    /// Its id (64 hex characters).
    pub id: String,
    /// A 10-character form of the id, for display.
    pub short_id: String,
    /// Its display name.
    pub display_name: String,
    /// Its discovery info.
    pub discovery_info: HashMap<String, String>,
    /// Its initial data, as JSON.
    pub initial_data_json: String,
}

impl From<&multipeer::Peer> for PeerInfo {
    fn from(p: &multipeer::Peer) -> Self {
        Self {
            id: p.id.to_string(),
            short_id: p.id.short(),
            display_name: p.display_name.clone(),
            discovery_info: p.discovery_info.clone().into_iter().collect(),
            initial_data_json: p.initial_data.to_string(),
        }
    }
}

/// Receives a session's events (a Kotlin interface / Swift protocol).
#[uniffi::export(with_foreign)]
pub trait SessionDelegate: Send + Sync {
    /// Discovery found a peer nearby (or what it announces changed), whether or not it joins.
    fn peer_found(&self, peer: NearbyPeerInfo) -> Result<(), MultipeerError>;
    /// A peer found earlier stopped advertising.
    fn peer_lost(&self, peer: NearbyPeerInfo) -> Result<(), MultipeerError>;
    /// A peer invites us (manual invitation mode only): keep `invitation` and accept or decline it, now or once
    /// the user decided.
    fn invitation_received(&self, invitation: Arc<Invitation>) -> Result<(), MultipeerError>;
    /// A peer joined.
    fn peer_added(&self, peer: PeerInfo) -> Result<(), MultipeerError>;
    /// A peer left; `reason` says why (for example "left", "timed out").
    fn peer_removed(&self, peer: PeerInfo, reason: String) -> Result<(), MultipeerError>;
    /// A message arrived.
    fn received(&self, peer: String, data: Vec<u8>, reliable: bool) -> Result<(), MultipeerError>;
    /// A chunk of a named incoming stream arrived (in order).
    fn stream_data(&self, peer: String, name: String, data: Vec<u8>) -> Result<(), MultipeerError>;
    /// A named incoming stream ended: `error` is `None` when it was finished cleanly.
    fn stream_finished(&self, peer: String, name: String, error: Option<String>) -> Result<(), MultipeerError>;
    /// A peer opened a two-way named stream with us: read and write it on any thread; releasing it resets it.
    fn duplex_stream_received(&self, stream: Arc<DuplexStream>) -> Result<(), MultipeerError>;
    /// Discovery started, stopped, failed (for example the platform's service failed) or was refused permission.
    fn discovery_state_changed(&self, state: DiscoveryState) -> Result<(), MultipeerError>;
    /// The session ended (`reason`: "shut down", or "released without shutdown"); no call follows.
    fn session_ended(&self, reason: String) -> Result<(), MultipeerError>;
    /// A connection failed before the peer joined.
    fn connection_failed(&self, peer: String, reason: String) -> Result<(), MultipeerError>;
    /// A peer started sending us a resource (a file); `transfer` reports progress and can cancel it. It ends with
    /// `resource_finished` (not repeated when an interrupted transfer resumes).
    fn resource_started(&self, transfer: Arc<ResourceTransfer>) -> Result<(), MultipeerError>;
    /// A resource from a peer finished: saved complete and verified at `path` (then `error` is `None`), or failed
    /// with `error` (then `path` is `None`, and a partial file has been deleted).
    fn resource_finished(
        &self,
        transfer: Arc<ResourceTransfer>,
        path: Option<String>,
        error: Option<MultipeerError>,
    ) -> Result<(), MultipeerError>;
    /// A peer offers a resource (resource acceptance `Manual` only; offers above `max_resource_size` or the
    /// per-peer quota are refused before): keep `offer` and accept or decline it once the user decided.
    fn resource_offered(&self, offer: Arc<ResourceOffer>) -> Result<(), MultipeerError>;
}

/// Generates a new identity to save; pass it back in [`SessionConfig::identity`] to keep the same id.
#[uniffi::export]
pub fn generate_identity() -> Vec<u8> {
    multipeer::Identity::generate().to_pkcs8_der()
}

/// The peer id of a saved identity.
#[uniffi::export]
pub fn identity_peer_id(identity: Vec<u8>) -> Result<String, MultipeerError> {
    Ok(multipeer::Identity::from_pkcs8_der(&identity)?.peer_id().to_string())
}

fn build_config(config: SessionConfig) -> Result<multipeer::SessionConfig, MultipeerError> {
    let mut builder = multipeer::SessionConfig::builder(config.service_type, config.display_name)
        .max_peers(usize::from(config.max_peers));
    for (k, v) in config.discovery_info {
        builder = builder.discovery_info(k, v);
    }
    if let Some(json) = config.initial_data_json {
        let value = serde_json::from_str(&json).map_err(|e| MultipeerError::InvalidConfig {
            detail: format!("initial data is not JSON: {e}"),
        })?;
        builder = builder.initial_data(value);
    }
    if let Some(identity) = config.identity {
        builder = builder.identity(multipeer::Identity::from_pkcs8_der(&identity)?);
    }
    if let Some(passphrase) = config.passphrase {
        builder = builder.passphrase(passphrase);
    }
    if let Some(ms) = config.idle_timeout_ms {
        builder = builder.idle_timeout(Duration::from_millis(ms));
    }
    if let Some(congestion_control) = config.congestion_control {
        builder = builder.congestion_control(congestion_control.into());
    }
    if let Some(directory) = config.resource_directory {
        builder = builder.resource_directory(directory);
    }
    if let Some(bytes) = config.max_resource_size {
        builder = builder.max_resource_size(bytes);
    }
    if let Some(bytes) = config.max_resource_bytes_per_peer {
        builder = builder.max_resource_bytes_per_peer(bytes);
    }
    if let Some(ms) = config.resume_window_ms {
        builder = builder.resume_window(Duration::from_millis(ms));
    }
    builder = builder.overwrite_resources(config.overwrite_resources);
    if let Some(mode) = config.invitation_mode {
        builder = builder.invitation_mode(mode.into());
    }
    if let Some(acceptance) = config.resource_acceptance {
        builder = builder.resource_acceptance(acceptance.into());
    }
    if let Some(ms) = config.answer_timeout_ms {
        builder = builder.answer_timeout(Duration::from_millis(ms));
    }
    Ok(builder.build()?)
}

fn parse_peer(id: &str) -> Result<multipeer::PeerId, MultipeerError> {
    id.parse()
        .map_err(|_| MultipeerError::InvalidPeerId { id: id.to_owned() })
}

/// Which discovery a session uses.
enum DiscoveryChoice {
    Mdns,
    InProcess(Arc<InProcessNetwork>),
    Foreign(Arc<dyn ForeignDiscovery>),
}

/// How long releasing a session that was not shut down waits for its goodbye.
const DROP_SHUTDOWN: Duration = Duration::from_secs(1);

/// A multipeer session. Create it with a config and a delegate; call [`Session::shutdown`] when done.
///
/// Releasing it (Kotlin `close()`, Swift `deinit`, Python garbage collection) without `shutdown` shuts it
/// down too: peers see it leave ("left"). The release then waits up to a second for the goodbye.
#[derive(uniffi::Object)]
pub struct Session {
    runtime: Arc<tokio::runtime::Runtime>,
    session: multipeer::Session,
}

impl Drop for Session {
    /// Shuts the session down on its runtime before the runtime goes (which would cancel the goodbye).
    fn drop(&mut self) {
        if self.session.is_closed() {
            return;
        }
        let session = self.session.clone();
        let runtime = &self.runtime;
        let shutdown = move || {
            runtime.block_on(async move {
                if tokio::time::timeout(DROP_SHUTDOWN, session.shutdown()).await.is_err() {
                    tracing::warn!("session released without shutdown: the goodbye took too long");
                }
            });
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Released inside an async context, where `block_on` is not allowed: wait from a thread of its own.
            std::thread::scope(|scope| {
                let _ = scope.spawn(shutdown).join();
            });
        } else {
            shutdown();
        }
    }
}

impl Session {
    /// The session's runtime and builder.
    fn prepare(
        config: SessionConfig,
        discovery: DiscoveryChoice,
    ) -> Result<(Arc<tokio::runtime::Runtime>, multipeer::SessionBuilder), MultipeerError> {
        let config = build_config(config)?;
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("multipeer")
                .enable_all()
                .build()
                .map_err(|e| MultipeerError::Start { detail: e.to_string() })?,
        );
        let builder = multipeer::Session::builder(config);
        let builder = match discovery {
            DiscoveryChoice::Mdns => builder,
            DiscoveryChoice::InProcess(network) => builder.discovery(network.network.discovery()),
            DiscoveryChoice::Foreign(foreign) => builder.discovery(discovery::ForeignAdapter::new(foreign)),
        };
        Ok((runtime, builder))
    }

    /// Starts a session, blocking the calling thread while it binds its socket and starts discovery.
    fn start(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        discovery: DiscoveryChoice,
    ) -> Result<Arc<Self>, MultipeerError> {
        let (runtime, builder) = Self::prepare(config, discovery)?;
        let (session, events) = runtime.block_on(builder.start_with_events())?;
        spawn_delegate(&runtime, events, delegate);
        Ok(Arc::new(Self { runtime, session }))
    }

    /// Starts a session without blocking the caller: the work runs on the session's own runtime.
    async fn start_async(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        discovery: DiscoveryChoice,
    ) -> Result<Arc<Self>, MultipeerError> {
        let (runtime, builder) = Self::prepare(config, discovery)?;
        let started = runtime.spawn(builder.start_with_events()).await;
        match started {
            Ok(Ok((session, events))) => {
                spawn_delegate(&runtime, events, delegate);
                Ok(Arc::new(Self { runtime, session }))
            }
            failed => {
                // A runtime may not be dropped inside an async context: let it go on a thread of its own.
                std::thread::spawn(move || drop(runtime));
                Err(match failed {
                    Ok(Err(e)) => e.into(),
                    _ => MultipeerError::Start {
                        detail: "the session's runtime stopped".into(),
                    },
                })
            }
        }
    }

    async fn on_runtime<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, MultipeerError>> + Send + 'static,
    ) -> Result<T, MultipeerError> {
        self.runtime
            .spawn(work)
            .await
            .map_err(|_| MultipeerError::SessionClosed)?
    }
}

/// Calls waiting for the foreign delegate's thread: few, so that messages wait in the session's byte-bounded queue
/// rather than here.
const DELEGATE_QUEUE: usize = 16;

/// Pumps events to the foreign delegate on one dedicated thread; incoming streams are read on the runtime and
/// their chunks delivered through the same ordered queue.
fn spawn_delegate(
    runtime: &Arc<tokio::runtime::Runtime>,
    mut events: multipeer::Events,
    delegate: Arc<dyn SessionDelegate>,
) {
    enum Call {
        Event(Event),
        StreamData(String, String, Vec<u8>),
        StreamFinished(String, String, Option<String>),
    }
    let (tx, mut rx) = mpsc::channel::<Call>(DELEGATE_QUEUE);
    let streams_runtime = runtime.clone();
    runtime.spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Stream(mut stream) = event {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (peer, name) = (stream.peer().to_string(), stream.name().to_owned());
                    let mut buf = vec![0u8; 64 * 1024];
                    let error = loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => break None,
                            Ok(n) => {
                                let call = Call::StreamData(peer.clone(), name.clone(), buf[..n].to_vec());
                                if tx.send(call).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => break Some(e.to_string()),
                        }
                    };
                    let _ = tx.send(Call::StreamFinished(peer, name, error)).await;
                });
            } else if tx.send(Call::Event(event)).await.is_err() {
                break;
            }
        }
    });
    let spawned = std::thread::Builder::new()
        .name("multipeer-delegate".into())
        .spawn(move || {
            while let Some(call) = rx.blocking_recv() {
                let result = match call {
                    Call::Event(Event::PeerFound(peer)) => delegate.peer_found(NearbyPeerInfo::from(&peer)),
                    Call::Event(Event::PeerLost(peer)) => delegate.peer_lost(NearbyPeerInfo::from(&peer)),
                    Call::Event(Event::Invitation(pending)) => {
                        delegate.invitation_received(Arc::new(Invitation::new(pending)))
                    }
                    Call::Event(Event::PeerAdded(peer)) => delegate.peer_added(PeerInfo::from(&peer)),
                    Call::Event(Event::PeerRemoved { peer, reason }) => {
                        delegate.peer_removed(PeerInfo::from(&peer), reason.to_string())
                    }
                    Call::Event(Event::Message(m)) => delegate.received(
                        m.peer.to_string(),
                        m.data.to_vec(),
                        m.reliability == Reliability::Reliable,
                    ),
                    Call::Event(Event::ConnectionFailed { peer, reason }) => {
                        delegate.connection_failed(peer.to_string(), reason.to_string())
                    }
                    Call::Event(Event::DiscoveryStateChanged(state)) => {
                        delegate.discovery_state_changed(DiscoveryState::from(&state))
                    }
                    Call::Event(Event::SessionEnded(reason)) => delegate.session_ended(reason.to_string()),
                    Call::Event(Event::DuplexStream(stream)) => {
                        let stream = DuplexStream::new(streams_runtime.clone(), stream);
                        delegate.duplex_stream_received(Arc::new(stream))
                    }
                    Call::Event(Event::ResourceOffered(offer)) => {
                        delegate.resource_offered(Arc::new(ResourceOffer::new(offer)))
                    }
                    Call::Event(Event::ResourceStarted(transfer)) => {
                        delegate.resource_started(Arc::new(ResourceTransfer::new(transfer)))
                    }
                    Call::Event(Event::ResourceFinished { transfer, result }) => {
                        let (path, error) = match result {
                            Ok(path) => (Some(path.to_string_lossy().into_owned()), None),
                            Err(e) => (None, Some(MultipeerError::from(e))),
                        };
                        delegate.resource_finished(Arc::new(ResourceTransfer::new(transfer)), path, error)
                    }
                    Call::Event(_) => Ok(()),
                    Call::StreamData(peer, name, data) => delegate.stream_data(peer, name, data),
                    Call::StreamFinished(peer, name, error) => delegate.stream_finished(peer, name, error),
                };
                if let Err(e) = result {
                    tracing::warn!("session delegate callback failed: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the delegate thread: {e}");
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Session {
    /// Starts a session that finds peers with mDNS (the built-in discovery).
    #[uniffi::constructor]
    pub fn new(config: SessionConfig, delegate: Arc<dyn SessionDelegate>) -> Result<Arc<Self>, MultipeerError> {
        Self::start(config, delegate, DiscoveryChoice::Mdns)
    }

    /// Starts a session whose discovery is implemented by the app (for example Bonjour on Apple platforms
    /// through Network.framework, or Android's NsdManager).
    #[uniffi::constructor]
    pub fn with_discovery(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        discovery: Arc<dyn ForeignDiscovery>,
    ) -> Result<Arc<Self>, MultipeerError> {
        Self::start(config, delegate, DiscoveryChoice::Foreign(discovery))
    }

    /// Starts a session that only sees sessions on the same in-process network (tests, demos).
    #[uniffi::constructor]
    pub fn in_process(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        network: Arc<InProcessNetwork>,
    ) -> Result<Arc<Self>, MultipeerError> {
        Self::start(config, delegate, DiscoveryChoice::InProcess(network))
    }

    /// Like `new`, without blocking the caller (Kotlin `suspend`, Swift `async`): use it from a UI thread.
    #[uniffi::constructor]
    pub async fn create(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
    ) -> Result<Arc<Self>, MultipeerError> {
        Self::start_async(config, delegate, DiscoveryChoice::Mdns).await
    }

    /// Like `with_discovery`, without blocking the caller.
    #[uniffi::constructor]
    pub async fn create_with_discovery(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        discovery: Arc<dyn ForeignDiscovery>,
    ) -> Result<Arc<Self>, MultipeerError> {
        Self::start_async(config, delegate, DiscoveryChoice::Foreign(discovery)).await
    }

    /// Like `in_process`, without blocking the caller.
    #[uniffi::constructor]
    pub async fn create_in_process(
        config: SessionConfig,
        delegate: Arc<dyn SessionDelegate>,
        network: Arc<InProcessNetwork>,
    ) -> Result<Arc<Self>, MultipeerError> {
        Self::start_async(config, delegate, DiscoveryChoice::InProcess(network)).await
    }

    /// The local peer.
    pub fn local_peer(&self) -> PeerInfo {
        PeerInfo::from(self.session.local_peer())
    }

    /// Peers discovery sees nearby now, in the session or not, ordered by id.
    pub fn nearby(&self) -> Vec<NearbyPeerInfo> {
        self.session.nearby().iter().map(NearbyPeerInfo::from).collect()
    }

    /// Invites a nearby peer into this session with `context` for its app to judge the invitation by (at most
    /// 1024 bytes). Returns once it joined; throws `InvitationDeclined`, `InvitationTimedOut`, `NotNearby` or
    /// why the connection failed. In manual mode this is the only way peers outside the session are dialed.
    pub async fn invite(&self, peer: String, context: Option<Vec<u8>>) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        self.on_runtime(async move { Ok(session.invite(peer, context).await?) })
            .await
    }

    /// The connected peers, ordered by id.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.session.peers().iter().map(PeerInfo::from).collect()
    }

    /// A 6-digit code both ends of the connection to `peer` compute alike (bound to the TLS session and both
    /// keys): show it on both screens so users can compare. `None` when `peer` is not connected.
    pub fn verification_code(&self, peer: String) -> Result<Option<String>, MultipeerError> {
        Ok(self.session.verification_code(parse_peer(&peer)?))
    }

    /// Sends `data` to the peers in `to` (empty: every connected peer), reliably or as a datagram.
    pub async fn send(&self, data: Vec<u8>, to: Vec<String>, reliable: bool) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        let to = if to.is_empty() {
            To::All
        } else {
            To::Peers(to.iter().map(|id| parse_peer(id)).collect::<Result<_, _>>()?)
        };
        let reliability = if reliable {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        };
        self.on_runtime(async move { Ok(session.send(data, to, reliability).await?) })
            .await
    }

    /// Opens a named byte stream to a peer.
    pub async fn open_stream(&self, name: String, peer: String) -> Result<Arc<OutgoingStream>, MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        let stream = self
            .on_runtime(async move { Ok(session.stream(&name, peer).await?) })
            .await?;
        Ok(Arc::new(OutgoingStream::new(self.runtime.clone(), stream)))
    }

    /// Opens a two-way named stream with a peer (for example one forwarded TCP connection); the peer gets it
    /// as `duplex_stream_received`.
    pub async fn open_duplex_stream(&self, name: String, peer: String) -> Result<Arc<DuplexStream>, MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        let stream = self
            .on_runtime(async move { Ok(session.duplex_stream(&name, peer).await?) })
            .await?;
        Ok(Arc::new(DuplexStream::new(self.runtime.clone(), stream)))
    }

    /// Sends the file at `path` to `peer` as a resource called `name` (1-255 bytes; the receiver saves it under
    /// a sanitized form of it). Returns once the transfer has started, with a handle for progress, cancellation
    /// and the outcome ([`ResourceTransfer::finished`]); several transfers may run at once. A transfer cut off by
    /// a lost connection resumes where it stopped when the peer is back within the resume window.
    pub async fn send_resource(
        &self,
        path: String,
        name: String,
        peer: String,
    ) -> Result<Arc<ResourceTransfer>, MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        let transfer = self
            .on_runtime(async move { Ok(session.send_resource(path, &name, peer).await?) })
            .await?;
        Ok(Arc::new(ResourceTransfer::new(transfer)))
    }

    /// Stops advertising, browsing and admitting new peers; connected peers stay.
    pub async fn stop_looking_for_peers(&self) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        self.on_runtime(async move { Ok(session.stop_looking_for_peers().await?) })
            .await
    }

    /// Looks for peers again.
    pub async fn start_looking_for_peers(&self) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        self.on_runtime(async move { Ok(session.start_looking_for_peers().await?) })
            .await
    }

    /// Expels a peer and keeps it out.
    pub async fn remove_peer(&self, peer: String) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        self.on_runtime(async move { Ok(session.remove_peer(peer).await.map(drop)?) })
            .await
    }

    /// Lets a peer removed with `remove_peer` join again.
    pub async fn allow_peer(&self, peer: String) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        let peer = parse_peer(&peer)?;
        self.on_runtime(async move { Ok(session.allow_peer(peer).await?) })
            .await
    }

    /// A ticket other devices can use to join without mDNS.
    pub fn ticket(&self) -> String {
        self.session.ticket().to_string()
    }

    /// Invites the peer a ticket describes.
    pub async fn connect_ticket(&self, ticket: String) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        let ticket: multipeer::Ticket = ticket.parse()?;
        self.on_runtime(async move { Ok(session.connect_ticket(&ticket).await?) })
            .await
    }

    /// Leaves the session; others see it at once.
    pub async fn disconnect(&self) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        self.on_runtime(async move { Ok(session.disconnect().await?) }).await
    }

    /// Leaves and releases everything. Later calls fail with `SessionClosed`.
    pub async fn shutdown(&self) -> Result<(), MultipeerError> {
        let session = self.session.clone();
        self.on_runtime(async move { Ok(session.shutdown().await?) }).await
    }

    /// A human-readable report of interfaces, discovery and connection attempts.
    pub async fn diagnostics(&self) -> Result<String, MultipeerError> {
        let session = self.session.clone();
        self.on_runtime(async move { Ok(session.diagnostics().await?.to_string()) })
            .await
    }
}
