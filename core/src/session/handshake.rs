//! Making a connection: dialing or accepting, the admission exchange and the hellos, up to the point where the
//! session's actor takes the connection over (`Internal::DialDone` / `Internal::InboundDone`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use quinn::{ConnectionError, ReadError};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinSet;

use super::conn::{close, refusal_code, ConnCtx, Handshaked, Inbound, Internal};
use super::events::{ConnectionFailure, Event, Invitation, Peer, PendingInvitation};
use crate::identity::PeerId;
use crate::proto::auth::{self, AuthError, Binding, SystemEntropy};
use crate::proto::codes::{self, CloseCode};
use crate::proto::frame::{self, Frame, FrameError, Hello, StreamPreamble};
use crate::proto::mesh::{AttemptId, Dial, Retry};
use crate::proto::roster::RosterView;
use crate::proto::PROTOCOL_VERSION;
use crate::tls;

/// The leader id a `SESSION_FULL` or `REDIRECT` close carries.
fn leader_in(reason: &[u8]) -> Option<PeerId> {
    std::str::from_utf8(reason).ok()?.parse().ok()
}

/// How long the QUIC handshake and then the hello exchange may take, each.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Delay before trying a peer's next address while earlier ones are still pending.
pub(crate) const NEXT_ADDRESS_DELAY: Duration = Duration::from_millis(250);
/// Most inbound handshakes in progress at once; further connection attempts are refused.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 16;
/// Most invitations waiting for the app's answer at once; more are refused as "not now" (the inviter backs off).
pub(crate) const MAX_PENDING_INVITATIONS: usize = 4;
/// Largest chunk read from the control stream at once.
const READ_CHUNK: usize = 256 * 1024;

/// A failure during the handshake, with the close code to send (if we close).
pub(crate) struct HandshakeError {
    close: Option<u32>,
    failure: Option<ConnectionFailure>,
    retry: Retry,
}

impl HandshakeError {
    /// The peer's hello did not come in time.
    fn no_hello() -> Self {
        Self {
            close: Some(codes::HELLO_TIMEOUT),
            ..Self::protocol("no hello in time")
        }
    }

    fn protocol(detail: impl Into<String>) -> Self {
        Self {
            close: Some(codes::PROTOCOL_ERROR),
            failure: Some(ConnectionFailure::ProtocolError(detail.into())),
            retry: Retry::UntilRediscovered,
        }
    }

    fn ours(code: u32, failure: ConnectionFailure, retry: Retry) -> Self {
        Self {
            close: Some(code),
            failure: Some(failure),
            retry,
        }
    }
}

impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> Self {
        Self::protocol(e.to_string())
    }
}

impl From<ConnectionError> for HandshakeError {
    fn from(e: ConnectionError) -> Self {
        let (failure, retry) = match &e {
            ConnectionError::ApplicationClosed(close) => match CloseCode::from_code(close.error_code.into_inner()) {
                CloseCode::SessionFull => (
                    Some(ConnectionFailure::SessionFull),
                    leader_in(&close.reason).map_or(Retry::Backoff, Retry::Full),
                ),
                CloseCode::Redirect => (None, leader_in(&close.reason).map_or(Retry::Backoff, Retry::Redirect)),
                CloseCode::NotYet => (None, Retry::Soon),
                CloseCode::NotMember => (None, Retry::Removed),
                CloseCode::NotLooking => (None, Retry::Later),
                CloseCode::Declined => (Some(ConnectionFailure::Declined), Retry::UntilRediscovered),
                CloseCode::NoAnswer => (Some(ConnectionFailure::NoAnswer), Retry::UntilRediscovered),
                CloseCode::Expelled => (Some(ConnectionFailure::Expelled), Retry::UntilRediscovered),
                CloseCode::WrongPassphrase => (Some(ConnectionFailure::WrongPassphrase), Retry::UntilRediscovered),
                CloseCode::RateLimited => (Some(ConnectionFailure::TooManyAttempts), Retry::Backoff),
                CloseCode::VersionMismatch => (Some(ConnectionFailure::VersionMismatch), Retry::UntilRediscovered),
                CloseCode::Duplicate => (None, Retry::Soon),
                CloseCode::ProtocolError => (
                    Some(ConnectionFailure::ProtocolError(
                        String::from_utf8_lossy(&close.reason).into_owned(),
                    )),
                    Retry::UntilRediscovered,
                ),
                _ => (Some(ConnectionFailure::Other(e.to_string())), Retry::Backoff),
            },
            // no_application_protocol (TLS alert 120): the peer speaks another protocol version.
            ConnectionError::TransportError(t) if u64::from(t.code) == 0x100 + 120 => {
                (Some(ConnectionFailure::VersionMismatch), Retry::UntilRediscovered)
            }
            ConnectionError::TimedOut => (Some(ConnectionFailure::Unreachable), Retry::Backoff),
            _ => (Some(ConnectionFailure::Other(e.to_string())), Retry::Backoff),
        };
        Self {
            close: None,
            failure,
            retry,
        }
    }
}

