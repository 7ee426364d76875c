//! The session: a cheap handle over one background task that owns the mesh.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

mod actor;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod events;
mod farewell;
mod handshake;
mod host;
mod invite;
mod invites;
mod queue;
pub(crate) mod stream;
mod twin;
mod writer;

use self::actor::{Actor, Command};
use self::conn::{Admission, ConnCtx};
use self::error::{InviteError, LookingError, SendError, SendJsonError, SessionClosed, StartError, StreamError};
use self::events::{Events, Invitation, NearbyPeer, Peer, Reliability, SessionDelegate};
use self::stream::{DuplexStream, OutgoingStream};
use self::writer::ControlWriter;
use crate::config::SessionConfig;
use crate::diagnostics::Diagnostics;
use crate::discovery::{Advertisement, DiscoveredPeer, Discovery, MdnsDiscovery};
use crate::identity::PeerId;
use crate::proto::frame::{self, Hello, FRAME_MESSAGE, MAX_MESSAGE_LEN};
use crate::proto::mesh::Mesh;
use crate::proto::PROTOCOL_VERSION;
use crate::resource::recv::ResourceFilter;
use crate::resource::{Direction, Hub, ResourceId, ResourceOffer, ResourceTransfer, SendResourceError, TransferState};
use crate::ticket::{ConnectTicketError, Ticket};
use crate::tls::{self, ClientIdentity};

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// Every connected peer.
    All,
    /// One peer.
    Peer(PeerId),
    /// Some peers.
    Peers(Vec<PeerId>),
}

impl From<PeerId> for To {
    fn from(peer: PeerId) -> Self {
        To::Peer(peer)
    }
}

impl From<Vec<PeerId>> for To {
    fn from(peers: Vec<PeerId>) -> Self {
        To::Peers(peers)
    }
}

impl From<&[PeerId]> for To {
    fn from(peers: &[PeerId]) -> Self {
        To::Peers(peers.to_vec())
    }
}

/// An established link to a peer, shared with the session handles for fast sends.
pub(crate) struct Link {
    pub(crate) peer: Peer,
    pub(crate) conn: quinn::Connection,
    pub(crate) control: Arc<ControlWriter>,
    /// The committed pairing code of this connection.
    pub(crate) pairing_code: String,
    /// Closes the connection's data lane when the peer is removed.
    pub(crate) lane: events::LaneGate,
}

/// State the actor writes and the handles read.
pub(crate) struct Shared {
    links: RwLock<HashMap<PeerId, Arc<Link>>>,
    closed: AtomicBool,
    /// The session's task has said goodbye and closed the endpoint.
    shut_down: AtomicBool,
    /// Bumped whenever a link is added (and at shutdown), for tasks waiting for a peer to come back.
    links_changed: tokio::sync::watch::Sender<u64>,
    /// Peers discovery reports (and peers the app added with a ticket), written by the session's task only.
    nearby: RwLock<HashMap<PeerId, DiscoveredPeer>>,
}

