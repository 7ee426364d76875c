//! Secure sum: n peers each hold a private number; all of them learn the total, and no single peer learns
//! another's input.
//!
//! ```text
//! cargo run -p multipeer-examples --example secure_sum -- --value 42 --peers 3 [--name NAME] [--log-wire]
//! ```
//!
//! Additive secret sharing modulo 2^64: once `--peers` peers are in the session, each one splits its value into
//! random shares that add up to it, keeps one and sends one to each other peer. Each peer adds up the shares it
//! holds and publishes only that partial sum; the partial sums add up to the total. Any n - 1 shares of a value
//! are uniformly random, so one peer alone learns nothing about another's input (all the others together could
//! subtract theirs from the total, as with any sum). The roster is `Session::roster()`: everyone, ordered by id,
//! the same list on every peer; each partial sum carries it so all can check they agree.
//! `--log-wire` prints every payload sent; `--service NAME` picks another service type (default `secure-sum`).
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use multipeer::{Event, PeerId, Reliability, Session, SessionConfig, To};
use multipeer_examples::{init_logging, Args};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    /// One share of the sender's input, for the receiver alone.
    Share { share: u64 },
    /// The sum of the shares the sender holds, for everyone, with the roster it used.
    Partial { partial: u64, roster: Vec<PeerId> },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::from_env();
    let value: u64 = args.parse_or("--value", 0)?;
    let n: usize = args.parse_or("--peers", 3)?;
    let log_wire = args.flag("--log-wire");
    let name = args
        .get("--name")
        .unwrap_or_else(|| format!("peer-{}", std::process::id()));
    let service = args.get("--service").unwrap_or_else(|| "secure-sum".into());
    let config = SessionConfig::builder(service, name).max_peers(n).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    // SIGINT / SIGTERM leave cleanly: peers see us go at once (and the sum is abandoned).
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
    let me = session.local_peer().id;
    println!("waiting for {} more peer(s)", n - 1);

    let mut roster: Option<Vec<PeerId>> = None;
    let mut kept = 0u64; // our own share of our own value
    let mut shares: BTreeMap<PeerId, u64> = BTreeMap::new(); // shares of the others' values
    let mut partials: BTreeMap<PeerId, (u64, Vec<PeerId>)> = BTreeMap::new();
    loop {
        let everyone = session.roster();
        if roster.is_none() && everyone.len() == n {
            // Everyone is here: fix the roster and deal our shares.
            session.stop_looking_for_peers().await?;
            let ids: Vec<PeerId> = everyone.iter().map(|p| p.id).collect();
            let names: Vec<&str> = everyone.iter().map(|p| p.display_name.as_str()).collect();
            println!("roster: {}", names.join(" "));
            kept = value;
            for peer in ids.iter().filter(|id| **id != me) {
                let share: u64 = rand::random();
                kept = kept.wrapping_sub(share);
                send(&session, Wire::Share { share }, To::Peer(*peer), log_wire).await?;
            }
            roster = Some(ids);
        }
        if let Some(ids) = &roster {
            if shares.len() == n - 1 && !partials.contains_key(&me) {
                // Every share we will get is here: publish their sum, and nothing else.
                let partial = shares.values().fold(kept, |sum, s| sum.wrapping_add(*s));
                send(
                    &session,
                    Wire::Partial {
                        partial,
                        roster: ids.clone(),
                    },
                    To::All,
                    log_wire,
                )
                .await?;
                partials.insert(me, (partial, ids.clone()));
            }
            if partials.len() == n {
                if let Some((peer, _)) = partials.iter().find(|(_, (_, theirs))| theirs != ids) {
                    return Err(format!("{} used another roster", name_of(&session, peer)).into());
                }
                let total = partials.values().fold(0u64, |sum, (p, _)| sum.wrapping_add(*p));
                println!("total: {total}");
                break;
            }
        }
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut stop => {
                session.shutdown().await?;
                return Err("interrupted before the sum was complete".into());
            }
        };
        match event {
            Some(Event::PeerAdded(peer)) => println!("joined: {}", peer.display_name),
            Some(Event::Message(message)) => match message.json::<Wire>()? {
                Wire::Share { share } => {
                    shares.insert(message.peer, share);
                }
                Wire::Partial { partial, roster } => {
                    partials.insert(message.peer, (partial, roster));
                }
            },
            Some(Event::PeerRemoved { peer, .. }) if roster.is_some() && !partials.contains_key(&peer.id) => {
                return Err(format!("{} left before the sum was complete", peer.display_name).into());
            }
            Some(_) => {}
            None => return Err("the session ended".into()),
        }
    }
    // Every message we sent is delivered before the others see us leave.
    session.shutdown().await?;
    Ok(())
}

async fn send(session: &Session, message: Wire, to: To, log: bool) -> Result<(), Box<dyn std::error::Error>> {
    let payload = serde_json::to_vec(&message)?;
    if log {
        let target = match &to {
            To::Peer(id) => name_of(session, id),
            _ => "all".to_owned(),
        };
        println!("wire: to={target} {}", String::from_utf8_lossy(&payload));
    }
    session.send(payload, to, Reliability::Reliable).await?;
    Ok(())
}

fn name_of(session: &Session, id: &PeerId) -> String {
    let peer = session.roster().into_iter().find(|p| p.id == *id);
    peer.map_or_else(|| id.short(), |p| p.display_name)
}
