//! Tunnel to an edge device: forward a local TCP port over the session to a TCP service on another peer (say,
//! the HTTP API of a device behind your router).
//!
//! ```text
//! # on the device: let peers reach its service at 127.0.0.1:8000
//! cargo run -p multipeer-examples --example tunnel -- --expose 127.0.0.1:8000 [--name NAME] [--service tunnel]
//! # on your computer: connections to 127.0.0.1:9000 reach the device's service
//! cargo run -p multipeer-examples --example tunnel -- --listen 127.0.0.1:9000 [--to NAME] [--service tunnel]
//! ```
//!
//! Every TCP connection travels on streams of its own, so a slow or large transfer never holds up the others.
//! Session streams are one-way, so a connection uses two with the same name (`tcp/N`): one out, one back. The
//! exposing peer connects only to the address it was given.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use multipeer::{Event, IncomingStream, OutgoingStream, Peer, PeerId, Session, SessionConfig};
use multipeer_examples::{init_logging, Args};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long the listening side waits for the device to answer a new connection.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections waiting for their stream back, by stream name.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<IncomingStream>>>>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::from_env();
    let service = args.get("--service").unwrap_or_else(|| "tunnel".into());
    let name = args
        .get("--name")
        .unwrap_or_else(|| format!("tunnel-{}", std::process::id()));
    let config = SessionConfig::builder(service, name).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    let expose = args.get("--expose");
    let listener = match args.get("--listen") {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None if expose.is_some() => None,
        None => return Err("give --expose ADDR (on the device) or --listen ADDR (where you connect)".into()),
    };
    if let Some(listener) = &listener {
        println!("listening on {}", listener.local_addr()?);
    }
    let to = args.get("--to");
    let pending = Pending::default();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = async { listener.as_ref()?.accept().await.ok() }, if listener.is_some() => {
                let Some((tcp, _)) = accepted else { continue };
                let wanted = |p: &Peer| to.as_ref().is_none_or(|name| *name == p.display_name);
                let Some(peer) = session.peers().into_iter().find(wanted) else {
                    println!("refused a connection: no peer yet");
                    continue;
                };
                next_id += 1;
                let name = format!("tcp/{next_id}");
                let (back_tx, back) = oneshot::channel();
                pending.lock().unwrap_or_else(PoisonError::into_inner).insert(name.clone(), back_tx);
                tokio::spawn(report(name.clone(), forward(session.clone(), peer.id, name, tcp, back, pending.clone())));
            }
            event = events.next() => match event {
                Some(Event::PeerAdded(peer)) => println!("peer: {}", peer.display_name),
                Some(Event::PeerRemoved { peer, reason }) => println!("left: {} ({reason})", peer.display_name),
                Some(Event::Stream(stream)) => match (&expose, &listener) {
                    // The device: a new connection to make.
                    (Some(target), _) => {
                        let name = stream.name().to_owned();
                        tokio::spawn(report(name, serve(session.clone(), stream, target.clone())));
                    }
                    // The listening side: the way back for a connection it opened.
                    (None, Some(_)) => {
                        let back = pending.lock().unwrap_or_else(PoisonError::into_inner).remove(stream.name());
                        if let Some(back) = back {
                            let _ = back.send(stream);
                        }
                    }
                    (None, None) => {}
                },
                Some(_) => {}
                None => break,
            },
        }
    }
    Ok(())
}

/// The listening side of one connection: a stream out to the device, then its stream back.
async fn forward(
    session: Session,
    peer: PeerId,
    name: String,
    tcp: TcpStream,
    back: oneshot::Receiver<IncomingStream>,
    pending: Pending,
) -> io::Result<(u64, u64)> {
    let out = session.stream(peer, &name).await.map_err(io::Error::other)?;
    let back = tokio::time::timeout(OPEN_TIMEOUT, back).await;
    pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
    let back = back
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the device did not answer"))?
        .map_err(|_| io::Error::other("the session ended"))?;
    pipe(tcp, back, out).await
}

/// The device's side of one connection: connect to the exposed service, then open the stream back.
async fn serve(session: Session, from_peer: IncomingStream, target: String) -> io::Result<(u64, u64)> {
    let back = session
        .stream(from_peer.peer(), from_peer.name())
        .await
        .map_err(io::Error::other)?;
    match TcpStream::connect(&target).await {
        Ok(tcp) => pipe(tcp, from_peer, back).await,
        Err(e) => {
            back.cancel(); // the other side closes its connection
            Err(e)
        }
    }
}

/// Copies both ways until both directions have ended; returns the bytes sent to and received from the peer.
async fn pipe(mut tcp: TcpStream, from_peer: IncomingStream, to_peer: OutgoingStream) -> io::Result<(u64, u64)> {
    let mut peer = tokio::io::join(from_peer, to_peer);
    tokio::io::copy_bidirectional(&mut tcp, &mut peer).await
}

async fn report(name: String, connection: impl std::future::Future<Output = io::Result<(u64, u64)>>) {
    match connection.await {
        Ok((sent, received)) => println!("closed {name}: {sent} bytes sent, {received} received"),
        Err(e) => println!("failed {name}: {e}"),
    }
}