impl Shared {
    fn links(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PeerId, Arc<Link>>> {
        self.links.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert_link(&self, peer: PeerId, link: Arc<Link>) {
        self.links
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, link);
        self.notify_links_changed();
    }

    pub(crate) fn notify_links_changed(&self) {
        self.links_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe_links(&self) -> tokio::sync::watch::Receiver<u64> {
        self.links_changed.subscribe()
    }

    pub(crate) fn remove_link(&self, peer: &PeerId) -> Option<Arc<Link>> {
        self.links.write().unwrap_or_else(PoisonError::into_inner).remove(peer)
    }

    /// Records a found peer; whether its name or info is new or changed (worth telling the app).
    pub(crate) fn found(&self, peer: DiscoveredPeer) -> bool {
        let mut nearby = self.nearby.write().unwrap_or_else(PoisonError::into_inner);
        let changed = nearby
            .get(&peer.id)
            .is_none_or(|old| old.display_name != peer.display_name || old.discovery_info != peer.discovery_info);
        nearby.insert(peer.id, peer);
        changed
    }

    /// Forgets a lost peer, returning what it was.
    pub(crate) fn lost(&self, peer: &PeerId) -> Option<DiscoveredPeer> {
        self.nearby.write().unwrap_or_else(PoisonError::into_inner).remove(peer)
    }

    /// Forgets every nearby peer, returning them.
    pub(crate) fn clear_nearby(&self) -> Vec<DiscoveredPeer> {
        let mut nearby = self.nearby.write().unwrap_or_else(PoisonError::into_inner);
        nearby.drain().map(|(_, p)| p).collect()
    }

    /// A nearby peer, as discovered.
    pub(crate) fn nearby_peer(&self, peer: &PeerId) -> Option<DiscoveredPeer> {
        self.nearby
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .cloned()
    }

    fn nearby(&self) -> Vec<NearbyPeer> {
        let nearby = self.nearby.read().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<NearbyPeer> = nearby.values().map(nearby_peer).collect();
        list.sort_by_key(|p| p.id);
        list
    }

    pub(crate) fn peer_ids(&self) -> Vec<PeerId> {
        self.links().keys().copied().collect()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Called by the session's task once the goodbyes are said and the endpoint is idle.
    pub(crate) fn set_shut_down(&self) {
        self.shut_down.store(true, Ordering::Release);
    }

    fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn link(&self, peer: &PeerId) -> Option<Arc<Link>> {
        self.links().get(peer).cloned()
    }

    /// Calls `f` with each recipient `to` names and its link, if connected, under the links' lock (`f` must not
    /// block). A peer listed twice in [`To::Peers`] comes once.
    fn each_recipient(&self, to: To, mut f: impl FnMut(PeerId, Option<&Arc<Link>>)) {
        let links = self.links();
        match to {
            To::All => links.iter().for_each(|(id, link)| f(*id, Some(link))),
            To::Peer(id) => f(id, links.get(&id)),
            To::Peers(ids) => {
                let mut seen = std::collections::HashSet::with_capacity(ids.len());
                for id in ids.into_iter().filter(|id| seen.insert(*id)) {
                    f(id, links.get(&id));
                }
            }
        }
    }

    fn all_links(&self) -> Vec<Arc<Link>> {
        self.links().values().cloned().collect()
    }
}

struct Handle {
    /// The runtime the session runs on, for the goodbye when the last handle is dropped.
    runtime: tokio::runtime::Handle,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    resources: Arc<Hub>,
    local: Peer,
    local_addr: SocketAddr,
    service_type: String,
    answer_timeout: Duration,
}

impl Drop for Handle {
    /// The last handle is gone: the session's task shuts down once it sees the command channel close, but
    /// if the runtime stops right after (`main` returning) it never gets to, so say goodbye here.
    fn drop(&mut self) {
        farewell::on_last_drop(&self.runtime, &self.shared);
    }
}

/// A multipeer session: the local peer and the peers connected to it.
///
/// `Session` is a cheap handle: clone it freely. The session runs on the Tokio runtime it was started on
/// until [`Session::shutdown`], until the last handle is dropped, or until its [`Events`] are dropped; each
/// shuts it down, saying goodbye to every peer (they see [`crate::RemovalReason::Left`]), closing the socket
/// and ending every task and thread it started.
///
/// Dropping the last handle says goodbye even when the runtime stops right after, as when `main` returns
/// without calling [`Session::shutdown`]: on a multi-thread runtime (the default of `#[tokio::main]`) the drop
/// waits for the goodbyes to leave, at most half a second. On a current-thread runtime a drop cannot wait
/// (nothing else runs meanwhile): the goodbye is said only if the runtime keeps running, so call
/// [`Session::shutdown`] before a current-thread runtime stops. `shutdown` is also the way to know the
/// goodbye is complete and the socket released.
///
/// ```no_run
/// use multipeer::{Event, Reliability, Session, SessionConfig, To};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = SessionConfig::builder("chat", "Alice").build()?;
/// let (session, mut events) = Session::builder(config).start_with_events().await?;
/// while let Some(event) = events.next().await {
///     match event {
///         Event::PeerAdded(peer) => {
///             session.send("hello", To::Peer(peer.id), Reliability::Reliable).await?;
///         }
///         Event::Message(message) => {
///             tracing::info!("{}", String::from_utf8_lossy(&message.data));
///         }
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("local", &self.inner.local.id)
            .field("peers", &self.inner.shared.links().len())
            .finish()
    }
}

/// Starts a [`Session`]; see [`Session::builder`].
#[must_use]
pub struct SessionBuilder {
    config: SessionConfig,
    discovery: Option<Arc<dyn Discovery>>,
    admission: Option<Admission>,
    resource_filter: Option<ResourceFilter>,
}

impl std::fmt::Debug for SessionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SessionBuilder {
    /// Uses `discovery` to find peers instead of the default.
    pub fn discovery(mut self, discovery: impl Discovery) -> Self {
        self.discovery = Some(Arc::new(discovery));
        self
    }

