//! What DNS-SD says about each peer: every advert (service instance) that names a peer id, merged.
//!
//! One peer id may be announced by several adverts at once: a lingering record after a crash or a rename, the
//! same identity on two devices, or a forger who copies a real peer's id. A candidate is therefore the union of
//! its adverts (addresses interleaved, newest advert first) and goes away only when the last of them does. An
//! advert whose name comes back with another id counts as gone for the old id. The table is bounded in services
//! and in adverts per id; nothing here does I/O.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{DiscoveredPeer, DiscoveryEvent};
use crate::identity::PeerId;

/// Most adverts (service instances) held for one peer id; further ones are ignored.
pub(super) const MAX_ADVERTS_PER_PEER: usize = 8;
/// Most addresses a merged candidate carries.
pub(super) const MAX_ADDRS: usize = 8;

#[derive(Debug)]
struct Advert {
    peer: DiscoveredPeer,
    /// When this advert last changed (a counter: larger is newer).
    seq: u64,
}

/// The adverts seen, by DNS-SD instance name, and what was last reported per peer id.
#[derive(Debug)]
pub(super) struct Adverts {
    capacity: usize,
    services: HashMap<String, Advert>,
    reported: HashMap<PeerId, DiscoveredPeer>,
    seq: u64,
}

/// What became of a resolved advert.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Recorded; these events tell the session what changed (none if nothing did).
    Recorded(Vec<DiscoveryEvent>),
    /// Not recorded: the table (or this id's share of it) is full.
    Full,
}

