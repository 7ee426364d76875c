//! The sending side of a resource transfer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use quinn::VarInt;
use tokio::time::Instant;

use super::pipe::{Next, Reader};
use super::{
    read_stop, write_stop, Delivered, Hub, Rate, RefusalReason, ResourceError, Stop, TransferState, REPLY_TIMEOUT,
};
use crate::proto::resource::{
    decode_reply, encode_offer, Offer, Refusal, Reply, Verdict, DIGEST_LEN, RESOURCE_CANCELLED, RESOURCE_PROTOCOL_ERROR,
};

/// Most attempts of one transfer (each interruption costs one).
const MAX_ATTEMPTS: u32 = 64;
/// How often a transfer the receiver reports busy is tried again, and how long apart.
const MAX_BUSY_RETRIES: u32 = 10;
const BUSY_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Runs a transfer to its end and records the outcome.
pub(crate) async fn run(hub: Arc<Hub>, state: Arc<TransferState>, path: PathBuf) {
    let outcome = attempts(&hub, &state, &path).await;
    if let Err(e) = &outcome {
        tracing::debug!(peer = %state.peer.short(), name = %state.name, "resource not sent: {e}");
    }
    state.finish(outcome);
}

async fn attempts(hub: &Hub, state: &TransferState, path: &Path) -> Result<Delivered, ResourceError> {
    let mut cancel = state.cancelled();
    let mut busy = 0;
    for _ in 0..MAX_ATTEMPTS {
        let conn = match hub.host.connection(&state.peer) {
            Some(conn) => conn,
            None => {
                hub.wait_for_peer(state.peer, Instant::now() + hub.settings.resume_window, &mut cancel)
                    .await?;
                continue;
            }
        };
        match attempt(state, path, &conn, &mut cancel).await {
            Ok(delivered) => return Ok(delivered),
            // The receiver may not have noticed the lost connection yet, or is at its limit: try again shortly.
            Err(Stop::Failed(ResourceError::Refused(RefusalReason::Busy))) if busy < MAX_BUSY_RETRIES => {
                busy += 1;
                tokio::time::sleep(BUSY_RETRY_DELAY).await;
            }
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Interrupted) => {
                if hub.is_closed() {
                    return Err(ResourceError::SessionClosed);
                }
                tracing::debug!(peer = %state.peer.short(), name = %state.name, "resource interrupted; waiting to resume");
                let p = state.progress.borrow().transferred;
                state.report(p, 0.0);
                // Let the session notice the lost connection before looking for a new one.
                tokio::time::sleep(Duration::from_millis(100)).await;
                hub.wait_for_peer(state.peer, Instant::now() + hub.settings.resume_window, &mut cancel)
                    .await?;
            }
        }
    }
    Err(ResourceError::Interrupted)
}

