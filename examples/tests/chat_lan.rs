//! The LAN chat example on the virtual LAN: lines typed on one host appear on the others.
#![allow(clippy::unwrap_used)]

#[path = "../../core/tests/common/netns.rs"]
#[allow(dead_code, unreachable_pub)]
mod netns;

use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

/// The chat example binary, built by `cargo test` next to this test's directory.
fn chat_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("chat")
}

#[test]
fn lines_typed_on_one_chat_appear_on_the_others() {
    let Some(lan) = netns::VirtualLan::new(3) else { return };
    let chat = chat_binary();
    assert!(chat.exists(), "build the chat example first: {}", chat.display());
    let chat = chat.to_str().unwrap();
    let names = ["alice", "bob", "carol"];
    let mut peers: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| lan.spawn(i, chat, &["--name", name, "--service", "chattest"]))
        .collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        for other in names.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| *n) {
            let want = format!("* joined: {other}");
            peer.expect(T, &want, |v| v["line"].as_str().filter(|l| *l == want).map(drop));
        }
    }
    // Presence: each finds the two others by discovery (perhaps after joining them: a peer that dialed first
    // is in the session before its advert is resolved here), then alice lists who is nearby.
    for (i, peer) in peers.iter_mut().enumerate() {
        for other in names.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, n)| *n) {
            let want = format!("* nearby: {other} (");
            peer.expect(T, &want, |v| {
                v["line"].as_str().filter(|l| l.starts_with(&want)).map(drop)
            });
        }
    }
    peers[0].send_line("/nearby");
    let listed = peers[0].expect(T, "the nearby list", |v| {
        v["line"]
            .as_str()
            .filter(|l| l.starts_with("* 2 nearby: "))
            .map(str::to_owned)
    });
    assert!(listed.contains("bob (") && listed.contains("carol ("), "{listed}");
    // Each types a line; the two others print it with the sender's name.
    for (i, name) in names.iter().enumerate() {
        let text = format!("hello from {name} on host {i}");
        peers[i].send_line(&text);
        for (j, peer) in peers.iter_mut().enumerate() {
            if j == i {
                continue;
            }
            let want = format!("<{name}> {text}");
            peer.expect(T, &want, |v| v["line"].as_str().filter(|l| *l == want).map(drop));
        }
    }
    // /quit: the others see the departure at once.
    peers[2].send_line("/quit");
    for peer in &mut peers[..2] {
        peer.expect(T, "carol left", |v| {
            v["line"].as_str().filter(|l| l.starts_with("* left: carol")).map(drop)
        });
        // Her goodbye on mDNS: no longer nearby either.
        peer.expect(T, "carol gone from nearby", |v| {
            v["line"]
                .as_str()
                .filter(|l| *l == "* no longer nearby: carol")
                .map(drop)
        });
    }
}

/// The first line starting with `prefix`.
fn line_starting(peer: &mut netns::PeerProcess, prefix: &str) -> String {
    let prefix = prefix.to_owned();
    peer.expect(T, &prefix.clone(), move |v| {
        let line = v["line"].as_str()?;
        line.starts_with(&prefix).then(|| line.to_owned())
    })
}

#[test]
fn in_manual_mode_people_join_only_by_invitation_answered_at_the_prompt() {
    let Some(lan) = netns::VirtualLan::new(2) else { return };
    let chat = chat_binary();
    assert!(chat.exists(), "build the chat example first: {}", chat.display());
    let chat = chat.to_str().unwrap();
    let mut alice = lan.spawn(0, chat, &["--name", "alice", "--service", "chatmanual", "--manual"]);
    let mut bob = lan.spawn(1, chat, &["--name", "bob", "--service", "chatmanual", "--manual"]);
    line_starting(&mut alice, "* nearby: bob (");
    line_starting(&mut bob, "* nearby: alice (");
    // Declined first: alice is told, nobody joins.
    alice.send_line("/invite bob");
    assert_eq!(
        line_starting(&mut bob, "* alice invites you"),
        "* alice invites you: /accept or /decline"
    );
    bob.send_line("/decline");
    assert_eq!(line_starting(&mut bob, "* declined"), "* declined alice");
    let declined = line_starting(&mut alice, "* peer ");
    assert!(declined.ends_with("declined the invitation"), "{declined}");
    alice.send_line("/peers");
    line_starting(&mut alice, "* 0 peer(s)");
    // Then accepted: both join, and chat.
    alice.send_line("/invite bob");
    line_starting(&mut bob, "* alice invites you");
    bob.send_line("/accept");
    assert_eq!(line_starting(&mut alice, "* joined: "), "* joined: bob");
    assert_eq!(line_starting(&mut bob, "* joined: "), "* joined: alice");
    assert_eq!(line_starting(&mut alice, "* bob accepted"), "* bob accepted");
    bob.send_line("hi alice");
    assert_eq!(line_starting(&mut alice, "<bob>"), "<bob> hi alice");
}
