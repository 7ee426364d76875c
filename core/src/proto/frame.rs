//! Framing of the control stream and the preamble of every unidirectional stream.
//!
//! Every unidirectional stream starts with one kind byte: [`STREAM_CONTROL`] or [`STREAM_NAMED`]. The control
//! stream then carries frames `[type: u8][length: u32 big-endian][payload]`.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::config;
use crate::proto::roster::RosterView;

/// Kind byte of the control stream (one per direction per connection).
pub const STREAM_CONTROL: u8 = 0x00;
/// Kind byte of a named byte stream.
pub const STREAM_NAMED: u8 = 0x01;
/// Kind byte of a two-way named stream (on a bidirectional QUIC stream; see also
/// [`crate::proto::resource::STREAM_RESOURCE`]).
pub const STREAM_DUPLEX: u8 = 0x03;

/// Frame type: the hello, first frame of a control stream.
pub const FRAME_HELLO: u8 = 0x01;
/// Frame type: one reliable message.
pub const FRAME_MESSAGE: u8 = 0x02;
/// Frame type: the sender leaves the session.
pub const FRAME_GOODBYE: u8 = 0x03;
/// Frame type: the sender's roster changed (or its session dissolved); see [`crate::proto::roster`].
pub const FRAME_ROSTER: u8 = 0x05;
/// Largest ROSTER payload.
pub const MAX_ROSTER_LEN: usize = 2048;
/// Frame type: one message of the admission exchange (see [`crate::proto::auth`]), before the hello.
pub const FRAME_AUTH: u8 = 0x04;
/// Frame type: the acceptor's app is asked about the invitation; its hello may take up to the milliseconds this
/// frame carries (u32 big-endian). Only from the acceptor, only before its hello.
pub const FRAME_ASKING: u8 = 0x06;
/// Longest wait an [`FRAME_ASKING`] frame may announce; a dialer waits no longer whatever it says.
pub const MAX_ASKING_MS: u32 = 300_000;

/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 5;
/// Largest reliable message payload: 4 MiB. Use a named stream for more.
pub const MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;
/// Largest hello payload.
pub const MAX_HELLO_LEN: usize = 64 * 1024;
/// Longest stream name, in bytes of UTF-8.
pub const MAX_STREAM_NAME_LEN: usize = 255;

/// A malformed frame or stream preamble.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame type is not known.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrameType(u8),
    /// The stream kind is not known.
    #[error("unknown stream kind {0:#04x}")]
    UnknownStreamKind(u8),
    /// A frame is larger than its type allows.
    #[error("frame of type {frame_type:#04x} is {len} bytes; at most {max} allowed")]
    TooLarge {
        /// The frame type.
        frame_type: u8,
        /// Its announced length.
        len: usize,
        /// The limit for this type.
        max: usize,
    },
    /// A stream name is empty, too long or not UTF-8.
    #[error("invalid stream name: {0}")]
    InvalidStreamName(&'static str),
    /// The hello is not valid.
    #[error("invalid hello: {0}")]
    InvalidHello(String),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

/// One frame of the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The hello (undecoded JSON; see [`Hello::decode`]).
    Hello(Bytes),
    /// A reliable message.
    Message(Bytes),
    /// The sender leaves.
    Goodbye,
    /// An admission message (see [`crate::proto::auth`]).
    Auth(Bytes),
    /// A roster update (undecoded JSON; see [`RosterFrame::decode`]).
    Roster(Bytes),
    /// The acceptor's app is deciding on the invitation for up to this many milliseconds.
    Asking(u32),
}

fn max_len(frame_type: u8) -> Result<usize, FrameError> {
    match frame_type {
        FRAME_HELLO => Ok(MAX_HELLO_LEN),
        FRAME_MESSAGE => Ok(MAX_MESSAGE_LEN),
        FRAME_GOODBYE => Ok(0),
        FRAME_AUTH => Ok(crate::proto::auth::MAX_AUTH_LEN),
        FRAME_ROSTER => Ok(MAX_ROSTER_LEN),
        FRAME_ASKING => Ok(4),
        other => Err(FrameError::UnknownFrameType(other)),
    }
}

