//! TLS 1.3 with self-signed certificates on both sides, bound to peer ids.
//!
//! There is no certificate authority: a peer's certificate is trusted when its key hashes to the peer id
//! the dialer expects (from discovery). The acceptor learns the dialer's id from the dialer's certificate;
//! in both directions the TLS handshake proves possession of the private key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::config::CongestionControl;
use crate::identity::{Identity, IdentityError, PeerId};
use crate::proto::ALPN;

/// The server name used in every connection; verification ignores it in favour of the peer id.
pub(crate) const SERVER_NAME: &str = "multipeer";

/// Errors while preparing TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The identity could not be turned into a certificate.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider of TLS and QUIC packet protection: ring, or aws-lc-rs with the `aws-lc-rs` feature and
/// without the (default) `ring` feature.
#[cfg(any(feature = "ring", not(feature = "aws-lc-rs")))]
fn default_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
fn default_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(default_provider())
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    default_provider().signature_verification_algorithms
}

fn peer_id_of(cert: &CertificateDer<'_>) -> Result<PeerId, rustls::Error> {
    PeerId::from_certificate(cert).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

/// The round-trip estimate before the first sample.
const INITIAL_RTT: Duration = Duration::from_millis(50);

/// The transport parameters every connection uses.
pub(crate) fn transport_config(
    idle: Duration,
    keep_alive: Duration,
    congestion: CongestionControl,
) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    // The idle timeout is at most 600 s (validated), well within QUIC's varint range.
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
    transport.keep_alive_interval(Some(keep_alive));
    // A local network's round trip, not the Internet's 333 ms (RFC 9002's default without prior knowledge): a
    // connection closed before its first round trip (a dial abandoned for the peer's own, a refused newcomer)
    // drains for three probe timeouts on this estimate, holding the socket, and a lost handshake packet is
    // sent again after one. Slower paths still work: the estimate adapts from the first sample.
    transport.initial_rtt(INITIAL_RTT);
    // Bidirectional streams carry resources (files) and duplex streams; each peer may open this many at once.
    transport.max_concurrent_bidi_streams(crate::resource::MAX_INCOMING_PER_PEER.into());
    // The control stream plus named streams; more wait for flow control credit.
    transport.max_concurrent_uni_streams(64u32.into());
    transport.stream_receive_window((4u32 * 1024 * 1024).into());
    transport.receive_window((16u32 * 1024 * 1024).into());
    transport.send_window(16 * 1024 * 1024);
    transport.datagram_receive_buffer_size(Some(1024 * 1024));
    transport.datagram_send_buffer_size(1024 * 1024);
    match congestion {
        CongestionControl::Cubic => {}
        CongestionControl::Bbr => {
            transport.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
        }
    }
    Arc::new(transport)
}

/// The server side: requires a client certificate, learns the client's id from it.
pub(crate) fn server_config(
    identity: &Identity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let (cert, key) = identity.certificate()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyPeerClientVerifier {
            algorithms: algorithms(),
        }))
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport);
    config.migration(true);
    Ok(config)
}

/// What the dialer's verifier saw, to tell an identity mismatch apart from other failures.
#[derive(Debug, Default)]
pub(crate) struct VerifierOutcome {
    /// The id of the certificate the server presented, if it did not match.
    pub(crate) mismatched: Option<PeerId>,
}

/// Client-side TLS material shared by all dials of one session: the crypto provider and the signing key are
/// loaded once (parsing the key costs about as much as a flight of the handshake on a local network), so a dial
/// only builds its verifier and config around them.
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    provider: Arc<CryptoProvider>,
    certified: Arc<rustls::sign::SingleCertAndKey>,
    transport: Arc<quinn::TransportConfig>,
}

impl ClientIdentity {
    pub(crate) fn new(identity: &Identity, transport: Arc<quinn::TransportConfig>) -> Result<Self, TlsError> {
        let (cert, key) = identity.certificate()?;
        let provider = provider();
        let signing_key = provider.key_provider.load_private_key(key)?;
        let certified = rustls::sign::CertifiedKey::new(vec![cert], signing_key);
        Ok(Self {
            provider,
            certified: Arc::new(certified.into()),
            transport,
        })
    }

    /// A client config that only accepts a server whose key hashes to `expected`.
    pub(crate) fn config_for(
        &self,
        expected: PeerId,
    ) -> Result<(quinn::ClientConfig, Arc<Mutex<VerifierOutcome>>), TlsError> {
        let outcome = Arc::new(Mutex::new(VerifierOutcome::default()));
        let verifier = ExpectedPeerVerifier {
            expected,
            algorithms: self.provider.signature_verification_algorithms,
            outcome: outcome.clone(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(self.certified.clone());
        tls.alpn_protocols = vec![ALPN.to_vec()];
        tls.enable_early_data = false;
        let crypto = QuicClientConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.transport.clone());
        Ok((config, outcome))
    }
}

/// Checks that the server's key is the one of the peer we meant to dial.
#[derive(Debug)]
struct ExpectedPeerVerifier {
    expected: PeerId,
    algorithms: WebPkiSupportedAlgorithms,
    outcome: Arc<Mutex<VerifierOutcome>>,
}

impl ServerCertVerifier for ExpectedPeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        let actual = peer_id_of(end_entity)?;
        if actual != self.expected {
            if let Ok(mut outcome) = self.outcome.lock() {
                outcome.mismatched = Some(actual);
            }
            tracing::warn!(expected = %self.expected.short(), actual = %actual.short(), "peer presented a key that does not match its announced id");
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts any well-formed self-signed client certificate: the client's id is what its key hashes to.
#[derive(Debug)]
struct AnyPeerClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyPeerClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding));
        }
        peer_id_of(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// The peer id proven by the remote side of an established connection.
pub(crate) fn remote_peer_id(conn: &quinn::Connection) -> Option<PeerId> {
    let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    PeerId::from_certificate(certs.first()?).ok()
}
