//! Peer identities: a key pair per device and the [`PeerId`] derived from its public key.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Length in bytes of a [`PeerId`].
pub const PEER_ID_LEN: usize = 32;

/// Number of hex characters in [`PeerId::short`].
const SHORT_LEN: usize = 10;

/// The identity of a peer: the SHA-256 digest of its public key (DER `SubjectPublicKeyInfo`).
///
/// A peer proves it owns the key during the TLS handshake, so a `PeerId` cannot be claimed by another
/// device. It prints as 64 lowercase hex characters; [`PeerId::short`] gives a 10-character form for
/// display.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; PEER_ID_LEN]);

impl PeerId {
    /// Builds an id from its raw bytes.
    pub const fn from_bytes(bytes: [u8; PEER_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes of this id.
    pub const fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// Derives the id of a public key given as DER `SubjectPublicKeyInfo`.
    pub fn from_public_key_der(spki: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut bytes = [0u8; PEER_ID_LEN];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Derives the id from an X.509 certificate (the key it certifies).
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Self, IdentityError> {
        let parsed = webpki::EndEntityCert::try_from(cert).map_err(|_| IdentityError::InvalidCertificate)?;
        Ok(Self::from_public_key_der(parsed.subject_public_key_info().as_ref()))
    }

    /// A short printable form (the first 10 hex characters), for display and instance names.
    ///
    /// Short forms can collide; use the full id to identify a peer.
    pub fn short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(SHORT_LEN);
        s
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl FromStr for PeerId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != PEER_ID_LEN * 2 {
            return Err(IdentityError::InvalidPeerId);
        }
        let mut bytes = [0u8; PEER_ID_LEN];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(IdentityError::InvalidPeerId)?;
            let lo = hex_value(pair[1]).ok_or(IdentityError::InvalidPeerId)?;
            bytes[i] = (hi << 4) | lo;
        }
        Ok(Self(bytes))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl serde::Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Errors about identities and peer ids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a PKCS#8 Ed25519 or ECDSA P-256 private key.
    #[error("not a valid identity: expected a PKCS#8 (DER) Ed25519 or ECDSA P-256 private key")]
    InvalidKey,
    /// A certificate could not be parsed.
    #[error("the certificate is not a valid X.509 certificate")]
    InvalidCertificate,
    /// A string is not a peer id.
    #[error("not a peer id: expected 64 hex characters")]
    InvalidPeerId,
    /// Creating the self-signed certificate failed.
    #[error("could not create the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Reading or writing an identity file failed.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A device's key pair. The [`PeerId`] is derived from its public key.
///
/// Sessions use a fresh ephemeral identity unless given one. Save [`Identity::to_pkcs8_der`] (or use
/// [`Identity::load_or_generate`]) so a device keeps its id across restarts. The bytes are a private key:
/// store them like a password.
pub struct Identity {
    key: rcgen::KeyPair,
    id: PeerId,
}

impl Identity {
    /// Generates a new random Ed25519 identity.
    pub fn generate() -> Self {
        // Generating an Ed25519 key only fails if the system random source fails, which ring treats as fatal.
        #[allow(clippy::expect_used)]
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("system random source failed");
        Self::from_key(key)
    }

    /// Loads an identity saved with [`Identity::to_pkcs8_der`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::try_from(der).map_err(|_| IdentityError::InvalidKey)?;
        if !key.is_compatible(&rcgen::PKCS_ED25519) && !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(IdentityError::InvalidKey);
        }
        Ok(Self::from_key(key))
    }

    /// Loads the identity stored at `path`, or generates one and stores it there (file mode 0600 on Unix).
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<Self, IdentityError> {
        let path = path.as_ref();
        let io = |source| IdentityError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => Self::from_pkcs8_der(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                std::io::Write::write_all(&mut file, &identity.to_pkcs8_der()).map_err(io)?;
                Ok(identity)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_key(key: rcgen::KeyPair) -> Self {
        let id = PeerId::from_public_key_der(&rcgen::PublicKeyData::subject_public_key_info(&key));
        Self { key, id }
    }

    /// The private key as PKCS#8 DER, to save and later pass to [`Identity::from_pkcs8_der`].
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.key.serialize_der()
    }

    /// The id of this identity.
    pub fn peer_id(&self) -> PeerId {
        self.id
    }

    /// A self-signed certificate for this key, and the key in the form rustls wants.
    pub(crate) fn certificate(&self) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), IdentityError> {
        let mut params = rcgen::CertificateParams::new(vec!["multipeer".to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.id.to_string());
        let cert = params.self_signed(&self.key)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        Ok((cert.der().clone(), key))
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        // Re-parsing our own serialized key cannot fail.
        #[allow(clippy::expect_used)]
        let key = rcgen::KeyPair::try_from(self.key.serialized_der()).expect("own key re-parses");
        Self { key, id: self.id }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_certificate_and_survives_save_load() {
        let identity = Identity::generate();
        let (cert, _) = identity.certificate().unwrap();
        assert_eq!(PeerId::from_certificate(&cert).unwrap(), identity.peer_id());
        let restored = Identity::from_pkcs8_der(&identity.to_pkcs8_der()).unwrap();
        assert_eq!(restored.peer_id(), identity.peer_id());
        assert_ne!(Identity::generate().peer_id(), identity.peer_id());
    }

    #[test]
    fn peer_id_text_round_trip() {
        let id = Identity::generate().peer_id();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert_eq!(id.short().len(), 10);
        assert!("xyz".parse::<PeerId>().is_err());
        assert!("g".repeat(64).parse::<PeerId>().is_err());
    }

    #[test]
    fn garbage_key_is_rejected() {
        assert!(matches!(
            Identity::from_pkcs8_der(b"not a key"),
            Err(IdentityError::InvalidKey)
        ));
    }
}
