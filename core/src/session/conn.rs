//! One connection's life once it is made (see `handshake.rs` for making it): the types the handshake hands
//! over, and the driver that reads the connection until it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::{ConnectionError, ReadError, VarInt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::events::{
    ConnectionFailure, Data, Event, EventSender, Invitation, Message, Peer, PeerLane, Reliability, RemovalReason,
};
use super::stream::{DuplexStream, IncomingStream};
use crate::identity::PeerId;
use crate::proto::codes::{self, CloseCode};
use crate::proto::frame::{self, Frame, Hello, RosterFrame, StreamPreamble};
use crate::proto::guard::GuessGuard;
use crate::proto::mesh::{AttemptId, Refusal, Retry};
use crate::proto::roster::RosterView;
use crate::streams::read_preamble;
use crate::tls::ClientIdentity;

/// The close code and reason that tell a peer why it was refused. The reason of `SESSION_FULL` and `REDIRECT`
/// is the leader's id in hex.
pub(crate) fn refusal_code(refusal: Refusal) -> (u32, String) {
    match refusal {
        Refusal::Full(leader) => (codes::SESSION_FULL, leader.to_string()),
        Refusal::NotLooking => (codes::NOT_LOOKING, "not accepting peers now".into()),
        Refusal::Declined => (codes::DECLINED, "declined".into()),
        Refusal::Blocked => (codes::EXPELLED, "removed from the session".into()),
        Refusal::Duplicate => (codes::DUPLICATE, "duplicate connection".into()),
        Refusal::Redirect(leader) => (codes::REDIRECT, leader.to_string()),
        Refusal::NotYet => (codes::NOT_YET, "not yet".into()),
        Refusal::NotMember => (codes::NOT_MEMBER, "not in the session".into()),
    }
}

/// Most incoming named streams per connection whose name has not arrived yet.
const MAX_PENDING_STREAM_NAMES: usize = 64;

/// Decides whether a peer may join.
pub(crate) type Admission = Arc<dyn Fn(&Invitation) -> bool + Send + Sync>;

/// What every connection task of a session needs.
pub(crate) struct ConnCtx {
    pub(crate) resources: Arc<crate::resource::Hub>,
    pub(crate) local_id: PeerId,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) client: ClientIdentity,
    pub(crate) hello: Hello,
    pub(crate) passphrase: Option<String>,
    /// Back-off after failed passphrase attempts, shared by dials and accepts.
    pub(crate) guard: std::sync::Mutex<GuessGuard>,
    pub(crate) admission: Admission,
    pub(crate) internal: mpsc::Sender<Internal>,
    pub(crate) events: EventSender,
    /// When the session started (its age settles which of two sessions with one identity yields).
    pub(crate) started: std::time::Instant,
    /// How long the app may take to answer an invitation.
    pub(crate) answer_timeout: Duration,
    /// One permit per invitation waiting for the app ([`MAX_PENDING_INVITATIONS`]).
    pub(crate) asking: Arc<tokio::sync::Semaphore>,
}

/// The actor's answer to an inbound hello.
pub(crate) enum Inbound {
    /// Go on: the attempt id and the roster to send in our hello.
    Admit(AttemptId, RosterView),
    /// Close with this refusal.
    Refuse(Refusal),
    /// Ask the app first ([`crate::InvitationMode::Manual`]), then send the hello again as consented.
    Ask,
}

/// A connection whose hello exchange completed.
pub(crate) struct Handshaked {
    pub(crate) peer: Peer,
    pub(crate) conn: quinn::Connection,
    pub(crate) control_send: quinn::SendStream,
    pub(crate) control_recv: quinn::RecvStream,
    pub(crate) buffered: BytesMut,
    /// The committed pairing code of this connection.
    pub(crate) pairing_code: String,
    /// The roster the peer sent in its hello.
    pub(crate) roster: RosterView,
}

/// Messages from connection tasks to the session actor.
pub(crate) enum Internal {
    DialDone {
        peer: PeerId,
        attempt: AttemptId,
        result: Result<Box<Handshaked>, (Option<ConnectionFailure>, Retry)>,
    },
    InboundHello {
        peer: PeerId,
        roster: RosterView,
        /// The app accepted this peer's invitation.
        consented: bool,
        reply: oneshot::Sender<Inbound>,
    },
    Roster {
        peer: PeerId,
        frame: RosterFrame,
    },
    /// The app declined this peer: it is kept out of the session.
    Declined {
        peer: PeerId,
    },
    InboundDone {
        peer: PeerId,
        attempt: AttemptId,
        result: Option<Box<Handshaked>>,
    },
    Closed {
        peer: PeerId,
        attempt: AttemptId,
        reason: RemovalReason,
        retry: Retry,
    },
    /// A session with our identity answered at this address with its age (`None`: none proved itself).
    TwinProbed {
        result: Option<(SocketAddr, Duration)>,
    },
    /// A session with our identity dialed us from this address.
    TwinDialed {
        addr: SocketAddr,
    },
}

