//! Session configuration and its validation.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::directory::DirectoryError;
use crate::identity::Identity;

/// Most peers a session can hold, including the local peer.
pub const MAX_PEERS_LIMIT: usize = 8;
/// Longest display name, in bytes of UTF-8 (a DNS label).
pub const MAX_DISPLAY_NAME_LEN: usize = 63;
/// Longest service type, in characters.
pub const MAX_SERVICE_TYPE_LEN: usize = 15;
/// Most entries in [`SessionConfigBuilder::discovery_info`].
pub const MAX_DISCOVERY_INFO_ENTRIES: usize = 8;
/// Longest discovery-info key, in bytes (RFC 6763 §6.4 recommends at most 9).
pub const MAX_DISCOVERY_INFO_KEY_LEN: usize = 9;
/// Most bytes of one `key=value` discovery-info entry (one DNS TXT string).
pub const MAX_DISCOVERY_INFO_ENTRY_LEN: usize = 255;
/// Most bytes of all discovery-info entries together, counted as `key=value` strings.
///
/// With the library's own TXT entries the record stays under RFC 6763's 1300-byte guidance.
pub const MAX_DISCOVERY_INFO_TOTAL_LEN: usize = 400;
/// Most bytes of [`SessionConfigBuilder::initial_data`] once serialized as JSON.
pub const MAX_INITIAL_DATA_LEN: usize = 16 * 1024;
/// Most bytes of [`SessionConfigBuilder::invitation_context`].
pub const MAX_INVITATION_CONTEXT_LEN: usize = 1024;
/// Discovery-info keys the library uses itself.
pub const RESERVED_DISCOVERY_KEYS: &[&str] = &["id", "pv", "dn"];

/// Default [`SessionConfigBuilder::answer_timeout`]: 30 s.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest [`SessionConfigBuilder::answer_timeout`]: 60 s.
pub const MAX_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// An invalid configuration: what is wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The service type does not follow DNS-SD service-name rules.
    #[error(
        "invalid service type {value:?}: {problem}; allowed: 1-15 characters of a-z, 0-9 and '-', \
         no leading, trailing or double '-'"
    )]
    InvalidServiceType {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The display name is empty or too long.
    #[error(
        "invalid display name: {problem}; allowed: 1-{MAX_DISPLAY_NAME_LEN} bytes of UTF-8 without control characters"
    )]
    InvalidDisplayName {
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `max_peers` is outside 2..=8.
    #[error("max_peers {value} is out of range; allowed: 2..={MAX_PEERS_LIMIT}, counting the local peer")]
    MaxPeersOutOfRange {
        /// The rejected value.
        value: usize,
    },
    /// A discovery-info key is invalid.
    #[error(
        "invalid discovery info key {key:?}: {problem}; allowed: 1-{MAX_DISCOVERY_INFO_KEY_LEN} printable ASCII \
         characters except '=', unique ignoring case, not one of {RESERVED_DISCOVERY_KEYS:?}"
    )]
    InvalidDiscoveryKey {
        /// The rejected key.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Discovery info is too large.
    #[error(
        "discovery info too large: {problem}; allowed: at most {MAX_DISCOVERY_INFO_ENTRIES} entries, \
         {MAX_DISCOVERY_INFO_ENTRY_LEN} bytes per key=value and {MAX_DISCOVERY_INFO_TOTAL_LEN} bytes in all"
    )]
    DiscoveryInfoTooLarge {
        /// Which limit was exceeded.
        problem: String,
    },
    /// The initial data is too large once serialized.
    #[error("initial data is {size} bytes as JSON; allowed: at most {MAX_INITIAL_DATA_LEN}")]
    InitialDataTooLarge {
        /// Its serialized size.
        size: usize,
    },
    /// The invitation context is too large.
    #[error("invitation context is {size} bytes; allowed: at most {MAX_INVITATION_CONTEXT_LEN}")]
    InvitationContextTooLarge {
        /// Its size.
        size: usize,
    },
    /// The passphrase is empty.
    #[error("the admission passphrase is empty; use no passphrase or a non-empty one")]
    EmptyPassphrase,
    /// The resource directory exists but is not safe to store received files in: a symlink, not a directory,
    /// owned by another user or writable by group or others (any of which would let someone else swap the
    /// files a peer sends). See [`SessionConfigBuilder::resource_directory`].
    #[error("unsafe resource directory {}: {reason}", path.display())]
    UnsafeResourceDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        reason: DirectoryError,
    },
    /// The answer timeout is out of range.
    #[error("invalid answer timeout {value:?}; allowed: 1 s..=60 s")]
    AnswerTimeoutOutOfRange {
        /// The rejected value.
        value: Duration,
    },
    /// The idle or keep-alive timeout is out of range.
    #[error("invalid timeouts: {problem}; allowed: idle timeout 500 ms..=600 s, keep-alive interval shorter than it")]
    InvalidTimeouts {
        /// What is wrong with them.
        problem: &'static str,
    },
}

