//! The baseline: the same traffic over raw quinn (the library's crypto provider), in the same process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One endpoint's TLS material: a self-signed Ed25519 certificate, as the library uses.
struct Tls {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Tls {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Self {
            der: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(any(feature = "ring", not(feature = "aws-lc-rs")))]
    return Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    return Arc::new(rustls::crypto::aws_lc_rs::default_provider());
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window((4u32 * 1024 * 1024).into());
    transport.receive_window((16u32 * 1024 * 1024).into());
    transport.send_window(16 * 1024 * 1024);
    Arc::new(transport)
}

/// A server endpoint; with `client` it requires that client's certificate (mutual TLS).
fn server(tls: &Tls, client: Option<&Tls>) -> quinn::Endpoint {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap();
    let builder = match client {
        Some(client) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(client.der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server_tls = builder
        .with_single_cert(vec![tls.der.clone()], PrivateKeyDer::Pkcs8(tls.key.clone_key()))
        .unwrap();
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).unwrap(),
    ));
    server_config.transport_config(transport());
    quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A client endpoint trusting `server`'s certificate; with `own` it presents that certificate (mutual TLS).
fn client(server: &Tls, own: Option<&Tls>) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let client_tls = match own {
        Some(own) => builder
            .with_client_auth_cert(vec![own.der.clone()], PrivateKeyDer::Pkcs8(own.key.clone_key()))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let mut client_config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).unwrap(),
    ));
    client_config.transport_config(transport());
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config);
    client
}

/// Connects `client` to `server`; both sides' connections once both handshakes completed.
async fn connect(client: &quinn::Endpoint, server: &quinn::Endpoint) -> (quinn::Connection, quinn::Connection) {
    let addr = server.local_addr().unwrap();
    let accept = {
        let server = server.clone();
        tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() })
    };
    let c = client.connect(addr, "localhost").unwrap().await.unwrap();
    let s = accept.await.unwrap();
    (c, s)
}

async fn pair() -> (quinn::Endpoint, quinn::Connection, quinn::Endpoint, quinn::Connection) {
    let (server_tls, client_tls) = (Tls::new(), Tls::new());
    let server = server(&server_tls, Some(&client_tls));
    let client = client(&server_tls, Some(&client_tls));
    let (c, s) = connect(&client, &server).await;
    (client, c, server, s)
}

/// Milliseconds of handshakes between endpoints that exist already (configs built, sockets bound), with or
/// without client authentication: from `connect` until both sides have the connection. One sample per
/// handshake, each on fresh endpoints.
pub(crate) async fn handshake(mutual: bool) -> f64 {
    let (server_tls, client_tls) = (Tls::new(), Tls::new());
    let server = server(&server_tls, mutual.then_some(&client_tls));
    let client = client(&server_tls, mutual.then_some(&client_tls));
    let started = Instant::now();
    let (c, _s) = connect(&client, &server).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    c.close(0u32.into(), b"");
    client.wait_idle().await;
    ms
}

/// Milliseconds from nothing to a mutual-TLS connection: key pairs, certificates, configs, endpoints and the
/// handshake. Run it first in a fresh process to measure a first connection there.
pub(crate) async fn first_connection() -> f64 {
    let started = Instant::now();
    let (_ce, c, _se, _s) = pair().await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    c.close(0u32.into(), b"");
    ms
}

