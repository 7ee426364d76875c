//! Op-routed JSON over a session: every message is a JSON object with an `op` field, and a handler is registered
//! per op.
//!
//! ```no_run
//! use multipeer::{Event, Session};
//! use multipeer_examples::router::{Reply, Router, Target};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Announce {
//!     name: String,
//!     team: String,
//! }
//!
//! # async fn run(session: Session, mut events: multipeer::Events) -> Result<(), Box<dyn std::error::Error>> {
//! let mut router = Router::new(session.clone());
//! let groups = router.groups();
//! router.on("announce", move |peer, msg: Announce| {
//!     groups.add(&msg.team, peer);
//!     println!("{} is on team {}", msg.name, msg.team);
//! });
//! router.on("ping", |peer, _: serde_json::Value| Reply::new(peer, "pong", ()));
//! router.send(Target::All, "announce", serde_json::json!({"name": "alice", "team": "red"})).await?;
//! router.send(Target::group("red"), "chat", serde_json::json!({"text": "red team, go"})).await?;
//! while let Some(event) = events.next().await {
//!     if let Event::Message(message) = event {
//!         router.handle(&message).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use multipeer::{Message, PeerId, Reliability, SendJsonError, Session, To};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Who receives a routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every connected peer.
    All,
    /// One peer.
    Peer(PeerId),
    /// The members of a named group (see [`Groups`]).
    Group(String),
}

impl Target {
    /// The group called `name`.
    pub fn group(name: impl Into<String>) -> Self {
        Self::Group(name.into())
    }
}

impl From<PeerId> for Target {
    fn from(peer: PeerId) -> Self {
        Self::Peer(peer)
    }
}

/// Named groups of peers, shared by a [`Router`] and its handlers (clone it into a handler).
#[derive(Debug, Clone, Default)]
pub struct Groups(Arc<Mutex<HashMap<String, BTreeSet<PeerId>>>>);

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<PeerId>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `peer` in group `name` (created if needed).
    pub fn add(&self, name: &str, peer: PeerId) {
        self.lock().entry(name.to_owned()).or_default().insert(peer);
    }

    /// Takes `peer` out of group `name`.
    pub fn remove(&self, name: &str, peer: &PeerId) {
        if let Some(members) = self.lock().get_mut(name) {
            members.remove(peer);
        }
    }

    /// Takes `peer` out of every group (call it when the peer leaves).
    pub fn forget(&self, peer: &PeerId) {
        for members in self.lock().values_mut() {
            members.remove(peer);
        }
    }

    /// The members of group `name`, ordered by id.
    pub fn members(&self, name: &str) -> Vec<PeerId> {
        self.lock()
            .get(name)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A message a handler asks the router to send in answer.
#[derive(Debug)]
pub struct Reply {
    to: Target,
    op: String,
    body: serde_json::Result<Value>,
}

impl Reply {
    /// `{"op": op, ...body}` to `to`; `body` serializes to an object or to nothing (`()`).
    pub fn new(to: impl Into<Target>, op: &str, body: impl Serialize) -> Self {
        Self {
            to: to.into(),
            op: op.to_owned(),
            body: serde_json::to_value(body),
        }
    }
}

/// What a handler returns: nothing (`()`), one [`Reply`], an `Option<Reply>` or a `Vec<Reply>`.
#[derive(Debug, Default)]
pub struct Replies(Vec<Reply>);

impl From<()> for Replies {
    fn from((): ()) -> Self {
        Self::default()
    }
}

impl From<Reply> for Replies {
    fn from(reply: Reply) -> Self {
        Self(vec![reply])
    }
}

impl From<Option<Reply>> for Replies {
    fn from(reply: Option<Reply>) -> Self {
        Self(reply.into_iter().collect())
    }
}

impl From<Vec<Reply>> for Replies {
    fn from(replies: Vec<Reply>) -> Self {
        Self(replies)
    }
}

/// Why a message could not be routed or sent.
#[derive(Debug)]
pub enum RouteError {
    /// The message is not a JSON object with a string `op`.
    NotRouted(String),
    /// No handler is registered for this op.
    UnknownOp(String),
    /// The message's fields do not fit what the op's handler expects, or a body is not an object.
    BadBody {
        /// The op.
        op: String,
        /// What is wrong.
        error: String,
    },
    /// The session could not send it (or it could not be encoded).
    Send(SendJsonError),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRouted(why) => write!(f, "not a routed message: {why}"),
            Self::UnknownOp(op) => write!(f, "no handler for op {op:?}"),
            Self::BadBody { op, error } => write!(f, "bad {op:?} message: {error}"),
            Self::Send(e) => write!(f, "not sent: {e}"),
        }
    }
}