/// Who decides that a peer joins the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvitationMode {
    /// Every peer found joins (the session's admission hook may still refuse one). Right for games and chats.
    #[default]
    Auto,
    /// Nothing is dialed until the app calls [`crate::Session::invite`]; an invited peer's app gets an
    /// [`crate::Event::Invitation`] and accepts or declines it. Members of a session link with each other
    /// without asking again: accepting an invitation joins the inviter's session.
    Manual,
}

/// Who decides that an offered resource (a file) is received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceAcceptance {
    /// Every offer within the limits (and the session's resource filter, if any) is received.
    #[default]
    Auto,
    /// The app gets each such offer as [`crate::Event::ResourceOffered`] and accepts or declines it when its
    /// user decided (within [`SessionConfigBuilder::answer_timeout`]).
    Manual,
}

/// How QUIC paces sending when packets are lost.
///
/// Measured through a user-space relay with random loss (64 MiB stream): at 20% loss Cubic took 217 s and BBR
/// 2.2 s; on a clean loopback path BBR reached ~0.74× and Cubic ~0.89× of raw quinn's bulk throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CongestionControl {
    /// Loss-based (QUIC's usual choice): best on clean links.
    #[default]
    Cubic,
    /// Model-based BBR: far better on lossy Wi-Fi, somewhat slower on clean links.
    Bbr,
}

/// A secret that `Debug` never prints (configurations end up in logs).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A validated session configuration. Build one with [`SessionConfig::builder`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub(crate) service_type: String,
    pub(crate) display_name: String,
    pub(crate) max_peers: usize,
    pub(crate) discovery_info: BTreeMap<String, String>,
    pub(crate) initial_data: serde_json::Value,
    pub(crate) identity: Identity,
    pub(crate) passphrase: Option<Secret>,
    pub(crate) invitation_context: Option<Vec<u8>>,
    pub(crate) invitation_mode: InvitationMode,
    pub(crate) answer_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) bind_addr: Option<SocketAddr>,
    pub(crate) congestion_control: CongestionControl,
    pub(crate) resources: ResourceSettings,
}

/// Where and how received resources (files) are stored; see [`SessionConfigBuilder::resource_directory`].
#[derive(Debug, Clone)]
pub(crate) struct ResourceSettings {
    pub(crate) directory: PathBuf,
    pub(crate) max_size: u64,
    pub(crate) resume_window: Duration,
    pub(crate) overwrite: bool,
    pub(crate) max_bytes_per_peer: u64,
    pub(crate) acceptance: ResourceAcceptance,
    pub(crate) answer_timeout: Duration,
}

/// Default [`SessionConfigBuilder::max_resource_size`]: 4 GiB.
pub const DEFAULT_MAX_RESOURCE_SIZE: u64 = 4 << 30;
/// Default [`SessionConfigBuilder::max_resource_bytes_per_peer`]: 16 GiB.
pub const DEFAULT_MAX_RESOURCE_BYTES_PER_PEER: u64 = 16 << 30;
/// Default [`SessionConfigBuilder::resume_window`]: 5 minutes.
pub const DEFAULT_RESUME_WINDOW: Duration = Duration::from_secs(300);

