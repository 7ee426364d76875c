//! The secure-sum example on the virtual LAN: every peer prints the right total, and no peer's input appears in
//! anything sent.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{example, line, netns};

const T: Duration = Duration::from_secs(20);

/// Private inputs, long enough that a random share or partial sum is unlikely to contain one by chance.
const INPUTS: [u64; 5] = [
    3_141_592_653,
    2_718_281_828,
    1_618_033_988,
    18_446_744_073_709_000_001, // near 2^64: the total wraps
    1_732_050_807,
];

fn run(n: usize) {
    let Some(lan) = netns::VirtualLan::new(n) else { return };
    let bin = example("secure_sum");
    let service = format!("sumtest{n}");
    let mut peers: Vec<_> = (0..n)
        .map(|i| {
            let (name, value, count) = (format!("p{i}"), INPUTS[i].to_string(), n.to_string());
            let args = [
                "--name",
                &name,
                "--value",
                &value,
                "--peers",
                &count,
                "--service",
                &service,
                "--log-wire",
            ];
            lan.spawn(i, &bin, &args)
        })
        .collect();
    let want = INPUTS[..n].iter().fold(0u64, |sum, v| sum.wrapping_add(*v));
    for peer in &mut peers {
        assert_eq!(line(peer, T, "total: "), want.to_string(), "{}", peer.describe());
    }
    for peer in &peers {
        let sent: Vec<String> = peer
            .events()
            .iter()
            .filter_map(|v| {
                v["line"]
                    .as_str()
                    .and_then(|l| l.strip_prefix("wire: "))
                    .map(str::to_owned)
            })
            .collect();
        // One share to each other peer, then the partial sum to all.
        assert_eq!(sent.len(), n, "{}: {sent:?}", peer.label());
        assert_eq!(sent.iter().filter(|s| s.contains(r#""kind":"share""#)).count(), n - 1);
        for payload in &sent {
            for input in &INPUTS[..n] {
                assert!(
                    !payload.contains(&input.to_string()),
                    "input {input} on the wire: {payload}"
                );
            }
        }
    }
}

#[test]
fn three_peers_learn_the_sum_and_nothing_else() {
    run(3);
}

#[test]
fn five_peers_learn_the_sum_and_nothing_else() {
    run(5);
}
