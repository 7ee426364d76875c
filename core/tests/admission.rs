//! The admission exchange against attackers on real sockets: a host the victim dials that records everything,
//! a dialer that guesses passphrases online, and the pairing code on both ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::raw::{self, PeerControl, RawOptions};
use common::*;
use multipeer::proto::auth::{Acceptor, AuthError, Binding, SystemEntropy};
use multipeer::proto::codes;
use multipeer::proto::frame::Frame;
use multipeer::{ConnectionFailure, Event, MemoryNetwork, PeerId, Ticket};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

const T: Duration = Duration::from_secs(10);
const INITIAL_DATA_MARKER: &str = "secret-initial-data-7f3a";
const CONTEXT_MARKER: &[u8] = b"secret-context-91c2";

#[derive(Debug)]
struct AnyClient;

impl ClientCertVerifier for AnyClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An attacker's QUIC server on loopback with a fresh key: what a host advertising itself looks like.
fn attacker_server() -> (quinn::Endpoint, PeerId) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["attacker".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let id = PeerId::from_certificate(cert.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(AnyClient))
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    tls.alpn_protocols = vec![multipeer::proto::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    (endpoint, id)
}

/// How the attacker answers the victim's ANSWER.
#[derive(Clone, Copy)]
enum Answer<'a> {
    /// Nothing: it only records.
    Silence,
    /// A REVEAL computed with a guessed passphrase.
    Guess(&'a str),
}

/// Accepts one connection from the victim, offers as a passphrase-protected acceptor, answers as told, and
/// returns every byte the victim sent on its control stream (admission messages and, if it got that far, the
/// hello) and how the connection ended.
async fn attacker_session(endpoint: &quinn::Endpoint, id: PeerId, answer: Answer<'_>) -> (Vec<u8>, Option<u64>) {
    let conn = within(T, "victim dials", async {
        endpoint.accept().await.unwrap().await.unwrap()
    })
    .await;
    let victim = raw::server_id(&conn); // the dialer's id, from its client certificate
    let guess = match answer {
        Answer::Silence => "000000",
        Answer::Guess(guess) => guess,
    };
    let (state, offer) = Acceptor::offer(id.as_bytes(), Some(guess), &mut SystemEntropy).unwrap();
    let mut control = conn.open_uni().await.unwrap();
    control
        .write_all(&[vec![0u8], raw::frame(4, &offer)].concat())
        .await
        .unwrap();
    let mut theirs = PeerControl::accept(&conn).await.unwrap();
    let Frame::Auth(answered) = theirs.frame().await.unwrap() else {
        panic!("the victim must send its answer first")
    };
    let mut recorded = answered.to_vec();
    if let Answer::Guess(_) = answer {
        let exporter = raw::exporter(&conn);
        let binding = Binding {
            exporter: &exporter,
            dialer: victim.as_bytes(),
            acceptor: id.as_bytes(),
        };
        let (reveal, _) = state.answer(&binding, &answered, &mut SystemEntropy).unwrap();
        control.write_all(&raw::frame(4, &reveal)).await.unwrap();
        // Whatever else arrives (a CONFIRM and a hello only if the guess was right).
        while let Ok(frame) = theirs.frame().await {
            match frame {
                Frame::Auth(b) | Frame::Hello(b) | Frame::Message(b) | Frame::Roster(b) => {
                    recorded.extend_from_slice(&b)
                }
                Frame::Goodbye | Frame::Asking(_) => {}
            }
        }
    }
    let end = match within(T, "victim gives up", conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    };
    (recorded, end)
}

/// Waits for the session to report a wrong passphrase from `who`; a peer admitted meanwhile fails the test.
async fn expect_wrong_passphrase(events: &mut multipeer::Events, who: PeerId) {
    expect(events, T, "wrong passphrase reported", |e| match e {
        Event::ConnectionFailed {
            peer,
            reason: ConnectionFailure::WrongPassphrase,
        } if peer == who => Some(()),
        Event::PeerAdded(p) => panic!("{p} admitted with a wrong passphrase"),
        _ => None,
    })
    .await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether the invitation context appears in `recorded`, raw or as the hello's JSON array of bytes.
fn has_context(recorded: &[u8]) -> bool {
    let json = serde_json::to_string(&CONTEXT_MARKER.to_vec()).unwrap();
    contains(recorded, CONTEXT_MARKER) || contains(recorded, &json.as_bytes()[1..json.len() - 1])
}

/// A host that the victim dials (here through a ticket; auto-invite does the same for any advert) learns
/// nothing it could test passphrase guesses against offline, and none of the app's data: it receives one
/// nonce and one SPAKE2 message. A wrong online guess is refused; only the right guess gets more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialed_attacker_gets_no_offline_test_and_no_app_data() {
    init_tracing();
    let pin = "482913";
    let (victim, mut events) = start(
        &MemoryNetwork::new(),
        config("victim")
            .passphrase(pin)
            .initial_data(serde_json::json!({ "note": INITIAL_DATA_MARKER }))
            .invitation_context(CONTEXT_MARKER),
    )
    .await;
    let (endpoint, attacker) = attacker_server();
    let ticket = Ticket::new("test", attacker, vec![endpoint.local_addr().unwrap()]);

    // 1. It only records: one ANSWER arrives, of the same length whatever the passphrase, then the victim
    //    gives up. No hello, no initial data, no display name beyond the advert.
    victim.connect_ticket(&ticket).await.unwrap();
    let (recorded, _) = attacker_session(&endpoint, attacker, Answer::Silence).await;
    assert_eq!(recorded.len(), 1 + 32 + 1 + 33, "ANSWER: tag, nonce, SPAKE2 message");
    assert!(!contains(&recorded, INITIAL_DATA_MARKER.as_bytes()));
    assert!(!has_context(&recorded));
    assert!(!contains(&recorded, b"victim"));

    // 2. It answers with a wrong guess: refused, and still nothing but the ANSWER.
    victim.connect_ticket(&ticket).await.unwrap();
    let (recorded, end) = attacker_session(&endpoint, attacker, Answer::Guess("000000")).await;
    assert_eq!(end, Some(u64::from(codes::WRONG_PASSPHRASE)));
    assert_eq!(recorded.len(), 67, "nothing beyond the ANSWER after a wrong guess");
    expect_wrong_passphrase(&mut events, attacker).await;

    // 3. The right guess (one online guess per connection) gets the CONFIRM and the hello: the checks above
    //    could have seen a leak.
    victim.connect_ticket(&ticket).await.unwrap();
    let (recorded, _) = attacker_session(&endpoint, attacker, Answer::Guess(pin)).await;
    assert!(
        contains(&recorded, INITIAL_DATA_MARKER.as_bytes()),
        "the right guess is admitted"
    );
    assert!(has_context(&recorded), "and its context");
}

/// The acceptor's OFFER travels with its TLS flight, before the dialer's certificate is checked. A host that
/// presents no certificate (so is never admitted) receives that OFFER and nothing more: a commitment to a random
/// nonce and whether a passphrase is asked — no name, no data, no roster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_its_certificate_is_checked_a_dialer_gets_only_the_offer() {
    init_tracing();
    let (session, _events) = protected_acceptor().await;
    let no_cert = RawOptions {
        client_cert: false,
        ..RawOptions::default()
    };
    // The control stream's kind byte, then one AUTH frame: tag, commitment, passphrase flag.
    let offer_len = 1 + 5 + 1 + 32 + 1;
    let mut offers_seen = 0;
    for _ in 0..5 {
        let Ok(conn) = raw::connect(session.local_addr(), no_cert.clone()).await else {
            continue;
        };
        let mut received = Vec::new();
        while let Ok(Ok(mut recv)) = tokio::time::timeout(T, conn.accept_uni()).await {
            while let Ok(Some(chunk)) = recv.read_chunk(1 << 16, true).await {
                received.extend_from_slice(&chunk.bytes);
            }
        }
        // Refused in TLS: the `certificate_required` alert (116), as a QUIC crypto error.
        let reason = within(T, "refused", conn.closed()).await;
        assert!(
            matches!(&reason, quinn::ConnectionError::ConnectionClosed(c) if u64::from(c.error_code) == 0x100 + 116),
            "{reason:?}"
        );
        assert!(received.len() <= offer_len, "more than the OFFER: {received:?}");
        assert!(!contains(&received, INITIAL_DATA_MARKER.as_bytes()));
        assert!(!contains(&received, b"victim-acceptor"));
        if received.len() == offer_len {
            assert_eq!(
                received[..7],
                [0, 4, 0, 0, 0, 34, 1],
                "control stream, AUTH frame, OFFER"
            );
            assert_eq!(received[offer_len - 1], 1, "it asks for a passphrase");
            offers_seen += 1;
        }
    }
    assert!(
        offers_seen > 0,
        "the OFFER goes out before the client's certificate is checked, so such a host receives it"
    );
    assert!(session.peers().is_empty());
}

