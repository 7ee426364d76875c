//! The op-routed JSON example on the virtual LAN: announcements reach everyone, `who` answers reach only the
//! asker, team messages reach only the team, direct messages only their peer.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{example, line, netns, no_line};

const T: Duration = Duration::from_secs(15);
/// How long to watch for a message that must not arrive.
const QUIET: Duration = Duration::from_millis(1500);

#[test]
fn ops_reach_one_peer_a_group_or_everyone() {
    let Some(lan) = netns::VirtualLan::new(3) else { return };
    let bin = example("json_router");
    let members = [("alice", "red"), ("bob", "blue"), ("carol", "red")];
    let mut peers: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, (name, team))| lan.spawn(i, &bin, &["--name", name, "--team", team, "--service", "routertest"]))
        .collect();
    // Everyone hears the others' announcements (so groups are known).
    for (i, peer) in peers.iter_mut().enumerate() {
        for (j, (name, team)) in members.iter().enumerate() {
            if i != j {
                line(peer, T, &format!("announce: {name} team={team}"));
            }
        }
    }
    // `who` goes to all; the answers go to the asker alone.
    peers[0].send_line("/who");
    line(&mut peers[0], T, "here: bob team=blue");
    line(&mut peers[0], T, "here: carol team=red");
    no_line(&mut peers[1], QUIET, "here:");
    no_line(&mut peers[2], Duration::ZERO, "here:");

    // A team message reaches the team (carol), not bob.
    peers[0].send_line("/team red team only");
    assert_eq!(line(&mut peers[0], T, "sent: "), "to=team:red peers=1");
    assert_eq!(
        line(&mut peers[2], T, "say: "),
        "from=alice to=team:red text=red team only"
    );
    no_line(&mut peers[1], QUIET, "say:");

    // To everyone.
    peers[1].send_line("/all hello all");
    assert_eq!(line(&mut peers[1], T, "sent: "), "to=all peers=2");
    for i in [0, 2] {
        assert_eq!(line(&mut peers[i], T, "say: "), "from=bob to=all text=hello all");
    }

    // To one peer.
    peers[2].send_line("/to bob just you");
    assert_eq!(line(&mut peers[1], T, "say: "), "from=carol to=direct text=just you");
    no_line(&mut peers[0], QUIET, "say:");

    // Bob's team has no one else: the group is empty and nothing is sent.
    peers[1].send_line("/team anyone?");
    assert_eq!(line(&mut peers[1], T, "sent: "), "to=team:blue peers=0");
}