    /// Uses a shared discovery implementation.
    pub fn discovery_arc(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// The one admission hook: decides per peer whether it may join, whether events are read as a stream or
    /// through a [`SessionDelegate`]. Without it every peer is admitted. Called on the session's runtime: return
    /// quickly.
    pub fn admission(mut self, admit: impl Fn(&Invitation) -> bool + Send + Sync + 'static) -> Self {
        self.admission = Some(Arc::new(admit));
        self
    }

    /// The one resource hook: decides per offered resource whether to accept it, whether events are read as a
    /// stream or through a [`SessionDelegate`]. Without it every offer within
    /// [`crate::SessionConfigBuilder::max_resource_size`] is accepted (larger ones are refused before this is
    /// asked). Called on the session's runtime: return quickly.
    pub fn resource_filter(mut self, accept: impl Fn(&ResourceOffer) -> bool + Send + Sync + 'static) -> Self {
        self.resource_filter = Some(Arc::new(accept));
        self
    }

    /// Starts the session and returns its events as a stream.
    pub async fn start_with_events(self) -> Result<(Session, Events), StartError> {
        self.launch()
    }

    /// Starts the session and delivers its events to `delegate`, on a thread of the session's own.
    /// The delegate adapts the event stream to callbacks; admission and resource offers are decided by the
    /// builder's [`SessionBuilder::admission`] and [`SessionBuilder::resource_filter`], as for the stream.
    pub async fn start(self, delegate: impl SessionDelegate) -> Result<Session, StartError> {
        let delegate = Arc::new(delegate);
        let (session, mut events) = self.launch()?;
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("multipeer-delegate".into())
            .spawn(move || {
                // Lets delegate methods spawn tasks (for example to read an incoming stream).
                let _runtime = runtime.enter();
                while let Some(event) = events.blocking_next() {
                    events::dispatch(delegate.as_ref(), event);
                }
            })
            .map_err(|source| StartError::Bind {
                addr: session.local_addr(),
                source,
            })?;
        Ok(session)
    }

    fn launch(self) -> Result<(Session, Events), StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let config = self.config;
        let identity = config.identity();
        let local_id = identity.peer_id();
        let transport = tls::transport_config(
            config.idle_timeout,
            config.keep_alive_interval,
            config.congestion_control,
        );
        let server = tls::server_config(identity, transport.clone())?;
        let client = ClientIdentity::new(identity, transport)?;
        let socket = bind(config.bind_addr())?;
        let endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                Some(server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(|source| StartError::Bind {
                addr: config.bind_addr(),
                source,
            })?
        };
        let local_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
            addr: config.bind_addr(),
            source,
        })?;
        let advertisement = Advertisement {
            service_type: config.service_type.clone(),
            id: local_id,
            display_name: config.display_name.clone(),
            port: local_addr.port(),
            bound_addr: local_addr,
            discovery_info: config.discovery_info.clone(),
        };
        let discovery = self.discovery.unwrap_or_else(|| Arc::new(MdnsDiscovery::new()));
        let subscription = discovery.start(advertisement.clone())?;
        let (event_tx, events) = events::queue();
        let (internal_tx, internal_rx) = mpsc::channel(256);
        let (command_tx, command_rx) = mpsc::channel(32);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            display_name: config.display_name.clone(),
            discovery_info: config.discovery_info.clone(),
            initial_data: config.initial_data.clone(),
            max_peers: config.max_peers,
            invitation_context: config.invitation_context.clone(),
            roster: crate::proto::roster::RosterView::alone(local_id),
        };
        let shared = Arc::new(Shared {
            links: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            links_changed: tokio::sync::watch::Sender::new(0),
            nearby: RwLock::new(HashMap::new()),
        });
        let resources = Hub::new(
            config.resources.clone(),
            host::SessionHost::new(shared.clone(), event_tx.clone()),
            self.resource_filter
                .unwrap_or_else(|| Arc::new(|_: &ResourceOffer| true)),
        );
        let ctx = Arc::new(ConnCtx {
            resources: resources.clone(),
            local_id,
            endpoint,
            client,
            hello,
            passphrase: config.passphrase.as_ref().map(|p| p.0.clone()),
            guard: std::sync::Mutex::new(crate::proto::guard::GuessGuard::new()),
            admission: self.admission.unwrap_or_else(|| Arc::new(|_: &Invitation| true)),
            internal: internal_tx,
            events: event_tx,
            started: std::time::Instant::now(),
            answer_timeout: config.answer_timeout,
            asking: Arc::new(tokio::sync::Semaphore::new(handshake::MAX_PENDING_INVITATIONS)),
        });
        let local = actor::local_peer(&advertisement, config.initial_data.clone());
        let actor = Actor {
            ctx,
            shared: shared.clone(),
            mesh: {
                let mut mesh = Mesh::new(local_id, config.max_peers);
                mesh.set_manual(config.invitation_mode == crate::config::InvitationMode::Manual);
                mesh
            },
            discovery,
            subscription: Some(subscription),
            farewell: None,
            advertisement,
            commands: command_rx,
            internal: internal_rx,
            tasks: JoinSet::new(),
            dials: HashMap::new(),
            drivers: HashMap::new(),
            last_failure: HashMap::new(),
            twin: Default::default(),
            invites: Default::default(),
        };
        // Every log line of the session's task names the session: several may run in one process.
        let span = tracing::info_span!("session", id = %local_id.short());
        runtime.spawn(tracing::Instrument::instrument(actor.run(), span));
        tracing::info!(id = %local_id.short(), %local_addr, service = %config.service_type, "session started");
        let session = Session {
            inner: Arc::new(Handle {
                runtime,
                commands: command_tx,
                shared,
                resources,
                local,
                local_addr,
                service_type: config.service_type.clone(),
                answer_timeout: config.answer_timeout,
            }),
        };
        Ok((session, events))
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::UdpSocket, StartError> {
    match std::net::UdpSocket::bind(addr) {
        Ok(socket) => Ok(socket),
        // No IPv6 on this host: fall back to IPv4 on the same port.
        Err(_) if addr.is_ipv6() && addr.ip().is_unspecified() => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            std::net::UdpSocket::bind(v4).map_err(|source| StartError::Bind { addr: v4, source })
        }
        Err(source) => Err(StartError::Bind { addr, source }),
    }
}