impl SessionConfig {
    /// Starts a configuration for the given service type (for example `"chat"`) and display name.
    ///
    /// ```
    /// let config = multipeer::SessionConfig::builder("chat", "Alice's phone")
    ///     .max_peers(4)
    ///     .discovery_info("room", "lobby")
    ///     .build()?;
    /// assert_eq!(config.max_peers(), 4);
    /// # Ok::<(), multipeer::ConfigError>(())
    /// ```
    pub fn builder(service_type: impl Into<String>, display_name: impl Into<String>) -> SessionConfigBuilder {
        SessionConfigBuilder {
            service_type: service_type.into(),
            display_name: display_name.into(),
            max_peers: MAX_PEERS_LIMIT,
            discovery_info: Vec::new(),
            initial_data: serde_json::Value::Null,
            identity: None,
            passphrase: None,
            invitation_context: None,
            invitation_mode: InvitationMode::Auto,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            idle_timeout: Duration::from_secs(5),
            keep_alive_interval: None,
            bind_addr: None,
            congestion_control: CongestionControl::default(),
            resource_directory: None,
            max_resource_size: DEFAULT_MAX_RESOURCE_SIZE,
            resume_window: DEFAULT_RESUME_WINDOW,
            overwrite_resources: false,
            max_resource_bytes_per_peer: DEFAULT_MAX_RESOURCE_BYTES_PER_PEER,
            resource_acceptance: ResourceAcceptance::Auto,
        }
    }

    /// The DNS-SD service type, without `_` and `._udp`.
    pub fn service_type(&self) -> &str {
        &self.service_type
    }

    /// The name other peers see.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// Most peers in the session, including the local one.
    pub fn max_peers(&self) -> usize {
        self.max_peers
    }

    /// The key/value pairs published with discovery.
    pub fn discovery_info(&self) -> &BTreeMap<String, String> {
        &self.discovery_info
    }

    /// The identity the session runs under.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// How long a silent peer stays before it is removed.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How often a quiet connection is kept alive.
    pub fn keep_alive_interval(&self) -> Duration {
        self.keep_alive_interval
    }

    /// Where received resources are saved.
    pub fn resource_directory(&self) -> &Path {
        &self.resources.directory
    }

    pub(crate) fn bind_addr(&self) -> SocketAddr {
        self.bind_addr
            .unwrap_or_else(|| SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
    }
}

/// Builder for [`SessionConfig`]; [`SessionConfigBuilder::build`] validates every field.
#[derive(Debug)]
#[must_use]
pub struct SessionConfigBuilder {
    service_type: String,
    display_name: String,
    max_peers: usize,
    discovery_info: Vec<(String, String)>,
    initial_data: serde_json::Value,
    identity: Option<Identity>,
    passphrase: Option<Secret>,
    invitation_context: Option<Vec<u8>>,
    invitation_mode: InvitationMode,
    answer_timeout: Duration,
    idle_timeout: Duration,
    keep_alive_interval: Option<Duration>,
    bind_addr: Option<SocketAddr>,
    congestion_control: CongestionControl,
    resource_directory: Option<PathBuf>,
    max_resource_size: u64,
    resume_window: Duration,
    overwrite_resources: bool,
    max_resource_bytes_per_peer: u64,
    resource_acceptance: ResourceAcceptance,
}

impl SessionConfigBuilder {
    /// Most peers in the session including the local one: 2..=8, default 8.
    pub fn max_peers(mut self, max_peers: usize) -> Self {
        self.max_peers = max_peers;
        self
    }

    /// Adds a key/value pair published with discovery (a DNS-SD TXT entry). See the `MAX_DISCOVERY_INFO_*`
    /// limits.
    pub fn discovery_info(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.discovery_info.push((key.into(), value.into()));
        self
    }

