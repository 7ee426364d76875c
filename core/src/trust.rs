//! Trust on first use, keyed by peer id: remember which peers were seen, which ones the user verified, and warn
//! when a display name arrives with an id it was not seen with before.
//!
//! A display name is chosen by the peer and proves nothing; a [`PeerId`] is the hash of a key the peer proved in
//! TLS. The store is therefore keyed by id. It keeps two kinds of entries apart:
//!
//! - **seen**: ids that [`KnownPeers::check`] met. Kept in memory only, at most [`MAX_SEEN_PEERS`] of them; the
//!   least recently seen one is forgotten to make room. A host that invents ids cannot grow the store or its file.
//! - **verified**: ids the user vouched for with [`KnownPeers::mark_verified`] after comparing the pairing code
//!   ([`crate::Session::verification_code`]). Only these are saved to the file, at most [`MAX_VERIFIED_PEERS`].
//!
//! # File format
//!
//! A JSON object `{"version": 1, "peers": [{"id", "names", "first_seen", "last_seen"}, ...]}` holding the verified
//! peers only. It is written atomically (a new file in the same directory, synced, renamed over the old one, then
//! the directory synced), with mode 0600 on Unix. A file larger than the largest file the store can write, or
//! that does not parse, is refused with [`TrustError::Corrupt`]; a newer version with
//! [`TrustError::UnsupportedVersion`].
//!
//! The earlier format, a JSON map from display name to id, is still read, but nothing in it was ever verified by
//! the user: its entries are loaded as *seen* (not verified, at most [`MAX_SEEN_PEERS`] of them), so they still
//! raise name warnings during this run. They are not written back: the next save replaces the file with the
//! current format holding only verified peers. [`KnownPeers::loaded_legacy_file`] tells the app this happened,
//! so it can ask the user to verify their peers again.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;

use crate::config::MAX_DISPLAY_NAME_LEN;
use crate::identity::PeerId;
use crate::session::events::Peer;

/// Most verified peers a [`KnownPeers`] store holds (and saves); [`KnownPeers::mark_verified`] fails with
/// [`TrustError::Full`] beyond it.
pub const MAX_VERIFIED_PEERS: usize = 4096;

/// Most seen but unverified peers a [`KnownPeers`] store holds in memory; the least recently seen one is
/// forgotten to make room for a new one.
pub const MAX_SEEN_PEERS: usize = 256;

/// Most display names remembered per peer (the most recent ones).
pub const MAX_NAMES_PER_PEER: usize = 4;

/// The version of the file format written by [`KnownPeers::save`].
const FILE_VERSION: u64 = 1;

/// Largest file [`KnownPeers::open`] reads: room for [`MAX_VERIFIED_PEERS`] entries of
/// [`MAX_NAMES_PER_PEER`] names with every byte escaped, pretty-printed. A larger file is corrupt.
const MAX_FILE_BYTES: u64 = (MAX_VERIFIED_PEERS * (512 + MAX_NAMES_PER_PEER * (2 * MAX_DISPLAY_NAME_LEN + 32))) as u64;

/// Attempts at finding an unused temporary file name when saving.
const TEMP_ATTEMPTS: usize = 16;

/// How much the store trusts a peer id, as answered by [`KnownPeers::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trust {
    /// The id was never seen before (or was forgotten). It is now remembered as seen.
    New,
    /// The id was seen before, but the user has not verified it.
    Seen,
    /// The user verified this id with [`KnownPeers::mark_verified`].
    Verified,
}

/// A display name that arrived with one id but is already known with another: possibly another device with the
/// same name, possibly an impostor. The app should say so and must not treat this peer as the other one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameClash {
    /// The display name (as stored: clipped to [`MAX_DISPLAY_NAME_LEN`] bytes, control characters replaced).
    pub name: String,
    /// Another id that came with this name: a verified one if any, else the most recently seen one.
    pub other: PeerId,
    /// Whether [`NameClash::other`] is verified: a name the user vouched for now comes with a different key.
    pub other_verified: bool,
}

/// The answer of [`KnownPeers::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verdict {
    /// What the store knows about this id. Only [`Trust::Verified`] means the user vouched for it.
    pub trust: Trust,
    /// Set when the display name is known with another id.
    pub name_clash: Option<NameClash>,
}

