//! Send files to a nearby device, with a progress bar; the receiver checks each file's SHA-256 before it keeps it.
//!
//! ```text
//! cargo run --release -p multipeer-examples --example send_file -- receive [--dir DIR] [--count N]
//! cargo run --release -p multipeer-examples --example send_file -- send FILE... [--to NAME]
//! ```
//!
//! The receiver saves into `--dir` (default `./received`) and exits after `--count` files (default: never).
//! The sender waits for a receiver (the first peer, or the one called `--to NAME`), sends every FILE to it at
//! once and exits when all are delivered. A transfer cut by a lost connection resumes when the peers find each
//! other again. `--service NAME` picks another service type (default `send-file`), `--name` the display name.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use multipeer::{Event, ResourceTransfer, Session, SessionConfig, SessionConfigBuilder, StopSignal};
use multipeer_examples::{init_logging, Args};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A bar that follows `transfer` until it finishes (drawn on stderr, hidden when that is not a terminal).
fn follow(bars: &MultiProgress, transfer: &ResourceTransfer) {
    let style = ProgressStyle::with_template("{msg:20!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = bars.add(ProgressBar::new(transfer.size()).with_style(style));
    bar.set_message(transfer.name().to_owned());
    let mut transfer = transfer.clone();
    tokio::spawn(async move {
        while let Some(progress) = transfer.progress_changed().await {
            bar.set_position(progress.transferred);
            // At most ten redraws a second, whatever the rate.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bar.finish_and_clear();
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging();
    let args = Args::from_env();
    let service = args.get("--service").unwrap_or_else(|| "send-file".into());
    let name = args
        .get("--name")
        .unwrap_or_else(|| format!("send-file-{}", std::process::id()));
    // SIGINT / SIGTERM leave cleanly (transfers in progress are cancelled): peers see us go at once.
    let stop = multipeer::shutdown_signal()?;
    let bars = MultiProgress::new();
    match std::env::args().nth(1).as_deref() {
        Some("receive") => receive(&args, SessionConfig::builder(service, name), &bars, stop).await,
        Some("send") => send(&args, SessionConfig::builder(service, name), &bars, stop).await,
        _ => Err("usage: send_file receive [--dir DIR] [--count N] | send FILE... [--to NAME]".into()),
    }
}

/// Receives `--count` files (or until stopped) into `--dir`.
async fn receive(
    args: &Args,
    config: SessionConfigBuilder,
    bars: &MultiProgress,
    stop: impl Future<Output = StopSignal>,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio::pin!(stop);
    let dir = PathBuf::from(args.get("--dir").unwrap_or_else(|| "received".into()));
    let count: usize = args.parse_or("--count", usize::MAX)?;
    let config = config.resource_directory(&dir).build()?;
    let (session, mut events) = Session::builder(config).start_with_events().await?;
    println!("receiving into {}", dir.display());
    let mut done = 0;
    while done < count {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut stop => return Ok(session.shutdown().await?),
        };
        match event {
            Some(Event::ResourceStarted(transfer)) => follow(bars, &transfer),
            Some(Event::ResourceFinished { transfer, result }) => {
                done += 1;
                match (result, transfer.outcome()) {
                    (Ok(path), Some(Ok(delivered))) => println!(
                        "received {} -> {} ({} bytes, sha256 {})",
                        transfer.name(),
                        path.display(),
                        delivered.size,
                        hex(&delivered.sha256)
                    ),
                    (Err(e), _) | (_, Some(Err(e))) => println!("failed {}: {e}", transfer.name()),
                    (Ok(path), None) => println!("received {} -> {}", transfer.name(), path.display()),
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    // Let the senders hear every verdict and leave first (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !session.peers().is_empty() {
            if events.next().await.is_none() {
                break;
            }
        }
    })
    .await;
    session.shutdown().await?;
    Ok(())
}

/// Sends the FILE arguments to the first receiver found (or the one called `--to`).
async fn send(
    args: &Args,
    config: SessionConfigBuilder,
    bars: &MultiProgress,
    stop: impl Future<Output = StopSignal>,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio::pin!(stop);
    // FILE arguments: everything after `send` that is neither an option nor its value.
    let argv: Vec<String> = std::env::args().skip(2).collect();
    let mut files = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        if argv[i].starts_with("--") {
            i += 2;
        } else {
            files.push(PathBuf::from(&argv[i]));
            i += 1;
        }
    }
    if files.is_empty() {
        return Err("nothing to send: send FILE... [--to NAME]".into());
    }
    let to = args.get("--to");
    let (session, mut events) = Session::builder(config.build()?).start_with_events().await?;
    println!("looking for a receiver");
    let peer = loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut stop => return Ok(session.shutdown().await?),
        };
        match event {
            Some(Event::PeerAdded(peer)) if to.as_ref().is_none_or(|n| *n == peer.display_name) => break peer,
            Some(_) => {}
            None => return Err("session ended".into()),
        }
    };
    let mut transfers = Vec::new();
    for file in files {
        let shown = file
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let transfer = session.send_resource(&file, &shown, peer.id).await?;
        follow(bars, &transfer);
        transfers.push(transfer);
    }
    // Keep the event queue drained while the transfers run.
    let drain = tokio::spawn(async move { while events.next().await.is_some() {} });
    let mut failed = 0;
    for transfer in transfers {
        let finished = tokio::select! {
            finished = transfer.finished() => finished,
            _ = &mut stop => break,
        };
        match finished {
            Ok(d) => println!(
                "sent {} to {} ({} bytes, sha256 {})",
                transfer.name(),
                peer.display_name,
                d.size,
                hex(&d.sha256)
            ),
            Err(e) => {
                failed += 1;
                println!("failed {}: {e}", transfer.name());
            }
        }
    }
    session.shutdown().await?;
    drain.abort();
    if failed > 0 {
        return Err(format!("{failed} transfer(s) failed").into());
    }
    Ok(())
}
