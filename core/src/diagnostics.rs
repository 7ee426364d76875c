//! What a session can tell about itself when peers are not found or do not connect.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::discovery::DiscoveryReport;
use crate::identity::PeerId;

/// A network interface address of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InterfaceAddress {
    /// Interface name.
    pub name: String,
    /// Address.
    pub addr: IpAddr,
}

/// A connected peer, as the transport sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkDiagnostics {
    /// The peer.
    pub peer: PeerId,
    /// Its display name.
    pub display_name: String,
    /// The address in use.
    pub remote_addr: SocketAddr,
    /// Current round-trip estimate.
    pub rtt: Duration,
    /// Packets declared lost so far.
    pub lost_packets: u64,
}

/// A peer discovery reported and the state of connecting to it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptDiagnostics {
    /// The peer.
    pub peer: PeerId,
    /// Where discovery said it is.
    pub addrs: Vec<SocketAddr>,
    /// `connected`, `dialing`, `accepting`, `waiting to retry`, or `waiting for rediscovery`.
    pub state: String,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last failure, if any.
    pub last_failure: Option<String>,
}

/// A snapshot of a session's state, from [`crate::Session::diagnostics`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostics {
    /// Our id.
    pub local_id: PeerId,
    /// Our QUIC endpoint's bound address.
    pub bound_addr: SocketAddr,
    /// Every interface address of this host.
    pub interfaces: Vec<InterfaceAddress>,
    /// Whether the session is looking for peers.
    pub looking: bool,
    /// The discovery implementation's own report.
    pub discovery: Option<DiscoveryReport>,
    /// Connected peers.
    pub links: Vec<LinkDiagnostics>,
    /// Every peer discovery reported, and where connecting to it stands.
    pub attempts: Vec<AttemptDiagnostics>,
    /// Bytes of messages (payload plus [`crate::EVENT_OVERHEAD`] each) waiting for the app to take them.
    pub queued_event_bytes: usize,
    /// Membership and other control events waiting for the app to take them.
    pub queued_control_events: usize,
}

/// The host's interface addresses.
pub(crate) fn interface_addresses() -> Vec<InterfaceAddress> {
    if_addrs::get_if_addrs()
        .map(|list| {
            list.into_iter()
                .map(|i| InterfaceAddress {
                    addr: i.ip(),
                    name: i.name,
                })
                .collect()
        })
        .unwrap_or_default()
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "peer id      {}", self.local_id)?;
        writeln!(f, "QUIC socket  {}", self.bound_addr)?;
        writeln!(f, "looking      {}", if self.looking { "yes" } else { "no" })?;
        writeln!(f, "interfaces:")?;
        for i in &self.interfaces {
            writeln!(f, "  {:<12} {}", i.name, i.addr)?;
        }
        match &self.discovery {
            Some(d) => {
                writeln!(f, "discovery ({}):", d.implementation)?;
                if let Some(ad) = &d.advertised {
                    writeln!(f, "  advertised  {ad}")?;
                }
                for line in &d.interfaces {
                    writeln!(f, "  interface   {line}")?;
                }
                for e in &d.errors {
                    writeln!(f, "  error       {e}")?;
                }
                if d.seen_services.is_empty() {
                    writeln!(f, "  no service of our type seen (is multicast blocked? try a ticket)")?;
                }
                for s in &d.seen_services {
                    match (&s.ignored, &s.peer) {
                        (Some(why), _) => writeln!(f, "  ignored     {} ({why})", s.name)?,
                        (None, Some(p)) => writeln!(f, "  seen        {} -> {}", s.name, p.short())?,
                        (None, None) => writeln!(f, "  seen        {}", s.name)?,
                    }
                }
            }
            None => writeln!(f, "discovery: not running")?,
        }
        writeln!(f, "connections:")?;
        for l in &self.links {
            writeln!(
                f,
                "  {} {} via {} rtt {:?} lost {}",
                l.peer.short(),
                l.display_name,
                l.remote_addr,
                l.rtt,
                l.lost_packets
            )?;
        }
        for a in &self.attempts {
            write!(
                f,
                "  {} {} after {} failure(s) at {:?}",
                a.peer.short(),
                a.state,
                a.failures,
                a.addrs
            )?;
            match &a.last_failure {
                Some(why) => writeln!(f, ": {why}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}
