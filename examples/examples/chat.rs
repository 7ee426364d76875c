//! LAN chat: every device runs the same program, finds the others with mDNS and chats with all of them.
//!
//! ```text
//! cargo run --release -p multipeer-examples --example chat -- [--name NAME] [--service chat] [--ticket TICKET]
//!     [--manual]
//! ```
//!
//! Type a line to send it to everyone. Commands: `/nearby`, `/peers`, `/ticket` (print an invitation with a QR
//! code, for networks that block multicast), `/join <ticket>`, `/doctor` (why is nobody here?), `/quit`.
//! With `--manual` nobody joins by themselves: `/invite NAME` invites someone nearby, and an invitation is
//! answered with `/accept` or `/decline`.
//! Incoming lines are printed above the line being typed, so they never garble it.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, IsTerminal, Write};

use std::collections::VecDeque;

use multipeer::{Event, InvitationMode, PendingInvitation, Reliability, Session, SessionConfig, Ticket, To};
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
    let manual = args.iter().any(|a| a == "--manual");
    let mode = if manual {
        InvitationMode::Manual
    } else {
        InvitationMode::Auto
    };
    let config = SessionConfig::builder(service, name.clone())
        .invitation_mode(mode)
        .build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    // SIGINT / SIGTERM (Ctrl-C elsewhere) leave cleanly: peers see us go at once.
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
    let (mut input, out) = spawn_input(&name);
    let (notes_tx, mut notes) = mpsc::channel(16);
    let mut chat = Chat {
        session: session.clone(),
        out,
        invitations: VecDeque::new(),
        notes: notes_tx,
    };
    let looking = if manual {
        "/invite NAME to chat with someone nearby"
    } else {
        "looking for peers..."
    };
    chat.out.line(format!(
        "* you are {name} ({}); {looking} /nearby, /peers, /ticket, /join, /doctor, /quit",
        session.local_peer().id.short()
    ));
    if let Some(ticket) = arg(&args, "--ticket") {
        join(&session, &ticket, &mut chat.out).await;
    }
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = events.next() => match event {
                Some(event) => chat.event(event),
                None => break,
            },
            Some(note) = notes.recv() => chat.out.line(note),
            line = input.recv() => {
                let Some(line) = line else { break };
                if !chat.command(line.trim()).await {
                    break;
                }
            }
        }
    }
    session.shutdown().await?;
    Ok(())
}

/// The chat's state: the session, where to print, and invitations waiting for `/accept` or `/decline`.
struct Chat {
    session: Session,
    out: Output,
    invitations: VecDeque<PendingInvitation>,
    /// Lines from tasks (outcomes of `/invite`).
    notes: mpsc::Sender<String>,
}

impl Chat {
    fn event(&mut self, event: Event) {
        let line = match event {
            Event::PeerFound(peer) => format!("* nearby: {} ({})", peer.display_name, peer.id.short()),
            Event::PeerLost(peer) => format!("* no longer nearby: {}", peer.display_name),
            Event::Invitation(invitation) => {
                let line = format!("* {} invites you: /accept or /decline", invitation.display_name);
                self.invitations.retain(|i| !i.is_expired());
                self.invitations.push_back(invitation);
                line
            }
            Event::PeerAdded(peer) => format!("* joined: {}", peer.display_name),
            Event::PeerRemoved { peer, reason } => format!("* left: {} ({reason})", peer.display_name),
            Event::Message(m) => {
                let who = self
                    .session
                    .peer(m.peer)
                    .map(|p| p.display_name)
                    .unwrap_or_else(|| m.peer.short());
                format!("<{who}> {}", String::from_utf8_lossy(&m.data))
            }
            Event::ConnectionFailed { peer, reason } => format!("* could not connect to {}: {reason}", peer.short()),
            _ => return,
        };
        self.out.line(line);
    }

    /// Carries out one line the user typed; `false` to quit.
    async fn command(&mut self, line: &str) -> bool {
        match line.split_once(' ').map_or((line, ""), |(c, rest)| (c, rest.trim())) {
            ("", _) => {}
            ("/quit", _) => return false,
            ("/nearby", _) => {
                let names: Vec<String> = self
                    .session
                    .nearby()
                    .iter()
                    .map(|p| format!("{} ({})", p.display_name, p.id.short()))
                    .collect();
                self.out.line(format!("* {} nearby: {}", names.len(), names.join(", ")));
            }
            ("/peers", _) => {
                let names: Vec<String> = self.session.peers().iter().map(ToString::to_string).collect();
                self.out
                    .line(format!("* {} peer(s): {}", names.len(), names.join(", ")));
            }
            ("/invite", who) => self.invite(who),
            ("/accept", _) => self.answer(true),
            ("/decline", _) => self.answer(false),
            ("/ticket", _) => {
                let ticket = self.session.ticket().to_string();
                self.out.line(format!("{}\n* ticket: {ticket}", qr(&ticket)));
            }
            ("/join", ticket) => join(&self.session, ticket, &mut self.out).await,
            ("/doctor", _) => match self.session.diagnostics().await {
                Ok(report) => self.out.line(report.to_string()),
                Err(e) => self.out.line(format!("* {e}")),
            },
            _ => {
                if let Err(e) = self.session.send(line.to_owned(), To::All, Reliability::Reliable).await {
                    self.out.line(format!("* not sent: {e}"));
                }
            }
        }
        true
    }

    /// Invites the nearby peer called `who` (or whose id starts with it); the outcome is printed later.
    fn invite(&mut self, who: &str) {
        let nearby = self.session.nearby();
        let Some(peer) = nearby.iter().find(|p| {
            p.display_name.eq_ignore_ascii_case(who) || (!who.is_empty() && p.id.to_string().starts_with(who))
        }) else {
            self.out
                .line(format!("* nobody called {who:?} is nearby (/nearby lists who is)"));
            return;
        };
        self.out.line(format!("* inviting {}...", peer.display_name));
        let (session, notes, peer) = (self.session.clone(), self.notes.clone(), peer.clone());
        tokio::spawn(async move {
            let note = match session.invite(peer.id, None).await {
                Ok(()) => format!("* {} accepted", peer.display_name),
                Err(e) => format!("* {e}"),
            };
            let _ = notes.send(note).await;
        });
    }

    /// Answers the oldest invitation still waiting.
    fn answer(&mut self, accept: bool) {
        self.invitations.retain(|i| !i.is_expired());
        let Some(invitation) = self.invitations.pop_front() else {
            self.out.line("* no invitation is waiting".into());
            return;
        };
        let name = invitation.display_name.clone();
        let answered = if accept {
            invitation.accept()
        } else {
            invitation.decline()
        };
        match answered {
            Ok(()) if accept => self.out.line(format!("* joining {name}...")),
            Ok(()) => self.out.line(format!("* declined {name}")),
            Err(e) => self.out.line(format!("* {name}: {e}")),
        }
    }
}

async fn join(session: &Session, ticket: &str, out: &mut Output) {
    match ticket.parse::<Ticket>() {
        Ok(ticket) => match session.connect_ticket(&ticket).await {
            Ok(()) => out.line(format!("* inviting {}...", ticket.peer.short())),
            Err(e) => out.line(format!("* {e}")),
        },
        Err(e) => out.line(format!("* {e}")),
    }
}