    /// A JSON value every peer receives when it connects, readable as [`crate::Peer::initial_data`].
    /// At most [`MAX_INITIAL_DATA_LEN`] bytes once serialized.
    pub fn initial_data(mut self, data: serde_json::Value) -> Self {
        self.initial_data = data;
        self
    }

    /// The identity to run under; by default a fresh ephemeral one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// A passphrase every peer must share to join. It never crosses the network: peers prove knowledge of
    /// it with a PAKE (SPAKE2) bound to the TLS session, which gives an eavesdropper or a fake peer nothing to
    /// test guesses against offline.
    pub fn passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(Secret(passphrase.into()));
        self
    }

    /// Bytes sent with every invitation this peer makes, shown to the invited peer's admission decision.
    pub fn invitation_context(mut self, context: impl Into<Vec<u8>>) -> Self {
        self.invitation_context = Some(context.into());
        self
    }

    /// Who decides that a peer joins: [`InvitationMode::Auto`] (default) or [`InvitationMode::Manual`].
    pub fn invitation_mode(mut self, mode: InvitationMode) -> Self {
        self.invitation_mode = mode;
        self
    }

    /// How long an invitation ([`InvitationMode::Manual`]) or a resource offer
    /// ([`ResourceAcceptance::Manual`]) waits for the app's answer before it is declined (default 30 s, at most
    /// [`MAX_ANSWER_TIMEOUT`]).
    pub fn answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// How long a peer may stay silent before it is removed (default 5 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How often a quiet connection sends a keep-alive (default: a third of the idle timeout).
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = Some(interval);
        self
    }

    /// The local UDP address to bind (default: all interfaces, IPv6 and IPv4, a free port).
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.bind_addr = Some(addr);
        self
    }

    /// The congestion controller (default [`CongestionControl::Cubic`]; choose BBR for lossy Wi-Fi).
    pub fn congestion_control(mut self, congestion_control: CongestionControl) -> Self {
        self.congestion_control = congestion_control;
        self
    }

    /// The directory received resources are saved in. Default: a directory private to the user
    /// (`$XDG_DATA_HOME/multipeer/resources`, else `~/.local/share/multipeer/resources` on Linux;
    /// `~/Library/Application Support/multipeer/resources` on Apple systems; `%LOCALAPPDATA%\multipeer\resources`
    /// on Windows); apps should choose their own (on iOS and Android, a directory of the app's container).
    ///
    /// The directory must be private: on Unix a real directory (not a symlink) owned by this process's user
    /// and not writable by group or others. [`build`](Self::build) fails with
    /// [`ConfigError::UnsafeResourceDirectory`] if it exists and is not; a missing one is created with mode
    /// 0700 when the session starts (if it cannot be created then, or becomes unsafe later, every offer is
    /// refused as "cannot store" and the reason is logged). Received files are created with mode 0600 under a
    /// temporary name and get their final name only once complete and verified; part files of earlier
    /// sessions older than the [`resume_window`](Self::resume_window) are removed when a session starts.
    pub fn resource_directory(mut self, directory: impl Into<PathBuf>) -> Self {
        self.resource_directory = Some(directory.into());
        self
    }

    /// The largest resource accepted from a peer, in bytes (default [`DEFAULT_MAX_RESOURCE_SIZE`]); larger
    /// offers are refused before the app is asked.
    pub fn max_resource_size(mut self, bytes: u64) -> Self {
        self.max_resource_size = bytes;
        self
    }

    /// How long an interrupted transfer waits for its peer to come back and resume where it stopped (default
    /// [`DEFAULT_RESUME_WINDOW`]); after that both ends report it failed and the partial file is deleted.
    pub fn resume_window(mut self, window: Duration) -> Self {
        self.resume_window = window;
        self
    }

    /// The most bytes one peer may send us in resources during one session, counting every accepted offer
    /// (default [`DEFAULT_MAX_RESOURCE_BYTES_PER_PEER`]); offers beyond it are refused as too large before the
    /// app is asked. Transfers that fail or are cancelled give their share back.
    pub fn max_resource_bytes_per_peer(mut self, bytes: u64) -> Self {
        self.max_resource_bytes_per_peer = bytes;
        self
    }

    /// Who decides that an offered resource is received: [`ResourceAcceptance::Auto`] (default) or
    /// [`ResourceAcceptance::Manual`] (the app answers each offer, asynchronously).
    pub fn resource_acceptance(mut self, acceptance: ResourceAcceptance) -> Self {
        self.resource_acceptance = acceptance;
        self
    }

    /// Whether a received resource replaces an existing file of the same name (default `false`: it is saved
    /// as `name (1).ext`, `name (2).ext`, ...).
    pub fn overwrite_resources(mut self, overwrite: bool) -> Self {
        self.overwrite_resources = overwrite;
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        validate_service_type(&self.service_type)?;
        validate_display_name(&self.display_name)?;
        if !(2..=MAX_PEERS_LIMIT).contains(&self.max_peers) {
            return Err(ConfigError::MaxPeersOutOfRange { value: self.max_peers });
        }
        let discovery_info = validate_discovery_info(self.discovery_info)?;
        let size = serde_json::to_vec(&self.initial_data).map_or(usize::MAX, |v| v.len());
        if size > MAX_INITIAL_DATA_LEN {
            return Err(ConfigError::InitialDataTooLarge { size });
        }
        if let Some(context) = &self.invitation_context {
            if context.len() > MAX_INVITATION_CONTEXT_LEN {
                return Err(ConfigError::InvitationContextTooLarge { size: context.len() });
            }
        }
        if !(Duration::from_secs(1)..=MAX_ANSWER_TIMEOUT).contains(&self.answer_timeout) {
            return Err(ConfigError::AnswerTimeoutOutOfRange {
                value: self.answer_timeout,
            });
        }
        if self.passphrase.as_ref().is_some_and(|p| p.0.is_empty()) {
            return Err(ConfigError::EmptyPassphrase);
        }
        if !(MIN_IDLE_TIMEOUT..=MAX_IDLE_TIMEOUT).contains(&self.idle_timeout) {
            return Err(ConfigError::InvalidTimeouts {
                problem: "idle timeout out of range",
            });
        }
        let keep_alive_interval = self.keep_alive_interval.unwrap_or(self.idle_timeout / 3);
        if keep_alive_interval.is_zero() || keep_alive_interval >= self.idle_timeout {
            return Err(ConfigError::InvalidTimeouts {
                problem: "keep-alive interval must be non-zero and shorter than the idle timeout",
            });
        }
        let directory = self
            .resource_directory
            .unwrap_or_else(crate::directory::default_directory);
        if let Err(reason) = crate::directory::check_if_present(&directory) {
            return Err(ConfigError::UnsafeResourceDirectory {
                path: directory,
                reason,
            });
        }
        let resources = ResourceSettings {
            directory,
            max_size: self.max_resource_size,
            resume_window: self.resume_window,
            overwrite: self.overwrite_resources,
            max_bytes_per_peer: self.max_resource_bytes_per_peer,
            acceptance: self.resource_acceptance,
            answer_timeout: self.answer_timeout,
        };
        Ok(SessionConfig {
            resources,
            service_type: self.service_type,
            display_name: self.display_name,
            max_peers: self.max_peers,
            discovery_info,
            initial_data: self.initial_data,
            identity: self.identity.unwrap_or_else(Identity::generate),
            passphrase: self.passphrase,
            invitation_context: self.invitation_context,
            invitation_mode: self.invitation_mode,
            answer_timeout: self.answer_timeout,
            idle_timeout: self.idle_timeout,
            keep_alive_interval,
            bind_addr: self.bind_addr,
            congestion_control: self.congestion_control,
        })
    }
}