pub(crate) fn close(conn: &quinn::Connection, code: u32, reason: &str) {
    conn.close(VarInt::from_u32(code), reason.as_bytes());
}

/// Maps how a connection ended to the reason the app sees and whether to dial again.
pub(crate) fn removal_reason(e: &ConnectionError) -> (RemovalReason, Retry) {
    match e {
        ConnectionError::ApplicationClosed(close) => match CloseCode::from_code(close.error_code.into_inner()) {
            CloseCode::Goodbye => (RemovalReason::Left, Retry::UntilRediscovered),
            CloseCode::NotMember => (
                RemovalReason::ConnectionLost("not in the session any more".into()),
                Retry::Removed,
            ),
            CloseCode::Expelled => (RemovalReason::Expelled, Retry::UntilRediscovered),
            CloseCode::ProtocolError => (
                RemovalReason::ProtocolError(String::from_utf8_lossy(&close.reason).into_owned()),
                Retry::UntilRediscovered,
            ),
            _ => (RemovalReason::ConnectionLost(e.to_string()), Retry::Backoff),
        },
        ConnectionError::TimedOut => (RemovalReason::TimedOut, Retry::Backoff),
        ConnectionError::LocallyClosed => (RemovalReason::LocalDisconnect, Retry::UntilRediscovered),
        _ => (RemovalReason::ConnectionLost(e.to_string()), Retry::Backoff),
    }
}

enum DriverEnd {
    Closed(ConnectionError),
    Protocol(String),
    Goodbye,
    SessionGone,
}

/// Chunks taken from the control stream at once.
const READ_CHUNKS: usize = 32;

/// Decodes every complete frame in `buf` into `batch`; `Some` when the connection is to end after them.
/// Payloads are copied out of the packets they came in (into `buf`): a small message kept by the app then holds
/// only its own bytes, not a whole receive buffer.
fn decode_messages(
    peer: PeerId,
    buf: &mut BytesMut,
    batch: &mut Vec<Data>,
    rosters: &mut Vec<RosterFrame>,
) -> Option<DriverEnd> {
    loop {
        match frame::decode_frame(buf) {
            Ok(Some(Frame::Message(data))) => batch.push(Data::Message(Message {
                peer,
                data,
                reliability: Reliability::Reliable,
            })),
            Ok(Some(Frame::Goodbye)) => return Some(DriverEnd::Goodbye),
            Ok(Some(Frame::Hello(_))) => return Some(DriverEnd::Protocol("hello sent twice".into())),
            Ok(Some(Frame::Auth(_) | Frame::Asking(_))) => {
                return Some(DriverEnd::Protocol("handshake frame after hello".into()))
            }
            Ok(Some(Frame::Roster(payload))) => match RosterFrame::decode(&payload, &peer) {
                Ok(frame) => rosters.push(frame),
                Err(e) => return Some(DriverEnd::Protocol(e.to_string())),
            },
            Ok(None) => return None,
            Err(e) => return Some(DriverEnd::Protocol(e.to_string())),
        }
    }
}

/// Reads everything a connected peer sends until the connection ends, then reports to the actor.
///
/// Messages go to the app through the connection's `lane`. While the peer's byte budget is used up the control
/// stream is not read (QUIC flow control then holds the peer back); datagrams that do not fit are dropped, and
/// new streams are still accepted.
pub(crate) async fn drive(
    peer: PeerId,
    attempt: AttemptId,
    conn: quinn::Connection,
    mut recv: quinn::RecvStream,
    mut buf: BytesMut,
    ctx: Arc<ConnCtx>,
    lane: PeerLane,
) {
    let mut names: JoinSet<Result<(), String>> = JoinSet::new();
    let mut chunks: [Bytes; READ_CHUNKS] = Default::default();
    let mut batch = Vec::new();
    let mut rosters = Vec::new();
    let mut room = lane.room();
    let mut ending = None;
    let end = 'driver: loop {
        // Every message decoded so far goes to the app, as far as the budget allows, before more is read.
        if ending.is_none() {
            ending = decode_messages(peer, &mut buf, &mut batch, &mut rosters);
        }
        for frame in rosters.drain(..) {
            if ctx.internal.send(Internal::Roster { peer, frame }).await.is_err() {
                break 'driver DriverEnd::SessionGone;
            }
        }
        room.mark();
        if lane.push_fitting(&mut batch).is_err() {
            break DriverEnd::SessionGone;
        }
        let waiting = !batch.is_empty();
        if let (false, Some(end)) = (waiting, ending.take()) {
            break end;
        }
        // While data keeps arriving nothing below waits: let the other tasks on this thread run now and then.
        tokio::task::coop::consume_budget().await;
        tokio::select! {
            changed = room.changed(), if waiting => if changed.is_err() {
                break DriverEnd::SessionGone;
            },
            read = recv.read_chunks(&mut chunks), if !waiting => match read {
                Ok(Some(n)) => {
                    for chunk in chunks.iter_mut().take(n) {
                        buf.extend_from_slice(&std::mem::take(chunk));
                    }
                }
                Ok(None) => break DriverEnd::Protocol("control stream ended without goodbye".into()),
                Err(ReadError::ConnectionLost(e)) => break DriverEnd::Closed(e),
                Err(e) => break DriverEnd::Protocol(format!("control stream: {e}")),
            },
            datagram = conn.read_datagram() => match datagram {
                Ok(data) => {
                    let message = Message { peer, data, reliability: Reliability::Unreliable };
                    match lane.try_send(Event::Message(message)) {
                        Ok(true) => {}
                        Ok(false) => tracing::trace!(peer = %peer.short(), "no room for events; datagram dropped"),
                        Err(_) => break 'driver DriverEnd::SessionGone,
                    }
                }
                Err(e) => break DriverEnd::Closed(e),
            },
            stream = conn.accept_bi() => match stream {
                Ok((send, mut recv)) => {
                    if names.len() >= MAX_PENDING_STREAM_NAMES {
                        let _ = recv.stop(VarInt::from_u32(codes::PROTOCOL_ERROR));
                        continue;
                    }
                    names.spawn(accept_bidi(ctx.clone(), peer, send, recv, lane.clone()));
                }
                Err(e) => break DriverEnd::Closed(e),
            },
            stream = conn.accept_uni() => match stream {
                Ok(mut stream) => {
                    if names.len() >= MAX_PENDING_STREAM_NAMES {
                        let _ = stream.stop(VarInt::from_u32(codes::PROTOCOL_ERROR));
                        continue;
                    }
                    names.spawn(read_stream_name(peer, stream, lane.clone()));
                }
                Err(e) => break DriverEnd::Closed(e),
            },
            Some(named) = names.join_next(), if !names.is_empty() => {
                if let Ok(Err(problem)) = named {
                    break DriverEnd::Protocol(problem);
                }
            }
        }
    };
    report_end(&ctx, &conn, peer, attempt, end).await;
}