/// Runs a dialer's side by hand up to the acceptor's REVEAL with `guess`; returns what the dialer's check of the
/// REVEAL gave, the connection, our control stream and the session's.
async fn guess_up_to_reveal(
    addr: std::net::SocketAddr,
    guess: &str,
) -> (
    Result<Option<Vec<u8>>, AuthError>,
    quinn::Connection,
    quinn::SendStream,
    PeerControl,
    PeerId,
) {
    let (conn, id) = raw::connect_as(addr, RawOptions::default()).await.unwrap();
    let (control, theirs, checked) = raw::up_to_reveal(&conn, id, Some(guess)).await.unwrap();
    (checked.map(|(confirm, _)| confirm), conn, control, theirs, id)
}

/// A session with a passphrase and initial data that carries [`INITIAL_DATA_MARKER`]: what an attacker must not
/// learn from it.
async fn protected_acceptor() -> (multipeer::Session, multipeer::Events) {
    let config = config("victim-acceptor")
        .passphrase("482913")
        .initial_data(serde_json::json!({ "note": INITIAL_DATA_MARKER }));
    start(&MemoryNetwork::new(), config).await
}

/// A dialer that guesses the passphrase wrong gets the acceptor's OFFER and REVEAL and nothing else: no hello,
/// no initial data, not even when it skips its confirmation and sends its hello anyway. The right guess gets
/// the hello, so the test would see a leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_with_a_wrong_guess_gets_nothing_of_the_acceptors_app() {
    init_tracing();
    let (session, mut events) = protected_acceptor().await;
    let (checked, conn, mut control, mut theirs, id) = guess_up_to_reveal(session.local_addr(), "000000").await;
    assert_eq!(checked.err(), Some(AuthError::WrongPassphrase));
    control
        .write_all(&raw::frame(1, &raw::hello("mallory", id)))
        .await
        .unwrap();
    let mut after = 0;
    while theirs.frame().await.is_ok() {
        after += 1;
    }
    assert_eq!(after, 0, "frames after the REVEAL to a wrong guess");
    let end = within(T, "refused", conn.closed()).await;
    assert!(
        matches!(&end, quinn::ConnectionError::ApplicationClosed(c) if u64::from(c.error_code) == u64::from(codes::WRONG_PASSPHRASE)),
        "{end:?}"
    );
    expect_wrong_passphrase(&mut events, id).await;

    let (checked, _conn, mut control, mut theirs, id) = guess_up_to_reveal(session.local_addr(), "482913").await;
    let confirm = checked.unwrap().expect("a CONFIRM with a passphrase");
    let mut frames = raw::frame(4, &confirm);
    frames.extend(raw::frame(1, &raw::hello("mallory", id)));
    control.write_all(&frames).await.unwrap();
    let Frame::Hello(hello) = theirs.frame().await.unwrap() else {
        panic!("the right guess gets the hello")
    };
    assert!(contains(&hello, INITIAL_DATA_MARKER.as_bytes()));
}

