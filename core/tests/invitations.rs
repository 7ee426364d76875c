//! Manual invitations: nothing is dialed until the app invites, the invitee's app answers when it likes, and a
//! decline, a timeout or a peer claiming a session it is not in never brings anyone in.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{collect_for, config, expect, expect_peers_added, init_tracing};
use multipeer::discovery::MemoryNetwork;
use multipeer::{
    AnswerError, Event, Events, InvitationMode, InviteError, PeerId, PendingInvitation, Session, SessionConfigBuilder,
};

const T: Duration = Duration::from_secs(15);

async fn manual(
    net: &MemoryNetwork,
    name: &str,
    tune: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
) -> (Session, Events) {
    let config = tune(config(name).invitation_mode(InvitationMode::Manual))
        .build()
        .unwrap();
    Session::builder(config)
        .discovery(net.discovery())
        .start_with_events()
        .await
        .unwrap()
}

/// Waits until `session` sees `peer` nearby, failing on any join or invitation meanwhile.
async fn until_found(events: &mut Events, peer: PeerId) {
    expect(events, T, "peer found", |e| match e {
        Event::PeerFound(p) if p.id == peer => Some(()),
        Event::PeerAdded(p) => panic!("{p:?} joined uninvited"),
        Event::Invitation(i) => panic!("invited unasked: {i:?}"),
        _ => None,
    })
    .await;
}

/// Alice and Bob in manual mode, Alice having found Bob; `tune` adjusts Bob's configuration.
async fn alice_and_bob(
    net: &MemoryNetwork,
    tune: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
) -> (Session, Events, Session, Events) {
    let (a, mut a_events) = manual(net, "alice", |c| c).await;
    let (b, b_events) = manual(net, "bob", tune).await;
    until_found(&mut a_events, b.local_peer().id).await;
    (a, a_events, b, b_events)
}

