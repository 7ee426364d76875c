//! Discovery records (TXT entries, port, addresses) and tickets from the network never panic the parser, and
//! what it accepts is within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multipeer::discovery::parse_record;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let port = parts.next().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
    let addrs: Vec<std::net::SocketAddr> = parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|a| a.parse().ok())
        .collect();
    let txt: Vec<(String, Option<String>)> = parts
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (line.to_owned(), None),
        })
        .collect();
    if let Ok(peer) = parse_record(&txt, port, &addrs) {
        assert!(!peer.addrs.is_empty() && peer.addrs.len() <= 8);
        assert!(peer.display_name.len() <= 63);
    }
    let _ = text.parse::<multipeer::Ticket>();
});