impl Session {
    /// Prepares a session with `config`. By default it finds peers with mDNS / DNS-SD.
    pub fn builder(config: SessionConfig) -> SessionBuilder {
        SessionBuilder {
            config,
            discovery: None,
            admission: None,
            resource_filter: None,
        }
    }

    /// The local peer.
    pub fn local_peer(&self) -> &Peer {
        &self.inner.local
    }

    /// The local UDP address of the session's QUIC endpoint.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The connected peers, ordered by id (the same order on every peer).
    pub fn peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self.inner.shared.links().values().map(|l| l.peer.clone()).collect();
        peers.sort_by_key(|p| p.id);
        peers
    }

    /// Peers discovery sees nearby now, in the session or not, ordered by id (see [`crate::Event::PeerFound`]).
    pub fn nearby(&self) -> Vec<NearbyPeer> {
        self.inner.shared.nearby()
    }

    /// Everyone in the session, this peer included, ordered by id: once the mesh is complete, the same list on
    /// every peer (for turn order, choosing a leader, or dealing secret shares).
    pub fn roster(&self) -> Vec<Peer> {
        let mut roster = self.peers();
        let local = self.local_peer().clone();
        let at = roster.partition_point(|p| p.id < local.id);
        roster.insert(at, local);
        roster
    }

    /// A connected peer.
    pub fn peer(&self, id: PeerId) -> Option<Peer> {
        self.inner.shared.link(&id).map(|l| l.peer.clone())
    }

    /// The pairing code of the connection to `peer`, to compare out of band (read aloud or shown side by side):
    /// six digits, `"123 456"`. `None` if the peer is not connected.
    ///
    /// Both ends of one connection show the same code. It is derived from the TLS session, both ids and a
    /// random nonce from each side, where the acceptor commits to its nonce before it sees the other's (see
    /// `SECURITY.md`): a machine in the middle, which holds a separate connection to each of you, cannot steer
    /// the two codes to match; they match by chance once in a million attempts. A new connection (after a
    /// reconnect) has a new code.
    pub fn verification_code(&self, peer: PeerId) -> Option<String> {
        Some(self.inner.shared.link(&peer)?.pairing_code.clone())
    }

    /// Whether the session has shut down.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// The recipients of `to`, each once, in the caller's order, with its link (`None`: not connected).
    /// Sends `data` to `to`.
    ///
    /// A reliable send returns once the message is queued on the connection, in order; messages sent in quick
    /// succession are written to QUIC together. Reliable messages wait while the receiver is behind
    /// (back-pressure) and fail with [`SendError::MessageTooLarge`] above 4 MiB. Unreliable messages never wait
    /// and fail with [`SendError::DatagramTooLarge`] if they do not fit one packet.
    ///
    /// Every recipient is tried, once (a peer listed twice in [`To::Peers`] gets the message once). A send
    /// to one peer fails with that peer's error. A send to several fails with [`SendError::Recipients`] if
    /// any of them did not get the message: it lists who got it and who did not, and why. With [`To::All`],
    /// peers that leave while the message is sent are skipped.
    pub async fn send(
        &self,
        data: impl Into<Bytes>,
        to: impl Into<To>,
        reliability: Reliability,
    ) -> Result<(), SendError> {
        let data = data.into();
        let to = to.into();
        if self.is_closed() {
            return Err(SendError::SessionClosed);
        }
        let too_large = || SendError::MessageTooLarge {
            size: data.len(),
            max: MAX_MESSAGE_LEN,
        };
        if reliability == Reliability::Reliable && data.len() > MAX_MESSAGE_LEN {
            return Err(too_large());
        }
        let header = match reliability {
            Reliability::Reliable => frame::frame_header(FRAME_MESSAGE, data.len()).map_err(|_| too_large())?,
            // Datagrams carry no header.
            Reliability::Unreliable => Default::default(),
        };
        // One recipient (the common case) without collecting a list.
        if let To::Peer(id) = to {
            let link = self.inner.shared.link(&id).ok_or(SendError::NotConnected(id))?;
            return send_one(&link, reliability, &header, &data).await;
        }
        let lenient = to == To::All;
        // As `send_one` would for each recipient: a sender in a tight loop still lets other tasks on its thread
        // (the receivers, the connections) run, and does not outpace them into QUIC's send buffers.
        let recipients = match &to {
            To::All => self.inner.shared.links().len(),
            To::Peers(ids) => ids.len(),
            To::Peer(_) => 1,
        };
        for _ in 0..recipients.max(1) {
            tokio::task::coop::consume_budget().await;
        }
        // Most sends find room in every queue: each recipient is tried without waiting (under the links' lock:
        // nothing waits there), and only the full ones are waited for, together, afterwards.
        // Who got it matters only if someone did not: no allocation on the common path.
        let mut delivered: smallvec::SmallVec<[PeerId; crate::config::MAX_PEERS_LIMIT]> = Default::default();
        let mut failed = Vec::new();
        let mut full = Vec::new();
        self.inner.shared.each_recipient(to, |id, link| match link {
            Some(link) => match try_send_one(link, reliability, &header, &data) {
                Some(Ok(())) => delivered.push(id),
                Some(Err(e)) => failed.push((id, Err(e))),
                None => full.push((id, link.clone())),
            },
            None => failed.push((id, Err(SendError::NotConnected(id)))),
        });
        if failed.is_empty() && full.is_empty() {
            return Ok(());
        }
        let (header, data) = (&header, &data);
        let waits = full.iter().map(|(_, link)| send_one(link, reliability, header, data));
        let waited = futures_util::future::join_all(waits).await;
        let results = delivered.into_iter().map(|id| (id, Ok(())));
        let results = results
            .chain(failed)
            .chain(full.into_iter().map(|(id, _)| id).zip(waited));
        outcome(results, lenient)
    }

    /// Sends `value` as JSON; receivers decode it with [`crate::Message::json`].
    pub async fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        to: impl Into<To>,
        reliability: Reliability,
    ) -> Result<(), SendJsonError> {
        let bytes = serde_json::to_vec(value).map_err(|e| SendJsonError::Encode(e.to_string()))?;
        Ok(self.send(bytes, to, reliability).await?)
    }

    /// The largest unreliable message the path to `peer` carries now, if it is connected and accepts datagrams.
    pub fn max_datagram_size(&self, peer: PeerId) -> Option<usize> {
        self.inner.shared.link(&peer)?.conn.max_datagram_size()
    }

    /// The link a new stream to `peer` goes over.
    fn stream_link(&self, peer: PeerId) -> Result<Arc<Link>, StreamError> {
        if self.is_closed() {
            return Err(StreamError::SessionClosed);
        }
        self.inner.shared.link(&peer).ok_or(StreamError::NotConnected(peer))
    }

    /// Opens a byte stream called `name` to `peer` (what, then to whom, as in [`Session::send`]). Waits while
    /// the peer has too many streams open (back-pressure).
    pub async fn stream(&self, name: &str, peer: PeerId) -> Result<OutgoingStream, StreamError> {
        let preamble = frame::encode_named_stream_preamble(name)?;
        let link = self.stream_link(peer)?;
        let mut send = link
            .conn
            .open_uni()
            .await
            .map_err(|_| StreamError::ConnectionLost(peer))?;
        send.write_all(&preamble)
            .await
            .map_err(|_| StreamError::ConnectionLost(peer))?;
        Ok(OutgoingStream::new(peer, name.to_owned(), send))
    }

    /// Sends the file at `path` to `peer` as a resource called `name` (1-255 bytes; the receiver saves it
    /// under a sanitized form of it). Returns at once with a handle for progress, cancellation and the
    /// outcome; the transfer runs in the background, several at once if you like. If the connection drops, it
    /// resumes where it stopped when the peer is back within the resume window.
    pub async fn send_resource(
        &self,
        path: impl AsRef<std::path::Path>,
        name: &str,
        peer: PeerId,
    ) -> Result<ResourceTransfer, SendResourceError> {
        if name.is_empty() || name.len() > crate::proto::resource::MAX_RESOURCE_NAME_LEN {
            return Err(SendResourceError::InvalidName);
        }
        if self.is_closed() {
            return Err(SendResourceError::SessionClosed);
        }
        if self.inner.shared.link(&peer).is_none() {
            return Err(SendResourceError::NotConnected(peer));
        }
        let path = path.as_ref().to_owned();
        let metadata = tokio::fs::metadata(&path).await?;
        if !metadata.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file").into());
        }
        let state = TransferState::new(
            ResourceId::random(),
            peer,
            name.to_owned(),
            metadata.len(),
            Direction::Outgoing,
        );
        tokio::spawn(crate::resource::send::run(
            self.inner.resources.clone(),
            state.clone(),
            path,
        ));
        Ok(ResourceTransfer::new(state))
    }

    /// Opens a two-way named stream with `peer` (for example for one forwarded TCP connection): the peer gets
    /// [`Event::DuplexStream`](crate::Event::DuplexStream). Waits while the peer has too many open.
    pub async fn duplex_stream(&self, name: &str, peer: PeerId) -> Result<DuplexStream, StreamError> {
        let preamble = frame::encode_duplex_stream_preamble(name)?;
        let link = self.stream_link(peer)?;
        let (mut send, recv) = link
            .conn
            .open_bi()
            .await
            .map_err(|_| StreamError::ConnectionLost(peer))?;
        send.write_all(&preamble)
            .await
            .map_err(|_| StreamError::ConnectionLost(peer))?;
        Ok(DuplexStream::new(
            peer,
            name.to_owned(),
            send,
            bytes::BytesMut::new(),
            recv,
        ))
    }

    async fn command<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, SessionClosed> {
        let (tx, rx) = oneshot::channel();
        self.inner.commands.send(make(tx)).await.map_err(|_| SessionClosed)?;
        rx.await.map_err(|_| SessionClosed)
    }

    /// A ticket other devices can use to join this session without mDNS ([`Session::connect_ticket`]).
    ///
    /// It lists every non-loopback interface address (loopback last) when the session is bound to all
    /// interfaces.
    pub fn ticket(&self) -> Ticket {
        let bound = self.inner.local_addr;
        let port = bound.port();
        let mut addrs: Vec<SocketAddr> = if bound.ip().is_unspecified() {
            let mut ips = crate::diagnostics::interface_addresses();
            ips.retain(|i| bound.is_ipv6() || i.addr.is_ipv4());
            ips.sort_by_key(|i| (i.addr.is_loopback(), i.addr.is_ipv6()));
            ips.into_iter()
                .map(|i| match i.addr {
                    std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
                        let scope = if_index(&i.name);
                        SocketAddr::V6(std::net::SocketAddrV6::new(v6, port, 0, scope))
                    }
                    ip => SocketAddr::new(ip, port),
                })
                .collect()
        } else {
            vec![bound]
        };
        addrs.dedup();
        Ticket::new(self.inner.service_type.clone(), self.inner.local.id, addrs)
    }

    /// Invites a nearby peer (see [`Session::nearby`]) into this session, with `context` for its app to judge
    /// the invitation by (at most [`crate::config::MAX_INVITATION_CONTEXT_LEN`] bytes; `None`: the
    /// configured [`crate::SessionConfigBuilder::invitation_context`]). Completes once the peer joined, or
    /// with why not: its app declined or did not answer ([`crate::InvitationMode::Manual`]), its admission
    /// hook declined, or no answer came in time. In [`crate::InvitationMode::Manual`] this is the only way
    /// peers outside the session are dialed; in `Auto` it dials the peer now, whatever this peer's role.
    pub async fn invite(&self, peer: PeerId, context: Option<Vec<u8>>) -> Result<(), InviteError> {
        let max = crate::config::MAX_INVITATION_CONTEXT_LEN;
        if let Some(size) = context.as_ref().map(Vec::len).filter(|len| *len > max) {
            return Err(InviteError::ContextTooLarge { size, max });
        }
        let (tx, rx) = oneshot::channel();
        let command = Command::Invite {
            peer,
            context,
            reply: tx,
        };
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| InviteError::SessionClosed)?;
        // The invitee's app may take the invitation timeout; dials and handshakes around it take a few more.
        let limit = self.inner.answer_timeout + 3 * handshake::HANDSHAKE_TIMEOUT;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(InviteError::SessionClosed),
            Err(_) => {
                let _ = self.inner.commands.try_send(Command::CancelInvite(peer));
                Err(InviteError::TimedOut(peer))
            }
        }
    }

    /// Invites the peer a ticket describes, as if discovery had found it.
    pub async fn connect_ticket(&self, ticket: &Ticket) -> Result<(), ConnectTicketError> {
        if ticket.service_type != self.inner.service_type {
            return Err(ConnectTicketError::WrongService {
                ticket: ticket.service_type.clone(),
                session: self.inner.service_type.clone(),
            });
        }
        if ticket.peer == self.inner.local.id {
            return Err(ConnectTicketError::OwnTicket);
        }
        let peer = DiscoveredPeer {
            id: ticket.peer,
            display_name: ticket.peer.short(),
            addrs: ticket.addrs.clone(),
            discovery_info: Default::default(),
        };
        self.command(|tx| Command::AddCandidate(peer, tx))
            .await
            .map_err(|_| ConnectTicketError::SessionClosed)
    }

    /// A snapshot of interfaces, discovery and connection attempts, to find out why peers are missing.
    pub async fn diagnostics(&self) -> Result<Diagnostics, SessionClosed> {
        self.command(Command::Diagnostics).await
    }

    /// Stops admitting newcomers and dialing peers outside the session. The session and its links stay; while it
    /// has other members this peer stays discoverable (members, including ones the session admits later, must
    /// reach it); alone, it stops advertising and browsing.
    pub async fn stop_looking_for_peers(&self) -> Result<(), SessionClosed> {
        self.command(Command::StopLooking).await
    }

    /// Advertises, browses and admits new peers again.
    pub async fn start_looking_for_peers(&self) -> Result<(), LookingError> {
        self.command(Command::StartLooking).await?
    }

    /// Expels a peer: it sees [`crate::RemovalReason::Expelled`] and is kept out until
    /// [`Session::allow_peer`]. Returns whether it was connected or connecting.
    pub async fn remove_peer(&self, peer: PeerId) -> Result<bool, SessionClosed> {
        self.command(|tx| Command::RemovePeer(peer, tx)).await
    }

    /// Lets a peer removed with [`Session::remove_peer`] join again.
    pub async fn allow_peer(&self, peer: PeerId) -> Result<(), SessionClosed> {
        self.command(|tx| Command::AllowPeer(peer, tx)).await
    }

    /// Leaves the session: every peer sees [`crate::RemovalReason::Left`] at once, after every message
    /// already sent. The session stops looking for peers; [`Session::start_looking_for_peers`] rejoins.
    pub async fn disconnect(&self) -> Result<(), SessionClosed> {
        self.command(Command::Disconnect).await
    }

    /// Leaves the session and releases everything: socket, tasks, the delegate thread. Later calls fail
    /// with a "session closed" error. The event stream ends.
    pub async fn shutdown(&self) -> Result<(), SessionClosed> {
        self.command(Command::Shutdown).await
    }
}

