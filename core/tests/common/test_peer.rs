//! A peer for the virtual-LAN tests: one session with mDNS discovery, driven by JSON lines.
//!
//! Commands arrive on stdin (`{"cmd":"send","text":"hi","reliable":true,"to":null}`, `stop_looking`,
//! `start_looking`, `peers`, `diagnostics`, `shutdown`); events leave on stdout, one JSON object per line. Logs go to stderr
//! (`RUST_LOG`). SIGINT and SIGTERM shut the session down cleanly (events `signal`, then `shut_down`).
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::time::Duration;

use multipeer::{
    ConnectionFailure, Event, Identity, MdnsConfig, MdnsDiscovery, Reliability, RemovalReason, Session, SessionConfig,
    StopSignal, To,
};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn removal(reason: &RemovalReason) -> &'static str {
    match reason {
        RemovalReason::Left => "left",
        RemovalReason::TimedOut => "timed_out",
        RemovalReason::Removed => "removed",
        RemovalReason::Expelled => "expelled",
        RemovalReason::ProtocolError(_) => "protocol_error",
        RemovalReason::ConnectionLost(_) => "connection_lost",
        RemovalReason::LocalDisconnect => "local_disconnect",
        _ => "other",
    }
}

fn failure(reason: &ConnectionFailure) -> &'static str {
    match reason {
        ConnectionFailure::SessionFull => "session_full",
        ConnectionFailure::Declined => "declined",
        ConnectionFailure::Expelled => "expelled",
        ConnectionFailure::WrongPassphrase => "wrong_passphrase",
        ConnectionFailure::IdentityMismatch { .. } => "identity_mismatch",
        ConnectionFailure::VersionMismatch => "version_mismatch",
        ConnectionFailure::Unreachable => "unreachable",
        ConnectionFailure::IdentityInUse { .. } => "identity_in_use",
        ConnectionFailure::ProtocolError(_) => "protocol_error",
        _ => "other",
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(e) = run().await {
        emit(json!({"event": "error", "message": e.to_string()}));
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = arg(&args, "--name").unwrap_or_else(|| "peer".into());
    let service = arg(&args, "--service").unwrap_or_else(|| "test".into());
    let mut config = SessionConfig::builder(service, name);
    if let Some(n) = arg(&args, "--max-peers") {
        config = config.max_peers(n.parse()?);
    }
    if let Some(path) = arg(&args, "--identity") {
        config = config.identity(Identity::load_or_generate(path)?);
    }
    if let Some(ms) = arg(&args, "--idle-ms") {
        config = config.idle_timeout(Duration::from_millis(ms.parse()?));
    }
    let mut mdns = MdnsConfig::default();
    if let Some(port) = arg(&args, "--mdns-port") {
        mdns = mdns.port(port.parse()?);
    }
    let (session, mut events) = Session::builder(config.build()?)
        .discovery(MdnsDiscovery::with_config(mdns))
        .start_with_events()
        .await?;
    emit(json!({"event": "started", "id": session.local_peer().id, "port": session.local_addr().port()}));
    // `--no-read`: an app that never reads its events (the session must still answer commands and mDNS).
    let read_events = !args.iter().any(|a| a == "--no-read");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            signal = &mut stop => {
                let name = if signal == StopSignal::Terminate { "SIGTERM" } else { "SIGINT" };
                emit(json!({"event": "signal", "signal": name}));
                break;
            }
            event = events.next(), if read_events => match event {
                Some(Event::PeerAdded(p)) => emit(json!({"event": "peer_added", "id": p.id, "name": p.display_name})),
                Some(Event::PeerRemoved { peer, reason }) => emit(json!({
                    "event": "peer_removed", "id": peer.id, "name": peer.display_name, "reason": removal(&reason)
                })),
                Some(Event::Message(m)) => emit(json!({
                    "event": "message", "from": m.peer, "reliable": m.reliability == Reliability::Reliable,
                    "text": String::from_utf8_lossy(&m.data)
                })),
                Some(Event::ConnectionFailed { peer, reason }) => emit(json!({
                    "event": "connection_failed", "peer": peer, "reason": failure(&reason)
                })),
                Some(_) => {}
                None => break,
            },
            line = stdin.next_line() => {
                let Some(line) = line? else { break };
                let Ok(cmd) = serde_json::from_str::<Value>(&line) else {
                    emit(json!({"event": "error", "message": format!("not JSON: {line}")}));
                    continue;
                };
                let result: Result<(), Box<dyn std::error::Error>> = async {
                    match cmd["cmd"].as_str() {
                        Some("send") => {
                            let to = match cmd["to"].as_str() {
                                Some(id) => To::Peer(id.parse()?),
                                None => To::All,
                            };
                            let reliability = if cmd["reliable"].as_bool().unwrap_or(true) {
                                Reliability::Reliable
                            } else {
                                Reliability::Unreliable
                            };
                            let text = cmd["text"].as_str().unwrap_or_default().to_owned();
                            session.send(text, to, reliability).await?;
                        }
                        Some("flood") => {
                            // `count` messages of `bytes` each to `to`, from a task of their own.
                            let to: multipeer::PeerId = cmd["to"].as_str().unwrap_or_default().parse()?;
                            let count = cmd["count"].as_u64().unwrap_or(0);
                            let bytes = usize::try_from(cmd["bytes"].as_u64().unwrap_or(0)).unwrap_or(0);
                            let flooder = session.clone();
                            tokio::spawn(async move {
                                for _ in 0..count {
                                    let data = vec![7u8; bytes];
                                    if flooder.send(data, To::Peer(to), Reliability::Reliable).await.is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                        Some("stop_looking") => session.stop_looking_for_peers().await?,
                        Some("start_looking") => session.start_looking_for_peers().await?,
                        Some("peers") => {
                            let ids: Vec<String> = session.peers().iter().map(|p| p.id.to_string()).collect();
                            emit(json!({"event": "peers", "ids": ids}));
                        }
                        Some("diagnostics") => {
                            let d = session.diagnostics().await?;
                            let seen = d.discovery.map(|r| r.seen_services).unwrap_or_default();
                            emit(json!({
                                "event": "diagnostics",
                                "seen": seen.len(),
                                "ignored": seen.iter().filter(|s| s.ignored.is_some()).count(),
                                "candidates": d.attempts.len(),
                                "links": d.links.len(),
                            }));
                        }
                        Some("shutdown") => {
                            session.shutdown().await?;
                            emit(json!({"event": "shut_down"}));
                            std::process::exit(0);
                        }
                        other => emit(json!({"event": "error", "message": format!("unknown command {other:?}")})),
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    emit(json!({"event": "error", "message": e.to_string()}));
                }
            }
        }
    }
    session.shutdown().await?;
    emit(json!({"event": "shut_down"}));
    // Not returning: the runtime would wait for its blocking stdin read, which only a new line ends.
    std::process::exit(0);
}
