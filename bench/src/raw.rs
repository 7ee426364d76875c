//! The baseline: the same traffic over raw quinn (the library's crypto provider), in the same process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

async fn pair() -> (quinn::Endpoint, quinn::Connection, quinn::Endpoint, quinn::Connection) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der: CertificateDer<'static> = cert.der().clone();
    #[cfg(any(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    #[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).unwrap(),
    ));
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window((4u32 * 1024 * 1024).into());
    transport.receive_window((16u32 * 1024 * 1024).into());
    transport.send_window(16 * 1024 * 1024);
    let transport = Arc::new(transport);
    server_config.transport_config(transport.clone());
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client_config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).unwrap(),
    ));
    client_config.transport_config(transport);
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(client_config);
    let addr = server.local_addr().unwrap();
    let accept = {
        let server = server.clone();
        tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() })
    };
    let c = client.connect(addr, "localhost").unwrap().await.unwrap();
    let s = accept.await.unwrap();
    (client, c, server, s)
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

/// Messages per second of `size`-byte length-prefixed frames on one stream.
pub(crate) async fn throughput(size: usize, n: usize) -> f64 {
    let (_ce, c, _se, s) = pair().await;
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let mut recv = s.accept_uni().await.unwrap();
        let mut buf = vec![0u8; 5 + size];
        for _ in 0..n {
            recv.read_exact(&mut buf).await.unwrap();
        }
    });
    let mut send = c.open_uni().await.unwrap();
    let mut frame = vec![2u8];
    frame.extend_from_slice(&(size as u32).to_be_bytes());
    frame.extend_from_slice(&vec![1u8; size]);
    for _ in 0..n {
        send.write_all(&frame).await.unwrap();
    }
    reader.await.unwrap();
    n as f64 / started.elapsed().as_secs_f64()
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
