//! Wire format of resource (file) transfers, on one bidirectional stream per transfer.
//!
//! ```text
//! sender → receiver   [STREAM_RESOURCE][id: 16][size: u64 BE][name length: u8][name: UTF-8]
//! receiver → sender   [REPLY_ACCEPT][offset: u64 BE]  or  [REPLY_REFUSE][reason: u8]
//! sender → receiver   bytes offset..size of the file, then its SHA-256 (32 bytes), then FIN
//! receiver → sender   [verdict: u8], then FIN
//! ```
//!
//! Either side cancels by resetting / stopping the stream with [`RESOURCE_CANCELLED`].

use bytes::{Buf, BufMut, BytesMut};

/// Kind byte of a resource stream (the first byte the sender writes on a bidirectional stream).
pub const STREAM_RESOURCE: u8 = 0x02;
/// Bytes of a transfer id.
pub const RESOURCE_ID_LEN: usize = 16;
/// Longest resource name, in bytes of UTF-8.
pub const MAX_RESOURCE_NAME_LEN: usize = 255;
/// Bytes of the SHA-256 digest that follows the data.
pub const DIGEST_LEN: usize = 32;
/// Longest offer on the wire.
pub const MAX_OFFER_LEN: usize = 1 + RESOURCE_ID_LEN + 8 + 1 + MAX_RESOURCE_NAME_LEN;
/// Stream error code: the transfer was cancelled by the side that sends it.
pub const RESOURCE_CANCELLED: u32 = 0x10;
/// Stream error code: the stream broke the resource protocol.
pub const RESOURCE_PROTOCOL_ERROR: u32 = 0x11;

const REPLY_ACCEPT: u8 = 0x00;
const REPLY_REFUSE: u8 = 0x01;

/// An offer to send a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The transfer id, chosen at random by the sender and kept across resumptions.
    pub id: [u8; RESOURCE_ID_LEN],
    /// Total size in bytes.
    pub size: u64,
    /// The name the sender gives it (never used as a path as is).
    pub name: String,
}

/// Why a receiver refuses an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The app declined it.
    Declined,
    /// It is larger than the receiver accepts.
    TooLarge,
    /// The receiver has too many transfers under way, or this one is already running.
    Busy,
    /// The receiver cannot store it.
    Unavailable,
    /// The receiver cancelled this transfer earlier; do not send it again.
    Cancelled,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::Declined => 1,
            Refusal::TooLarge => 2,
            Refusal::Busy => 3,
            Refusal::Unavailable => 4,
            Refusal::Cancelled => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Refusal::Declined,
            2 => Refusal::TooLarge,
            3 => Refusal::Busy,
            4 => Refusal::Unavailable,
            5 => Refusal::Cancelled,
            _ => return None,
        })
    }
}

/// The receiver's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send from `offset` on (non-zero when resuming).
    Accept {
        /// First byte to send.
        offset: u64,
    },
    /// Do not send.
    Refuse(Refusal),
}

/// The receiver's last word, after checking the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Complete, digest equal, saved.
    Verified,
    /// The digest differs; the data was discarded.
    DigestMismatch,
    /// The receiver could not save it.
    Failed,
}

impl Verdict {
    /// Its byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Verdict::Verified => 0,
            Verdict::DigestMismatch => 1,
            Verdict::Failed => 2,
        }
    }

    /// Decodes a verdict byte.
    pub fn from_byte(byte: u8) -> Result<Self, ResourceFrameError> {
        match byte {
            0 => Ok(Verdict::Verified),
            1 => Ok(Verdict::DigestMismatch),
            2 => Ok(Verdict::Failed),
            other => Err(ResourceFrameError::UnknownCode(other)),
        }
    }
}

/// A malformed resource frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceFrameError {
    /// The stream does not start with [`STREAM_RESOURCE`].
    #[error("unknown bidirectional stream kind {0:#04x}")]
    UnknownStreamKind(u8),
    /// The name is empty, too long or not UTF-8.
    #[error("invalid resource name")]
    InvalidName,
    /// A reply or verdict code is unknown.
    #[error("unknown code {0:#04x}")]
    UnknownCode(u8),
}

/// Encodes an offer, kind byte first.
pub fn encode_offer(offer: &Offer) -> Result<Vec<u8>, ResourceFrameError> {
    let name = offer.name.as_bytes();
    if name.is_empty() || name.len() > MAX_RESOURCE_NAME_LEN {
        return Err(ResourceFrameError::InvalidName);
    }
    let mut out = Vec::with_capacity(MAX_OFFER_LEN);
    out.put_u8(STREAM_RESOURCE);
    out.put_slice(&offer.id);
    out.put_u64(offer.size);
    out.put_u8(name.len() as u8);
    out.put_slice(name);
    Ok(out)
}