/// The index of a network interface (for IPv6 scope ids), 0 if unknown.
fn if_index(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends to one link: a reliable message after `header`, or a datagram.
async fn send_one(link: &Link, reliability: Reliability, header: &[u8], data: &Bytes) -> Result<(), SendError> {
    match reliability {
        Reliability::Reliable => send_reliable(link, header, data).await,
        Reliability::Unreliable => send_datagram(link, data),
    }
}

/// [`send_one`] if it can complete without waiting; `None` if the link's queue is full.
fn try_send_one(link: &Link, reliability: Reliability, header: &[u8], data: &Bytes) -> Option<Result<(), SendError>> {
    match reliability {
        Reliability::Reliable => match link.control.try_send(header, data) {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err(_) => Some(Err(SendError::ConnectionLost(link.peer.id))),
        },
        Reliability::Unreliable => Some(send_datagram(link, data)),
    }
}

async fn send_reliable(link: &Link, header: &[u8], data: &Bytes) -> Result<(), SendError> {
    link.control
        .send(header, data)
        .await
        .map_err(|_| SendError::ConnectionLost(link.peer.id))
}

fn send_datagram(link: &Link, data: &Bytes) -> Result<(), SendError> {
    let peer = link.peer.id;
    match link.conn.max_datagram_size() {
        None => return Err(SendError::DatagramsUnsupported(peer)),
        Some(max) if data.len() > max => {
            return Err(SendError::DatagramTooLarge {
                peer,
                size: data.len(),
                max,
            })
        }
        Some(_) => {}
    }
    link.conn.send_datagram(data.clone()).map_err(|e| match e {
        quinn::SendDatagramError::TooLarge => SendError::DatagramTooLarge {
            peer,
            size: data.len(),
            max: link.conn.max_datagram_size().unwrap_or(0),
        },
        quinn::SendDatagramError::UnsupportedByPeer | quinn::SendDatagramError::Disabled => {
            SendError::DatagramsUnsupported(peer)
        }
        quinn::SendDatagramError::ConnectionLost(_) => SendError::ConnectionLost(peer),
    })
}

/// The result of a send to several recipients: `Ok` if every one got it. With `lenient`, peers that left
/// meanwhile do not count. A single failed recipient and nobody else gives that recipient's own error.
fn outcome(results: impl Iterator<Item = (PeerId, Result<(), SendError>)>, lenient: bool) -> Result<(), SendError> {
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    for (peer, result) in results {
        match result {
            Ok(()) => delivered.push(peer),
            Err(SendError::ConnectionLost(_)) if lenient => {}
            Err(e) => failed.push((peer, e)),
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 if delivered.is_empty() => Err(failed.remove(0).1),
        _ => Err(SendError::Recipients { delivered, failed }),
    }
}

/// What the app sees of a discovered peer.
pub(crate) fn nearby_peer(p: &DiscoveredPeer) -> NearbyPeer {
    NearbyPeer::new(p.id, p.display_name.clone(), p.discovery_info.clone())
}
