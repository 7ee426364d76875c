//! Local multiplayer game: race the other players to the coin. Every player's position travels 30 times a second
//! (`--hz`, 30–60) as an unreliable datagram (a lost one is replaced by the next); game events (join, start,
//! score, game over) travel reliably. The player with the smallest id keeps the score.
//!
//! ```text
//! cargo run -p multipeer-examples --example game -- --name NAME [--players 2] [--target 5] [--hz 30]
//! cargo run -p multipeer-examples --example game -- --name bot --headless --seed 7 [--rounds 1]  # a bot
//! ```
//!
//! Arrow keys or WASD move, q quits. A round starts once `--players` players are in; the session then stops
//! looking for peers so nobody joins mid-round, and looks again once someone has `--target` coins.
//! `--headless` plays by itself (moves from `--seed`) and prints what happens, one line per event.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crossterm::event::{self as term, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use multipeer::{Event, Message, PeerId, Reliability, Session, SessionConfig, To};
use multipeer_examples::{init_logging, Args};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const WIDTH: i32 = 24;
const HEIGHT: i32 = 12;
/// Time between rounds, to see the result (and let new players join).
const LOBBY_PAUSE: Duration = Duration::from_secs(2);

type Cell = (i32, i32);

/// Game events, sent reliably.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum GameEvent {
    /// A player is here, with its name.
    Join { name: String },
    /// The score keeper starts a round.
    Start { round: u32, coin: Cell },
    /// The score keeper saw `player` take the coin; the next one is at `coin`.
    Score { player: PeerId, coin: Cell },
    /// Someone reached the target: the final scores (id, name, score), as the scorekeeper has them.
    GameOver {
        round: u32,
        scores: Vec<(PeerId, String, u32)>,
    },
}

/// Where a player is: sent as a datagram on every tick.
#[derive(Serialize, Deserialize)]
struct Position {
    x: i32,
    y: i32,
}

struct Player {
    name: String,
    at: Cell,
    score: u32,
    joined: bool,
}

struct Game {
    session: Session,
    me: PeerId,
    players: BTreeMap<PeerId, Player>,
    wanted: usize,
    target: u32,
    round: u32,
    playing: bool,
    coin: Cell,
    lobby_since: Instant,
    rounds_over: u32,
    datagrams: u64,
    rng: SmallRng,
    headless: bool,
    status: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::from_env();
    let name = args
        .get("--name")
        .unwrap_or_else(|| format!("player-{}", std::process::id() % 1000));
    let service = args.get("--service").unwrap_or_else(|| "coin-race".into());
    let hz: u32 = args.parse_or("--hz", 30)?;
    let rounds: u32 = args.parse_or("--rounds", u32::MAX)?;
    let headless = args.flag("--headless");
    let config = SessionConfig::builder(service, name.clone()).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    // SIGINT / SIGTERM leave cleanly: the other players see us go at once.
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
    let me = session.local_peer().id;
    let mut game = Game {
        me,
        players: BTreeMap::from([(me, Player::new(name, true))]),
        wanted: args.parse_or("--players", 2)?,
        target: args.parse_or("--target", 5)?,
        round: 0,
        playing: false,
        coin: (0, 0),
        lobby_since: Instant::now(),
        rounds_over: 0,
        datagrams: 0,
        rng: SmallRng::seed_from_u64(args.parse_or("--seed", rand::random())?),
        headless,
        status: "waiting for players".into(),
        session,
    };
    let _screen = (!headless).then(Screen::enter).transpose()?;
    let (keys_tx, mut keys) = mpsc::channel(16);
    if !headless {
        spawn_keys(keys_tx.clone());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1) / hz.clamp(1, 60));
    let mut ticks = 0u64;
    while game.rounds_over < rounds {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                ticks += 1;
                if game.playing {
                    if headless && ticks % 2 == 0 {
                        game.bot_step();
                    }
                    game.tick().await?;
                } else if game.keeps_score() && game.ready() && game.lobby_since.elapsed() >= LOBBY_PAUSE {
                    let round = game.round + 1;
                    let coin = game.random_cell();
                    game.broadcast(GameEvent::Start { round, coin }).await?;
                }
                if !headless {
                    game.draw()?;
                }
            }
            key = keys.recv() => match key.flatten() {
                Some((dx, dy)) => game.step(dx, dy),
                None => break, // q
            },
            event = events.next() => match event {
                Some(Event::PeerAdded(peer)) => {
                    game.players.insert(peer.id, Player::new(peer.display_name, false));
                    let join = GameEvent::Join { name: game.players[&me].name.clone() };
                    game.session.send_json(&join, To::Peer(peer.id), Reliability::Reliable).await?;
                }
                Some(Event::PeerRemoved { peer, .. }) => {
                    game.players.remove(&peer.id);
                    if game.playing {
                        game.playing = false;
                        game.lobby_since = Instant::now();
                        game.say(format!("round {} abandoned: {} left", game.round, peer.display_name));
                        game.session.start_looking_for_peers().await?;
                    }
                }
                Some(Event::Message(message)) => game.receive(message).await?,
                Some(_) => {}
                None => break,
            },
        }
    }
    game.session.shutdown().await?;
    Ok(())
}

