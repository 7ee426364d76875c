//! The task that owns a session's state: the mesh, discovery, and the links to peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::conn::{self, ConnCtx, Handshaked, Inbound, Internal};
use super::error::LookingError;
use super::events::{EndReason, Event, Invitation, Peer, RemovalReason};
use super::handshake;
use super::invites::{InviteReply, Invites};
use super::writer::ControlWriter;
use super::{Link, Shared};
use crate::diagnostics::{interface_addresses, AttemptDiagnostics, Diagnostics, LinkDiagnostics};
use crate::discovery::{
    Advertisement, DiscoveredPeer, Discovery, DiscoveryEvent, DiscoveryState, DiscoverySubscription, Farewell,
};
use crate::identity::PeerId;
use crate::proto::codes;
use crate::proto::frame::RosterFrame;
use crate::proto::frame::{self, Frame};
use crate::proto::mesh::{Action, AttemptId, Consent, Mesh, Refusal, Retry, Slot};
use crate::proto::roster::RosterView;

/// How long a leaving peer waits for the others to acknowledge its goodbye.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) enum Command {
    StopLooking(oneshot::Sender<()>),
    StartLooking(oneshot::Sender<Result<(), LookingError>>),
    RemovePeer(PeerId, oneshot::Sender<bool>),
    AllowPeer(PeerId, oneshot::Sender<()>),
    Disconnect(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    AddCandidate(DiscoveredPeer, oneshot::Sender<()>),
    Diagnostics(oneshot::Sender<Diagnostics>),
    Invite {
        peer: PeerId,
        context: Option<Vec<u8>>,
        reply: InviteReply,
    },
    CancelInvite(PeerId),
}

pub(crate) struct Actor {
    pub(crate) ctx: Arc<ConnCtx>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) mesh: Mesh,
    pub(crate) discovery: Arc<dyn Discovery>,
    pub(crate) subscription: Option<DiscoverySubscription>,
    /// The goodbye of the last subscription stopped, until a new one starts or the session shuts down.
    pub(crate) farewell: Option<Farewell>,
    pub(crate) advertisement: Advertisement,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) internal: mpsc::Receiver<Internal>,
    pub(crate) tasks: JoinSet<()>,
    pub(crate) dials: HashMap<AttemptId, AbortHandle>,
    pub(crate) drivers: HashMap<PeerId, AbortHandle>,
    pub(crate) last_failure: HashMap<PeerId, String>,
    pub(crate) twin: super::twin::TwinWatch,
    pub(crate) invites: Invites,
}

