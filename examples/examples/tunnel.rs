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
//! Every TCP connection travels on a two-way stream of its own (`Session::duplex_stream`), so a slow or large
//! transfer never holds up the others. The exposing peer connects only to the address it was given.
#![allow(clippy::print_stdout)]

use std::io;

use multipeer::{DuplexStream, Event, Peer, PeerId, Session, SessionConfig};
use multipeer_examples::{init_logging, Args};
use tokio::net::{TcpListener, TcpStream};

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
    // SIGINT / SIGTERM leave cleanly: peers see us go at once.
    let stop = multipeer::shutdown_signal()?;
    tokio::pin!(stop);
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
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = async { listener.as_ref()?.accept().await.ok() }, if listener.is_some() => {
                let Some((tcp, _)) = accepted else { continue };
                let wanted = |p: &Peer| to.as_ref().is_none_or(|name| *name == p.display_name);
                let Some(peer) = session.peers().into_iter().find(wanted) else {
                    println!("refused a connection: no peer yet");
                    continue;
                };
                next_id += 1;
                let name = format!("tcp/{next_id}");
                tokio::spawn(report(name.clone(), forward(session.clone(), peer.id, name, tcp)));
            }
            event = events.next() => match event {
                Some(Event::PeerAdded(peer)) => println!("peer: {}", peer.display_name),
                Some(Event::PeerRemoved { peer, reason }) => println!("left: {} ({reason})", peer.display_name),
                // The device: a new connection to make.
                Some(Event::DuplexStream(stream)) => match &expose {
                    Some(target) => {
                        let name = stream.name().to_owned();
                        tokio::spawn(report(name, serve(stream, target.clone())));
                    }
                    None => drop(stream), // not exposing anything: refuse
                },
                Some(_) => {}
                None => break,
            },
        }
    }
    session.shutdown().await?;
    Ok(())
}

/// The listening side of one connection: a two-way stream to the device.
async fn forward(session: Session, peer: PeerId, name: String, mut tcp: TcpStream) -> io::Result<(u64, u64)> {
    let mut stream = session.duplex_stream(&name, peer).await.map_err(io::Error::other)?;
    tokio::io::copy_bidirectional(&mut tcp, &mut stream).await
}

/// The device's side of one connection: connect to the exposed service and copy both ways.
async fn serve(mut stream: DuplexStream, target: String) -> io::Result<(u64, u64)> {
    // On failure the stream is dropped unfinished: the other side sees a reset and closes its connection.
    let mut tcp = TcpStream::connect(&target).await?;
    tokio::io::copy_bidirectional(&mut tcp, &mut stream).await
}

async fn report(name: String, connection: impl std::future::Future<Output = io::Result<(u64, u64)>>) {
    match connection.await {
        Ok((sent, received)) => println!("closed {name}: {sent} bytes sent, {received} received"),
        Err(e) => println!("failed {name}: {e}"),
    }
}