/// A dialer that guesses the passphrase gets one guess per connection; after a few wrong ones in a row the
/// session holds it back (refusing before any SPAKE2 work), and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_guesses_are_held_back() {
    init_tracing();
    let (session, mut events) = start(&MemoryNetwork::new(), config("guarded").passphrase("482913")).await;
    let mut outcomes = Vec::new();
    for guess in 0..(multipeer::proto::guard::FREE_FAILURES + 2) {
        let (conn, id) = raw::connect_as(session.local_addr(), RawOptions::default())
            .await
            .unwrap();
        let admitted = raw::admit(&conn, id, Some(&format!("{guess:06}"))).await;
        conn.close(codes::WRONG_PASSPHRASE.into(), b"wrong passphrase");
        let closed = match admitted {
            Ok(_) => panic!("a wrong guess was admitted"),
            Err(e) => e,
        };
        if closed.contains("wrong passphrase") {
            // The session counts the failure when it sees our close: wait for it before the next guess.
            expect(&mut events, T, "failure recorded", |e| match e {
                Event::ConnectionFailed {
                    peer,
                    reason: ConnectionFailure::WrongPassphrase,
                } if peer == id => Some(()),
                _ => None,
            })
            .await;
        }
        outcomes.push(closed);
    }
    // The first guesses get an answer whose confirmation fails; then the session refuses at once.
    let free = multipeer::proto::guard::FREE_FAILURES as usize;
    assert!(
        outcomes[..free].iter().all(|o| o.contains("wrong passphrase")),
        "{outcomes:?}"
    );
    assert!(
        outcomes[free..]
            .iter()
            .all(|o| o.contains("code 0xa") || o.contains("10")),
        "{outcomes:?}"
    );
    expect(&mut events, T, "held back", |e| match e {
        Event::ConnectionFailed {
            reason: ConnectionFailure::TooManyAttempts,
            ..
        } => Some(()),
        _ => None,
    })
    .await;
}

/// Both ends of one connection show the same committed code; another connection (even between the same two
/// peers, after a reconnect) has another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_dialer_and_the_session_agree_on_the_pairing_code() {
    init_tracing();
    let (session, mut events) = start(&MemoryNetwork::new(), config("s")).await;
    let mut codes_seen = Vec::new();
    for _ in 0..3 {
        let (conn, id) = raw::connect_as(session.local_addr(), RawOptions::default())
            .await
            .unwrap();
        let (mut control, _theirs, code) = raw::admit(&conn, id, None).await.unwrap();
        control.write_all(&raw::frame(1, &raw::hello("raw", id))).await.unwrap();
        expect_peers_added(&mut events, 1, T).await;
        assert_eq!(session.verification_code(id).as_deref(), Some(code.as_str()));
        codes_seen.push(code);
        conn.close(0u32.into(), b"bye");
        expect_removal(&mut events, T, "raw peer left").await;
    }
    codes_seen.dedup();
    assert_eq!(codes_seen.len(), 3);
}