fn read_error(e: ReadError) -> HandshakeError {
    match e {
        ReadError::ConnectionLost(e) => e.into(),
        other => HandshakeError::protocol(format!("control stream: {other}")),
    }
}

fn write_error(e: quinn::WriteError) -> HandshakeError {
    match e {
        quinn::WriteError::ConnectionLost(e) => e.into(),
        other => HandshakeError::protocol(format!("control stream: {other}")),
    }
}

/// Our hello, framed (sent only once the admission exchange succeeded). A dialer sends `context` (the app's
/// invitation), or else the configured one; an acceptor sends none.
fn our_hello(
    ctx: &ConnCtx,
    dialer: bool,
    roster: RosterView,
    context: Option<Vec<u8>>,
) -> Result<Bytes, HandshakeError> {
    let mut hello = ctx.hello.clone();
    hello.roster = roster;
    if !dialer {
        hello.invitation_context = None;
    } else if context.is_some() {
        hello.invitation_context = context;
    }
    Ok(frame::encode_frame(&Frame::Hello(hello.encode()?))?)
}

/// Opens our control stream with its first frames (an admission message, and perhaps our hello).
async fn open_control(conn: &quinn::Connection, frames: &[Bytes]) -> Result<quinn::SendStream, HandshakeError> {
    let mut send = conn.open_uni().await?;
    let mut bytes: Vec<Bytes> = std::iter::once(Bytes::from_static(&[frame::STREAM_CONTROL]))
        .chain(frames.iter().cloned())
        .collect();
    send.write_all_chunks(&mut bytes).await.map_err(write_error)?;
    Ok(send)
}

fn auth_frame(message: Vec<u8>) -> Result<Bytes, HandshakeError> {
    Ok(frame::encode_frame(&Frame::Auth(Bytes::from(message)))?)
}

async fn write_frames(send: &mut quinn::SendStream, frames: &mut [Bytes]) -> Result<(), HandshakeError> {
    send.write_all_chunks(frames).await.map_err(write_error)
}

