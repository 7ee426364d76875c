//! Tickets: invite a peer by address when multicast does not work.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::config::validate_service_type;
use crate::identity::PeerId;

/// Most addresses a ticket carries.
pub const MAX_TICKET_ADDRS: usize = 8;
const PREFIX: &str = "mp1:";

/// A compact, copyable invitation: who a peer is and where to reach it, without mDNS.
///
/// Text form: `mp1:<service type>:<peer id>@<addr>,<addr>...`, for example
/// `mp1:chat:1e35…c94b@192.168.1.20:50123,[fe80::1%3]:50123`. The peer id is verified by the TLS handshake,
/// so a ticket cannot be used to impersonate anyone; it only says where to look.
///
/// ```
/// let text = format!("mp1:chat:{}@192.168.1.20:50123", "ab".repeat(32));
/// let ticket: multipeer::Ticket = text.parse()?;
/// assert_eq!(ticket.service_type, "chat");
/// assert_eq!(ticket.to_string(), text);
/// # Ok::<(), multipeer::TicketError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ticket {
    /// The service type the peer runs.
    pub service_type: String,
    /// The peer it leads to.
    pub peer: PeerId,
    /// Where it listens, best first.
    pub addrs: Vec<SocketAddr>,
}

impl Ticket {
    /// A ticket for `peer` at `addrs` (at most [`MAX_TICKET_ADDRS`] are kept).
    pub fn new(service_type: impl Into<String>, peer: PeerId, mut addrs: Vec<SocketAddr>) -> Self {
        addrs.truncate(MAX_TICKET_ADDRS);
        Self {
            service_type: service_type.into(),
            peer,
            addrs,
        }
    }
}

/// Why a text is not a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The text is not a ticket.
    #[error("not a multipeer ticket: {0}; expected mp1:<service>:<peer id>@<addr>[,<addr>...]")]
    Malformed(&'static str),
}

/// Why [`crate::Session::connect_ticket`] did not take a ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectTicketError {
    /// The ticket is for another service type than the session's.
    #[error("ticket is for service {ticket:?}, but this session runs {session:?}")]
    WrongService {
        /// The ticket's service type.
        ticket: String,
        /// The session's service type.
        session: String,
    },
    /// It is our own ticket.
    #[error("that is this session's own ticket")]
    OwnTicket,
    /// The session has shut down.
    #[error("the session has shut down")]
    SessionClosed,
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}:{}@", self.service_type, self.peer)?;
        for (i, addr) in self.addrs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match addr {
                SocketAddr::V6(v6) if v6.scope_id() != 0 => write!(f, "[{}%{}]:{}", v6.ip(), v6.scope_id(), v6.port())?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > 1024 {
            return Err(TicketError::Malformed("too long"));
        }
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(TicketError::Malformed("missing mp1: prefix"))?;
        let (service, rest) = rest
            .split_once(':')
            .ok_or(TicketError::Malformed("missing service type"))?;
        validate_service_type(service).map_err(|_| TicketError::Malformed("invalid service type"))?;
        let (id, addrs) = rest.split_once('@').ok_or(TicketError::Malformed("missing '@'"))?;
        let peer_id: PeerId = id.parse().map_err(|_| TicketError::Malformed("invalid peer id"))?;
        let addrs = addrs
            .split(',')
            .map(parse_addr)
            .collect::<Option<Vec<_>>>()
            .ok_or(TicketError::Malformed("invalid address"))?;
        if addrs.is_empty() || addrs.len() > MAX_TICKET_ADDRS {
            return Err(TicketError::Malformed("needs 1 to 8 addresses"));
        }
        Ok(Self {
            service_type: service.to_owned(),
            peer: peer_id,
            addrs,
        })
    }
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse() {
        return Some(addr);
    }
    // `[fe80::1%3]:port`: a scoped IPv6 address.
    let inner = s.strip_prefix('[')?;
    let (host, port) = inner.split_once("]:")?;
    let (ip, scope) = host.split_once('%')?;
    Some(SocketAddr::V6(std::net::SocketAddrV6::new(
        ip.parse().ok()?,
        port.parse().ok()?,
        0,
        scope.parse().ok()?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let id = crate::Identity::generate().peer_id();
        let ticket = Ticket::new(
            "chat",
            id,
            vec![
                "10.0.0.2:4000".parse().unwrap(),
                "[2001:db8::1]:4000".parse().unwrap(),
                SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 4000, 0, 3)),
            ],
        );
        let text = ticket.to_string();
        assert_eq!(text.parse::<Ticket>().unwrap(), ticket);
        for bad in [
            "",
            "mp2:chat:x@1.2.3.4:5",
            "mp1:Chat:00@1.2.3.4:5",
            &format!("mp1:chat:{id}"),
            &format!("mp1:chat:{id}@nowhere"),
            &format!("mp1:chat:{id}@"),
            &format!("mp1:chat:{}@1.2.3.4:5", "zz".repeat(32)),
        ] {
            assert!(bad.parse::<Ticket>().is_err(), "{bad}");
        }
    }
}
