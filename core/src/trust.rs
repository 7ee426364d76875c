//! Trust on first use: remember which key each display name came with, and flag a change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::identity::PeerId;
use crate::session::events::Peer;

/// Most names a [`KnownPeers`] store keeps.
pub const MAX_KNOWN_PEERS: usize = 4096;

/// What [`KnownPeers::check`] concluded about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// First time this display name is seen; it is now remembered with this key.
    New,
    /// The name comes with the key seen before.
    Known,
    /// The name comes with a different key than before: possibly another device using the same name. The app
    /// should warn, and compare [`crate::Session::verification_code`] before trusting it.
    KeyChanged {
        /// The id remembered for this name.
        previous: PeerId,
    },
}

/// Errors of the known-peers store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// Reading or writing the file failed.
    #[error("known peers file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a known-peers file.
    #[error("known peers file {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The store is full.
    #[error("the known peers store holds {MAX_KNOWN_PEERS} names already")]
    Full,
}

/// A store of display names and the peer ids (keys) they came with, optionally saved to a JSON file.
///
/// ```
/// # use multipeer::{KnownPeers, Trust, Identity, PeerId};
/// let mut known = KnownPeers::in_memory();
/// let alice = Identity::generate().peer_id();
/// assert_eq!(known.check_id("Alice", alice)?, Trust::New);
/// assert_eq!(known.check_id("Alice", alice)?, Trust::Known);
/// let impostor = Identity::generate().peer_id();
/// assert_eq!(known.check_id("Alice", impostor)?, Trust::KeyChanged { previous: alice });
/// # Ok::<(), multipeer::TrustError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct KnownPeers {
    names: BTreeMap<String, PeerId>,
    path: Option<PathBuf>,
}

impl KnownPeers {
    /// A store that is not saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the store at `path` (empty if the file does not exist); changes are saved there.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TrustError> {
        let path = path.as_ref().to_owned();
        let names = match std::fs::read(&path) {
            Ok(bytes) => {
                let names: BTreeMap<String, PeerId> =
                    serde_json::from_slice(&bytes).map_err(|e| TrustError::Corrupt {
                        path: path.clone(),
                        detail: e.to_string(),
                    })?;
                if names.len() > MAX_KNOWN_PEERS {
                    return Err(TrustError::Full);
                }
                names
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(TrustError::Io { path, source }),
        };
        Ok(Self {
            names,
            path: Some(path),
        })
    }

    /// Checks a connected peer's display name against its key, remembering it if new.
    pub fn check(&mut self, peer: &Peer) -> Result<Trust, TrustError> {
        self.check_id(&peer.display_name, peer.id)
    }

    /// Checks a display name against a peer id, remembering it if new.
    pub fn check_id(&mut self, display_name: &str, id: PeerId) -> Result<Trust, TrustError> {
        match self.names.get(display_name) {
            Some(known) if *known == id => Ok(Trust::Known),
            Some(known) => Ok(Trust::KeyChanged { previous: *known }),
            None => {
                if self.names.len() >= MAX_KNOWN_PEERS {
                    return Err(TrustError::Full);
                }
                self.names.insert(display_name.to_owned(), id);
                self.save()?;
                Ok(Trust::New)
            }
        }
    }

    /// Accepts a changed key for `display_name` (after checking it out of band).
    pub fn accept(&mut self, display_name: &str, id: PeerId) -> Result<(), TrustError> {
        self.names.insert(display_name.to_owned(), id);
        self.save()
    }

    /// Forgets a name.
    pub fn forget(&mut self, display_name: &str) -> Result<(), TrustError> {
        self.names.remove(display_name);
        self.save()
    }

    fn save(&self) -> Result<(), TrustError> {
        let Some(path) = &self.path else { return Ok(()) };
        let io = |source| TrustError::Io {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&self.names).map_err(|e| TrustError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_and_flags_changed_keys() {
        let dir = std::env::temp_dir().join(format!("multipeer-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known.json");
        let a = crate::Identity::generate().peer_id();
        let b = crate::Identity::generate().peer_id();
        let mut known = KnownPeers::open(&path).unwrap();
        assert_eq!(known.check_id("Alice", a).unwrap(), Trust::New);
        let mut reopened = KnownPeers::open(&path).unwrap();
        assert_eq!(reopened.check_id("Alice", a).unwrap(), Trust::Known);
        assert_eq!(
            reopened.check_id("Alice", b).unwrap(),
            Trust::KeyChanged { previous: a }
        );
        reopened.accept("Alice", b).unwrap();
        assert_eq!(
            KnownPeers::open(&path).unwrap().check_id("Alice", b).unwrap(),
            Trust::Known
        );
        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(KnownPeers::open(&path), Err(TrustError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