/// Reads more of `recv` into `buf`; `Err` at the end of the stream.
async fn fill(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> Result<(), HandshakeError> {
    match recv.read_chunk(READ_CHUNK, true).await.map_err(read_error)? {
        Some(chunk) => {
            buf.extend_from_slice(&chunk.bytes);
            Ok(())
        }
        None => Err(FrameError::Truncated.into()),
    }
}

/// The peer's control stream during the handshake: admission messages, then the hello.
struct ControlReader {
    recv: quinn::RecvStream,
    buf: BytesMut,
}

impl ControlReader {
    /// Accepts the peer's control stream.
    async fn accept(conn: &quinn::Connection) -> Result<Self, HandshakeError> {
        let mut recv = conn.accept_uni().await?;
        let mut buf = BytesMut::new();
        loop {
            match frame::decode_stream_preamble(&mut buf)? {
                Some(StreamPreamble::Control) => return Ok(Self { recv, buf }),
                Some(StreamPreamble::Named(_)) => return Err(HandshakeError::protocol("named stream before hello")),
                None => fill(&mut recv, &mut buf).await?,
            }
        }
    }

    async fn frame(&mut self) -> Result<Frame, HandshakeError> {
        loop {
            match frame::decode_frame(&mut self.buf)? {
                Some(frame) => return Ok(frame),
                None => fill(&mut self.recv, &mut self.buf).await?,
            }
        }
    }

    /// The next admission message.
    async fn auth(&mut self) -> Result<Bytes, HandshakeError> {
        match self.frame().await? {
            Frame::Auth(payload) => Ok(payload),
            _ => Err(HandshakeError::protocol("expected an admission message")),
        }
    }

    /// The acceptor's hello, waiting past `deadline` once if its app is asked about our invitation (an ASKING
    /// frame); `None` if it did not come in time.
    async fn hello_after_asking(&mut self, deadline: tokio::time::Instant) -> Result<Option<Hello>, HandshakeError> {
        let first = tokio::time::timeout_at(deadline, self.frame()).await;
        let Ok(first) = first else { return Ok(None) };
        let limit = match first? {
            Frame::Asking(ms) => Duration::from_millis(u64::from(ms.min(frame::MAX_ASKING_MS))),
            frame => return Self::check_hello(frame).map(Some),
        };
        tracing::debug!("the peer's app is asked about our invitation (up to {limit:?})");
        match tokio::time::timeout(limit + HANDSHAKE_TIMEOUT, self.hello()).await {
            Ok(hello) => hello.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The hello, which must come next.
    async fn hello(&mut self) -> Result<Hello, HandshakeError> {
        let frame = self.frame().await?;
        Self::check_hello(frame)
    }

    fn check_hello(frame: Frame) -> Result<Hello, HandshakeError> {
        match frame {
            Frame::Hello(payload) => {
                let hello = Hello::decode(&payload)?;
                if hello.version != PROTOCOL_VERSION {
                    return Err(HandshakeError::ours(
                        codes::VERSION_MISMATCH,
                        ConnectionFailure::VersionMismatch,
                        Retry::UntilRediscovered,
                    ));
                }
                Ok(hello)
            }
            _ => Err(HandshakeError::protocol("frame before hello")),
        }
    }
}

impl From<AuthError> for HandshakeError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::WrongPassphrase => Self::ours(
                codes::WRONG_PASSPHRASE,
                ConnectionFailure::WrongPassphrase,
                Retry::UntilRediscovered,
            ),
            AuthError::Random => Self::ours(
                codes::PROTOCOL_ERROR,
                ConnectionFailure::Other("no randomness".into()),
                Retry::Backoff,
            ),
            other => Self::protocol(other.to_string()),
        }
    }
}

/// A hello's roster must name its sender.
fn check_roster(hello: &Hello, sender: &PeerId) -> Result<(), HandshakeError> {
    if hello.roster.is_valid(sender, crate::config::MAX_PEERS_LIMIT) {
        Ok(())
    } else {
        Err(HandshakeError::protocol("invalid roster in hello"))
    }
}

/// The TLS exporter value the admission exchange is bound to.
fn exporter(conn: &quinn::Connection) -> Result<[u8; auth::EXPORTER_LEN], HandshakeError> {
    let mut out = [0u8; auth::EXPORTER_LEN];
    conn.export_keying_material(&mut out, auth::EXPORTER_LABEL, b"")
        .map_err(|_| HandshakeError::protocol("cannot export keying material"))?;
    Ok(out)
}

/// Passphrase attempts with this peer and address: `Err` while they are held back after failures.
fn guard_check(ctx: &ConnCtx, peer: PeerId, conn: &quinn::Connection) -> Result<(), HandshakeError> {
    if ctx.passphrase.is_none() {
        return Ok(());
    }
    let mut guard = ctx.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match guard.check(Instant::now(), *peer.as_bytes(), conn.remote_address().ip()) {
        Ok(()) => Ok(()),
        Err(wait) => {
            tracing::info!(peer = %peer.short(), ?wait, "holding back passphrase attempts after failures");
            Err(HandshakeError::ours(
                codes::RATE_LIMITED,
                ConnectionFailure::TooManyAttempts,
                Retry::Backoff,
            ))
        }
    }
}

/// Records how a passphrase attempt ended (nothing without a passphrase).
fn guard_record(ctx: &ConnCtx, peer: PeerId, conn: &quinn::Connection, ok: bool) {
    if ctx.passphrase.is_none() {
        return;
    }
    let mut guard = ctx.guard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (now, id, addr) = (Instant::now(), *peer.as_bytes(), conn.remote_address().ip());
    if ok {
        guard.succeeded(now, id, addr);
    } else {
        guard.failed(now, id, addr);
    }
}

