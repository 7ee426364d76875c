//! Why is nobody here? Starts a session, listens for a few seconds, and prints what it saw: interfaces,
//! multicast joins, what was advertised, which services of the type were seen (and why any was ignored), and
//! the state of every connection attempt.
//!
//! ```text
//! cargo run --release -p multipeer-examples --example doctor -- [--service chat] [--seconds 5]
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use multipeer::{Session, SessionConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let service = arg("--service").unwrap_or_else(|| "chat".into());
    let seconds: u64 = arg("--seconds").map_or(Ok(5), |s| s.parse())?;
    let config = SessionConfig::builder(service.clone(), "doctor").build()?;
    let (session, _events) = Session::builder(config).start_with_events().await?;
    let stop = multipeer::shutdown_signal()?;
    println!("listening for _{service}._udp.local. for {seconds} s...");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        // Interrupted: leave cleanly (withdrawing our advertisement), then report what was seen so far.
        _ = stop => {}
    }
    println!("{}", session.diagnostics().await?);
    println!("ticket: {}", session.ticket());
    session.shutdown().await?;
    Ok(())
}
