//! The tunnel example on the virtual LAN: an HTTP server on one host, reached through the tunnel from the other
//! with several connections open at once.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{example, in_namespace, line, netns};

const T: Duration = Duration::from_secs(20);
const CONNECTIONS: usize = 8;

/// The body served for `path`: large enough to take many packets.
fn body(path: &str) -> String {
    format!("{path}\n").repeat(8 * 1024)
}

/// A tiny HTTP/1.0 server: accepts `CONNECTIONS` connections, reads every request, and only then answers them
/// all, so it works only if the connections are open at the same time.
fn serve(listener: TcpListener) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + T;
    let mut requests = Vec::new();
    while requests.len() < CONNECTIONS {
        assert!(
            Instant::now() < deadline,
            "only {} connections reached the server",
            requests.len()
        );
        match listener.accept() {
            Ok((mut conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(T)).unwrap();
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    assert_eq!(conn.read(&mut byte).unwrap(), 1, "request cut short");
                    request.push(byte[0]);
                }
                let request = String::from_utf8(request).unwrap();
                let path = request.split(' ').nth(1).unwrap().to_owned();
                requests.push((conn, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("accept: {e}"),
        }
    }
    for (mut conn, path) in requests {
        let body = body(&path);
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body.as_bytes()).unwrap();
    }
}

#[test]
fn http_requests_reach_a_server_behind_another_peer() {
    let Some(lan) = netns::VirtualLan::new(2) else { return };
    let bin = example("tunnel");
    // The service on the device (host 0), reachable only from inside host 0.
    let listener = in_namespace(lan.namespace(0), || TcpListener::bind("127.0.0.1:8000").unwrap());
    let server = thread::spawn(move || serve(listener));
    let mut device = lan.spawn(
        0,
        &bin,
        &["--expose", "127.0.0.1:8000", "--name", "device", "--service", "tuntest"],
    );
    let mut laptop = lan.spawn(
        1,
        &bin,
        &["--listen", "127.0.0.1:9000", "--name", "laptop", "--service", "tuntest"],
    );
    line(&mut laptop, T, "listening on 127.0.0.1:9000");
    line(&mut laptop, T, "peer: device");
    line(&mut device, T, "peer: laptop");

    // Connect from inside host 1, then fetch over every connection at once.
    let conns = in_namespace(lan.namespace(1), || {
        (0..CONNECTIONS)
            .map(|_| TcpStream::connect("127.0.0.1:9000").unwrap())
            .collect::<Vec<_>>()
    });
    let fetches: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            thread::spawn(move || {
                conn.set_read_timeout(Some(T)).unwrap();
                write!(conn, "GET /item/{i} HTTP/1.0\r\nHost: device\r\n\r\n").unwrap();
                let mut response = String::new();
                conn.read_to_string(&mut response).unwrap();
                response
            })
        })
        .collect();
    for (i, fetch) in fetches.into_iter().enumerate() {
        let response = fetch.join().unwrap();
        let (head, got) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no response {i}: {response:?}"));
        assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
        assert!(got == body(&format!("/item/{i}")), "body {i}: {} bytes", got.len());
    }
    server.join().unwrap();

    // Each connection had streams of its own.
    let mut names: Vec<String> = (0..CONNECTIONS)
        .map(|_| {
            line(&mut device, T, "closed tcp/")
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CONNECTIONS, "{names:?}");
}