/// Echo round trips (µs): length-prefixed frames on one stream each way, or datagrams.
pub(crate) async fn rtt(size: usize, reliable: bool, n: usize) -> Vec<f64> {
    let (_ce, c, _se, s) = pair().await;
    let payload = vec![7u8; size];
    let mut samples = Vec::with_capacity(n);
    if reliable {
        let mut c_send = c.open_uni().await.unwrap();
        c_send.write_all(&[0]).await.unwrap();
        let echo = tokio::spawn(async move {
            let mut recv = s.accept_uni().await.unwrap();
            let mut send = s.open_uni().await.unwrap();
            let mut kind = [0u8; 1];
            recv.read_exact(&mut kind).await.unwrap();
            send.write_all(&[0]).await.unwrap();
            let mut buf = vec![0u8; 5 + size];
            while recv.read_exact(&mut buf).await.is_ok() {
                send.write_all(&buf).await.unwrap();
            }
        });
        let mut frame = vec![2u8];
        frame.extend_from_slice(&(size as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let mut c_recv = None;
        let mut buf = vec![0u8; 5 + size];
        for _ in 0..n {
            let t = Instant::now();
            c_send.write_all(&frame).await.unwrap();
            if c_recv.is_none() {
                let mut r = c.accept_uni().await.unwrap();
                let mut kind = [0u8; 1];
                r.read_exact(&mut kind).await.unwrap();
                c_recv = Some(r);
            }
            c_recv.as_mut().unwrap().read_exact(&mut buf).await.unwrap();
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        echo.abort();
    } else {
        let echo = tokio::spawn(async move {
            while let Ok(d) = s.read_datagram().await {
                if s.send_datagram(d).is_err() {
                    break;
                }
            }
        });
        for _ in 0..n {
            let t = Instant::now();
            c.send_datagram(payload.clone().into()).unwrap();
            if tokio::time::timeout(Duration::from_secs(1), c.read_datagram())
                .await
                .is_ok()
            {
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        echo.abort();
    }
    samples
}

/// How the baseline's sender hands length-prefixed frames to QUIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    /// One `write_all` per frame, as a plain quinn program would.
    Naive,
    /// A writer task per connection taking every queued frame (up to 64 KiB) into one stream write whenever its
    /// queue runs dry: what the library does, so the fair baseline. Readers read through a 64 KiB buffer.
    Queued,
    /// A 64 KiB `BufWriter` per connection, flushed only when full and at the end (no latency bound at all: an
    /// upper bound, not a fair one). Readers read through a 64 KiB buffer.
    Buffered,
}

/// Messages per second (each sent to every receiver) of `size`-byte length-prefixed frames, one stream per
/// receiver, from one client endpoint to `receivers` server endpoints, mutual TLS.
pub(crate) async fn throughput(size: usize, receivers: usize, n: usize, writer: Writer) -> f64 {
    let (server_tls, client_tls) = (Tls::new(), Tls::new());
    let client = client(&server_tls, Some(&client_tls));
    let mut conns = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..receivers {
        let server = server(&server_tls, Some(&client_tls));
        conns.push(connect(&client, &server).await);
        servers.push(server);
    }
    let mut frame = vec![2u8];
    frame.extend_from_slice(&(size as u32).to_be_bytes());
    frame.extend_from_slice(&vec![1u8; size]);
    let frame = bytes::Bytes::from(frame);
    let started = Instant::now();
    let mut readers = Vec::new();
    let mut sends = Vec::new();
    for (c, s) in &conns {
        let s = s.clone();
        readers.push(tokio::spawn(async move {
            let recv = s.accept_uni().await.unwrap();
            let mut buf = vec![0u8; 5 + size];
            if writer == Writer::Naive {
                let mut recv = recv;
                for _ in 0..n {
                    recv.read_exact(&mut buf).await.unwrap();
                }
            } else {
                let mut recv = tokio::io::BufReader::with_capacity(64 * 1024, recv);
                for _ in 0..n {
                    tokio::io::AsyncReadExt::read_exact(&mut recv, &mut buf).await.unwrap();
                }
            }
        }));
        sends.push(c.open_uni().await.unwrap());
    }
    match writer {
        Writer::Naive => {
            for _ in 0..n {
                for send in &mut sends {
                    send.write_all(&frame).await.unwrap();
                }
            }
        }
        Writer::Buffered => {
            use tokio::io::AsyncWriteExt;
            let mut writers: Vec<_> = sends
                .into_iter()
                .map(|s| tokio::io::BufWriter::with_capacity(64 * 1024, s))
                .collect();
            for _ in 0..n {
                for w in &mut writers {
                    w.write_all(&frame).await.unwrap();
                }
            }
            for w in &mut writers {
                w.flush().await.unwrap();
            }
            sends = writers.into_iter().map(|w| w.into_inner()).collect();
        }
        Writer::Queued => {
            let (queues, tasks): (Vec<_>, Vec<_>) = std::mem::take(&mut sends)
                .into_iter()
                .map(|send| {
                    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1024);
                    (tx, tokio::spawn(queued_writer(send, rx)))
                })
                .unzip();
            for _ in 0..n {
                for q in &queues {
                    q.send(frame.clone()).await.unwrap();
                }
            }
            drop(queues);
            for t in tasks {
                sends.push(t.await.unwrap());
            }
        }
    }
    for r in readers {
        r.await.unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(sends);
    rate
}

/// Writes whatever is queued, up to 64 KiB at once, whenever the queue runs dry; returns the stream at the end.
async fn queued_writer(
    mut send: quinn::SendStream,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) -> quinn::SendStream {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(frame) => buf.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        send.write_all(&buf).await.unwrap();
        buf.clear();
    }
    send
}

/// MB/s of one stream carrying `total` bytes in 64 KiB writes.
pub(crate) async fn bulk(total: usize) -> f64 {
    let (_ce, c, _se, s) = pair().await;
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let mut recv = s.accept_uni().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while let Some(n) = recv.read(&mut buf).await.unwrap() {
            got += n;
        }
        got
    });
    let mut send = c.open_uni().await.unwrap();
    let chunk = vec![3u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        send.write_all(&chunk[..n]).await.unwrap();
        left -= n;
    }
    send.finish().unwrap();
    assert_eq!(reader.await.unwrap(), total);
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}