/// Checks a DNS-SD service type such as `chat` (RFC 6335 §5.1 service names).
pub fn validate_service_type(value: &str) -> Result<(), ConfigError> {
    let fail = |problem| {
        Err(ConfigError::InvalidServiceType {
            value: value.to_owned(),
            problem,
        })
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > MAX_SERVICE_TYPE_LEN {
        return fail("it is longer than 15 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("it contains a character other than a-z, 0-9 and '-'");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail("it starts or ends with '-'");
    }
    if value.contains("--") {
        return fail("it contains '--'");
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        return fail("it has no letter");
    }
    Ok(())
}

/// Checks a display name: 1-63 bytes of UTF-8 without control characters.
pub fn validate_display_name(value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::InvalidDisplayName { problem: "it is empty" });
    }
    if value.len() > MAX_DISPLAY_NAME_LEN {
        return Err(ConfigError::InvalidDisplayName {
            problem: "it is longer than 63 bytes",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ConfigError::InvalidDisplayName {
            problem: "it contains a control character",
        });
    }
    Ok(())
}

/// Checks discovery info against the DNS-SD limits this library enforces.
pub fn validate_discovery_info(
    entries: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    let mut total = 0usize;
    for (key, value) in entries {
        let bad_key = |problem| ConfigError::InvalidDiscoveryKey {
            key: key.clone(),
            problem,
        };
        if key.is_empty() || key.len() > MAX_DISCOVERY_INFO_KEY_LEN {
            return Err(bad_key("length out of range"));
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'=') {
            return Err(bad_key("not printable ASCII without '='"));
        }
        if RESERVED_DISCOVERY_KEYS.iter().any(|r| r.eq_ignore_ascii_case(&key)) {
            return Err(bad_key("reserved by the library"));
        }
        if map.keys().any(|k: &String| k.eq_ignore_ascii_case(&key)) {
            return Err(bad_key("duplicate"));
        }
        let entry = key.len() + 1 + value.len();
        if entry > MAX_DISCOVERY_INFO_ENTRY_LEN {
            return Err(ConfigError::DiscoveryInfoTooLarge {
                problem: format!("entry {key:?} is {entry} bytes"),
            });
        }
        total += entry;
        map.insert(key, value);
    }
    if map.len() > MAX_DISCOVERY_INFO_ENTRIES {
        return Err(ConfigError::DiscoveryInfoTooLarge {
            problem: format!("{} entries", map.len()),
        });
    }
    if total > MAX_DISCOVERY_INFO_TOTAL_LEN {
        return Err(ConfigError::DiscoveryInfoTooLarge {
            problem: format!("{total} bytes in all"),
        });
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(service: &str, name: &str) -> Result<SessionConfig, ConfigError> {
        SessionConfig::builder(service, name).build()
    }

    #[test]
    fn defaults_are_valid() {
        let config = build("chat", "Alice").unwrap();
        assert_eq!(config.max_peers(), 8);
        assert_eq!(config.idle_timeout(), Duration::from_secs(5));
        assert!(config.keep_alive_interval() < config.idle_timeout());
    }

    #[test]
    fn service_type_rules() {
        for ok in ["chat", "a", "my-game-2", "abcdefghijklmno"] {
            assert!(build(ok, "n").is_ok(), "{ok}");
        }
        for (bad, problem) in [
            ("", "empty"),
            ("abcdefghijklmnop", "longer"),
            ("Chat", "character"),
            ("ch_at", "character"),
            ("-chat", "starts or ends"),
            ("chat-", "starts or ends"),
            ("ch--at", "'--'"),
            ("123", "no letter"),
        ] {
            match build(bad, "n") {
                Err(ConfigError::InvalidServiceType { problem: p, .. }) => assert!(p.contains(problem), "{bad}: {p}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn display_name_rules() {
        assert!(build("chat", &"é".repeat(31)).is_ok());
        assert!(matches!(build("chat", ""), Err(ConfigError::InvalidDisplayName { .. })));
        assert!(matches!(
            build("chat", "  "),
            Err(ConfigError::InvalidDisplayName { .. })
        ));
        assert!(matches!(
            build("chat", &"é".repeat(32)),
            Err(ConfigError::InvalidDisplayName { .. })
        ));
        assert!(matches!(
            build("chat", "a\nb"),
            Err(ConfigError::InvalidDisplayName { .. })
        ));
    }

    #[test]
    fn max_peers_rules() {
        for ok in 2..=8 {
            assert!(SessionConfig::builder("chat", "n").max_peers(ok).build().is_ok());
        }
        for bad in [0, 1, 9, 100] {
            assert_eq!(
                SessionConfig::builder("chat", "n").max_peers(bad).build().unwrap_err(),
                ConfigError::MaxPeersOutOfRange { value: bad }
            );
        }
    }

    #[test]
    fn discovery_info_rules() {
        let with = |k: &str, v: &str| SessionConfig::builder("chat", "n").discovery_info(k, v).build();
        assert!(with("room", "lobby").is_ok());
        assert!(matches!(with("", "x"), Err(ConfigError::InvalidDiscoveryKey { .. })));
        assert!(matches!(
            with("toolongkey", "x"),
            Err(ConfigError::InvalidDiscoveryKey { .. })
        ));
        assert!(matches!(with("a=b", "x"), Err(ConfigError::InvalidDiscoveryKey { .. })));
        assert!(matches!(with("ID", "x"), Err(ConfigError::InvalidDiscoveryKey { .. })));
        assert!(matches!(
            with("k", &"v".repeat(254)),
            Err(ConfigError::DiscoveryInfoTooLarge { .. })
        ));
        let dup = SessionConfig::builder("chat", "n")
            .discovery_info("a", "1")
            .discovery_info("A", "2")
            .build();
        assert!(matches!(
            dup,
            Err(ConfigError::InvalidDiscoveryKey {
                problem: "duplicate",
                ..
            })
        ));
        let mut many = SessionConfig::builder("chat", "n");
        for i in 0..9 {
            many = many.discovery_info(format!("k{i}"), "v");
        }
        assert!(matches!(many.build(), Err(ConfigError::DiscoveryInfoTooLarge { .. })));
        let mut big = SessionConfig::builder("chat", "n");
        for i in 0..3 {
            big = big.discovery_info(format!("k{i}"), "v".repeat(200));
        }
        assert!(matches!(big.build(), Err(ConfigError::DiscoveryInfoTooLarge { .. })));
    }

    #[test]
    fn initial_data_context_passphrase_and_timeouts() {
        let b = || SessionConfig::builder("chat", "n");
        let big = serde_json::Value::String("x".repeat(MAX_INITIAL_DATA_LEN));
        assert!(matches!(
            b().initial_data(big).build(),
            Err(ConfigError::InitialDataTooLarge { .. })
        ));
        assert!(b().initial_data(serde_json::json!({"level": 3})).build().is_ok());
        assert!(matches!(
            b().invitation_context(vec![0u8; 1025]).build(),
            Err(ConfigError::InvitationContextTooLarge { size: 1025 })
        ));
        assert_eq!(b().passphrase("").build().unwrap_err(), ConfigError::EmptyPassphrase);
        let secret = b().passphrase("hunter2");
        assert!(
            !format!("{secret:?}").contains("hunter2"),
            "the builder's Debug prints the passphrase"
        );
        assert!(
            !format!("{:?}", secret.build().unwrap()).contains("hunter2"),
            "Debug prints the passphrase"
        );
        assert!(matches!(
            b().idle_timeout(Duration::from_millis(10)).build(),
            Err(ConfigError::InvalidTimeouts { .. })
        ));
        assert!(matches!(
            b().idle_timeout(Duration::from_secs(2))
                .keep_alive_interval(Duration::from_secs(3))
                .build(),
            Err(ConfigError::InvalidTimeouts { .. })
        ));
    }
}