/// Decodes one frame from the front of `buf`, consuming it; `Ok(None)` if more bytes are needed.
///
/// The header is checked as soon as it is complete, so an oversized or unknown frame is refused before
/// its payload is buffered.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let frame_type = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let max = max_len(frame_type)?;
    if len > max {
        return Err(FrameError::TooLarge { frame_type, len, max });
    }
    if buf.len() < FRAME_HEADER_LEN + len {
        buf.reserve(FRAME_HEADER_LEN + len - buf.len());
        return Ok(None);
    }
    buf.advance(FRAME_HEADER_LEN);
    let payload = buf.split_to(len).freeze();
    if frame_type == FRAME_ASKING {
        let ms: [u8; 4] = payload[..].try_into().map_err(|_| FrameError::Truncated)?;
        return Ok(Some(Frame::Asking(u32::from_be_bytes(ms))));
    }
    Ok(Some(match frame_type {
        FRAME_HELLO => Frame::Hello(payload),
        FRAME_MESSAGE => Frame::Message(payload),
        FRAME_AUTH => Frame::Auth(payload),
        FRAME_ROSTER => Frame::Roster(payload),
        _ => Frame::Goodbye,
    }))
}

/// The header of a frame of `frame_type` with a payload of `len` bytes.
pub fn frame_header(frame_type: u8, len: usize) -> Result<[u8; FRAME_HEADER_LEN], FrameError> {
    let max = max_len(frame_type)?;
    if len > max {
        return Err(FrameError::TooLarge { frame_type, len, max });
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0] = frame_type;
    // `len` is at most MAX_MESSAGE_LEN, so it fits in u32.
    header[1..].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(header)
}

/// Encodes a whole frame (header and payload).
pub fn encode_frame(frame: &Frame) -> Result<Bytes, FrameError> {
    let asking;
    let (frame_type, payload): (u8, &[u8]) = match frame {
        Frame::Hello(p) => (FRAME_HELLO, p),
        Frame::Message(p) => (FRAME_MESSAGE, p),
        Frame::Goodbye => (FRAME_GOODBYE, &[]),
        Frame::Auth(p) => (FRAME_AUTH, p),
        Frame::Roster(p) => (FRAME_ROSTER, p),
        Frame::Asking(ms) => {
            asking = ms.to_be_bytes();
            (FRAME_ASKING, &asking)
        }
    };
    let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.put_slice(&frame_header(frame_type, payload.len())?);
    out.put_slice(payload);
    Ok(out.freeze())
}

/// The preamble of a named stream: kind byte, name length (u16 big-endian), name.
pub fn encode_named_stream_preamble(name: &str) -> Result<Bytes, FrameError> {
    encode_preamble(STREAM_NAMED, name)
}

/// The preamble of a two-way named stream: [`STREAM_DUPLEX`], then the name as for a named stream.
pub fn encode_duplex_stream_preamble(name: &str) -> Result<Bytes, FrameError> {
    encode_preamble(STREAM_DUPLEX, name)
}

/// Decodes the preamble of a two-way named stream from the front of `buf`, consuming it; `Ok(None)` if more
/// bytes are needed.
pub fn decode_duplex_stream_preamble(buf: &mut BytesMut) -> Result<Option<String>, FrameError> {
    match buf.first() {
        None => Ok(None),
        Some(&STREAM_DUPLEX) => decode_name(buf),
        Some(&other) => Err(FrameError::UnknownStreamKind(other)),
    }
}

fn encode_preamble(kind: u8, name: &str) -> Result<Bytes, FrameError> {
    validate_stream_name(name)?;
    let mut out = BytesMut::with_capacity(3 + name.len());
    out.put_u8(kind);
    out.put_u16(name.len() as u16);
    out.put_slice(name.as_bytes());
    Ok(out.freeze())
}

/// Checks a stream name: 1-255 bytes of UTF-8.
pub fn validate_stream_name(name: &str) -> Result<(), FrameError> {
    if name.is_empty() {
        return Err(FrameError::InvalidStreamName("empty"));
    }
    if name.len() > MAX_STREAM_NAME_LEN {
        return Err(FrameError::InvalidStreamName("longer than 255 bytes"));
    }
    Ok(())
}

/// The start of a unidirectional stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPreamble {
    /// The control stream.
    Control,
    /// A named byte stream.
    Named(String),
}