impl Adverts {
    /// An empty table of at most `capacity` services.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            services: HashMap::new(),
            reported: HashMap::new(),
            seq: 0,
        }
    }

    /// How many services are held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no service is held.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    fn adverts_of(&self, id: &PeerId) -> usize {
        self.services.values().filter(|a| a.peer.id == *id).count()
    }

    /// The service `name` resolved to `peer`.
    pub(super) fn resolved(&mut self, name: &str, peer: DiscoveredPeer) -> Outcome {
        let id = peer.id;
        let previous = self.services.get(name).map(|a| a.peer.id);
        if previous.is_none() && self.services.len() >= self.capacity {
            return Outcome::Full;
        }
        if previous != Some(id) && self.adverts_of(&id) >= MAX_ADVERTS_PER_PEER {
            return Outcome::Full;
        }
        let unchanged = self.services.get(name).is_some_and(|a| a.peer == peer);
        if !unchanged {
            self.seq += 1;
            self.services.insert(name.to_owned(), Advert { peer, seq: self.seq });
        }
        let mut events = Vec::new();
        if let Some(old) = previous.filter(|old| *old != id) {
            events.extend(self.report(old));
        }
        events.extend(self.report(id));
        Outcome::Recorded(events)
    }

    /// The service `name` went away (goodbye or expiry).
    pub(super) fn removed(&mut self, name: &str) -> Option<DiscoveryEvent> {
        let advert = self.services.remove(name)?;
        self.report(advert.peer.id)
    }

    /// The merged view of `id`: the newest advert's name and info, every advert's addresses.
    pub(super) fn merged(&self, id: &PeerId) -> Option<DiscoveredPeer> {
        let mut adverts: Vec<&Advert> = self.services.values().filter(|a| a.peer.id == *id).collect();
        adverts.sort_by_key(|a| std::cmp::Reverse(a.seq));
        let newest = adverts.first()?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let longest = adverts.iter().map(|a| a.peer.addrs.len()).max().unwrap_or(0);
        // Interleaved: one stale or forged advert delays the others' addresses by one step, not by all of its own.
        for i in 0..longest {
            for a in &adverts {
                if let Some(addr) = a.peer.addrs.get(i) {
                    if !addrs.contains(addr) && addrs.len() < MAX_ADDRS {
                        addrs.push(*addr);
                    }
                }
            }
        }
        Some(DiscoveredPeer {
            addrs,
            ..newest.peer.clone()
        })
    }

    /// The event that tells the session about `id` now, if it differs from what it was last told.
    fn report(&mut self, id: PeerId) -> Option<DiscoveryEvent> {
        match self.merged(&id) {
            Some(view) => {
                if self.reported.get(&id) == Some(&view) {
                    return None;
                }
                self.reported.insert(id, view.clone());
                Some(DiscoveryEvent::Found(view))
            }
            None => self.reported.remove(&id).map(|_| DiscoveryEvent::Lost(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: PeerId, name: &str, addrs: &[u16]) -> DiscoveredPeer {
        DiscoveredPeer {
            id,
            display_name: name.into(),
            addrs: addrs.iter().map(|p| SocketAddr::from(([10, 0, 0, 1], *p))).collect(),
            discovery_info: Default::default(),
        }
    }

    fn recorded(o: Outcome) -> Vec<DiscoveryEvent> {
        match o {
            Outcome::Recorded(events) => events,
            Outcome::Full => panic!("not recorded"),
        }
    }

    fn found_addrs(events: &[DiscoveryEvent]) -> Vec<u16> {
        match events {
            [DiscoveryEvent::Found(p)] => p.addrs.iter().map(SocketAddr::port).collect(),
            other => panic!("expected one found, got {other:?}"),
        }
    }

    #[test]
    fn a_peer_is_the_union_of_its_adverts_and_goes_only_with_the_last() {
        let a = crate::Identity::generate().peer_id();
        let mut t = Adverts::new(16);
        assert_eq!(
            found_addrs(&recorded(t.resolved("real", peer(a, "A", &[1, 2])))),
            [1, 2]
        );
        // A stray advert with the same id: its address joins, interleaved, newest first.
        assert_eq!(
            found_addrs(&recorded(t.resolved("stray", peer(a, "A", &[9])))),
            [9, 1, 2]
        );
        // The same record again changes nothing.
        assert_eq!(recorded(t.resolved("stray", peer(a, "A", &[9]))), []);
        // The stray goes: the peer stays, at its real addresses.
        let event = t.removed("stray").unwrap();
        assert_eq!(found_addrs(&[event]), [1, 2]);
        assert_eq!(t.removed("real"), Some(DiscoveryEvent::Lost(a)));
        assert_eq!(t.removed("real"), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_name_that_comes_back_with_another_id_loses_the_old_one() {
        let mut t = Adverts::new(16);
        let ids: Vec<PeerId> = (0..50).map(|_| crate::Identity::generate().peer_id()).collect();
        let mut last: Option<PeerId> = None;
        for id in &ids {
            let events = recorded(t.resolved("flapper", peer(*id, "F", &[7])));
            let found = DiscoveryEvent::Found(peer(*id, "F", &[7]));
            match last {
                None => assert_eq!(events, [found]),
                Some(old) => assert_eq!(events, [DiscoveryEvent::Lost(old), found]),
            }
            last = Some(*id);
        }
        assert_eq!(t.len(), 1);
        assert_eq!(t.reported.len(), 1, "only the current id is remembered");
    }

    #[test]
    fn the_table_is_bounded_in_services_and_adverts_per_id() {
        let a = crate::Identity::generate().peer_id();
        let mut t = Adverts::new(32);
        for i in 0..MAX_ADVERTS_PER_PEER {
            recorded(t.resolved(&format!("copy {i}"), peer(a, "A", &[i as u16 + 1])));
        }
        assert_eq!(t.resolved("one more", peer(a, "A", &[99])), Outcome::Full);
        assert_eq!(t.merged(&a).unwrap().addrs.len(), MAX_ADDRS);
        for i in 0..(32 - MAX_ADVERTS_PER_PEER) {
            let id = crate::Identity::generate().peer_id();
            recorded(t.resolved(&format!("other {i}"), peer(id, "B", &[1])));
        }
        let late = crate::Identity::generate().peer_id();
        assert_eq!(t.resolved("late", peer(late, "L", &[1])), Outcome::Full);
        assert_eq!(t.len(), 32);
    }
}