/// The dialer's side after TLS: admission exchange, then hellos. The acceptor's hello may take longer if its
/// app is asked about our invitation.
async fn dial_exchange(
    ctx: &ConnCtx,
    peer: PeerId,
    conn: &quinn::Connection,
    roster: RosterView,
    context: Option<Vec<u8>>,
) -> Result<Handshaked, HandshakeError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let admission = dial_admission(ctx, peer, conn, roster, context);
    let (mut reader, control_send, pairing_code) = tokio::time::timeout_at(deadline, admission)
        .await
        .map_err(|_| HandshakeError::no_hello())??;
    let hello = reader
        .hello_after_asking(deadline)
        .await?
        .ok_or_else(HandshakeError::no_hello)?;
    check_roster(&hello, &peer)?;
    Ok(Handshaked {
        peer: Peer::new(peer, hello.display_name, hello.discovery_info, hello.initial_data),
        conn: conn.clone(),
        control_send,
        control_recv: reader.recv,
        buffered: reader.buf,
        pairing_code,
        roster: hello.roster,
    })
}

/// The dialer's admission exchange, ending with our hello sent: the acceptor's control stream, ours, and the
/// pairing code. Without a passphrase our hello rides with our ANSWER; with one it waits for the acceptor's
/// confirmation and follows our CONFIRM.
async fn dial_admission(
    ctx: &ConnCtx,
    peer: PeerId,
    conn: &quinn::Connection,
    roster: RosterView,
    context: Option<Vec<u8>>,
) -> Result<(ControlReader, quinn::SendStream, String), HandshakeError> {
    let exporter = exporter(conn)?;
    let binding = Binding {
        exporter: &exporter,
        dialer: ctx.local_id.as_bytes(),
        acceptor: peer.as_bytes(),
    };
    guard_check(ctx, peer, conn)?;
    let mut reader = ControlReader::accept(conn).await?;
    let offer = reader.auth().await?;
    let answered = auth::Dialer::answer(&binding, ctx.passphrase.as_deref(), &offer, &mut SystemEntropy);
    let (state, answer) = answered.inspect_err(|_| guard_record(ctx, peer, conn, false))?;
    let mut hello = Some(our_hello(ctx, true, roster, context)?);
    let mut first = vec![auth_frame(answer)?];
    if !state.confirms() {
        first.extend(hello.take());
    }
    let mut control_send = open_control(conn, &first).await?;
    let reveal = reader.auth().await;
    let finished = reveal.and_then(|reveal| Ok(state.finish(&binding, &reveal)?));
    guard_record(ctx, peer, conn, finished.is_ok());
    let (confirm, admitted) = finished?;
    if let Some(confirm) = confirm {
        let mut frames: Vec<Bytes> = std::iter::once(auth_frame(confirm)?).chain(hello).collect();
        write_frames(&mut control_send, &mut frames).await?;
    }
    Ok((reader, control_send, admitted.pairing_code))
}

/// Connects to the first address that answers; later addresses start after [`NEXT_ADDRESS_DELAY`] each, so an
/// unreachable first address does not stall the dial.
pub(crate) async fn connect_any(
    endpoint: &quinn::Endpoint,
    config: quinn::ClientConfig,
    addrs: &[SocketAddr],
) -> Result<quinn::Connection, HandshakeError> {
    let mut pending = FuturesUnordered::new();
    let mut remaining = addrs.iter();
    let mut last_error: Option<HandshakeError> = None;
    loop {
        if pending.is_empty() {
            let Some(addr) = remaining.next() else {
                return Err(last_error.unwrap_or(HandshakeError {
                    close: None,
                    failure: Some(ConnectionFailure::Unreachable),
                    retry: Retry::Backoff,
                }));
            };
            match endpoint.connect_with(config.clone(), *addr, tls::SERVER_NAME) {
                Ok(connecting) => pending.push(connecting),
                Err(e) => {
                    tracing::debug!(%addr, "cannot dial: {e}");
                    continue;
                }
            }
        }
        tokio::select! {
            result = pending.next() => match result {
                Some(Ok(conn)) => return Ok(conn),
                Some(Err(e)) => last_error = Some(e.into()),
                None => {}
            },
            _ = tokio::time::sleep(NEXT_ADDRESS_DELAY) => {
                if let Some(addr) = remaining.next() {
                    match endpoint.connect_with(config.clone(), *addr, tls::SERVER_NAME) {
                        Ok(connecting) => pending.push(connecting),
                        Err(e) => tracing::debug!(%addr, "cannot dial: {e}"),
                    }
                }
            }
        }
    }
}