impl Player {
    fn new(name: String, joined: bool) -> Self {
        Self {
            name,
            at: (0, 0),
            score: 0,
            joined,
        }
    }
}

impl Game {
    /// The player with the smallest id keeps the score (every player agrees who that is).
    fn keeps_score(&self) -> bool {
        self.players.keys().next() == Some(&self.me)
    }

    fn ready(&self) -> bool {
        self.players.len() >= self.wanted && self.players.values().all(|p| p.joined)
    }

    fn random_cell(&mut self) -> Cell {
        (self.rng.random_range(0..WIDTH), self.rng.random_range(0..HEIGHT))
    }

    fn say(&mut self, line: String) {
        if self.headless {
            println!("{line}");
        }
        self.status = line;
    }

    fn step(&mut self, dx: i32, dy: i32) {
        if let Some(me) = self.players.get_mut(&self.me) {
            me.at = ((me.at.0 + dx).clamp(0, WIDTH - 1), (me.at.1 + dy).clamp(0, HEIGHT - 1));
        }
    }

    /// The bot mostly heads for the coin, and sometimes wanders.
    fn bot_step(&mut self) {
        let at = self.players[&self.me].at;
        let (dx, dy) = ((self.coin.0 - at.0).signum(), (self.coin.1 - at.1).signum());
        let step = match self.rng.random_range(0..10) {
            0 => (self.rng.random_range(-1..=1), 0),
            1 => (0, self.rng.random_range(-1..=1)),
            _ if dx != 0 && (dy == 0 || self.rng.random_bool(0.5)) => (dx, 0),
            _ => (0, dy),
        };
        self.step(step.0, step.1);
    }

    /// Sends our position to everyone; the score keeper also checks who is on the coin.
    async fn tick(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let (x, y) = self.players[&self.me].at;
        // A lost or refused datagram does not matter: the next tick sends a newer position.
        let _ = self
            .session
            .send_json(&Position { x, y }, To::All, Reliability::Unreliable)
            .await;
        if !self.keeps_score() {
            return Ok(());
        }
        if let Some(player) = self.players.iter().find(|(_, p)| p.at == self.coin).map(|(id, _)| *id) {
            let coin = self.random_cell();
            self.broadcast(GameEvent::Score { player, coin }).await?;
            if self.players.get(&player).is_some_and(|p| p.score >= self.target) {
                let scores = self
                    .players
                    .iter()
                    .map(|(id, p)| (*id, p.name.clone(), p.score))
                    .collect();
                let round = self.round;
                self.broadcast(GameEvent::GameOver { round, scores }).await?;
            }
        }
        Ok(())
    }

    /// Sends a game event to everyone reliably, and applies it here.
    async fn broadcast(&mut self, event: GameEvent) -> Result<(), Box<dyn std::error::Error>> {
        self.session.send_json(&event, To::All, Reliability::Reliable).await?;
        self.apply(self.me, event).await
    }

    async fn receive(&mut self, message: Message) -> Result<(), Box<dyn std::error::Error>> {
        match message.reliability {
            Reliability::Unreliable => {
                let position: Position = message.json()?;
                if let Some(player) = self.players.get_mut(&message.peer) {
                    player.at = (position.x, position.y);
                    self.datagrams += 1;
                }
                Ok(())
            }
            Reliability::Reliable => self.apply(message.peer, message.json()?).await,
        }
    }

