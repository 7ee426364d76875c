//! Op-routed JSON: a "who's here" mini-app on [`multipeer_examples::router::Router`]. Every message is
//! `{"op": ..., ...}`; handlers are registered per op, and messages go to one peer, a named group (here: a team)
//! or everyone.
//!
//! ```text
//! cargo run -p multipeer-examples --example json_router -- --name alice --team red [--service whos-here]
//! ```
//!
//! Peers announce themselves (name and team) to every peer that joins. Commands on stdin: `/who` (everyone
//! answers to you alone), `/team TEXT` (to your team), `/all TEXT`, `/to NAME TEXT`, `/quit`.
#![allow(clippy::print_stdout)]

use multipeer::{Event, Session, SessionConfig};
use multipeer_examples::router::{Reply, Router, Target};
use multipeer_examples::{init_logging, Args};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

#[derive(Clone, Serialize, Deserialize)]
struct Member {
    name: String,
    team: String,
}

#[derive(Deserialize)]
struct Say {
    text: String,
    scope: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::from_env();
    let me = Member {
        name: args.get("--name").unwrap_or_else(|| "anonymous".into()),
        team: args.get("--team").unwrap_or_else(|| "red".into()),
    };
    let service = args.get("--service").unwrap_or_else(|| "whos-here".into());
    let config = SessionConfig::builder(service, me.name.clone()).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    // SIGINT / SIGTERM leave cleanly: peers see us go at once.
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);

    let mut router = Router::new(session.clone());
    let groups = router.groups();
    router.on("announce", move |peer, m: Member| {
        println!("announce: {} team={}", m.name, m.team);
        groups.add(&m.team, peer);
    });
    let answer = me.clone();
    router.on("who", move |peer, _: Value| Reply::new(peer, "here", &answer));
    router.on("here", |_, m: Member| println!("here: {} team={}", m.name, m.team));
    let names = session.clone();
    router.on("say", move |peer, m: Say| {
        let from = names.peer(peer).map_or_else(|| peer.short(), |p| p.display_name);
        println!("say: from={from} to={} text={}", m.scope, m.text);
    });

    println!(
        "ready: {} team={} (/who, /team TEXT, /all TEXT, /to NAME TEXT, /quit)",
        me.name, me.team
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = events.next() => match event {
                Some(Event::PeerAdded(peer)) => report(router.send(peer.id.into(), "announce", &me).await),
                Some(Event::PeerRemoved { peer, .. }) => {
                    router.groups().forget(&peer.id);
                    println!("left: {}", peer.display_name);
                }
                Some(Event::Message(message)) => {
                    if let Err(e) = router.handle(&message).await {
                        println!("unrouted: {e}");
                    }
                }
                Some(_) => {}
                None => break,
            },
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let (command, text) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
                let (to, scope, text) = match command {
                    "/who" => {
                        report(router.send(Target::All, "who", ()).await);
                        continue;
                    }
                    "/team" => (Target::group(&me.team), format!("team:{}", me.team), text),
                    "/all" => (Target::All, "all".to_owned(), text),
                    "/to" => {
                        let (name, text) = text.split_once(' ').unwrap_or((text, ""));
                        match session.peers().into_iter().find(|p| p.display_name == name) {
                            Some(peer) => (Target::Peer(peer.id), "direct".to_owned(), text),
                            None => {
                                println!("no peer called {name}");
                                continue;
                            }
                        }
                    }
                    "/quit" => break,
                    _ => {
                        println!("commands: /who, /team TEXT, /all TEXT, /to NAME TEXT, /quit");
                        continue;
                    }
                };
                let sent = router.send(to, "say", json!({"text": text, "scope": scope})).await;
                if let Ok(n) = sent {
                    println!("sent: to={scope} peers={n}");
                }
                report(sent);
            }
        }
    }
    session.shutdown().await?;
    // Not returning: the runtime would wait for its blocking stdin read, which only a new line ends.
    std::process::exit(0);
}

/// Prints why a send failed (a peer may leave at any time; that is no reason to stop).
fn report<T>(result: Result<T, multipeer_examples::router::RouteError>) {
    if let Err(e) = result {
        println!("error: {e}");
    }
}
