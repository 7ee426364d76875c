//! Measures the two ways of carrying small reliable messages over raw quinn on loopback: one long-lived
//! stream with length-prefixed frames, or one new stream per message. multipeer uses the faster.
//!
//! ```text
//! cargo run --release -p multipeer-examples --example framing
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const MESSAGES: usize = 20_000;
const SIZE: usize = 64;

fn endpoints() -> (quinn::Endpoint, quinn::Endpoint) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    let server = quinn::ServerConfig::with_single_cert(
        vec![der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let server = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::with_root_certificates(Arc::new(roots)).unwrap());
    (server, client)
}

async fn one_stream(client: &quinn::Connection, server: &quinn::Connection) -> f64 {
    let mut send = client.open_uni().await.unwrap();
    let start = Instant::now();
    let reader = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut recv = server.accept_uni().await.unwrap();
            let mut frame = vec![0u8; 4 + SIZE];
            for _ in 0..MESSAGES {
                recv.read_exact(&mut frame).await.unwrap();
            }
        })
    };
    let mut frame = (SIZE as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[7u8; SIZE]);
    for _ in 0..MESSAGES {
        send.write_all(&frame).await.unwrap();
    }
    reader.await.unwrap();
    start.elapsed().as_secs_f64()
}

async fn stream_per_message(client: &quinn::Connection, server: &quinn::Connection) -> f64 {
    let start = Instant::now();
    let reader = {
        let server = server.clone();
        tokio::spawn(async move {
            for _ in 0..MESSAGES {
                let mut recv = server.accept_uni().await.unwrap();
                recv.read_to_end(SIZE).await.unwrap();
            }
        })
    };
    for _ in 0..MESSAGES {
        let mut send = client.open_uni().await.unwrap();
        send.write_all(&[7u8; SIZE]).await.unwrap();
        send.finish().unwrap();
    }
    reader.await.unwrap();
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let (server, client) = endpoints();
    let addr = server.local_addr().unwrap();
    let accept = tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() });
    let client_conn = client.connect(addr, "localhost").unwrap().await.unwrap();
    let server_conn = accept.await.unwrap();
    for round in 1..=3 {
        let a = one_stream(&client_conn, &server_conn).await;
        let b = stream_per_message(&client_conn, &server_conn).await;
        println!(
            "round {round}: {MESSAGES} x {SIZE} B  one framed stream {:>9.0} msg/s   stream per message {:>9.0} msg/s   ratio {:.1}x",
            MESSAGES as f64 / a,
            MESSAGES as f64 / b,
            b / a
        );
    }
}