/// Dials a peer and runs the hello exchange as the inviter, sending `roster` in our hello.
pub(crate) async fn dial(ctx: Arc<ConnCtx>, dial: Dial, roster: RosterView, context: Option<Vec<u8>>) {
    let Dial { peer, attempt, addrs } = dial;
    let result = dial_inner(&ctx, peer, &addrs, roster, context)
        .await
        .map(Box::new)
        .map_err(|e| (e.failure, e.retry));
    if let Err((Some(failure), _)) = &result {
        tracing::debug!(peer = %peer.short(), "dial failed: {failure}");
    }
    let _ = ctx.internal.send(Internal::DialDone { peer, attempt, result }).await;
}

async fn dial_inner(
    ctx: &ConnCtx,
    peer: PeerId,
    addrs: &[SocketAddr],
    roster: RosterView,
    context: Option<Vec<u8>>,
) -> Result<Handshaked, HandshakeError> {
    let (config, outcome) = ctx.client.config_for(peer).map_err(|e| {
        HandshakeError::ours(
            codes::PROTOCOL_ERROR,
            ConnectionFailure::Other(e.to_string()),
            Retry::Backoff,
        )
    })?;
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect_any(&ctx.endpoint, config, addrs)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            let mismatched = outcome.lock().ok().and_then(|o| o.mismatched);
            return Err(match mismatched {
                Some(presented) => HandshakeError {
                    close: None,
                    failure: Some(ConnectionFailure::IdentityMismatch { presented }),
                    retry: Retry::UntilRediscovered,
                },
                None => e,
            });
        }
        Err(_) => {
            return Err(HandshakeError {
                close: None,
                failure: Some(ConnectionFailure::Unreachable),
                retry: Retry::Backoff,
            })
        }
    };
    dial_exchange(ctx, peer, &conn, roster, context).await.inspect_err(|e| {
        if let Some(code) = e.close {
            close(&conn, code, "handshake failed");
        }
    })
}