    async fn apply(&mut self, from: PeerId, event: GameEvent) -> Result<(), Box<dyn std::error::Error>> {
        match event {
            GameEvent::Join { name } => {
                if let Some(player) = self.players.get_mut(&from) {
                    player.joined = true;
                    self.say(format!("join: {name}"));
                }
            }
            GameEvent::Start { round, coin } => {
                self.session.stop_looking_for_peers().await?;
                (self.round, self.coin, self.playing, self.datagrams) = (round, coin, true, 0);
                for (i, player) in self.players.values_mut().enumerate() {
                    let x = i32::try_from(i).unwrap_or(0) * 5 % WIDTH;
                    (player.at, player.score) = ((x, 0), 0);
                }
                self.say(format!(
                    "round {round} started: {}; not looking for peers",
                    self.names()
                ));
            }
            GameEvent::Score { player, coin } => {
                self.coin = coin;
                if let Some(p) = self.players.get_mut(&player) {
                    p.score += 1;
                    let line = format!("score: {} has {}", p.name, p.score);
                    self.say(line);
                }
            }
            GameEvent::GameOver { round, scores } => {
                for (id, _, score) in &scores {
                    if let Some(player) = self.players.get_mut(id) {
                        player.score = *score;
                    }
                }
                (self.playing, self.lobby_since) = (false, Instant::now());
                self.rounds_over += 1;
                self.session.start_looking_for_peers().await?;
                self.say(format!("datagrams: round={round} received={}", self.datagrams));
                // The scorekeeper's list, so every player prints the same result even if someone left meanwhile.
                let mut finals: Vec<String> = scores
                    .iter()
                    .map(|(_, name, score)| format!("{name}={score}"))
                    .collect();
                finals.sort();
                self.say(format!("final: round={round} {}", finals.join(" ")));
                self.say(format!("round {round} over; looking for peers again"));
            }
        }
        Ok(())
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.players.values().map(|p| p.name.as_str()).collect();
        names.join(", ")
    }

    /// Draws the field: players by initial (you in upper case), the coin as `$`.
    fn draw(&self) -> std::io::Result<()> {
        let mut screen = String::new();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let player = self.players.iter().find(|(_, p)| p.at == (x, y));
                screen.push(match player {
                    Some((id, p)) if *id == self.me => p.name.chars().next().unwrap_or('@').to_ascii_uppercase(),
                    Some((_, p)) => p.name.chars().next().unwrap_or('o').to_ascii_lowercase(),
                    None if self.playing && self.coin == (x, y) => '$',
                    None => '.',
                });
            }
            screen.push_str("\r\n");
        }
        let scores: Vec<String> = self
            .players
            .values()
            .map(|p| format!("{} {}", p.name, p.score))
            .collect();
        screen.push_str(&format!(
            "\r\n{}\r\n{}\r\n(arrows/WASD move, q quits)",
            scores.join("   "),
            self.status
        ));
        let mut out = std::io::stdout().lock();
        queue!(
            out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All),
            crossterm::style::Print(screen)
        )?;
        out.flush()
    }
}

/// The terminal in raw mode on the alternate screen, restored on drop.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(Self)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

/// Reads keys on a thread of its own: a step for each move, `None` when the player quits.
fn spawn_keys(keys: mpsc::Sender<Option<Cell>>) {
    std::thread::spawn(move || loop {
        let key = match term::read() {
            Ok(term::Event::Key(key)) => key,
            Ok(_) => continue,
            Err(_) => break,
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let step = match key.code {
            KeyCode::Left | KeyCode::Char('a') => Some((-1, 0)),
            KeyCode::Right | KeyCode::Char('d') => Some((1, 0)),
            KeyCode::Up | KeyCode::Char('w') => Some((0, -1)),
            KeyCode::Down | KeyCode::Char('s') => Some((0, 1)),
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => None,
            KeyCode::Char('q') | KeyCode::Esc => None,
            _ => continue,
        };
        if keys.blocking_send(step).is_err() || step.is_none() {
            break;
        }
    });
}
