//! # multipeer
//!
//! Find apps of the same kind on the local network and talk to them, with no server in between.
//!
//! Peers advertise a service type (DNS-SD), find each other and join one encrypted QUIC session of up
//! to 8 peers. Both ends of every connection authenticate: a peer's [`PeerId`] is the hash of its public
//! key, and the TLS 1.3 handshake proves it. Apps receive [`Event`]s (or implement [`SessionDelegate`]),
//! [`Session::send`] reliable or unreliable messages to one, some or all peers, and open named byte
//! [`Session::stream`]s.
//!
//! ```no_run
//! use multipeer::{MemoryNetwork, Reliability, Session, SessionConfig, SessionDelegate, Message, Peer, To};
//!
//! struct Printer;
//! impl SessionDelegate for Printer {
//!     fn peer_added(&self, peer: &Peer) {
//!         tracing::info!("{peer} joined");
//!     }
//!     fn received(&self, message: Message) {
//!         tracing::info!("{}", String::from_utf8_lossy(&message.data));
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MemoryNetwork::new(); // or the default mDNS discovery on a LAN
//! let config = SessionConfig::builder("chat", "Alice").build()?;
//! let session = Session::builder(config).discovery(network.discovery()).start(Printer).await?;
//! session.send("hello everyone", To::All, Reliability::Reliable).await?;
//! session.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod diagnostics;
mod directory;
pub mod discovery;
mod identity;
mod pending;
// The wire protocol's I/O-free state machines, public only for the fuzzers, the benchmarks and the tests that
// play a hostile peer: not part of the API, and not covered by semver.
#[doc(hidden)]
pub mod proto;
mod resource;
mod session;
mod signal;
mod streams;
mod ticket;
mod tls;
mod trust;

pub use config::{
    ConfigError, CongestionControl, DirectoryError, InvitationMode, ResourceAcceptance, SessionConfig,
    SessionConfigBuilder, DEFAULT_ANSWER_TIMEOUT, DEFAULT_MAX_RESOURCE_BYTES_PER_PEER, DEFAULT_MAX_RESOURCE_SIZE,
    DEFAULT_RESUME_WINDOW, MAX_ANSWER_TIMEOUT,
};
pub use diagnostics::Diagnostics;
pub use discovery::{
    Advertisement, DiscoveredPeer, Discovery, DiscoveryError, DiscoveryEvent, DiscoveryReport, DiscoveryState,
    DiscoverySubscription, Farewell, MdnsConfig, MdnsDiscovery, MemoryDiscovery, MemoryNetwork, FAREWELL_LIMIT,
};
pub use identity::{Identity, IdentityError, PeerId, PEER_ID_LEN};
pub use pending::{AnswerError, Pending};
pub use resource::{
    Delivered, Direction, PendingResource, Progress, RefusalReason, ResourceError, ResourceId, ResourceOffer,
    ResourceTransfer, SendResourceError, MAX_INCOMING_PER_PEER, MAX_INCOMING_TRANSFERS, MAX_PENDING_OFFERS,
};
pub use session::error::{InviteError, LookingError, SendError, SendJsonError, SessionClosed, StartError, StreamError};
pub use session::events::{
    ConnectionFailure, EndReason, Event, Events, Invitation, Message, NearbyPeer, Peer, PendingInvitation, Reliability,
    RemovalReason, SessionDelegate, CONTROL_BACKLOG, EVENT_BYTES_PER_PEER, EVENT_BYTES_TOTAL, EVENT_OVERHEAD,
};
pub use session::stream::{DuplexStream, IncomingStream, OutgoingStream};
pub use session::{Session, SessionBuilder, To};
pub use signal::{shutdown_signal, SignalError, StopSignal};
pub use ticket::{ConnectTicketError, Ticket, TicketError, MAX_TICKET_ADDRS};
pub use tls::TlsError;
pub use trust::{
    KnownPeers, NameClash, PeerRecord, Trust, TrustError, Verdict, MAX_NAMES_PER_PEER, MAX_SEEN_PEERS,
    MAX_VERIFIED_PEERS,
};