impl std::error::Error for RouteError {}

impl From<SendJsonError> for RouteError {
    fn from(e: SendJsonError) -> Self {
        Self::Send(e)
    }
}

type Handler = Box<dyn FnMut(PeerId, Value) -> serde_json::Result<Replies> + Send>;

/// Routes JSON messages by their `op` field to registered handlers, and sends `{op, ...}` to one peer, a named
/// group or everyone. Messages travel reliably (in order, per sender).
pub struct Router {
    session: Session,
    handlers: HashMap<String, Handler>,
    groups: Groups,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("ops", &self.handlers.keys().collect::<Vec<_>>())
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router sending over `session`, with no handlers and no groups.
    pub fn new(session: Session) -> Self {
        Self {
            session,
            handlers: HashMap::new(),
            groups: Groups::default(),
        }
    }

    /// The router's groups (a shared handle: clone it into handlers).
    pub fn groups(&self) -> Groups {
        self.groups.clone()
    }

    /// Calls `handler(sender, message)` for every message whose `op` is `op`, decoding the message as `T` (use
    /// `serde_json::Value` to take it as it is). What the handler returns is sent after it returns.
    pub fn on<T, R>(&mut self, op: &str, mut handler: impl FnMut(PeerId, T) -> R + Send + 'static) -> &mut Self
    where
        T: DeserializeOwned,
        R: Into<Replies>,
    {
        let handler = move |from, value| Ok(handler(from, serde_json::from_value(value)?).into());
        self.handlers.insert(op.to_owned(), Box::new(handler));
        self
    }

    /// Sends `{"op": op, ...body}` to `to`; `body` serializes to an object or to nothing (`()`). Returns how many
    /// peers it was sent to (an empty group is no error).
    pub async fn send(&self, to: Target, op: &str, body: impl Serialize) -> Result<usize, RouteError> {
        self.send_value(to, op, serde_json::to_value(body)).await
    }

    async fn send_value(&self, to: Target, op: &str, body: serde_json::Result<Value>) -> Result<usize, RouteError> {
        let bad = |error: String| RouteError::BadBody {
            op: op.to_owned(),
            error,
        };
        let mut message = match body.map_err(|e| bad(e.to_string()))? {
            Value::Object(fields) => fields,
            Value::Null => serde_json::Map::new(),
            other => return Err(bad(format!("the body must be an object, not {other}"))),
        };
        message.insert("op".to_owned(), Value::String(op.to_owned()));
        let (to, count) = match to {
            Target::All => (To::All, self.session.peers().len()),
            Target::Peer(peer) => (To::Peer(peer), 1),
            Target::Group(name) => {
                let members = self.groups.members(&name);
                if members.is_empty() {
                    return Ok(0);
                }
                let count = members.len();
                (To::Peers(members), count)
            }
        };
        self.session.send_json(&message, to, Reliability::Reliable).await?;
        Ok(count)
    }

    /// Hands `message` to the handler of its op, then sends the handler's replies. Returns the op.
    pub async fn handle(&mut self, message: &Message) -> Result<String, RouteError> {
        let value: Value = message.json().map_err(|e| RouteError::NotRouted(e.to_string()))?;
        let op = match value.get("op") {
            Some(Value::String(op)) => op.clone(),
            _ => return Err(RouteError::NotRouted("no string \"op\" field".to_owned())),
        };
        let handler = self
            .handlers
            .get_mut(&op)
            .ok_or_else(|| RouteError::UnknownOp(op.clone()))?;
        let replies = handler(message.peer, value).map_err(|e| RouteError::BadBody {
            op: op.clone(),
            error: e.to_string(),
        })?;
        for reply in replies.0 {
            self.send_value(reply.to, &reply.op, reply.body).await?;
        }
        Ok(op)
    }
}