/// What the store remembers about one peer id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerRecord {
    /// The peer.
    pub id: PeerId,
    /// The display names it came with, most recent first: at most [`MAX_NAMES_PER_PEER`], each clipped to
    /// [`MAX_DISPLAY_NAME_LEN`] bytes with control characters replaced. Empty for an id verified before any
    /// [`KnownPeers::check`].
    pub names: Vec<String>,
    /// When it was first seen, in seconds since the Unix epoch (for entries migrated from the earlier file
    /// format: when the file was opened).
    pub first_seen: u64,
    /// When it was last seen, in seconds since the Unix epoch.
    pub last_seen: u64,
    /// Whether the user verified it with [`KnownPeers::mark_verified`].
    pub verified: bool,
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
        source: io::Error,
    },
    /// The file is not a known-peers file, or holds more than the store can.
    #[error("known peers file {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file was written by a newer version of this library.
    #[error("known peers file {path} has format version {version}; this version reads version {FILE_VERSION}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares.
        version: u64,
    },
    /// [`MAX_VERIFIED_PEERS`] peers are verified already; forget one first.
    #[error("the known peers store holds {MAX_VERIFIED_PEERS} verified peers already")]
    Full,
}

/// One entry and its recency (a counter, so that eviction does not depend on the clock).
#[derive(Debug, Clone)]
struct Entry {
    record: PeerRecord,
    tick: u64,
}

impl Entry {
    fn new(id: PeerId, name: Option<String>, now: u64, tick: u64) -> Self {
        Self {
            record: PeerRecord {
                id,
                names: name.into_iter().collect(),
                first_seen: now,
                last_seen: now,
                verified: false,
            },
            tick,
        }
    }

    fn touch(&mut self, name: String, now: u64, tick: u64) {
        let names = &mut self.record.names;
        names.retain(|n| *n != name);
        names.insert(0, name);
        names.truncate(MAX_NAMES_PER_PEER);
        self.record.last_seen = self.record.last_seen.max(now);
        self.tick = tick;
    }

    fn has_name(&self, name: &str) -> bool {
        self.record.names.iter().any(|n| n == name)
    }
}

/// A trust-on-first-use store keyed by [`PeerId`], optionally saved to a file.
///
/// Call [`KnownPeers::check`] for every peer that joins. It answers [`Trust::New`], [`Trust::Seen`] or
/// [`Trust::Verified`], and a [`NameClash`] warning when the display name is already known with another id. A
/// display name never makes a peer trusted: only its id does, and only after the user compared the pairing code
/// and the app called [`KnownPeers::mark_verified`].
///
/// Memory is bounded: at most [`MAX_VERIFIED_PEERS`] + [`MAX_SEEN_PEERS`] entries of at most
/// [`MAX_NAMES_PER_PEER`] names of at most [`MAX_DISPLAY_NAME_LEN`] bytes each (names are clipped, whatever the
/// caller passes). Only verified peers are written to the file.
///
/// One store per file: two stores (or processes) saving the same file do not merge, the last save wins.
///
/// ```
/// # use multipeer::{Identity, KnownPeers, Trust};
/// let mut known = KnownPeers::in_memory(); // or KnownPeers::open(path)?
/// let alice = Identity::generate().peer_id();
/// assert_eq!(known.check_at(alice, "Alice", 1_000).trust, Trust::New);
/// assert_eq!(known.check_at(alice, "Alice", 1_001).trust, Trust::Seen);
///
/// // Only after both users compared `Session::verification_code(&alice)`:
/// known.mark_verified(alice)?;
/// assert_eq!(known.check_at(alice, "Alice", 1_002).trust, Trust::Verified);
///
/// // Another key claiming the name "Alice" is a new peer, with a warning.
/// let impostor = Identity::generate().peer_id();
/// let verdict = known.check_at(impostor, "Alice", 1_003);
/// assert_eq!(verdict.trust, Trust::New);
/// let clash = verdict.name_clash.expect("the name is known with another id");
/// assert_eq!((clash.other, clash.other_verified), (alice, true));
/// # Ok::<(), multipeer::TrustError>(())
/// ```
#[derive(Debug, Default)]
pub struct KnownPeers {
    verified: BTreeMap<PeerId, Entry>,
    seen: BTreeMap<PeerId, Entry>,
    tick: u64,
    path: Option<PathBuf>,
    legacy: bool,
}