/// Accepts inbound connections until the endpoint closes, at most [`MAX_PENDING_HANDSHAKES`] at a time.
pub(crate) async fn accept_loop(ctx: Arc<ConnCtx>) {
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            incoming = ctx.endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let ctx = ctx.clone();
                        tasks.spawn(async move {
                            accept(&ctx, incoming).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        tracing::debug!(remote = %incoming.remote_address(), "too many handshakes in progress; refusing");
                        incoming.refuse();
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// We were dialed by our own id (its certificate proved it): the same identity runs twice. Close with our
/// session's age and let the session check it back (`twin.rs`).
async fn answer_twin(ctx: &ConnCtx, conn: &quinn::Connection) {
    let age = ctx.started.elapsed().as_millis().to_string();
    conn.close(codes::IDENTITY_IN_USE.into(), age.as_bytes());
    let _ = ctx
        .internal
        .send(Internal::TwinDialed {
            addr: conn.remote_address(),
        })
        .await;
}

/// TLS as the acceptor, with our OFFER sent as 0.5-RTT data alongside our handshake flight (it holds nothing
/// but a commitment and whether we ask for a passphrase): the connection once the dialer's certificate checked
/// out, our control stream, and the admission state.
async fn establish(
    ctx: &ConnCtx,
    incoming: quinn::Incoming,
) -> Result<(quinn::Connection, quinn::SendStream, auth::Acceptor), HandshakeError> {
    let connecting = incoming.accept()?;
    let (conn, handshake) = match connecting.into_0rtt() {
        Ok((conn, handshake)) => (conn, Some(handshake)),
        Err(connecting) => (connecting.await?, None),
    };
    let offered = auth::Acceptor::offer(ctx.local_id.as_bytes(), ctx.passphrase.as_deref(), &mut SystemEntropy);
    let (state, offer) = offered.inspect_err(|_| close(&conn, codes::PROTOCOL_ERROR, "no randomness"))?;
    let control_send = open_control(&conn, &[auth_frame(offer)?]).await?;
    if let Some(handshake) = handshake {
        handshake.await;
    }
    match conn.close_reason() {
        Some(reason) => Err(reason.into()),
        None => Ok((conn, control_send, state)),
    }
}

async fn accept(ctx: &ConnCtx, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let (conn, control_send, offered) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, establish(ctx, incoming)).await {
        Ok(Ok(established)) => established,
        Ok(Err(e)) => {
            tracing::debug!(%remote, "inbound handshake failed: {:?}", e.failure);
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "inbound handshake timed out");
            return;
        }
    };
    let Some(peer) = tls::remote_peer_id(&conn) else {
        close(&conn, codes::PROTOCOL_ERROR, "no certificate");
        return;
    };
    if peer == ctx.local_id {
        answer_twin(ctx, &conn).await;
        return;
    }
    let exchange = accept_exchange(ctx, peer, &conn, control_send, offered);
    let admitted = match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(e)) => {
            tracing::debug!(%remote, peer = %peer.short(), "inbound admission failed: {:?}", e.failure);
            if let Some(code) = e.close {
                close(&conn, code, "admission failed");
            }
            if let Some(reason @ (ConnectionFailure::WrongPassphrase | ConnectionFailure::TooManyAttempts)) = e.failure
            {
                tracing::info!(peer = %peer.short(), "refused a peer: {reason}");
                // A host can make these as fast as it likes: dropped while the app is far behind.
                if !ctx.events.offer(Event::ConnectionFailed { peer, reason }) {
                    tracing::debug!(peer = %peer.short(), "event queue backlogged; failure not reported");
                }
            }
            return;
        }
        Err(_) => {
            guard_record(ctx, peer, &conn, false);
            close(&conn, codes::HELLO_TIMEOUT, "no hello");
            return;
        }
    };
    let (reader, mut control_send, hello, pairing_code) = admitted;
    let Some((attempt, ours)) = decide(ctx, &conn, peer, &hello, &mut control_send).await else {
        return;
    };
    let sent = match our_hello(ctx, false, ours, None) {
        Ok(hello) => write_frames(&mut control_send, &mut [hello]).await,
        Err(e) => Err(e),
    };
    let result = match sent {
        Ok(()) => Some(Box::new(Handshaked {
            peer: Peer::new(peer, hello.display_name, hello.discovery_info, hello.initial_data),
            conn,
            control_send,
            control_recv: reader.recv,
            buffered: reader.buf,
            pairing_code,
            roster: hello.roster,
        })),
        Err(e) => {
            tracing::debug!(peer = %peer.short(), "sending hello failed: {:?}", e.failure);
            None
        }
    };
    let _ = ctx.internal.send(Internal::InboundDone { peer, attempt, result }).await;
}

/// Whether the dialer, past admission, joins: the app's admission hook, the membership rules, and in manual
/// mode the app's answer to the invitation. `None`: the connection was closed (or the session is gone).
async fn decide(
    ctx: &ConnCtx,
    conn: &quinn::Connection,
    peer: PeerId,
    hello: &Hello,
    control_send: &mut quinn::SendStream,
) -> Option<(AttemptId, RosterView)> {
    let invitation = Invitation {
        peer,
        display_name: hello.display_name.clone(),
        discovery_info: hello.discovery_info.clone(),
        context: hello.invitation_context.clone(),
        inbound: true,
    };
    if !(ctx.admission)(&invitation) {
        close(conn, codes::DECLINED, "declined");
        let _ = ctx.internal.send(Internal::Declined { peer }).await;
        return None;
    }
    let mut consented = false;
    loop {
        let (reply, decision) = oneshot::channel();
        let roster = hello.roster.clone();
        let hello = Internal::InboundHello {
            peer,
            roster,
            consented,
            reply,
        };
        ctx.internal.send(hello).await.ok()?;
        match decision.await.ok()? {
            Inbound::Admit(attempt, ours) => return Some((attempt, ours)),
            Inbound::Refuse(refusal) => {
                let (code, reason) = refusal_code(refusal);
                tracing::debug!(peer = %peer.short(), "refused inbound peer: {reason}");
                close(conn, code, &reason);
                return None;
            }
            Inbound::Ask if !consented => {
                if let Err((code, reason)) = ask_app(ctx, conn, control_send, invitation.clone()).await {
                    tracing::debug!(peer = %peer.short(), "invitation not accepted: {reason}");
                    close(conn, code, reason);
                    return None;
                }
                consented = true;
            }
            Inbound::Ask => return None,
        }
    }
}