/// Decodes a stream preamble from the front of `buf`, consuming it; `Ok(None)` if more bytes are needed.
pub fn decode_stream_preamble(buf: &mut BytesMut) -> Result<Option<StreamPreamble>, FrameError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    match kind {
        STREAM_CONTROL => {
            buf.advance(1);
            Ok(Some(StreamPreamble::Control))
        }
        STREAM_NAMED => Ok(decode_name(buf)?.map(StreamPreamble::Named)),
        other => Err(FrameError::UnknownStreamKind(other)),
    }
}

/// Decodes `[kind][name length: u16][name]`, the kind already checked.
fn decode_name(buf: &mut BytesMut) -> Result<Option<String>, FrameError> {
    if buf.len() < 3 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[1], buf[2]]) as usize;
    if len == 0 {
        return Err(FrameError::InvalidStreamName("empty"));
    }
    if len > MAX_STREAM_NAME_LEN {
        return Err(FrameError::InvalidStreamName("longer than 255 bytes"));
    }
    if buf.len() < 3 + len {
        return Ok(None);
    }
    let name = std::str::from_utf8(&buf[3..3 + len])
        .map_err(|_| FrameError::InvalidStreamName("not UTF-8"))?
        .to_owned();
    buf.advance(3 + len);
    Ok(Some(name))
}

/// The hello each side sends first on its control stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Protocol version of the sender.
    pub version: u32,
    /// The sender's display name.
    pub display_name: String,
    /// The sender's discovery info.
    #[serde(default)]
    pub discovery_info: BTreeMap<String, String>,
    /// The sender's initial data.
    #[serde(default)]
    pub initial_data: serde_json::Value,
    /// The sender's `max_peers`.
    pub max_peers: usize,
    /// The inviter's invitation context (only sent by the dialing side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_context: Option<Vec<u8>>,
    /// The sender's roster (the acceptor's: after admitting the dialer).
    pub roster: RosterView,
}

/// A ROSTER frame: the sender's new roster, or that its session dissolved and the session led by
/// `dissolve_into` stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterFrame {
    /// The roster.
    pub roster: RosterView,
    /// Set when the sender's session dissolved: the leader of the session that stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dissolve_into: Option<crate::identity::PeerId>,
}

impl RosterFrame {
    /// Encodes the frame payload.
    pub fn encode(&self) -> Result<Bytes, FrameError> {
        let json = serde_json::to_vec(self).map_err(|e| FrameError::InvalidHello(e.to_string()))?;
        Ok(Bytes::from(json))
    }

    /// Decodes and validates a payload from `sender`.
    pub fn decode(payload: &[u8], sender: &crate::identity::PeerId) -> Result<Self, FrameError> {
        let frame: Self = serde_json::from_slice(payload).map_err(|e| FrameError::InvalidHello(e.to_string()))?;
        if !frame.roster.is_valid(sender, config::MAX_PEERS_LIMIT) {
            return Err(FrameError::InvalidHello("roster".into()));
        }
        Ok(frame)
    }
}

impl Hello {
    /// Serializes the hello as a frame payload.
    pub fn encode(&self) -> Result<Bytes, FrameError> {
        let json = serde_json::to_vec(self).map_err(|e| FrameError::InvalidHello(e.to_string()))?;
        if json.len() > MAX_HELLO_LEN {
            return Err(FrameError::TooLarge {
                frame_type: FRAME_HELLO,
                len: json.len(),
                max: MAX_HELLO_LEN,
            });
        }
        Ok(Bytes::from(json))
    }

