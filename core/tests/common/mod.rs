//! Helpers shared by the integration tests: sessions on loopback, event waiting, a lossy UDP relay.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use multipeer::{
    Advertisement, DiscoveredPeer, Discovery, DiscoveryError, DiscoveryEvent, DiscoverySubscription, Event, Events,
    MemoryNetwork, Session, SessionConfig, SessionConfigBuilder,
};
use tokio::net::UdpSocket;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A configuration bound to loopback.
pub fn config(name: &str) -> SessionConfigBuilder {
    SessionConfig::builder("test", name).bind_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Starts a session on `network` with its events as a stream.
pub async fn start(network: &MemoryNetwork, config: SessionConfigBuilder) -> (Session, Events) {
    Session::builder(config.build().unwrap())
        .discovery(network.discovery())
        .start_with_events()
        .await
        .unwrap()
}

/// Runs `future` or panics after `limit` with `what`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Waits for the first event `pick` maps to `Some`, skipping others; panics after `limit`.
pub async fn expect<T>(
    events: &mut Events,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    within(limit, what, async {
        loop {
            match events.next().await {
                Some(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
    })
    .await
}

/// Two sessions "a" and "b" on a fresh in-process network, connected to each other; `a` leads (smaller id).
pub async fn connected_pair() -> (Session, Events, Session, Events) {
    let net = MemoryNetwork::new();
    let (leader, member) = ordered_identities();
    let (a, mut a_events) = start(&net, config("a").identity(leader)).await;
    let (b, mut b_events) = start(&net, config("b").identity(member)).await;
    expect_peers_added(&mut a_events, 1, Duration::from_secs(10)).await;
    expect_peers_added(&mut b_events, 1, Duration::from_secs(10)).await;
    (a, a_events, b, b_events)
}

/// Two fresh identities, the first with the smaller id: a session using it leads (admits newcomers).
pub fn ordered_identities() -> (multipeer::Identity, multipeer::Identity) {
    let (x, y) = (multipeer::Identity::generate(), multipeer::Identity::generate());
    if x.peer_id() < y.peer_id() {
        (x, y)
    } else {
        (y, x)
    }
}

/// Like [`ordered_identities`], both ids above `floor` (so that ids below the first are easy to find).
pub fn ordered_identities_above(floor: [u8; 32]) -> (multipeer::Identity, multipeer::Identity) {
    let floor = multipeer::PeerId::from_bytes(floor);
    let mut above = (0..1_000)
        .map(|_| multipeer::Identity::generate())
        .filter(|i| i.peer_id() > floor);
    let (x, y) = (above.next().unwrap(), above.next().unwrap());
    if x.peer_id() < y.peer_id() {
        (x, y)
    } else {
        (y, x)
    }
}

/// Sessions `a` and `b` connected to each other: `a` finds `b` only through a [`UdpRelay`] (returned) that
/// can impair or cut the path.
pub async fn relayed_pair(
    a: SessionConfigBuilder,
    b: SessionConfigBuilder,
    impairment: Impairment,
) -> (Session, Events, Session, Events, UdpRelay) {
    let (b, b_events) = start(&MemoryNetwork::new(), b).await;
    let relay = UdpRelay::start(b.local_addr(), impairment).await;
    let (a, a_events) = Session::builder(a.build().unwrap())
        .discovery(StaticDiscovery {
            peers: vec![discovered(&b, relay.addr)],
        })
        .start_with_events()
        .await
        .unwrap();
    (a, a_events, b, b_events, relay)
}

/// A directory for one test, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// Creates a fresh, empty directory.
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("multipeer-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `size` bytes of a deterministic pseudo-random pattern to `path`; returns their SHA-256.
pub fn write_pattern_file(path: &std::path::Path, size: u64, seed: u64) -> [u8; 32] {
    use std::io::Write;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut x = seed | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    file.flush().unwrap();
    hasher.finish().as_ref().try_into().unwrap()
}

/// The SHA-256 of a file's content.
pub fn sha256_file(path: &std::path::Path) -> [u8; 32] {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.finish().as_ref().try_into().unwrap()
}

/// Waits for the next message, skipping other events.
pub async fn expect_message(events: &mut Events, limit: Duration, what: &str) -> multipeer::Message {
    expect(events, limit, what, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

/// Waits for the next peer removal and returns its reason, skipping other events.
pub async fn expect_removal(events: &mut Events, limit: Duration, what: &str) -> multipeer::RemovalReason {
    expect(events, limit, what, |e| match e {
        Event::PeerRemoved { reason, .. } => Some(reason),
        _ => None,
    })
    .await
}

/// Waits for `n` peers to be added.
pub async fn expect_peers_added(events: &mut Events, n: usize, limit: Duration) -> Vec<multipeer::Peer> {
    let mut added = Vec::new();
    while added.len() < n {
        added.push(
            expect(events, limit, "peer added", |e| match e {
                Event::PeerAdded(p) => Some(p),
                _ => None,
            })
            .await,
        );
    }
    added
}

/// Collects events for `duration`.
pub async fn collect_for(events: &mut Events, duration: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(duration, async {
        while let Some(e) = events.next().await {
            out.push(e);
        }
    })
    .await;
    out
}

/// A discovery that reports a fixed list of peers and advertises nothing (to steer who dials whom).
#[derive(Clone, Default)]
pub struct StaticDiscovery {
    pub peers: Vec<DiscoveredPeer>,
}

impl Discovery for StaticDiscovery {
    fn start(&self, _advertisement: Advertisement) -> Result<DiscoverySubscription, DiscoveryError> {
        let (tx, rx) = DiscoverySubscription::channel();
        for peer in &self.peers {
            tx.try_send(DiscoveryEvent::Found(peer.clone())).unwrap();
        }
        // Keep the sender alive as long as the subscription, so the stream does not end.
        let keep = Mutex::new(Some(tx));
        Ok(DiscoverySubscription::new(rx, move || {
            drop(keep.lock().unwrap().take())
        }))
    }
}

/// How [`UdpRelay`] mistreats datagrams, in each direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Probability of sending a datagram twice.
    pub duplicate: f64,
    /// Probability of holding a datagram back behind the next one.
    pub reorder: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
}

/// A user-space UDP relay between one client and one server, with configurable impairment and a switch to
/// cut the link entirely.
pub struct UdpRelay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    impairment: Arc<Mutex<Impairment>>,
    pub forwarded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpRelay {
    /// Relays datagrams arriving at a new loopback port to `target`, and replies back.
    pub async fn start(target: SocketAddr, impairment: Impairment) -> Self {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let impairment = Arc::new(Mutex::new(impairment));
        let forwarded = Arc::new(AtomicU64::new(0));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let task = {
            let (cut, impairment, forwarded) = (cut.clone(), impairment.clone(), forwarded.clone());
            tokio::spawn(async move {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64;
                let mut held_up: Option<(bool, Vec<u8>)> = None;
                let mut a = vec![0u8; 65536];
                let mut b = vec![0u8; 65536];
                loop {
                    let (upstream, data) = tokio::select! {
                        r = front.recv_from(&mut a) => {
                            let Ok((n, from)) = r else { continue };
                            *client.lock().unwrap() = Some(from);
                            (true, a[..n].to_vec())
                        }
                        r = back.recv_from(&mut b) => {
                            let Ok((n, _)) = r else { continue };
                            (false, b[..n].to_vec())
                        }
                    };
                    if cut.load(Ordering::Relaxed) {
                        continue;
                    }
                    let imp = *impairment.lock().unwrap();
                    let mut roll = || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        (rng >> 11) as f64 / (1u64 << 53) as f64
                    };
                    if roll() < imp.loss {
                        continue;
                    }
                    let copies = if roll() < imp.duplicate { 2 } else { 1 };
                    let mut batch = Vec::new();
                    if roll() < imp.reorder && held_up.is_none() {
                        held_up = Some((upstream, data));
                    } else {
                        for _ in 0..copies {
                            batch.push((upstream, data.clone()));
                        }
                        if let Some(late) = held_up.take() {
                            batch.push(late);
                        }
                    }
                    let client_addr = *client.lock().unwrap();
                    let (front, back, forwarded) = (front.clone(), back.clone(), forwarded.clone());
                    let send = async move {
                        for (up, data) in batch {
                            let _ = if up {
                                back.send_to(&data, target).await
                            } else if let Some(c) = client_addr {
                                front.send_to(&data, c).await
                            } else {
                                continue;
                            };
                            forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    if imp.delay.is_zero() {
                        send.await;
                    } else {
                        tokio::spawn(async move {
                            tokio::time::sleep(imp.delay).await;
                            send.await;
                        });
                    }
                }
            })
        };
        Self {
            addr,
            cut,
            impairment,
            forwarded,
            task,
        }
    }

    /// Drops everything while `cut` is true.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }

    /// Changes the impairment.
    pub fn set_impairment(&self, impairment: Impairment) {
        *self.impairment.lock().unwrap() = impairment;
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A discovered-peer record pointing at `addr`.
pub fn discovered(session: &Session, addr: SocketAddr) -> DiscoveredPeer {
    let local = session.local_peer();
    DiscoveredPeer::new(local.id, local.display_name.clone(), vec![addr])
}

/// A numeric field of `/proc/<process>/status` (for example `VmRSS` in KiB, or `Threads`) (Linux).
fn status_field(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A size field of `/proc/self/status` (for example `VmRSS`), in bytes (Linux).
fn status_bytes(field: &str) -> Option<u64> {
    status_field("self", field).map(|kib| kib * 1024)
}

/// The resident set size and thread count of another process (Linux).
pub fn process_rss_and_threads(pid: u32) -> Option<(u64, u64)> {
    let pid = pid.to_string();
    Some((status_field(&pid, "VmRSS")? * 1024, status_field(&pid, "Threads")?))
}

/// The peak resident set size of this process, in bytes (Linux).
pub fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM")
}

/// The current resident set size of this process, in bytes (Linux).
pub fn rss() -> Option<u64> {
    status_bytes("VmRSS")
}

/// A hand-driven QUIC client speaking (or breaking) the multipeer protocol, for hostile-peer tests.
pub mod raw {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AcceptAnything;

    impl ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// Options for a raw connection.
    #[derive(Clone)]
    pub struct RawOptions {
        pub alpn: Vec<u8>,
        pub client_cert: bool,
        /// Present an id smaller than this one (so that, once admitted, we lead the session).
        pub below: Option<multipeer::PeerId>,
        /// Connect from this endpoint (one socket for many connections) instead of a new one.
        pub endpoint: Option<quinn::Endpoint>,
    }

    impl Default for RawOptions {
        fn default() -> Self {
            Self {
                alpn: multipeer::proto::ALPN.to_vec(),
                client_cert: true,
                below: None,
                endpoint: None,
            }
        }
    }

    /// Connects to a session's endpoint with a fresh self-signed certificate.
    pub async fn connect(addr: SocketAddr, options: RawOptions) -> Result<quinn::Connection, quinn::ConnectionError> {
        Ok(connect_as(addr, options).await?.0)
    }

    /// Like [`connect`], and also returns the id of the certificate we presented.
    pub async fn connect_as(
        addr: SocketAddr,
        options: RawOptions,
    ) -> Result<(quinn::Connection, multipeer::PeerId), quinn::ConnectionError> {
        let (key, cert, id) = (0..1_000)
            .map(|_| {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
                let cert = rcgen::CertificateParams::new(vec!["raw".into()])
                    .unwrap()
                    .self_signed(&key)
                    .unwrap();
                let id = multipeer::PeerId::from_certificate(cert.der()).unwrap();
                (key, cert, id)
            })
            .find(|(_, _, id)| options.below.is_none_or(|below| *id < below))
            .expect("an id below the one asked for");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything));
        let mut tls = if options.client_cert {
            builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        tls.alpn_protocols = vec![options.alpn];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = match options.endpoint {
            Some(endpoint) => endpoint,
            None => quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap(),
        };
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let conn = endpoint.connect_with(config, addr, "multipeer").unwrap().await?;
        Ok((conn, id))
    }

    /// The server's id on a raw connection.
    pub fn server_id(conn: &quinn::Connection) -> multipeer::PeerId {
        let certs = conn
            .peer_identity()
            .unwrap()
            .downcast::<Vec<CertificateDer<'static>>>()
            .unwrap();
        multipeer::PeerId::from_certificate(&certs[0]).unwrap()
    }

    /// The peer's control stream as read so far.
    pub struct PeerControl {
        pub recv: quinn::RecvStream,
        pub buf: bytes::BytesMut,
    }

    impl PeerControl {
        /// Accepts the peer's control stream (at most 10 s).
        pub async fn accept(conn: &quinn::Connection) -> Result<Self, String> {
            let recv = tokio::time::timeout(std::time::Duration::from_secs(10), conn.accept_uni())
                .await
                .map_err(|_| "no control stream".to_owned())?
                .map_err(|e| e.to_string())?;
            let mut control = Self {
                recv,
                buf: bytes::BytesMut::new(),
            };
            control.fill().await?;
            if control.buf.first() != Some(&0) {
                return Err("not a control stream".into());
            }
            bytes::Buf::advance(&mut control.buf, 1);
            Ok(control)
        }

        async fn fill(&mut self) -> Result<(), String> {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), self.recv.read_chunk(1 << 16, true))
                .await
                .map_err(|_| "nothing in time".to_owned())?
                .map_err(|e| match e {
                    quinn::ReadError::ConnectionLost(lost) => lost.to_string(),
                    other => other.to_string(),
                })?
                .ok_or_else(|| "stream ended".to_owned())?;
            self.buf.extend_from_slice(&chunk.bytes);
            Ok(())
        }

        /// The next frame (at most 10 s per read).
        pub async fn frame(&mut self) -> Result<multipeer::proto::frame::Frame, String> {
            loop {
                match multipeer::proto::frame::decode_frame(&mut self.buf).map_err(|e| e.to_string())? {
                    Some(frame) => return Ok(frame),
                    None => self.fill().await?,
                }
            }
        }
    }

    /// The exporter value a raw connection's admission exchange is bound to.
    pub fn exporter(conn: &quinn::Connection) -> [u8; 32] {
        let mut out = [0u8; 32];
        conn.export_keying_material(&mut out, multipeer::proto::auth::EXPORTER_LABEL, b"")
            .unwrap();
        out
    }

    /// The dialer's check of the acceptor's REVEAL: the CONFIRM to send (with a passphrase) and the pairing code.
    pub type RevealChecked =
        Result<(Option<Vec<u8>>, multipeer::proto::auth::Admitted), multipeer::proto::auth::AuthError>;

    /// Runs the admission exchange as the dialer on a raw connection up to the acceptor's REVEAL (`our` is the
    /// id we presented). Returns our control stream (nothing sent after the ANSWER), the peer's, and our check
    /// of the REVEAL.
    pub async fn up_to_reveal(
        conn: &quinn::Connection,
        our: multipeer::PeerId,
        passphrase: Option<&str>,
    ) -> Result<(quinn::SendStream, PeerControl, RevealChecked), String> {
        use multipeer::proto::auth::{Binding, Dialer, SystemEntropy};
        use multipeer::proto::frame::Frame;
        let (exporter, server) = (exporter(conn), server_id(conn));
        let binding = Binding {
            exporter: &exporter,
            dialer: our.as_bytes(),
            acceptor: server.as_bytes(),
        };
        let mut theirs = PeerControl::accept(conn).await?;
        let Frame::Auth(offer) = theirs.frame().await? else {
            return Err("expected an admission message".into());
        };
        let (state, answer) =
            Dialer::answer(&binding, passphrase, &offer, &mut SystemEntropy).map_err(|e| e.to_string())?;
        let mut control = conn.open_uni().await.map_err(|e| e.to_string())?;
        control
            .write_all(&[vec![0u8], frame(4, &answer)].concat())
            .await
            .map_err(|e| e.to_string())?;
        let Frame::Auth(reveal) = theirs.frame().await? else {
            return Err("expected an admission message".into());
        };
        Ok((control, theirs, state.finish(&binding, &reveal)))
    }

    /// Runs the admission exchange as the dialer on a raw connection (`our` is the id we presented). Returns
    /// our control stream (admission done, nothing else sent), the peer's, and the pairing code.
    pub async fn admit(
        conn: &quinn::Connection,
        our: multipeer::PeerId,
        passphrase: Option<&str>,
    ) -> Result<(quinn::SendStream, PeerControl, String), String> {
        let (mut control, theirs, checked) = up_to_reveal(conn, our, passphrase).await?;
        let (confirm, admitted) = checked.map_err(|e| e.to_string())?;
        if let Some(confirm) = confirm {
            control
                .write_all(&frame(4, &confirm))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok((control, theirs, admitted.pairing_code))
    }

    /// A valid hello payload.
    pub fn hello(name: &str, id: multipeer::PeerId) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": multipeer::proto::PROTOCOL_VERSION, "display_name": name, "max_peers": 8, "initial_data": null,
            "roster": {"version": 0, "members": [id]}
        }))
        .unwrap()
    }

    /// A frame: type, big-endian u32 length, payload.
    pub fn frame(frame_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![frame_type];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Connects to `addr` and joins as a peer called `name`: runs the admission exchange and sends the hello.
    /// Keep the returned control stream: a finished control stream is itself a protocol error.
    pub async fn join(addr: SocketAddr, name: &str) -> (quinn::Connection, quinn::SendStream) {
        let (conn, id) = connect_as(addr, RawOptions::default()).await.unwrap();
        let (mut control, mut theirs, _code) = admit(&conn, id, None).await.unwrap();
        control.write_all(&frame(1, &hello(name, id))).await.unwrap();
        // Read (and drop) what the session sends, as a peer would, until the connection ends.
        tokio::spawn(async move { while let Ok(Some(_)) = theirs.recv.read_chunk(1 << 16, true).await {} });
        (conn, control)
    }

    /// Reads a resource offer's reply from `recv` (at most 10 s).
    pub async fn read_reply(recv: &mut quinn::RecvStream) -> multipeer::proto::resource::Reply {
        let mut buf = bytes::BytesMut::new();
        loop {
            if let Some(reply) = multipeer::proto::resource::decode_reply(&mut buf).unwrap() {
                return reply;
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), recv.read_chunk(64, true))
                .await
                .expect("reply in time")
                .unwrap()
                .unwrap();
            buf.extend_from_slice(&chunk.bytes);
        }
    }

    /// Sends `bytes` on a new unidirectional stream and returns the close code the session answers with.
    pub async fn send_and_get_close_code(conn: &quinn::Connection, bytes: &[u8]) -> Option<u64> {
        let mut send = conn.open_uni().await.ok()?;
        let _ = send.write_all(bytes).await;
        match tokio::time::timeout(std::time::Duration::from_secs(10), conn.closed()).await {
            Ok(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
            Ok(_) | Err(_) => None,
        }
    }
}
pub mod netns;