/// Asks the app about an invitation: tells the dialer to wait, queues [`Event::Invitation`], and waits for the
/// answer up to the invitation timeout. `Err`: the close code and reason.
async fn ask_app(
    ctx: &ConnCtx,
    conn: &quinn::Connection,
    control_send: &mut quinn::SendStream,
    invitation: Invitation,
) -> Result<(), (u32, &'static str)> {
    let Ok(_permit) = ctx.asking.clone().try_acquire_owned() else {
        return Err((codes::NOT_LOOKING, "too many invitations waiting for an answer"));
    };
    let ms = u32::try_from(ctx.answer_timeout.as_millis()).unwrap_or(frame::MAX_ASKING_MS);
    let asking = frame::encode_frame(&Frame::Asking(ms.min(frame::MAX_ASKING_MS)))
        .map_err(|_| (codes::PROTOCOL_ERROR, "encoding"))?;
    write_frames(control_send, &mut [asking])
        .await
        .map_err(|_| (codes::PROTOCOL_ERROR, "cannot write"))?;
    let (pending, answer) = PendingInvitation::new(invitation);
    let asked = async {
        ctx.events.send(Event::Invitation(pending)).await.ok()?;
        answer.await.ok()
    };
    tokio::select! {
        answer = tokio::time::timeout(ctx.answer_timeout, asked) => match answer {
            Ok(Some(true)) => Ok(()),
            Ok(_) => Err((codes::DECLINED, "declined")),
            Err(_) => Err((codes::NO_ANSWER, "no answer in time")),
        },
        _ = conn.closed() => Err((codes::GOODBYE, "the inviter left")),
    }
}

/// What the acceptor holds once the dialer passed admission: its control stream, ours, its hello, the code.
type Admitted = (ControlReader, quinn::SendStream, Hello, String);

/// The acceptor's side after TLS: the rest of the admission exchange, then the dialer's hello. Nothing of ours
/// but the admission messages crosses before the dialer proved the passphrase.
async fn accept_exchange(
    ctx: &ConnCtx,
    peer: PeerId,
    conn: &quinn::Connection,
    mut control_send: quinn::SendStream,
    offered: auth::Acceptor,
) -> Result<Admitted, HandshakeError> {
    let exporter = exporter(conn)?;
    let binding = Binding {
        exporter: &exporter,
        dialer: peer.as_bytes(),
        acceptor: ctx.local_id.as_bytes(),
    };
    let mut reader = ControlReader::accept(conn).await?;
    let answer = reader.auth().await?;
    guard_check(ctx, peer, conn)?;
    let answered = offered.answer(&binding, &answer, &mut SystemEntropy);
    let (reveal, answered) = answered.inspect_err(|_| guard_record(ctx, peer, conn, false))?;
    let sent = write_frames(&mut control_send, &mut [auth_frame(reveal)?]).await;
    let admitted = match answered {
        auth::Answered::Admitted(admitted) => {
            sent?;
            admitted
        }
        auth::Answered::Confirm(confirming) => {
            let finished = async {
                sent?;
                let confirm = reader.auth().await?;
                Ok::<_, HandshakeError>(confirming.finish(&confirm)?)
            }
            .await;
            guard_record(ctx, peer, conn, finished.is_ok());
            // A dialer that leaves after our confirmation without confirming its own (closing, ending its
            // stream, or sending a wrong one) tried a passphrase that did not match: one guess, reported as such.
            finished.map_err(|_| {
                HandshakeError::ours(
                    codes::WRONG_PASSPHRASE,
                    ConnectionFailure::WrongPassphrase,
                    Retry::UntilRediscovered,
                )
            })?
        }
    };
    let hello = reader.hello().await?;
    check_roster(&hello, &peer)?;
    Ok((reader, control_send, hello, admitted.pairing_code))
}
