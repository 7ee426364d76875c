//! QUIC application close codes: why a connection was closed.

/// The peer left the session (disconnect or shutdown).
pub const GOODBYE: u32 = 0x00;
/// The session is full: it already holds its maximum number of peers.
pub const SESSION_FULL: u32 = 0x01;
/// The app declined the invitation (or this peer is kept out of the session).
pub const DECLINED: u32 = 0x02;
/// The peer was removed from the session and may not come back until allowed.
pub const EXPELLED: u32 = 0x03;
/// The admission passphrases differ.
pub const WRONG_PASSPHRASE: u32 = 0x04;
/// Another connection between the same two peers is kept; this one is redundant.
pub const DUPLICATE: u32 = 0x05;
/// The peer broke the protocol (malformed, oversized or unexpected frame).
pub const PROTOCOL_ERROR: u32 = 0x06;
/// The hello did not arrive in time.
pub const HELLO_TIMEOUT: u32 = 0x07;
/// The peers speak different protocol versions.
pub const VERSION_MISMATCH: u32 = 0x08;
/// A newer connection from the same peer replaced this one.
pub const REPLACED: u32 = 0x09;
/// Too many failed passphrase attempts from this peer or address: try again later.
pub const RATE_LIMITED: u32 = 0x0a;
/// We do not admit newcomers: the reason holds the id (hex) of our session's leader, to dial instead.
pub const REDIRECT: u32 = 0x0b;
/// Try again shortly (a roster update or a merge is under way).
pub const NOT_YET: u32 = 0x0c;
/// The peer is not (or no longer) in our session.
pub const NOT_MEMBER: u32 = 0x0d;
/// The session does not take newcomers now (it stopped looking for peers): try again later, backing off.
pub const NOT_LOOKING: u32 = 0x0e;
/// The dialer presented our own id: the same identity runs twice. The reason holds the age of the dialed session
/// in milliseconds (decimal).
pub const IDENTITY_IN_USE: u32 = 0x0f;
/// The invited peer's app did not answer the invitation in time.
pub const NO_ANSWER: u32 = 0x10;

/// Why a connection attempt or a connection was refused, as decoded from a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCode {
    /// See [`GOODBYE`].
    Goodbye,
    /// See [`SESSION_FULL`].
    SessionFull,
    /// See [`DECLINED`].
    Declined,
    /// See [`EXPELLED`].
    Expelled,
    /// See [`WRONG_PASSPHRASE`].
    WrongPassphrase,
    /// See [`DUPLICATE`].
    Duplicate,
    /// See [`PROTOCOL_ERROR`].
    ProtocolError,
    /// See [`HELLO_TIMEOUT`].
    HelloTimeout,
    /// See [`VERSION_MISMATCH`].
    VersionMismatch,
    /// See [`REPLACED`].
    Replaced,
    /// See [`RATE_LIMITED`].
    RateLimited,
    /// See [`REDIRECT`].
    Redirect,
    /// See [`NOT_YET`].
    NotYet,
    /// See [`NOT_MEMBER`].
    NotMember,
    /// See [`NOT_LOOKING`].
    NotLooking,
    /// See [`IDENTITY_IN_USE`].
    IdentityInUse,
    /// See [`NO_ANSWER`].
    NoAnswer,
    /// A code this version does not know.
    Unknown(u64),
}

impl CloseCode {
    /// Decodes a close code.
    pub fn from_code(code: u64) -> Self {
        match u32::try_from(code) {
            Ok(GOODBYE) => Self::Goodbye,
            Ok(SESSION_FULL) => Self::SessionFull,
            Ok(DECLINED) => Self::Declined,
            Ok(EXPELLED) => Self::Expelled,
            Ok(WRONG_PASSPHRASE) => Self::WrongPassphrase,
            Ok(DUPLICATE) => Self::Duplicate,
            Ok(PROTOCOL_ERROR) => Self::ProtocolError,
            Ok(HELLO_TIMEOUT) => Self::HelloTimeout,
            Ok(VERSION_MISMATCH) => Self::VersionMismatch,
            Ok(REPLACED) => Self::Replaced,
            Ok(RATE_LIMITED) => Self::RateLimited,
            Ok(REDIRECT) => Self::Redirect,
            Ok(NOT_YET) => Self::NotYet,
            Ok(NOT_MEMBER) => Self::NotMember,
            Ok(NOT_LOOKING) => Self::NotLooking,
            Ok(IDENTITY_IN_USE) => Self::IdentityInUse,
            Ok(NO_ANSWER) => Self::NoAnswer,
            _ => Self::Unknown(code),
        }
    }

    /// The numeric code.
    pub fn code(self) -> u64 {
        u64::from(match self {
            Self::Goodbye => GOODBYE,
            Self::SessionFull => SESSION_FULL,
            Self::Declined => DECLINED,
            Self::Expelled => EXPELLED,
            Self::WrongPassphrase => WRONG_PASSPHRASE,
            Self::Duplicate => DUPLICATE,
            Self::ProtocolError => PROTOCOL_ERROR,
            Self::HelloTimeout => HELLO_TIMEOUT,
            Self::VersionMismatch => VERSION_MISMATCH,
            Self::Replaced => REPLACED,
            Self::RateLimited => RATE_LIMITED,
            Self::Redirect => REDIRECT,
            Self::NotYet => NOT_YET,
            Self::NotMember => NOT_MEMBER,
            Self::NotLooking => NOT_LOOKING,
            Self::IdentityInUse => IDENTITY_IN_USE,
            Self::NoAnswer => NO_ANSWER,
            Self::Unknown(code) => return code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=16u64 {
            assert_eq!(CloseCode::from_code(code).code(), code);
        }
        assert_eq!(CloseCode::from_code(u64::MAX), CloseCode::Unknown(u64::MAX));
    }
}