async fn attempt(
    state: &TransferState,
    path: &Path,
    conn: &quinn::Connection,
    cancel: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Delivered, Stop> {
    let offer = encode_offer(&Offer {
        id: state.id.0,
        size: state.size,
        name: state.name.clone(),
    })
    .map_err(|_| ResourceError::Protocol("the offer cannot be encoded"))?;
    // Opening may wait for stream credit (the peer's other streams): cancelling must not.
    let opened = tokio::select! {
        opened = async {
            let (mut send, recv) = conn.open_bi().await.map_err(|_| Stop::Interrupted)?;
            send.write_all(&offer).await.map_err(write_stop)?;
            Ok::<_, Stop>((send, recv))
        } => opened,
        _ = cancel.wait_for(|c| *c) => return Err(ResourceError::Cancelled.into()),
    };
    let (mut send, mut recv) = opened?;

    // The reply (the receiver's app may take its time; cancelling does not wait for it).
    let mut buf = BytesMut::new();
    let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
        loop {
            match decode_reply(&mut buf) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(_) => return Err(Stop::Failed(ResourceError::Protocol("malformed reply"))),
            }
            match recv.read_chunk(16, true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(Stop::Failed(ResourceError::Protocol("stream ended before the reply"))),
                Err(e) => return Err(read_stop(e)),
            }
        }
    });
    let reply = tokio::select! {
        reply = reply => reply,
        _ = cancel.wait_for(|c| *c) => {
            let _ = send.reset(VarInt::from_u32(RESOURCE_CANCELLED));
            let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
            return Err(ResourceError::Cancelled.into());
        }
    };
    let reply = reply.map_err(|_| ResourceError::Protocol("no reply to the offer"))??;
    let offset = match reply {
        Reply::Refuse(Refusal::Cancelled) => return Err(ResourceError::CancelledByPeer.into()),
        Reply::Refuse(refusal) => return Err(ResourceError::Refused(refusal.into()).into()),
        Reply::Accept { offset } if offset <= state.size => offset,
        Reply::Accept { .. } => {
            let _ = send.reset(VarInt::from_u32(RESOURCE_PROTOCOL_ERROR));
            return Err(ResourceError::Protocol("resume offset beyond the end").into());
        }
    };

    // The data, from `offset` on, read and hashed (all of it) on a blocking task while we send.
    let mut reader = Reader::spawn(path.to_path_buf(), offset, state.size);
    let sha256 = tokio::select! {
        sent = send_data(state, offset, &mut reader, &mut send) => sent?,
        _ = cancel.wait_for(|c| *c) => {
            let _ = send.reset(VarInt::from_u32(RESOURCE_CANCELLED));
            let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
            return Err(ResourceError::Cancelled.into());
        }
    };
    send.write_all(&sha256).await.map_err(write_stop)?;
    let _ = send.finish();
    tracing::debug!(name = %state.name, size = state.size, "resource sent; waiting for the verdict");

    // The verdict, once the receiver has checked, synced and saved the file: no time limit (syncing gigabytes
    // to a slow card takes long; a vanished receiver is noticed by the connection's idle timeout).
    let verdict = tokio::select! {
        v = recv.read_chunk(1, true) => v,
        _ = cancel.wait_for(|c| *c) => {
            let _ = recv.stop(VarInt::from_u32(RESOURCE_CANCELLED));
            return Err(ResourceError::Cancelled.into());
        }
    };
    let byte = match verdict {
        Ok(Some(chunk)) if !chunk.bytes.is_empty() => chunk.bytes[0],
        Ok(_) => return Err(ResourceError::Protocol("stream ended without a verdict").into()),
        Err(e) => return Err(read_stop(e)),
    };
    tracing::debug!(name = %state.name, byte, "verdict");
    match Verdict::from_byte(byte) {
        Ok(Verdict::Verified) => Ok(Delivered {
            size: state.size,
            sha256,
            path: None,
            resumed_from: offset,
        }),
        Ok(Verdict::DigestMismatch) => Err(ResourceError::IntegrityCheckFailed.into()),
        Ok(Verdict::Failed) => Err(ResourceError::Refused(super::RefusalReason::Unavailable).into()),
        Err(_) => Err(ResourceError::Protocol("unknown verdict").into()),
    }
}

/// Sends the file's chunks from `offset` on as the reader delivers them; the file's digest once all are sent.
async fn send_data(
    state: &TransferState,
    offset: u64,
    reader: &mut Reader,
    send: &mut quinn::SendStream,
) -> Result<[u8; DIGEST_LEN], Stop> {
    let rate = Rate::new(offset);
    let mut sent = offset;
    state.report(sent, 0.0);
    loop {
        match reader.next().await {
            Ok(Next::Chunk(chunk)) => {
                sent += chunk.len() as u64;
                send.write_chunk(chunk).await.map_err(write_stop)?;
                state.report(sent, rate.at(sent));
            }
            Ok(Next::Done(sha256)) if sent == state.size => return Ok(sha256),
            Ok(Next::Done(_)) => {
                return Err(ResourceError::from(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file was not read to its end",
                ))
                .into())
            }
            Err(e) => {
                let _ = send.reset(VarInt::from_u32(RESOURCE_PROTOCOL_ERROR));
                return Err(ResourceError::from(e).into());
            }
        }
    }
}