impl KnownPeers {
    /// A store that is not saved.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the store saved at `path` (empty if the file does not exist); [`KnownPeers::mark_verified`],
    /// [`KnownPeers::forget`] and [`KnownPeers::save`] write there.
    ///
    /// A file that cannot be parsed is a [`TrustError::Corrupt`] (the file is left as it is). A file in the
    /// earlier name-to-id format is loaded as unverified (see [`KnownPeers::loaded_legacy_file`]). Temporary
    /// files left by a save that crashed are ignored.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TrustError> {
        let path = path.as_ref().to_owned();
        let mut store = Self {
            path: Some(path.clone()),
            ..Self::default()
        };
        let Some(bytes) = read_capped(&path)? else {
            return Ok(store);
        };
        match parse(&bytes) {
            Ok(Stored::Current(peers)) => store.load_verified(peers).map_err(|detail| corrupt(&path, detail))?,
            Ok(Stored::Legacy(names)) => {
                tracing::warn!(
                    "known peers file {} is in the earlier name-to-id format: its peers are loaded as unverified",
                    path.display()
                );
                store.load_legacy(names, unix_now());
            }
            Err(ParseError::Version(version)) => return Err(TrustError::UnsupportedVersion { path, version }),
            Err(ParseError::Invalid(detail)) => return Err(corrupt(&path, detail)),
        }
        Ok(store)
    }

    /// Whether [`KnownPeers::open`] read a file in the earlier name-to-id format. Its entries were loaded as
    /// seen, not verified, and are not saved: the app may want to ask the user to verify their peers again.
    pub fn loaded_legacy_file(&self) -> bool {
        self.legacy
    }

    /// The file this store is saved to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Checks a connected peer, remembering it as seen (see [`KnownPeers::check_at`]); the time is taken from
    /// the system clock.
    pub fn check(&mut self, peer: &Peer) -> Verdict {
        self.check_at(peer.id, &peer.display_name, unix_now())
    }

    /// Checks a peer id and the display name it came with at `now` (seconds since the Unix epoch), remembering
    /// both.
    ///
    /// The answer depends on the id only; the name only raises [`Verdict::name_clash`] when another id is known
    /// with it. A new id is remembered as seen, in memory only, forgetting the least recently seen unverified id
    /// if [`MAX_SEEN_PEERS`] are held. This never writes the file: names and times of verified peers that
    /// changed are saved by the next [`KnownPeers::save`] (or [`KnownPeers::mark_verified`], or
    /// [`KnownPeers::forget`]).
    pub fn check_at(&mut self, id: PeerId, display_name: &str, now: u64) -> Verdict {
        let name = clip_name(display_name);
        let name_clash = self.name_clash(id, &name);
        self.tick += 1;
        let tick = self.tick;
        let trust = if let Some(entry) = self.verified.get_mut(&id) {
            entry.touch(name, now, tick);
            Trust::Verified
        } else if let Some(entry) = self.seen.get_mut(&id) {
            entry.touch(name, now, tick);
            Trust::Seen
        } else {
            self.make_room_for_seen();
            self.seen.insert(id, Entry::new(id, Some(name), now, tick));
            Trust::New
        };
        Verdict { trust, name_clash }
    }

    /// Records that the user verified `id`, and saves the store.
    ///
    /// Call this **only** after both users compared [`crate::Session::verification_code`] for this peer (the
    /// pairing code of the live connection) and confirmed it matches: that comparison is what proves no machine
    /// in the middle holds the connection. Never call it because a display name looks right.
    ///
    /// An id not seen yet is recorded without names (the next [`KnownPeers::check`] adds them). Verifying an id
    /// that is verified already changes nothing. Fails with [`TrustError::Full`] if [`MAX_VERIFIED_PEERS`] are
    /// verified, or with the save's error, in which case the id is not verified.
    pub fn mark_verified(&mut self, id: PeerId) -> Result<(), TrustError> {
        self.mark_verified_at(id, unix_now())
    }

    /// [`KnownPeers::mark_verified`] at `now` (seconds since the Unix epoch, used if `id` was not seen yet).
    pub fn mark_verified_at(&mut self, id: PeerId, now: u64) -> Result<(), TrustError> {
        if self.verified.contains_key(&id) {
            return Ok(());
        }
        if self.verified.len() >= MAX_VERIFIED_PEERS {
            return Err(TrustError::Full);
        }
        let seen = self.seen.remove(&id);
        let was_seen = seen.is_some();
        let mut entry = seen.unwrap_or_else(|| Entry::new(id, None, now, 0));
        entry.record.verified = true;
        self.verified.insert(id, entry);
        if let Err(e) = self.save() {
            if let Some(mut entry) = self.verified.remove(&id) {
                entry.record.verified = false;
                if was_seen {
                    self.seen.insert(id, entry);
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Forgets `id`, verified or not; saves the store if it was verified. Returns whether it was known.
    ///
    /// If the save fails, the id stays as it was and the error is returned.
    pub fn forget(&mut self, id: &PeerId) -> Result<bool, TrustError> {
        if self.seen.remove(id).is_some() {
            return Ok(true);
        }
        let Some(entry) = self.verified.remove(id) else {
            return Ok(false);
        };
        if let Err(e) = self.save() {
            self.verified.insert(*id, entry);
            return Err(e);
        }
        Ok(true)
    }

    /// What the store remembers about `id`.
    pub fn get(&self, id: &PeerId) -> Option<&PeerRecord> {
        self.verified.get(id).or_else(|| self.seen.get(id)).map(|e| &e.record)
    }

    /// Whether the user verified `id`.
    pub fn is_verified(&self, id: &PeerId) -> bool {
        self.verified.contains_key(id)
    }

    /// The verified peers, ordered by id.
    pub fn verified(&self) -> impl Iterator<Item = &PeerRecord> {
        self.verified.values().map(|e| &e.record)
    }

    /// The seen but unverified peers (held in memory only), ordered by id.
    pub fn seen(&self) -> impl Iterator<Item = &PeerRecord> {
        self.seen.values().map(|e| &e.record)
    }

    /// How many peers are verified (at most [`MAX_VERIFIED_PEERS`]).
    pub fn verified_count(&self) -> usize {
        self.verified.len()
    }

    /// How many unverified peers are held (at most [`MAX_SEEN_PEERS`]).
    pub fn seen_count(&self) -> usize {
        self.seen.len()
    }

    /// Writes the verified peers to the file atomically (nothing to do for an in-memory store).
    ///
    /// The data goes to a new file with a random name in the same directory (mode 0600 on Unix), which is
    /// synced and renamed over the file; then the directory is synced. A crash leaves either the old or the new
    /// file, and at worst a stray temporary file, which [`KnownPeers::open`] ignores.
    pub fn save(&self) -> Result<(), TrustError> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = StoredFile {
            version: FILE_VERSION,
            peers: self.verified.values().map(|e| StoredPeer::from(&e.record)).collect(),
        };
        let io_error = |source| TrustError::Io {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| io_error(io::Error::other(e)))?;
        write_atomic(path, &json).map_err(io_error)
    }

    /// Another id known with `name`: a verified one if any (the most recently seen), else the most recently
    /// seen unverified one.
    fn name_clash(&self, id: PeerId, name: &str) -> Option<NameClash> {
        let latest = |entries: &BTreeMap<PeerId, Entry>| {
            entries
                .values()
                .filter(|e| e.record.id != id && e.has_name(name))
                .max_by_key(|e| (e.record.last_seen, e.tick))
                .map(|e| e.record.id)
        };
        let (other, other_verified) = match latest(&self.verified) {
            Some(other) => (other, true),
            None => (latest(&self.seen)?, false),
        };
        Some(NameClash {
            name: name.to_owned(),
            other,
            other_verified,
        })
    }

    /// Forgets the least recently seen unverified ids until there is room for one more.
    fn make_room_for_seen(&mut self) {
        while self.seen.len() >= MAX_SEEN_PEERS {
            let Some(oldest) = self.seen.values().min_by_key(|e| e.tick).map(|e| e.record.id) else {
                return;
            };
            self.seen.remove(&oldest);
        }
    }

    fn load_verified(&mut self, peers: Vec<StoredPeer>) -> Result<(), String> {
        if peers.len() > MAX_VERIFIED_PEERS {
            return Err(format!("{} peers, more than {MAX_VERIFIED_PEERS}", peers.len()));
        }
        for peer in peers {
            let mut names = Vec::new();
            for name in peer.names.iter().map(|n| clip_name(n)) {
                if !names.contains(&name) && names.len() < MAX_NAMES_PER_PEER {
                    names.push(name);
                }
            }
            let record = PeerRecord {
                id: peer.id,
                names,
                first_seen: peer.first_seen,
                last_seen: peer.last_seen,
                verified: true,
            };
            if self.verified.insert(peer.id, Entry { record, tick: 0 }).is_some() {
                return Err(format!("peer {} is listed twice", peer.id));
            }
        }
        Ok(())
    }

    fn load_legacy(&mut self, names: BTreeMap<String, PeerId>, now: u64) {
        self.legacy = true;
        for (name, id) in names {
            self.check_at(id, &name, now);
        }
    }
}

/// The file's content.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredFile {
    version: u64,
    peers: Vec<StoredPeer>,
}

/// One verified peer in the file.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPeer {
    id: PeerId,
    names: Vec<String>,
    first_seen: u64,
    last_seen: u64,
}

