//! The game example on the virtual LAN: three headless players play two rounds; every player sees the same
//! final scores, and positions flowed as datagrams.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{example, line, netns};

const T: Duration = Duration::from_secs(30);
const ROUNDS: u32 = 2;
const TARGET: u32 = 3;

#[test]
fn three_headless_players_agree_on_the_final_score() {
    let Some(lan) = netns::VirtualLan::new(3) else { return };
    let bin = example("game");
    let names = ["ann", "ben", "cat"];
    let mut players: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let seed = (i + 1).to_string();
            let (rounds, target) = (ROUNDS.to_string(), TARGET.to_string());
            let args = [
                "--name",
                name,
                "--headless",
                "--seed",
                &seed,
                "--players",
                "3",
                "--rounds",
                &rounds,
                "--target",
                &target,
                "--service",
                "gametest",
            ];
            lan.spawn(i, &bin, &args)
        })
        .collect();
    for round in 1..=ROUNDS {
        let mut finals = Vec::new();
        for player in &mut players {
            let started = line(player, T, &format!("round {round} started: "));
            assert!(started.ends_with("not looking for peers"), "{started}");
            let datagrams: u64 = line(player, T, &format!("datagrams: round={round} received="))
                .parse()
                .unwrap();
            assert!(
                datagrams >= 10,
                "{}: only {datagrams} positions in round {round}",
                player.label()
            );
            finals.push(line(player, T, &format!("final: round={round} ")));
            line(player, T, &format!("round {round} over; looking for peers again"));
        }
        if !finals.iter().all(|f| *f == finals[0]) {
            let outputs: Vec<String> = players.iter().map(|p| p.describe()).collect();
            panic!("round {round}: {finals:?}\n{}", outputs.join("\n"));
        }
        // Every player is in the result, and someone reached the target.
        let scores: Vec<u32> = finals[0]
            .split(' ')
            .map(|s| s.split_once('=').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(scores.len(), names.len(), "{}", finals[0]);
        assert_eq!(scores.iter().max(), Some(&TARGET), "{}", finals[0]);
    }
    for player in &mut players {
        assert!(
            player.wait_exit(T).is_some_and(|s| s.success()),
            "{}",
            player.describe()
        );
    }
}
