//! The wire protocol and the mesh rules, free of I/O (see `PROTOCOL.md`).
//!
//! Nothing here touches a socket or a clock: callers pass bytes and time in, which keeps the rules testable
//! deterministically and the decoders fuzzable.

pub mod auth;
pub mod codes;
pub mod frame;
pub mod guard;
pub mod mesh;
pub mod resource;
pub mod roster;

/// Version of the wire protocol, carried in ALPN and in the hello.
pub const PROTOCOL_VERSION: u32 = 3;
/// The ALPN protocol identifier: `multipeer/<version>`.
pub const ALPN: &[u8] = b"multipeer/3";