impl From<&PeerRecord> for StoredPeer {
    fn from(record: &PeerRecord) -> Self {
        Self {
            id: record.id,
            names: record.names.clone(),
            first_seen: record.first_seen,
            last_seen: record.last_seen,
        }
    }
}

/// Just the version of a file, to tell the formats apart.
#[derive(serde::Deserialize)]
struct Header {
    version: u64,
}

enum Stored {
    Current(Vec<StoredPeer>),
    Legacy(BTreeMap<String, PeerId>),
}

enum ParseError {
    Version(u64),
    Invalid(String),
}

fn parse(bytes: &[u8]) -> Result<Stored, ParseError> {
    match serde_json::from_slice::<Header>(bytes) {
        Ok(Header { version: FILE_VERSION }) => serde_json::from_slice::<StoredFile>(bytes)
            .map(|file| Stored::Current(file.peers))
            .map_err(|e| ParseError::Invalid(e.to_string())),
        Ok(Header { version }) => Err(ParseError::Version(version)),
        // No numeric version: the earlier format (a map from name to id), or not a known-peers file at all.
        Err(header) => serde_json::from_slice::<BTreeMap<String, PeerId>>(bytes)
            .map(Stored::Legacy)
            .map_err(|_| ParseError::Invalid(header.to_string())),
    }
}

