//! A Python peer (the installed `multipeer` wheel) and the Rust chat example on the virtual LAN with mDNS: they
//! find each other, exchange lines both ways, and the Python peer's goodbye is seen at once. Run by the test
//! command after it built and installed the wheel (it sets `MULTIPEER_PYTHON`); ignored otherwise.
#![allow(clippy::unwrap_used)]

#[path = "../../core/tests/common/netns.rs"]
#[allow(dead_code, unreachable_pub)]
mod netns;

use std::path::PathBuf;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn chat_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("chat")
}

fn line_starting(peer: &mut netns::PeerProcess, prefix: &str) -> String {
    let wanted = prefix.to_owned();
    peer.expect(T, prefix, move |v| {
        let line = v["line"].as_str()?;
        line.starts_with(&wanted).then(|| line.to_owned())
    })
}

#[test]
#[ignore = "needs the installed Python package: run by the test command"]
fn a_python_peer_and_a_rust_peer_chat_over_mdns_and_the_python_goodbye_is_seen_at_once() {
    let python = std::env::var("MULTIPEER_PYTHON").expect("MULTIPEER_PYTHON: the Python with multipeer installed");
    let Some(lan) = netns::VirtualLan::new(2) else { return };
    let chat = chat_binary();
    assert!(chat.exists(), "build the chat example first: {}", chat.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../python/lan/peer.py");
    let mut rust = lan.spawn(0, chat.to_str().unwrap(), &["--name", "ferris", "--service", "pylan"]);
    let mut py = lan.spawn(1, &python, &[script, "monty", "pylan"]);
    assert_eq!(line_starting(&mut rust, "* joined: "), "* joined: monty");
    assert_eq!(line_starting(&mut py, "* joined: "), "* joined: ferris");
    rust.send_line("hello from rust");
    assert_eq!(line_starting(&mut py, "<ferris>"), "<ferris> hello from rust");
    py.send_line("hello from python");
    assert_eq!(line_starting(&mut rust, "<monty>"), "<monty> hello from python");
    let quit = Instant::now();
    py.send_line("/quit");
    assert_eq!(line_starting(&mut rust, "* left: monty"), "* left: monty (left)");
    let seen_after = quit.elapsed();
    eprintln!("the Python peer's goodbye was seen {seen_after:?} after /quit");
    assert!(
        seen_after < Duration::from_secs(1),
        "seen after {seen_after:?}, not at once"
    );
}
