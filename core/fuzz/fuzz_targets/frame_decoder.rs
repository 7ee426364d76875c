//! The control-stream decoder, the stream preambles, the hello, admission and roster parsers and the resource
//! offer / reply decoders never panic, and never hand out a frame larger than its limit, whatever bytes arrive and however they are
//! split.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use multipeer::proto::auth::{Acceptor, Answered, Binding, Dialer, SystemEntropy};
use multipeer::proto::frame::{self, Frame, Hello, RosterFrame};
use multipeer::proto::resource;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut buf = BytesMut::new();
    for chunk in data.chunks(split) {
        buf.extend_from_slice(chunk);
        loop {
            match frame::decode_frame(&mut buf) {
                Ok(Some(Frame::Hello(payload))) => {
                    assert!(payload.len() <= frame::MAX_HELLO_LEN);
                    let _ = Hello::decode(&payload);
                }
                Ok(Some(Frame::Message(payload))) => assert!(payload.len() <= frame::MAX_MESSAGE_LEN),
                Ok(Some(Frame::Goodbye | Frame::Asking(_))) => {}
                Ok(Some(Frame::Auth(payload))) => admission(&payload),
                Ok(Some(Frame::Roster(payload))) => {
                    let _ = RosterFrame::decode(&payload, &multipeer::PeerId::from_bytes([1; 32]));
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let mut preamble = BytesMut::from(data);
    let _ = frame::decode_stream_preamble(&mut preamble);
    let mut duplex = BytesMut::from(data);
    if let Ok(Some(name)) = frame::decode_duplex_stream_preamble(&mut duplex) {
        assert!(!name.is_empty() && name.len() <= frame::MAX_STREAM_NAME_LEN);
    }
    let mut offer = BytesMut::from(data);
    if let Ok(Some(offer)) = resource::decode_offer(&mut offer) {
        assert!(!offer.name.is_empty() && offer.name.len() <= resource::MAX_RESOURCE_NAME_LEN);
    }
    let _ = resource::decode_reply(&mut BytesMut::from(data));
    let _ = Hello::decode(data);
});

/// Every step of the admission exchange takes hostile bytes without panicking.
fn admission(payload: &[u8]) {
    let (exporter, d, a) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let binding = Binding { exporter: &exporter, dialer: &d, acceptor: &a };
    for pass in [None, Some("pw")] {
        let _ = Dialer::answer(&binding, pass, payload, &mut SystemEntropy);
        let Ok((acceptor, offer)) = Acceptor::offer(&a, pass, &mut SystemEntropy) else { continue };
        let Ok((dialer, answer)) = Dialer::answer(&binding, pass, &offer, &mut SystemEntropy) else { continue };
        let _ = dialer.finish(&binding, payload);
        if let Ok((acceptor, _)) = Acceptor::offer(&a, pass, &mut SystemEntropy) {
            let _ = acceptor.answer(&binding, payload, &mut SystemEntropy);
        }
        if let Ok((_, Answered::Confirm(confirming))) = acceptor.answer(&binding, &answer, &mut SystemEntropy) {
            let _ = confirming.finish(payload);
        }
    }
}