    /// Parses and validates a hello payload received from a peer.
    pub fn decode(payload: &[u8]) -> Result<Self, FrameError> {
        let hello: Hello = serde_json::from_slice(payload).map_err(|e| FrameError::InvalidHello(e.to_string()))?;
        let invalid = |what: &str| Err(FrameError::InvalidHello(what.to_owned()));
        if config::validate_display_name(&hello.display_name).is_err() {
            return invalid("display name");
        }
        if config::validate_discovery_info(hello.discovery_info.clone()).is_err() {
            return invalid("discovery info");
        }
        if !(2..=config::MAX_PEERS_LIMIT).contains(&hello.max_peers) {
            return invalid("max_peers");
        }
        if hello.roster.members.is_empty() || hello.roster.members.len() > config::MAX_PEERS_LIMIT {
            return invalid("roster");
        }
        if !hello.roster.members.windows(2).all(|w| w[0] < w[1]) {
            return invalid("roster order");
        }
        if hello
            .invitation_context
            .as_ref()
            .is_some_and(|c| c.len() > config::MAX_INVITATION_CONTEXT_LEN)
        {
            return invalid("invitation context length");
        }
        Ok(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: crate::proto::PROTOCOL_VERSION,
            display_name: "Alice".into(),
            discovery_info: BTreeMap::from([("room".into(), "lobby".into())]),
            initial_data: serde_json::json!({"x": 1}),
            max_peers: 8,
            invitation_context: None,
            roster: RosterView::alone(crate::identity::PeerId::from_bytes([1; 32])),
        }
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let frames = vec![
            Frame::Hello(hello().encode().unwrap()),
            Frame::Message(Bytes::from_static(b"hi")),
            Frame::Message(Bytes::new()),
            Frame::Asking(30_000),
            Frame::Goodbye,
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f).unwrap().to_vec()).collect();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(frame) = decode_frame(&mut buf).unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(out, frames);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused_from_the_header() {
        let mut buf = BytesMut::from(&[FRAME_MESSAGE, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(decode_frame(&mut buf), Err(FrameError::TooLarge { .. })));
        let mut buf = BytesMut::from(&[0x7f, 0, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut buf), Err(FrameError::UnknownFrameType(0x7f)));
        let mut buf = BytesMut::from(&[FRAME_ASKING, 0, 0, 0, 5, 0, 0, 0, 0, 0][..]);
        assert!(matches!(decode_frame(&mut buf), Err(FrameError::TooLarge { .. })));
        let mut buf = BytesMut::from(&[FRAME_ASKING, 0, 0, 0, 3, 0, 0, 0][..]);
        assert_eq!(decode_frame(&mut buf), Err(FrameError::Truncated));
        let mut buf = BytesMut::from(&[FRAME_GOODBYE, 0, 0, 0, 1, 0][..]);
        assert!(matches!(decode_frame(&mut buf), Err(FrameError::TooLarge { .. })));
        assert!(frame_header(FRAME_MESSAGE, MAX_MESSAGE_LEN + 1).is_err());
    }

    #[test]
    fn stream_preambles() {
        let mut buf = BytesMut::from(&encode_named_stream_preamble("photo.jpg").unwrap()[..]);
        buf.put_slice(b"data");
        assert_eq!(
            decode_stream_preamble(&mut buf).unwrap(),
            Some(StreamPreamble::Named("photo.jpg".into()))
        );
        assert_eq!(&buf[..], b"data");
        assert_eq!(
            decode_stream_preamble(&mut BytesMut::from(&[0u8][..])).unwrap(),
            Some(StreamPreamble::Control)
        );
        assert_eq!(
            decode_stream_preamble(&mut BytesMut::from(&[1u8, 0][..])).unwrap(),
            None
        );
        assert!(decode_stream_preamble(&mut BytesMut::from(&[1u8, 0, 0][..])).is_err());
        assert!(decode_stream_preamble(&mut BytesMut::from(&[1u8, 0, 1, 0xff][..])).is_err());
        assert!(decode_stream_preamble(&mut BytesMut::from(&[9u8][..])).is_err());
        assert!(encode_named_stream_preamble("").is_err());
        assert!(encode_named_stream_preamble(&"x".repeat(256)).is_err());
    }

    #[test]
    fn hello_validation() {
        let h = hello();
        assert_eq!(Hello::decode(&h.encode().unwrap()).unwrap(), h);
        for bad in [
            Hello {
                display_name: String::new(),
                ..hello()
            },
            Hello {
                max_peers: 99,
                ..hello()
            },
            Hello {
                invitation_context: Some(vec![0; 5000]),
                ..hello()
            },
        ] {
            assert!(Hello::decode(&bad.encode().unwrap()).is_err());
        }
        assert!(Hello::decode(b"{not json").is_err());
        assert!(Hello::decode(br#"{"version":1,"display_name":"a","max_peers":2,"extra":1}"#).is_err());
        let mut unsorted = hello();
        unsorted.roster.members = vec![
            crate::identity::PeerId::from_bytes([2; 32]),
            crate::identity::PeerId::from_bytes([1; 32]),
        ];
        assert!(Hello::decode(&unsorted.encode().unwrap()).is_err());
    }
}