fn corrupt(path: &Path, detail: String) -> TrustError {
    TrustError::Corrupt {
        path: path.to_owned(),
        detail,
    }
}

/// Reads the file, `None` if it does not exist; refuses a file larger than the store could have written.
fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    let io_error = |source| TrustError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(corrupt(path, format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    Ok(Some(bytes))
}

/// A display name as the store keeps it: control characters replaced, clipped to [`MAX_DISPLAY_NAME_LEN`] bytes
/// on a character boundary.
fn clip_name(name: &str) -> String {
    let mut clipped = String::with_capacity(name.len().min(MAX_DISPLAY_NAME_LEN));
    for c in name.chars() {
        let c = if c.is_control() { char::REPLACEMENT_CHARACTER } else { c };
        if clipped.len() + c.len_utf8() > MAX_DISPLAY_NAME_LEN {
            break;
        }
        clipped.push(c);
    }
    clipped
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Replaces `path` with `bytes`: temporary file, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let (tmp, mut file) = create_temp(dir, name)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| {
        drop(file);
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Creates `.NAME.RANDOM.tmp` in `dir`, never opening an existing file, readable by the owner only.
fn create_temp(dir: &Path, name: &std::ffi::OsStr) -> io::Result<(PathBuf, File)> {
    let rng = ring::rand::SystemRandom::new();
    for _ in 0..TEMP_ATTEMPTS {
        let mut suffix = [0u8; 8];
        rng.fill(&mut suffix)
            .map_err(|_| io::Error::other("no randomness for a temporary file name"))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".");
        for b in suffix {
            tmp_name.push(format!("{b:02x}"));
        }
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    // The mode given to open() is reduced by the umask; make it exactly 0600.
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
                return Ok((tmp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no unused temporary file name found",
    ))
}

/// Makes a rename in `dir` durable (Unix; elsewhere the rename is left to the file system).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> PeerId {
        let mut bytes = [0u8; crate::PEER_ID_LEN];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        PeerId::from_bytes(bytes)
    }

    #[test]
    fn names_are_clipped_on_a_char_boundary_and_control_characters_replaced() {
        assert_eq!(clip_name("Alice"), "Alice");
        assert_eq!(clip_name("a\nb"), "a\u{fffd}b");
        let long = "é".repeat(100);
        let clipped = clip_name(&long);
        assert_eq!(clipped.len(), 62);
        assert_eq!(clip_name(&"x".repeat(1000)).len(), MAX_DISPLAY_NAME_LEN);
    }

    #[test]
    fn a_peer_keeps_its_latest_names_only() {
        let mut known = KnownPeers::in_memory();
        for (i, name) in ["a", "b", "c", "d", "e", "c"].iter().enumerate() {
            known.check_at(id(1), name, i as u64);
        }
        let record = known.get(&id(1)).unwrap();
        assert_eq!(record.names, ["c", "e", "d", "b"]);
        assert_eq!((record.first_seen, record.last_seen), (0, 5));
    }

    #[test]
    fn the_least_recently_seen_unverified_peer_is_evicted() {
        let mut known = KnownPeers::in_memory();
        for n in 0..MAX_SEEN_PEERS as u32 {
            known.check_at(id(n), "x", 7);
        }
        // Seeing id 0 again makes id 1 the least recent (all in the same second: order, not time, decides).
        assert_eq!(known.check_at(id(0), "x", 7).trust, Trust::Seen);
        assert_eq!(known.check_at(id(9999), "x", 7).trust, Trust::New);
        assert_eq!(known.seen_count(), MAX_SEEN_PEERS);
        assert!(known.get(&id(0)).is_some());
        assert!(known.get(&id(1)).is_none());
    }

    #[test]
    fn a_clash_prefers_the_verified_id() {
        let mut known = KnownPeers::in_memory();
        known.check_at(id(1), "Alice", 1);
        known.mark_verified_at(id(1), 1).unwrap();
        known.check_at(id(2), "Alice", 2);
        let clash = known.check_at(id(3), "Alice", 3).name_clash.unwrap();
        assert_eq!((clash.other, clash.other_verified), (id(1), true));
        let clash = known.check_at(id(1), "Alice", 4).name_clash.unwrap();
        assert_eq!((clash.other, clash.other_verified), (id(3), false));
    }

    #[test]
    fn the_largest_file_the_store_writes_can_be_read_back() {
        let worst = "\"\\".repeat(MAX_DISPLAY_NAME_LEN);
        let peers = (0..MAX_VERIFIED_PEERS as u32)
            .map(|n| StoredPeer {
                id: id(n),
                names: (0..MAX_NAMES_PER_PEER)
                    .map(|k| clip_name(&format!("{k}{worst}")))
                    .collect(),
                first_seen: u64::MAX,
                last_seen: u64::MAX,
            })
            .collect();
        let file = StoredFile {
            version: FILE_VERSION,
            peers,
        };
        let json = serde_json::to_vec_pretty(&file).unwrap();
        assert!(
            (json.len() as u64) <= MAX_FILE_BYTES,
            "{} > {MAX_FILE_BYTES}",
            json.len()
        );
        let Ok(Stored::Current(peers)) = parse(&json) else {
            panic!("not read back")
        };
        let mut known = KnownPeers::in_memory();
        known.load_verified(peers).unwrap();
        assert_eq!(known.verified_count(), MAX_VERIFIED_PEERS);
        assert_eq!(known.get(&id(0)).unwrap().names[0].len(), MAX_DISPLAY_NAME_LEN);
    }
}
