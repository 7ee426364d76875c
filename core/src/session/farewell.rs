//! The goodbye said when the last [`Session`](super::Session) handle is dropped.
//!
//! Dropping the last handle ends the session's background task, which says goodbye to every peer. But when the
//! handle goes because the runtime is about to stop (`main` returning), that task never runs again: the runtime
//! cancels it. So the drop itself says goodbye, bounded in time: it runs the goodbye of every link on the
//! runtime's other threads, waits for it, and makes sure QUIC has sent the close with the goodbye code
//! before it returns, so peers see the peer leave rather than time out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::RuntimeFlavor;

use super::{actor, Link, Shared};
use crate::proto::codes;

/// How long the goodbyes may take before the connections are closed without them.
const GOODBYE_LIMIT: Duration = Duration::from_millis(400);
/// How long the closes may take to leave.
const CLOSE_LIMIT: Duration = Duration::from_millis(100);
/// How often the drop looks whether the closes have left.
const POLL: Duration = Duration::from_millis(1);

/// Makes sure the peers hear the goodbye when the last handle is dropped, waiting at most [`GOODBYE_LIMIT`] +
/// [`CLOSE_LIMIT`]: if the session's task is shutting down already, for it to finish; otherwise saying
/// goodbye to every connected peer from here.
///
/// On the thread of a current-thread runtime nothing else can run while a drop waits, so there it leaves the
/// goodbye to the session's task (which says it as long as the runtime keeps running).
pub(super) fn on_last_drop(runtime: &tokio::runtime::Handle, shared: &Shared) {
    if shared.is_shut_down() {
        return;
    }
    if let Ok(current) = tokio::runtime::Handle::try_current() {
        if current.runtime_flavor() == RuntimeFlavor::CurrentThread {
            return;
        }
    }
    let deadline = Instant::now() + GOODBYE_LIMIT + CLOSE_LIMIT;
    if !shared.is_closed() {
        say_goodbye(runtime, shared.all_links());
    }
    // The task may have begun to shut down (its events were dropped) before or while the goodbyes were said
    // here, taking links this drop did not see: let it finish.
    if shared.is_closed() {
        while !shared.is_shut_down() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

/// Says goodbye to the peers of `links` and waits until the closes have left (bounded).
fn say_goodbye(runtime: &tokio::runtime::Handle, links: Vec<Arc<Link>>) {
    if links.is_empty() {
        return;
    }
    let start = Instant::now();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    for link in &links {
        let (link, done) = (link.clone(), done.clone());
        // A runtime that is shutting down drops the task at once, and `done` with it.
        drop(runtime.spawn(async move {
            actor::goodbye(&link).await;
            drop(done);
        }));
    }
    drop(done);
    // Disconnected once every goodbye has finished (or was dropped).
    let _ = finished.recv_timeout(GOODBYE_LIMIT);
    for link in &links {
        // Does nothing to a connection the goodbye closed already.
        link.conn.close(codes::GOODBYE.into(), b"goodbye");
    }
    let deadline = Instant::now() + CLOSE_LIMIT;
    while !links.iter().all(|link| close_left(&link.conn)) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    tracing::debug!(peers = links.len(), took = ?start.elapsed(), "goodbye said on drop");
}

/// Whether the connection's end is settled: this side sent its close, or the peer closed first.
fn close_left(conn: &quinn::Connection) -> bool {
    let stats = conn.stats();
    stats.frame_tx.connection_close > 0 || stats.frame_rx.connection_close > 0
}