async fn next_discovery(subscription: &mut Option<DiscoverySubscription>) -> Option<DiscoveryEvent> {
    match subscription {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    pub(crate) async fn run(mut self) {
        self.tasks.spawn(handshake::accept_loop(self.ctx.clone()));
        if self.subscription.is_some() {
            self.discovery_state(DiscoveryState::Running);
        }
        let shutdown_reply = loop {
            self.mesh.tick(std::time::Instant::now());
            self.apply_actions();
            if let Some(leader) = self.mesh.take_newly_waiting() {
                // Told once per time we are left out, not per refusal while we wait for a seat.
                self.emit(Event::ConnectionFailed {
                    peer: leader,
                    reason: crate::session::events::ConnectionFailure::SessionFull,
                });
            }
            self.start_dials();
            let wakeup = self.mesh.next_wakeup().map(Instant::from_std);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.command(command).await,
                },
                Some(message) = self.internal.recv() => self.internal(message).await,
                event = next_discovery(&mut self.subscription) => match event {
                    Some(event) => self.discovered(event),
                    None => {
                        tracing::warn!("discovery stopped");
                        self.subscription = None;
                        self.discovery_state(DiscoveryState::Failed("discovery stopped".into()));
                    }
                },
                _ = sleep_until(wakeup) => {}
                // Nobody reads the events any more: leave rather than keep peers talking to no one.
                () = self.ctx.events.closed() => break None,
            }
        };
        let reason = match shutdown_reply {
            Some(_) => EndReason::Shutdown,
            None => EndReason::Released,
        };
        self.shutdown(reason).await;
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::StopLooking(reply) => {
                self.stop_looking();
                let _ = reply.send(());
            }
            Command::StartLooking(reply) => {
                let result = self.start_looking().await;
                let _ = reply.send(result);
            }
            Command::RemovePeer(peer, reply) => {
                let was_connected = self.mesh.slot(&peer).is_some();
                if let Some(attempt) = self.mesh.block(peer) {
                    if let Some(dial) = self.dials.remove(&attempt) {
                        dial.abort();
                    }
                }
                if let Some(link) = self.take_link(&peer) {
                    link.conn.close(codes::EXPELLED.into(), b"removed from the session");
                    self.removed(&link, RemovalReason::Removed);
                }
                let _ = reply.send(was_connected);
            }
            Command::AllowPeer(peer, reply) => {
                self.mesh.unblock(&peer, std::time::Instant::now());
                let _ = reply.send(());
            }
            Command::Disconnect(reply) => {
                self.mesh.set_looking(false);
                self.withdraw();
                self.leave().await;
                let _ = reply.send(());
            }
            Command::AddCandidate(peer, reply) => {
                if peer.id != self.ctx.local_id {
                    self.mesh.invite(peer.id, peer.addrs.clone(), std::time::Instant::now());
                    self.shared.found(peer);
                }
                let _ = reply.send(());
            }
            Command::Diagnostics(reply) => {
                let _ = reply.send(self.diagnostics());
            }
            Command::Invite { peer, context, reply } => self.invite(peer, context, reply),
            Command::CancelInvite(peer) => {
                if self.invites.cancel(&peer) {
                    self.mesh.uninvite(&peer);
                }
            }
            Command::Shutdown(reply) => {
                // Handled by the loop; kept exhaustive.
                let _ = reply.send(());
            }
        }
    }

    fn invite(&mut self, peer: PeerId, context: Option<Vec<u8>>, reply: InviteReply) {
        if self.shared.link(&peer).is_some() {
            let _ = reply.send(Ok(()));
        } else if peer == self.ctx.local_id || !self.mesh.invite_candidate(&peer, std::time::Instant::now()) {
            let _ = reply.send(Err(super::error::InviteError::NotNearby(peer)));
        } else {
            self.invites.add(peer, context, reply);
        }
    }

    /// Stops admitting newcomers and dialing peers outside the session. While the session has other members we
    /// stay discoverable (they, and members the session admits later, must be able to reach us); alone, we
    /// withdraw our advertisement too.
    fn stop_looking(&mut self) {
        self.mesh.set_looking(false);
        if self.mesh.roster().members.len() <= 1 {
            self.withdraw();
        }
    }

    /// Withdraws our advertisement and stops browsing, without waiting for the goodbye to finish; aborts dials.
    fn withdraw(&mut self) {
        if let Some(subscription) = self.subscription.take() {
            self.farewell = Some(subscription.stop());
            self.discovery_state(DiscoveryState::Stopped);
        }
        for peer in self.shared.clear_nearby() {
            self.ctx
                .events
                .offer_presence(Event::PeerLost(super::nearby_peer(&peer)));
        }
        for (_, dial) in self.dials.drain() {
            dial.abort();
        }
        // Aborted dials leave `Dialing` slots behind; release them.
        self.mesh.release_pending_dials();
    }

    async fn start_looking(&mut self) -> Result<(), LookingError> {
        // Announced anew, so peers that gave up on us while we were not looking find us again. The old
        // advertisement's goodbye (and its repeat) must be over first, or it would withdraw the new one.
        if let Some(subscription) = self.subscription.take() {
            self.farewell = Some(subscription.stop());
        }
        if let Some(farewell) = self.farewell.take() {
            farewell.await;
        }
        match self.discovery.start(self.advertisement.clone()) {
            Ok(subscription) => self.subscription = Some(subscription),
            Err(e) => {
                self.discovery_state(DiscoveryState::Failed(e.to_string()));
                return Err(e.into());
            }
        }
        self.discovery_state(DiscoveryState::Running);
        self.mesh.set_looking(true);
        Ok(())
    }

    /// Tells the app how discovery is doing (lossy under a backlog, like presence).
    fn discovery_state(&self, state: DiscoveryState) {
        tracing::debug!(%state, "discovery state");
        self.ctx.events.offer_presence(Event::DiscoveryStateChanged(state));
    }

    fn discovered(&mut self, event: DiscoveryEvent) {
        let now = std::time::Instant::now();
        match event {
            DiscoveryEvent::Found(peer) => {
                if peer.id == self.ctx.local_id {
                    return;
                }
                tracing::debug!(peer = %peer.id.short(), addrs = ?peer.addrs, "found");
                if self.mesh.found(peer.id, peer.addrs.clone(), now) {
                    let nearby = super::nearby_peer(&peer);
                    if self.shared.found(peer) {
                        self.ctx.events.offer_presence(Event::PeerFound(nearby));
                    }
                }
            }
            DiscoveryEvent::Lost(peer) => {
                tracing::debug!(peer = %peer.short(), "lost");
                self.mesh.lost(&peer);
                if let Some(gone) = self.shared.lost(&peer) {
                    self.ctx
                        .events
                        .offer_presence(Event::PeerLost(super::nearby_peer(&gone)));
                }
            }
            DiscoveryEvent::OwnIdElsewhere(addrs) => self.check_twin(addrs),
            DiscoveryEvent::State(state) => self.discovery_state(state),
        }
    }

    /// Something says our identity runs elsewhere: check it with a handshake (rate-limited).
    fn check_twin(&mut self, addrs: Vec<std::net::SocketAddr>) {
        if !addrs.is_empty() && self.twin.start_probe(std::time::Instant::now()) {
            tracing::debug!(?addrs, "checking for a session with our identity");
            self.tasks.spawn(super::twin::probe(self.ctx.clone(), addrs));
        }
    }

    /// A check for a twin finished: the younger of two sessions with one identity withdraws and says so, once.
    async fn twin_probed(&mut self, result: Option<(std::net::SocketAddr, Duration)>) {
        let our_port = self.ctx.endpoint.local_addr().map(|a| a.port()).unwrap_or(0);
        let found = result.map(|(addr, age)| (age, addr.port()));
        if !self.twin.probed(found, self.ctx.started.elapsed(), our_port) {
            return;
        }
        let Some((elsewhere, _)) = result else { return };
        tracing::warn!(%elsewhere, "our identity runs in an older session elsewhere; withdrawing");
        self.emit(Event::ConnectionFailed {
            peer: self.ctx.local_id,
            reason: crate::session::events::ConnectionFailure::IdentityInUse { elsewhere },
        });
        self.mesh.set_looking(false);
        self.withdraw();
        self.leave().await;
    }

    fn diagnostics(&self) -> Diagnostics {
        let links = self
            .shared
            .peer_ids()
            .into_iter()
            .filter_map(|id| {
                let link = self.shared.link(&id)?;
                let stats = link.conn.stats();
                Some(LinkDiagnostics {
                    peer: id,
                    display_name: link.peer.display_name.clone(),
                    remote_addr: link.conn.remote_address(),
                    rtt: link.conn.rtt(),
                    lost_packets: stats.path.lost_packets,
                })
            })
            .collect();
        let attempts = self
            .mesh
            .candidates()
            .into_iter()
            .map(|c| AttemptDiagnostics {
                peer: c.peer,
                addrs: c.addrs,
                state: match c.slot {
                    Some(Slot::Connected { .. }) => "connected",
                    Some(Slot::Dialing(_)) => "dialing",
                    Some(Slot::Accepting(_)) => "accepting",
                    None if c.parked => "waiting for rediscovery",
                    None => "waiting to retry",
                }
                .to_owned(),
                failures: c.failures,
                last_failure: self.last_failure.get(&c.peer).cloned(),
            })
            .collect();
        Diagnostics {
            local_id: self.ctx.local_id,
            bound_addr: self.advertisement.bound_addr,
            interfaces: interface_addresses(),
            looking: self.mesh.is_looking(),
            discovery: self.subscription.as_ref().and_then(DiscoverySubscription::report),
            links,
            attempts,
            queued_event_bytes: self.ctx.events.queued_bytes(),
            queued_control_events: self.ctx.events.queued_control(),
        }
    }

    /// A peer that passed admission sent its hello: admit it, refuse it, or have the app asked first.
    fn inbound(&mut self, peer: PeerId, roster: &RosterView, consented: bool, reply: oneshot::Sender<Inbound>) {
        if consented {
            self.mesh.consented(peer);
        } else {
            match self.mesh.consent(&peer, roster) {
                Consent::NotNeeded => {}
                Consent::Ask => {
                    let _ = reply.send(Inbound::Ask);
                    return;
                }
                Consent::Refuse(refusal) => {
                    let _ = reply.send(Inbound::Refuse(refusal));
                    return;
                }
            }
        }
        let before = self.mesh.roster();
        let decision = self.mesh.inbound(peer, roster);
        tracing::debug!(peer = %peer.short(), theirs = %roster, %before, after = %self.mesh.roster(), ok = decision.is_ok(), "inbound");
        match decision {
            Ok(admission) => {
                if let Some(dial) = admission.abort_dial.and_then(|a| self.dials.remove(&a)) {
                    dial.abort();
                }
                if admission.replaces.is_some() {
                    if let Some(old) = self.take_link(&peer) {
                        old.conn
                            .close(codes::REPLACED.into(), b"replaced by a newer connection");
                        let reason = RemovalReason::ConnectionLost("the peer reconnected".into());
                        self.removed(&old, reason);
                    }
                }
                let _ = reply.send(Inbound::Admit(admission.attempt, admission.roster));
            }
            Err(refusal) => {
                let _ = reply.send(Inbound::Refuse(refusal));
            }
        }
    }

    fn start_dials(&mut self) {
        let now = std::time::Instant::now();
        while let Some(dial) = self.mesh.poll_dial(now) {
            if self.ctx.events.backlogged() {
                // The app is far behind on membership events: try again later.
                self.mesh.dial_failed(dial.peer, dial.attempt, Retry::Backoff, now);
                continue;
            }
            if let Some(found) = self.shared.nearby_peer(&dial.peer) {
                let invitation = Invitation {
                    peer: found.id,
                    display_name: found.display_name.clone(),
                    discovery_info: found.discovery_info.clone(),
                    context: None,
                    inbound: false,
                };
                if !(self.ctx.admission)(&invitation) {
                    tracing::debug!(peer = %dial.peer.short(), "app declined to invite");
                    self.mesh
                        .dial_failed(dial.peer, dial.attempt, Retry::UntilRediscovered, now);
                    continue;
                }
            }
            tracing::debug!(peer = %dial.peer.short(), attempt = dial.attempt, "dialing");
            let attempt = dial.attempt;
            let roster = self.mesh.roster();
            let context = self.invites.context(&dial.peer);
            let handle = self
                .tasks
                .spawn(handshake::dial(self.ctx.clone(), dial, roster, context));
            self.dials.insert(attempt, handle);
        }
    }

    async fn internal(&mut self, message: Internal) {
        let now = std::time::Instant::now();
        match message {
            Internal::DialDone { peer, attempt, result } => {
                self.dials.remove(&attempt);
                match result {
                    Ok(handshaked) => self.established(peer, attempt, *handshaked).await,
                    Err((failure, retry)) => {
                        self.mesh.dial_failed(peer, attempt, retry, now);
                        if let Some(reason) = failure {
                            // A refusal ends the app's invitation; a peer out of reach is tried until it times out.
                            if retry != Retry::Backoff && self.invites.failed(&peer, &reason) {
                                self.mesh.uninvite(&peer);
                            }
                            self.report_failure(peer, reason);
                        }
                    }
                }
            }
            // The app is far behind on membership events: admit no one until it catches up.
            Internal::InboundHello { reply, .. } if self.ctx.events.backlogged() => {
                // Refused as full (the dialer backs off up to 5 s), not "not yet" (it would retry every 25 ms).
                let _ = reply.send(Inbound::Refuse(Refusal::Full(
                    self.mesh.roster().leader().unwrap_or(self.ctx.local_id),
                )));
            }
            Internal::Declined { peer } => self.mesh.declined(peer),
            Internal::Roster { peer, frame } => {
                let before = self.mesh.roster();
                match frame.dissolve_into {
                    Some(into) => self.mesh.dissolved(peer, into, now),
                    None => self.mesh.roster_received(peer, &frame.roster),
                }
                tracing::debug!(
                    from = %peer.short(),
                    theirs = %frame.roster,
                    dissolve_into = ?frame.dissolve_into.map(|p| p.short()),
                    before = %before,
                    after = %self.mesh.roster(),
                    "roster received"
                );
            }
            Internal::InboundHello {
                peer,
                roster,
                consented,
                reply,
            } => self.inbound(peer, &roster, consented, reply),
            Internal::InboundDone { peer, attempt, result } => match result {
                Some(handshaked) => self.established(peer, attempt, *handshaked).await,
                None => self.mesh.inbound_failed(peer, attempt),
            },
            Internal::Closed {
                peer,
                attempt,
                reason,
                retry,
            } => {
                if self.mesh.closed(peer, attempt, retry, now) {
                    if let Some(link) = self.take_link(&peer) {
                        tracing::info!(peer = %link.peer, "peer removed: {reason}");
                        self.removed(&link, reason);
                    }
                }
            }
            Internal::TwinProbed { result } => self.twin_probed(result).await,
            Internal::TwinDialed { addr } => self.check_twin(vec![addr]),
        }
    }

    async fn established(&mut self, peer: PeerId, attempt: AttemptId, handshaked: Handshaked) {
        let Handshaked {
            peer: info,
            conn,
            control_send,
            control_recv,
            buffered,
            pairing_code,
            roster,
        } = handshaked;
        let before = self.mesh.roster();
        let result = self.mesh.established(peer, attempt, &roster, std::time::Instant::now());
        tracing::debug!(peer = %peer.short(), theirs = %roster, %before, after = %self.mesh.roster(), ok = result.is_ok(), "established");
        if let Err(refusal) = result {
            let (code, reason) = conn::refusal_code(refusal);
            conn.close(code.into(), reason.as_bytes());
            return;
        }
        self.last_failure.remove(&peer);
        self.invites.joined(&peer);
        tracing::info!(peer = %info, remote = %conn.remote_address(), "peer added");
        let control = Arc::new(ControlWriter::new(control_send));
        let lane = self.ctx.events.lane();
        let link = Arc::new(Link {
            peer: info.clone(),
            conn: conn.clone(),
            control: control.clone(),
            pairing_code,
            lane: lane.gate(),
        });
        self.shared.insert_link(peer, link);
        // Ends by itself when the connection closes; a goodbye needs it to drain the queue first.
        let flusher_conn = conn.clone();
        self.tasks.spawn(async move { control.flush(flusher_conn).await });
        // Queued before the driver starts, so before any message of this connection.
        self.emit(Event::PeerAdded(info));
        let driver = self.tasks.spawn(conn::drive(
            peer,
            attempt,
            conn,
            control_recv,
            buffered,
            self.ctx.clone(),
            lane,
        ));
        self.drivers.insert(peer, driver);
    }

    /// Removes a peer's link from the shared table and stops reading from it.
    fn take_link(&mut self, peer: &PeerId) -> Option<Arc<Link>> {
        if let Some(driver) = self.drivers.remove(peer) {
            driver.abort();
        }
        self.shared.remove_link(peer)
    }

    /// Queues a control event for the app; never waits for it (see the event queue's bounds).
    fn emit(&self, event: Event) {
        self.ctx.events.push(event);
    }

    /// Queues a removed peer's `PeerRemoved` after the last message its connection queued.
    fn removed(&self, link: &Link, reason: RemovalReason) {
        let event = Event::PeerRemoved {
            peer: link.peer.clone(),
            reason,
        };
        self.ctx.events.remove(&link.lane, event);
    }

    /// Reports a failed attempt, once per run of identical failures for that peer.
    fn report_failure(&mut self, peer: PeerId, reason: crate::session::events::ConnectionFailure) {
        if reason == crate::session::events::ConnectionFailure::SessionFull {
            return; // reported when we start waiting for a seat (`Mesh::take_newly_waiting`)
        }
        let text = reason.to_string();
        if self.last_failure.get(&peer) == Some(&text) {
            return;
        }
        if self.last_failure.len() < 64 || self.last_failure.contains_key(&peer) {
            self.last_failure.insert(peer, text);
        }
        self.emit(Event::ConnectionFailed { peer, reason });
    }

    /// Carries out what the mesh decided: rosters to send, sessions dissolved, links to close.
    fn apply_actions(&mut self) {
        while let Some(action) = self.mesh.poll_action() {
            match action {
                Action::SendRoster(peer) => {
                    let frame = RosterFrame {
                        roster: self.mesh.roster(),
                        dissolve_into: None,
                    };
                    self.send_roster(&peer, &frame);
                }
                Action::Dissolve { peer, into } => {
                    let frame = RosterFrame {
                        roster: self.mesh.roster(),
                        dissolve_into: Some(into),
                    };
                    self.send_roster(&peer, &frame);
                    self.drop_link(&peer, Refusal::NotMember, "our session dissolved", true);
                }
                Action::Close(peer, _, refusal) => {
                    self.drop_link(&peer, refusal, "not in the session", false);
                }
            }
        }
    }

    /// Queues a ROSTER frame on `peer`'s control stream without waiting: the actor never waits on a peer's flow
    /// control (rosters carry versions, so their order does not matter).
    fn send_roster(&mut self, peer: &PeerId, frame: &RosterFrame) {
        let Some(link) = self.shared.link(peer) else { return };
        let Ok(payload) = frame.encode() else { return };
        let Ok(header) = frame::frame_header(frame::FRAME_ROSTER, payload.len()) else {
            return;
        };
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT * 5, link.control.send(&header, &payload)).await;
        });
    }

    /// Closes the link to `peer` and reports its removal. With `let_peer_close`, the peer closes it once it read
    /// what we queued (a dissolve), or we do after [`GOODBYE_TIMEOUT`].
    fn drop_link(&mut self, peer: &PeerId, refusal: Refusal, why: &str, let_peer_close: bool) {
        if let Some(link) = self.take_link(peer) {
            tracing::debug!(peer = %peer.short(), ?refusal, why, roster = %self.mesh.roster(), "closing a member's link");
            let (code, reason) = conn::refusal_code(refusal);
            let conn = link.conn.clone();
            if let_peer_close {
                self.tasks.spawn(async move {
                    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, conn.closed()).await;
                    conn.close(code.into(), reason.as_bytes());
                });
            } else {
                conn.close(code.into(), reason.as_bytes());
            }
            self.removed(&link, RemovalReason::ConnectionLost(why.into()));
        }
    }

    /// Says goodbye to every peer: the goodbye follows any message already sent, so nothing is cut off.
    async fn leave(&mut self) {
        let now = std::time::Instant::now();
        let peers: Vec<PeerId> = self.shared.peer_ids();
        let mut links = Vec::new();
        for peer in peers {
            if let Some(link) = self.take_link(&peer) {
                if let Some(slot) = self.mesh.slot(&peer) {
                    self.mesh.closed(peer, slot.attempt(), Retry::UntilRediscovered, now);
                }
                links.push(link);
            }
        }
        for link in &links {
            self.removed(link, RemovalReason::LocalDisconnect);
        }
        let goodbyes = links.iter().map(|link| goodbye(link));
        futures_util::future::join_all(goodbyes).await;
    }

    async fn shutdown(mut self, reason: EndReason) {
        self.shared.close();
        self.invites.close();
        self.ctx.resources.shutdown();
        self.mesh.set_looking(false);
        self.withdraw();
        // The discovery goodbye (bounded by FAREWELL_LIMIT) runs while the peers hear ours.
        let farewell = self.farewell.take();
        let discovery_goodbye = async {
            if let Some(farewell) = farewell {
                farewell.await;
            }
        };
        tokio::join!(discovery_goodbye, self.leave());
        self.ctx.endpoint.close(codes::GOODBYE.into(), b"shutdown");
        self.tasks.shutdown().await;
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, self.ctx.endpoint.wait_idle()).await;
        self.shared.set_shut_down();
        let bound = self.ctx.endpoint.local_addr().ok();
        // The event stream ends only once the socket is released, so "shut down" means everything is gone.
        let events = self.ctx.events.clone();
        drop(self);
        if let Some(addr) = bound {
            // quinn's endpoint driver closes the socket as soon as it sees its last handle go; wait for it.
            for _ in 0..200 {
                if std::net::UdpSocket::bind(addr).is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        events.push(Event::SessionEnded(reason));
        drop(events);
        tracing::debug!("session shut down");
    }
}

pub(super) async fn goodbye(link: &Link) {
    let farewell = async {
        if let Ok(bytes) = frame::encode_frame(&Frame::Goodbye) {
            link.control.close(&bytes).await;
        }
        // The peer closes the connection once it has read the goodbye (and everything before it).
        link.conn.closed().await;
    };
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, farewell).await;
    link.conn.close(codes::GOODBYE.into(), b"goodbye");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn local_peer(ad: &Advertisement, initial_data: serde_json::Value) -> Peer {
    Peer::new(ad.id, ad.display_name.clone(), ad.discovery_info.clone(), initial_data)
}
