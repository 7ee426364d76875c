//! Releasing a foreign `Session` without `shutdown` says goodbye: the other peers see it leave.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use multipeer_ffi::{
    DiscoveryState, DuplexStream, InProcessNetwork, Invitation, MultipeerError, NearbyPeerInfo, PeerInfo,
    ResourceOffer, ResourceTransfer, Session, SessionConfig, SessionDelegate,
};

const T: Duration = Duration::from_secs(10);

/// What a delegate saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Added(String),
    Removed(String, String),
}

/// Sends what its delegate sees, with when.
struct Recorder(Mutex<mpsc::Sender<(Instant, Seen)>>);

impl Recorder {
    fn new() -> (Arc<Self>, mpsc::Receiver<(Instant, Seen)>) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(Self(Mutex::new(tx))), rx)
    }

    fn record(&self, seen: Seen) -> Result<(), MultipeerError> {
        let _ = self.0.lock().unwrap().send((Instant::now(), seen));
        Ok(())
    }
}

impl SessionDelegate for Recorder {
    fn peer_found(&self, _: NearbyPeerInfo) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn peer_lost(&self, _: NearbyPeerInfo) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn peer_added(&self, peer: PeerInfo) -> Result<(), MultipeerError> {
        self.record(Seen::Added(peer.id))
    }
    fn peer_removed(&self, peer: PeerInfo, reason: String) -> Result<(), MultipeerError> {
        self.record(Seen::Removed(peer.id, reason))
    }
    fn received(&self, _: String, _: Vec<u8>, _: bool) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn stream_data(&self, _: String, _: String, _: Vec<u8>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn stream_finished(&self, _: String, _: String, _: Option<String>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn connection_failed(&self, _: String, _: String) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn resource_started(&self, _: Arc<ResourceTransfer>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn resource_finished(
        &self,
        _: Arc<ResourceTransfer>,
        _: Option<String>,
        _: Option<MultipeerError>,
    ) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn resource_offered(&self, _: Arc<ResourceOffer>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn invitation_received(&self, _: Arc<Invitation>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn duplex_stream_received(&self, _: Arc<DuplexStream>) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn discovery_state_changed(&self, _: DiscoveryState) -> Result<(), MultipeerError> {
        Ok(())
    }
    fn session_ended(&self, _: String) -> Result<(), MultipeerError> {
        Ok(())
    }
}

fn config(name: &str) -> SessionConfig {
    SessionConfig {
        service_type: "ffi-drop".into(),
        display_name: name.into(),
        max_peers: 8,
        discovery_info: Default::default(),
        initial_data_json: None,
        identity: None,
        passphrase: None,
        idle_timeout_ms: None,
        congestion_control: None,
        resource_directory: None,
        max_resource_size: None,
        max_resource_bytes_per_peer: None,
        resume_window_ms: None,
        overwrite_resources: false,
        resource_acceptance: None,
        invitation_mode: None,
        answer_timeout_ms: None,
    }
}

#[test]
fn releasing_a_session_without_shutdown_says_goodbye() {
    let network = InProcessNetwork::new();
    let (a_delegate, _a_seen) = Recorder::new();
    let (b_delegate, b_seen) = Recorder::new();
    let a = Session::in_process(config("a"), a_delegate, network.clone()).unwrap();
    let b = Session::in_process(config("b"), b_delegate, network).unwrap();
    let a_id = a.local_peer().id;
    assert_eq!(b_seen.recv_timeout(T).unwrap().1, Seen::Added(a_id.clone()));

    let released = Instant::now();
    drop(a);
    let release_took = released.elapsed();
    let (at, seen) = b_seen.recv_timeout(T).unwrap();
    let took = at.duration_since(released);
    eprintln!("foreign session released: seen as {seen:?} after {took:?} (the release took {release_took:?})");
    assert_eq!(seen, Seen::Removed(a_id, "left".into()));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    drop(b);
}