/// Closes the connection as `end` requires and tells the actor.
async fn report_end(ctx: &ConnCtx, conn: &quinn::Connection, peer: PeerId, attempt: AttemptId, end: DriverEnd) {
    let (reason, retry) = match end {
        DriverEnd::Closed(e) => removal_reason(&e),
        DriverEnd::Protocol(problem) => {
            tracing::warn!(peer = %peer.short(), "protocol error, closing connection: {problem}");
            close(conn, codes::PROTOCOL_ERROR, &problem);
            (RemovalReason::ProtocolError(problem), Retry::UntilRediscovered)
        }
        DriverEnd::Goodbye => {
            close(conn, codes::GOODBYE, "goodbye");
            (RemovalReason::Left, Retry::UntilRediscovered)
        }
        DriverEnd::SessionGone => return,
    };
    let closed = Internal::Closed {
        peer,
        attempt,
        reason,
        retry,
    };
    let _ = ctx.internal.send(closed).await;
}

/// Reads the kind byte of a bidirectional stream and hands the stream on: a resource transfer or a two-way
/// named stream. An error is a protocol violation.
async fn accept_bidi(
    ctx: Arc<ConnCtx>,
    peer: PeerId,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    lane: PeerLane,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    match tokio::time::timeout(STREAM_NAME_TIMEOUT, recv.read_chunk(1, true)).await {
        Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk.bytes),
        Ok(_) => return Ok(()),
        Err(_) => {
            let _ = recv.stop(VarInt::from_u32(codes::PROTOCOL_ERROR));
            return Ok(());
        }
    }
    match buf.first().copied() {
        Some(crate::proto::resource::STREAM_RESOURCE) => ctx.resources.clone().accept(peer, send, recv, buf).await,
        Some(frame::STREAM_DUPLEX) => {
            let max = frame::MAX_STREAM_NAME_LEN + 3;
            let decode = frame::decode_duplex_stream_preamble;
            if let Some(name) = read_preamble(&mut recv, &mut buf, max, STREAM_NAME_TIMEOUT, decode).await? {
                let stream = DuplexStream::new(peer, name, send, buf, recv);
                let _ = lane.send(Event::DuplexStream(stream)).await;
            }
            Ok(())
        }
        Some(other) => Err(format!("unknown bidirectional stream kind {other:#04x}")),
        None => Ok(()),
    }
}

/// How long a peer may take to send a stream's name.
const STREAM_NAME_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_stream_name(peer: PeerId, mut recv: quinn::RecvStream, lane: PeerLane) -> Result<(), String> {
    let mut buf = BytesMut::new();
    let max = frame::MAX_STREAM_NAME_LEN + 3;
    let decode = |buf: &mut BytesMut| match frame::decode_stream_preamble(buf) {
        Ok(Some(StreamPreamble::Named(name))) => Ok(Some(name)),
        Ok(Some(StreamPreamble::Control)) => Err("second control stream".to_owned()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    if let Some(name) = read_preamble(&mut recv, &mut buf, max, STREAM_NAME_TIMEOUT, decode).await? {
        let _ = lane
            .send(Event::Stream(IncomingStream::new(peer, name, buf, recv)))
            .await;
    }
    Ok(())
}