async fn invitation(events: &mut Events) -> PendingInvitation {
    expect(events, T, "an invitation", |e| match e {
        Event::Invitation(i) => Some(i),
        Event::PeerAdded(p) => panic!("{p:?} joined before the invitation was answered"),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_dialed_until_invited_and_an_accepted_invitation_joins() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events) = manual(&net, "alice", |c| c).await;
    let (b, mut b_events) = manual(&net, "bob", |c| c).await;
    let (a_id, b_id) = (a.local_peer().id, b.local_peer().id);
    until_found(&mut a_events, b_id).await;
    until_found(&mut b_events, a_id).await;
    // Both see each other; neither dials.
    for event in collect_for(&mut b_events, Duration::from_millis(500)).await {
        assert!(
            !matches!(event, Event::PeerAdded(_) | Event::Invitation(_)),
            "{event:?}"
        );
    }
    let diagnostics = a.diagnostics().await.unwrap();
    assert!(diagnostics.links.is_empty());
    assert!(
        diagnostics.attempts.iter().all(|c| c.state != "dialing"),
        "{:?}",
        diagnostics.attempts
    );

    let inviting = invite_later(&a, b_id, Some(b"table 4".to_vec()));
    let pending = invitation(&mut b_events).await;
    assert_eq!(pending.peer, a_id);
    assert_eq!(pending.display_name, "alice");
    assert_eq!(pending.context.as_deref(), Some(&b"table 4"[..]));
    assert!(!pending.is_expired());
    // The user takes a while: longer than a handshake may take.
    tokio::time::sleep(Duration::from_secs(6)).await;
    pending.accept().unwrap();
    within_ok(inviting).await.unwrap();
    assert_eq!(expect_peers_added(&mut b_events, 1, T).await[0].id, a_id);
    assert_eq!(expect_peers_added(&mut a_events, 1, T).await[0].id, b_id);
    assert_eq!(a.verification_code(b_id), b.verification_code(a_id));
}

/// Invites `peer` on a task of its own, as an app would while it goes on.
fn invite_later(
    from: &Session,
    peer: PeerId,
    context: Option<Vec<u8>>,
) -> tokio::task::JoinHandle<Result<(), InviteError>> {
    let from = from.clone();
    tokio::spawn(async move { from.invite(peer, context).await })
}

async fn within_ok<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(T, task).await.expect("invite to finish").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_invitation_joins_no_one_and_may_be_made_again() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, mut a_events, b, mut b_events) = alice_and_bob(&net, |c| c).await;
    let (a_id, b_id) = (a.local_peer().id, b.local_peer().id);
    let inviting = invite_later(&a, b_id, None);
    invitation(&mut b_events).await.decline().unwrap();
    assert_eq!(within_ok(inviting).await, Err(InviteError::Declined(b_id)));
    for event in collect_for(&mut a_events, Duration::from_millis(500)).await {
        assert!(!matches!(event, Event::PeerAdded(_)), "{event:?}");
    }
    assert!(a.peers().is_empty() && b.peers().is_empty());

    // Dropping the invitation declines too; a third one is accepted.
    let inviting = invite_later(&a, b_id, None);
    drop(invitation(&mut b_events).await);
    assert_eq!(within_ok(inviting).await, Err(InviteError::Declined(b_id)));
    let inviting = invite_later(&a, b_id, None);
    invitation(&mut b_events).await.accept().unwrap();
    within_ok(inviting).await.unwrap();
    assert_eq!(expect_peers_added(&mut b_events, 1, T).await[0].id, a_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_invitation_times_out_on_both_sides() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, _a_events, b, mut b_events) = alice_and_bob(&net, |c| c.answer_timeout(Duration::from_secs(1))).await;
    let b_id = b.local_peer().id;
    let inviting = invite_later(&a, b_id, None);
    let mut pending = invitation(&mut b_events).await;
    tokio::time::timeout(T, pending.expired())
        .await
        .expect("the invitation to expire");
    assert!(pending.is_expired());
    assert_eq!(within_ok(inviting).await, Err(InviteError::NoAnswer(b_id)));
    assert_eq!(pending.accept(), Err(AnswerError::Expired));
    assert!(a.peers().is_empty() && b.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_joins_the_inviters_session_and_its_members_link_without_asking() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, _a_events, b, mut b_events) = alice_and_bob(&net, |c| c).await;
    let (c, mut c_events) = manual(&net, "carol", |c| c).await;
    let (b_id, c_id) = (b.local_peer().id, c.local_peer().id);
    let inviting = invite_later(&a, b_id, None);
    invitation(&mut b_events).await.accept().unwrap();
    within_ok(inviting).await.unwrap();
    // Alice (with Bob) invites Carol once she sees her; only Carol is asked, and Bob and Carol link by
    // themselves.
    common::within(T, "alice to see carol", async {
        while !a.nearby().iter().any(|p| p.id == c_id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let inviting = invite_later(&a, c_id, None);
    invitation(&mut c_events).await.accept().unwrap();
    within_ok(inviting).await.unwrap();
    expect_peers_added(&mut c_events, 2, T).await;
    let added = expect(&mut b_events, T, "carol joins bob", |e| match e {
        Event::PeerAdded(p) if p.id == c_id => Some(p),
        Event::Invitation(i) => panic!("bob asked again: {i:?}"),
        _ => None,
    })
    .await;
    assert_eq!(added.display_name, "carol");
    for s in [&a, &b, &c] {
        assert_eq!(s.peers().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inviting_a_peer_not_nearby_fails_at_once() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (a, _a_events) = manual(&net, "alice", |c| c).await;
    let stranger = multipeer::Identity::generate().peer_id();
    assert_eq!(a.invite(stranger, None).await, Err(InviteError::NotNearby(stranger)));
    let big = vec![0u8; multipeer::config::MAX_INVITATION_CONTEXT_LEN + 1];
    assert!(matches!(
        a.invite(stranger, Some(big)).await,
        Err(InviteError::ContextTooLarge { .. })
    ));
}

/// A hello whose roster claims a session of the sender and `victim` (a newer version than the victim's own).
fn claiming_hello(name: &str, id: PeerId, victim: PeerId) -> Vec<u8> {
    let mut members = [id, victim];
    members.sort();
    serde_json::to_vec(&serde_json::json!({
        "version": multipeer::proto::PROTOCOL_VERSION, "display_name": name, "max_peers": 8, "initial_data": null,
        "roster": {"version": 7, "members": members}
    }))
    .unwrap()
}

/// Dials `session` as a fresh raw peer, passes admission, sends `hello`, and returns how the session closed the
/// connection, with the frames it sent before that.
async fn raw_attempt(session: &Session, hello: impl FnOnce(PeerId) -> Vec<u8>) -> (Option<u64>, Vec<u8>) {
    use common::raw::{self, RawOptions};
    let (conn, id) = raw::connect_as(session.local_addr(), RawOptions::default())
        .await
        .unwrap();
    let (mut control, mut theirs, _code) = raw::admit(&conn, id, None).await.unwrap();
    control.write_all(&raw::frame(1, &hello(id))).await.unwrap();
    let mut kinds = Vec::new();
    let read = async {
        while let Ok(frame) = theirs.frame().await {
            kinds.push(match frame {
                multipeer::proto::frame::Frame::Asking(_) => multipeer::proto::frame::FRAME_ASKING,
                multipeer::proto::frame::Frame::Hello(_) => multipeer::proto::frame::FRAME_HELLO,
                _ => 0xff,
            });
        }
    };
    let _ = tokio::time::timeout(T, read).await;
    let code = match tokio::time::timeout(T, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
        _ => None,
    };
    (code, kinds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_a_session_with_us_gets_no_seat_and_no_question() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (victim, mut events) = manual(&net, "victim", |c| c).await;
    let victim_id = victim.local_peer().id;
    let (code, frames) = raw_attempt(&victim, |id| claiming_hello("mallory", id, victim_id)).await;
    assert_eq!(code, Some(u64::from(multipeer::proto::codes::NOT_LOOKING)));
    assert!(frames.is_empty(), "the victim sent {frames:?}");
    for event in collect_for(&mut events, Duration::from_millis(300)).await {
        assert!(
            !matches!(event, Event::PeerAdded(_) | Event::Invitation(_)),
            "{event:?}"
        );
    }
    assert!(victim.peers().is_empty());
    assert_eq!(victim.roster().len(), 1, "the victim's roster took the claim");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uninvited_dialer_only_gets_a_question_to_the_app_and_at_most_four_wait() {
    init_tracing();
    let net = MemoryNetwork::new();
    let (victim, mut events) = manual(&net, "victim", |c| c.answer_timeout(Duration::from_secs(2))).await;
    // Six strangers dial at once: four invitations wait for the app, two are told "not now".
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let victim = victim.clone();
            tokio::spawn(async move { raw_attempt(&victim, |id| common::raw::hello(&format!("s{i}"), id)).await })
        })
        .collect();
    let mut held = Vec::new();
    while held.len() < 4 {
        held.push(invitation(&mut events).await);
    }
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(tokio::time::timeout(T, attempt).await.unwrap().unwrap());
    }
    let asking = multipeer::proto::frame::FRAME_ASKING;
    let no_answer = u64::from(multipeer::proto::codes::NO_ANSWER);
    let not_now = u64::from(multipeer::proto::codes::NOT_LOOKING);
    let answered: Vec<_> = outcomes
        .iter()
        .filter(|o| *o == &(Some(no_answer), vec![asking]))
        .collect();
    let refused: Vec<_> = outcomes.iter().filter(|o| *o == &(Some(not_now), vec![])).collect();
    assert_eq!((answered.len(), refused.len()), (4, 2), "{outcomes:?}");
    assert!(held.iter().all(PendingInvitation::is_expired));
    assert!(victim.peers().is_empty());
}