/// Decodes an offer from the start of `buf` (kind byte included), consuming it; `None` if more bytes are
/// needed. Never needs more than [`MAX_OFFER_LEN`] bytes.
pub fn decode_offer(buf: &mut BytesMut) -> Result<Option<Offer>, ResourceFrameError> {
    let Some(&kind) = buf.first() else { return Ok(None) };
    if kind != STREAM_RESOURCE {
        return Err(ResourceFrameError::UnknownStreamKind(kind));
    }
    const HEAD: usize = 1 + RESOURCE_ID_LEN + 8 + 1;
    if buf.len() < HEAD {
        return Ok(None);
    }
    let name_len = usize::from(buf[HEAD - 1]);
    if name_len == 0 {
        return Err(ResourceFrameError::InvalidName);
    }
    if buf.len() < HEAD + name_len {
        return Ok(None);
    }
    buf.advance(1);
    let mut id = [0u8; RESOURCE_ID_LEN];
    buf.copy_to_slice(&mut id);
    let size = buf.get_u64();
    buf.advance(1);
    let name = buf.split_to(name_len);
    let name = std::str::from_utf8(&name).map_err(|_| ResourceFrameError::InvalidName)?;
    Ok(Some(Offer {
        id,
        size,
        name: name.to_owned(),
    }))
}

/// Encodes a reply.
pub fn encode_reply(reply: Reply) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    match reply {
        Reply::Accept { offset } => {
            out.put_u8(REPLY_ACCEPT);
            out.put_u64(offset);
        }
        Reply::Refuse(refusal) => {
            out.put_u8(REPLY_REFUSE);
            out.put_u8(refusal.code());
        }
    }
    out
}

/// Decodes a reply from the start of `buf`, consuming it; `None` if more bytes are needed.
pub fn decode_reply(buf: &mut BytesMut) -> Result<Option<Reply>, ResourceFrameError> {
    match buf.first().copied() {
        None => Ok(None),
        Some(REPLY_ACCEPT) if buf.len() >= 9 => {
            buf.advance(1);
            Ok(Some(Reply::Accept { offset: buf.get_u64() }))
        }
        Some(REPLY_REFUSE) if buf.len() >= 2 => {
            let code = buf[1];
            buf.advance(2);
            Refusal::from_code(code)
                .map(|r| Some(Reply::Refuse(r)))
                .ok_or(ResourceFrameError::UnknownCode(code))
        }
        Some(REPLY_ACCEPT | REPLY_REFUSE) => Ok(None),
        Some(other) => Err(ResourceFrameError::UnknownCode(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_round_trip_in_any_split() {
        let offer = Offer {
            id: [7; RESOURCE_ID_LEN],
            size: 1 << 40,
            name: "photo é.jpg".into(),
        };
        let bytes = encode_offer(&offer).unwrap();
        for split in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            assert_eq!(decode_offer(&mut buf), Ok(None), "split {split}");
        }
        let mut buf = BytesMut::from(&bytes[..]);
        buf.extend_from_slice(b"data");
        assert_eq!(decode_offer(&mut buf), Ok(Some(offer)));
        assert_eq!(&buf[..], b"data");
    }

    #[test]
    fn bad_offers_are_errors() {
        let mut kind = BytesMut::from(&[0x01u8][..]);
        assert_eq!(decode_offer(&mut kind), Err(ResourceFrameError::UnknownStreamKind(1)));
        let mut empty_name = BytesMut::from(
            &encode_offer(&Offer {
                id: [0; 16],
                size: 1,
                name: "x".into(),
            })
            .unwrap()[..],
        );
        empty_name[1 + 16 + 8] = 0;
        assert_eq!(decode_offer(&mut empty_name), Err(ResourceFrameError::InvalidName));
        let mut bad_utf8 = BytesMut::from(
            &encode_offer(&Offer {
                id: [0; 16],
                size: 1,
                name: "ab".into(),
            })
            .unwrap()[..],
        );
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert_eq!(decode_offer(&mut bad_utf8), Err(ResourceFrameError::InvalidName));
        let long = Offer {
            id: [0; 16],
            size: 1,
            name: "a".repeat(256),
        };
        assert_eq!(encode_offer(&long), Err(ResourceFrameError::InvalidName));
    }

    #[test]
    fn replies_and_verdicts_round_trip() {
        for reply in [
            Reply::Accept { offset: 12345 },
            Reply::Refuse(Refusal::Declined),
            Reply::Refuse(Refusal::TooLarge),
            Reply::Refuse(Refusal::Busy),
            Reply::Refuse(Refusal::Unavailable),
            Reply::Refuse(Refusal::Cancelled),
        ] {
            let bytes = encode_reply(reply);
            let mut partial = BytesMut::from(&bytes[..bytes.len() - 1]);
            assert_eq!(decode_reply(&mut partial), Ok(None));
            assert_eq!(decode_reply(&mut BytesMut::from(&bytes[..])), Ok(Some(reply)));
        }
        assert_eq!(
            decode_reply(&mut BytesMut::from(&[9u8][..])),
            Err(ResourceFrameError::UnknownCode(9))
        );
        assert_eq!(
            decode_reply(&mut BytesMut::from(&[1u8, 99][..])),
            Err(ResourceFrameError::UnknownCode(99))
        );
        for v in [Verdict::Verified, Verdict::DigestMismatch, Verdict::Failed] {
            assert_eq!(Verdict::from_byte(v.to_byte()), Ok(v));
        }
        assert!(Verdict::from_byte(7).is_err());
    }
}
