//! LAN chat: every device runs the same program, finds the others with mDNS and chats with all of them.
//!
//! ```text
//! cargo run --release -p multipeer-examples --example chat -- [--name NAME] [--service chat] [--ticket TICKET]
//! ```
//!
//! Type a line to send it to everyone. Commands: `/peers`, `/ticket` (print an invitation with a QR code, for
//! networks that block multicast), `/join <ticket>`, `/doctor` (why is nobody here?), `/quit`.
//! Incoming lines are printed above the line being typed, so they never garble it.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, IsTerminal, Write};

use multipeer::{Event, Reliability, Session, SessionConfig, Ticket, To};
use tokio::sync::mpsc;

/// Where output goes: above the prompt on a terminal, plain lines otherwise.
struct Output(Option<Box<dyn rustyline::ExternalPrinter + Send>>);

impl Output {
    fn line(&mut self, text: String) {
        match &mut self.0 {
            Some(printer) => {
                let _ = printer.print(text);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }
}

/// Reads lines from the user on a thread of its own; returns where they arrive and the output.
fn spawn_input(name: &str) -> (mpsc::Receiver<String>, Output) {
    let (tx, rx) = mpsc::channel(64);
    if std::io::stdin().is_terminal() {
        if let Ok(mut editor) = rustyline::DefaultEditor::new() {
            if let Ok(printer) = editor.create_external_printer() {
                let prompt = format!("{name}> ");
                std::thread::spawn(move || {
                    while let Ok(line) = editor.readline(&prompt) {
                        let _ = editor.add_history_entry(line.as_str());
                        if tx.blocking_send(line).is_err() {
                            break;
                        }
                    }
                });
                return (rx, Output(Some(Box::new(printer))));
            }
        }
    }
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    (rx, Output(None))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn ask_name() -> String {
    if std::io::stdin().is_terminal() {
        if let Ok(mut editor) = rustyline::DefaultEditor::new() {
            if let Ok(name) = editor.readline("Your name: ") {
                if !name.trim().is_empty() {
                    return name.trim().to_owned();
                }
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "anonymous".into())
}

fn qr(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(no QR code: {e})"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = arg(&args, "--name").unwrap_or_else(ask_name);
    let service = arg(&args, "--service").unwrap_or_else(|| "chat".into());
    let config = SessionConfig::builder(service, name.clone()).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    // SIGINT / SIGTERM (Ctrl-C elsewhere) leave cleanly: peers see us go at once.
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
    let (mut input, mut out) = spawn_input(&name);
    out.line(format!(
        "* you are {name} ({}); looking for peers... /nearby, /peers, /ticket, /join, /doctor, /quit",
        session.local_peer().id.short()
    ));
    if let Some(ticket) = arg(&args, "--ticket") {
        join(&session, &ticket, &mut out).await;
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = events.next() => match event {
                Some(Event::PeerFound(peer)) => out.line(format!("* nearby: {} ({})", peer.display_name, peer.id.short())),
                Some(Event::PeerLost(peer)) => out.line(format!("* no longer nearby: {}", peer.display_name)),
                Some(Event::PeerAdded(peer)) => out.line(format!("* joined: {}", peer.display_name)),
                Some(Event::PeerRemoved { peer, reason }) => out.line(format!("* left: {} ({reason})", peer.display_name)),
                Some(Event::Message(m)) => {
                    let who = session.peer(&m.from).map(|p| p.display_name).unwrap_or_else(|| m.from.short());
                    out.line(format!("<{who}> {}", String::from_utf8_lossy(&m.data)));
                }
                Some(Event::ConnectionFailed { peer, reason }) => out.line(format!("* could not connect to {}: {reason}", peer.short())),
                Some(_) => {}
                None => break,
            },
            line = input.recv() => {
                let Some(line) = line else { break };
                let line = line.trim();
                match line.split_once(' ').map_or((line, ""), |(c, rest)| (c, rest.trim())) {
                    ("", _) => {}
                    ("/quit", _) => break,
                    ("/nearby", _) => {
                        let names: Vec<String> =
                            session.nearby().iter().map(|p| format!("{} ({})", p.display_name, p.id.short())).collect();
                        out.line(format!("* {} nearby: {}", names.len(), names.join(", ")));
                    }
                    ("/peers", _) => {
                        let names: Vec<String> = session.peers().iter().map(ToString::to_string).collect();
                        out.line(format!("* {} peer(s): {}", names.len(), names.join(", ")));
                    }
                    ("/ticket", _) => {
                        let ticket = session.ticket().to_string();
                        out.line(format!("{}\n* ticket: {ticket}", qr(&ticket)));
                    }
                    ("/join", ticket) => join(&session, ticket, &mut out).await,
                    ("/doctor", _) => match session.diagnostics().await {
                        Ok(report) => out.line(report.to_string()),
                        Err(e) => out.line(format!("* {e}")),
                    },
                    _ => {
                        if let Err(e) = session.send(line.to_owned(), To::All, Reliability::Reliable).await {
                            out.line(format!("* not sent: {e}"));
                        }
                    }
                }
            }
        }
    }
    session.shutdown().await?;
    Ok(())
}

async fn join(session: &Session, ticket: &str, out: &mut Output) {
    match ticket.parse::<Ticket>() {
        Ok(ticket) => match session.connect_ticket(&ticket).await {
            Ok(()) => out.line(format!("* inviting {}...", ticket.peer_id.short())),
            Err(e) => out.line(format!("* {e}")),
        },
        Err(e) => out.line(format!("* {e}")),
    }
}
