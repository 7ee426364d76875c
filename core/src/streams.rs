//! Reading the start of a QUIC stream: a short preamble (a name, an offer) before the stream's body.

use std::time::Duration;

use bytes::BytesMut;
use quinn::VarInt;

use crate::proto::codes;

/// Reads the start of a stream into `buf` until `decode` recognises it (reading at most `max` bytes) or
/// `limit` passes. `Ok(None)`: the stream ended, was reset or took too long (then it is stopped) — not worth a
/// protocol error. `Err`: malformed, a protocol violation.
pub(crate) async fn read_preamble<T, E: std::fmt::Display>(
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
    max: usize,
    limit: Duration,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, E>,
) -> Result<Option<T>, String> {
    let read = async {
        loop {
            if let Some(value) = decode(buf).map_err(|e| e.to_string())? {
                return Ok(Some(value));
            }
            match recv.read_chunk(max.saturating_sub(buf.len()).max(1), true).await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(result) => result,
        Err(_) => {
            let _ = recv.stop(VarInt::from_u32(codes::PROTOCOL_ERROR));
            Ok(None)
        }
    }
}
