//! The groups that compare the library with a baseline in alternating rounds: each round runs the library and
//! then its baselines back to back, so slow phases of a shared machine hit both; the table shows the median of
//! the rounds with their range, and the ratio of the medians.

use serde_json::{json, Value};

use crate::raw::{self, Writer};
use crate::{multipeer_bulk, multipeer_throughput, ticket_join, Scale, Spread};

/// Table rows (measurement, multipeer, baseline, ratio) and JSON figures.
#[derive(Default)]
pub(crate) struct Out {
    pub(crate) rows: Vec<(String, String, String, String)>,
    pub(crate) figures: Vec<(String, Value)>,
}

impl Out {
    fn row(&mut self, what: impl Into<String>, ours: String, base: String, ratio: String) {
        self.rows.push((what.into(), ours, base, ratio));
    }
}

const PASSPHRASE: &str = "correct horse battery staple";

/// Joins against handshakes: a ticket join of two started sessions against a quinn handshake between endpoints
/// that exist already (mutual TLS, the fair comparison, and server-only TLS); a first join in a fresh process
/// against a first mutual-TLS connection in a fresh process.
pub(crate) async fn join(scale: &Scale) -> Out {
    let mut out = Out::default();
    let (mut open, mut pake, mut mutual, mut server_only) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut larger, mut smaller) = (Vec::new(), Vec::new());
    for _ in 0..scale.join_rounds {
        let join = ticket_join(None).await;
        open.push(join.ms);
        if join.joiner_larger {
            larger.push(join.ms);
        } else {
            smaller.push(join.ms);
        }
        mutual.push(raw::handshake(true).await);
        pake.push(ticket_join(Some(PASSPHRASE)).await.ms);
        server_only.push(raw::handshake(false).await);
    }
    let (open, pake, mutual, server_only) = (
        Spread::of(open),
        Spread::of(pake),
        Spread::of(mutual),
        Spread::of(server_only),
    );
    let (larger, smaller) = (Spread::of(larger), Spread::of(smaller));
    out.row(
        "join of two started sessions by ticket (handshake, hello, admission) vs quinn handshake, mutual TLS",
        open.show(1.0, 2, "ms"),
        mutual.show(1.0, 2, "ms"),
        format!("{:.2}×", open.median / mutual.median),
    );
    out.row(
        "ticket join by the larger id / the smaller id (no deferral either way)",
        format!("{} / {}", larger.show(1.0, 2, "ms"), smaller.show(1.0, 2, "ms")),
        "—".into(),
        "—".into(),
    );
    out.row(
        "ticket join with a passphrase (SPAKE2) vs without",
        pake.show(1.0, 2, "ms"),
        format!("{} (no passphrase)", open.show(1.0, 2, "ms")),
        format!("{:.2}×", pake.median / open.median),
    );
    out.row(
        "quinn handshake, server-only TLS (reference)",
        "—".into(),
        server_only.show(1.0, 2, "ms"),
        format!("mutual TLS costs {:.2}×", mutual.median / server_only.median),
    );
    out.figures.push((
        "join_ms".into(),
        json!({"ticket": open.json(), "ticket_joiner_larger": larger.json(), "ticket_joiner_smaller": smaller.json(),
               "ticket_passphrase": pake.json(), "quinn_mutual_tls": mutual.json(),
               "quinn_server_tls": server_only.json()}),
    ));
    let (first, first_quinn) = first_joins(scale.first_rounds);
    out.row(
        "first join in a fresh process (two sessions started, ticket join) vs first mutual-TLS quinn connection \
         (certificates, configs, endpoints, handshake)",
        first.show(1.0, 2, "ms"),
        first_quinn.show(1.0, 2, "ms"),
        format!("{:.2}×", first.median / first_quinn.median),
    );
    out.figures.push((
        "first_join_ms".into(),
        json!({"multipeer": first.json(), "quinn_mutual_tls": first_quinn.json()}),
    ));
    out
}

/// The argument that makes this binary measure one first join (`library` or `quinn`) and print milliseconds.
pub(crate) const FIRST: &str = "--first-join";

/// Runs in a child process: the first join of this process, in milliseconds, on standard output.
pub(crate) async fn first_join_child(kind: &str) {
    let ms = if kind == "quinn" {
        raw::first_connection().await
    } else {
        ticket_join(None).await.from_nothing_ms
    };
    println!("{ms}");
}

/// First joins, each in a fresh child process, library and quinn alternating.
fn first_joins(rounds: usize) -> (Spread, Spread) {
    let once = |kind: &str| -> f64 {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe).args([FIRST, kind]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().unwrap_or(f64::NAN)
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(once("library"));
        base.push(once("quinn"));
    }
    (Spread::of(ours), Spread::of(base))
}

/// Small reliable messages, 1 → 1 and 1 → 7: the library against quinn with a queued writer (the fair
/// baseline) and, 1 → 1, a naive writer (one write per frame) and a `BufWriter` that flushes only when full.
pub(crate) async fn throughput(scale: &Scale) -> Out {
    let mut out = Out::default();
    for size in [64usize, 1024] {
        for receivers in [1usize, 7] {
            let n = scale.messages / receivers;
            let writers: &[Writer] = if receivers == 1 {
                &[Writer::Queued, Writer::Naive, Writer::Buffered]
            } else {
                &[Writer::Queued]
            };
            let mut ours = Vec::new();
            let mut base: Vec<Vec<f64>> = vec![Vec::new(); writers.len()];
            for _ in 0..scale.rounds {
                ours.push(multipeer_throughput(size, receivers, n).await);
                for (w, samples) in writers.iter().zip(&mut base) {
                    samples.push(raw::throughput(size, receivers, n, *w).await);
                }
            }
            let ours = Spread::of(ours);
            let base: Vec<Spread> = base.into_iter().map(Spread::of).collect();
            let what = format!("reliable {size} B messages, 1 → {receivers} (messages sent per second)");
            let mut figures = json!({"multipeer": ours.json()});
            for (w, b) in writers.iter().zip(&base) {
                let label = match w {
                    Writer::Queued => "quinn, queued writer (fair)",
                    Writer::Naive => "quinn, one write per message",
                    Writer::Buffered => "quinn, 64 KiB BufWriter flushed when full",
                };
                out.row(
                    if *w == Writer::Queued {
                        what.clone()
                    } else {
                        format!("↳ same, against {label}")
                    },
                    ours.show(1e3, 0, "k/s"),
                    format!("{} ({label})", b.show(1e3, 0, "k/s")),
                    format!("{:.2}×", ours.median / b.median),
                );
                figures[format!("{w:?}").to_lowercase()] = b.json();
            }
            out.figures.push((format!("throughput_{size}_to_{receivers}"), figures));
        }
    }
    out
}

/// One stream of `scale.bulk` bytes in 64 KiB writes against the same over quinn.
pub(crate) async fn bulk(scale: &Scale) -> Out {
    let mut out = Out::default();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..scale.bulk_rounds {
        ours.push(multipeer_bulk(scale.bulk).await);
        base.push(raw::bulk(scale.bulk).await);
    }
    let (ours, base) = (Spread::of(ours), Spread::of(base));
    out.row(
        format!("bulk stream, {} MiB", scale.bulk >> 20),
        ours.show(1.0, 0, "MB/s"),
        base.show(1.0, 0, "MB/s"),
        format!("{:.2}×", ours.median / base.median),
    );
    out.figures.push((
        "bulk_mb_per_s".into(),
        json!({"multipeer": ours.json(), "quinn": base.json()}),
    ));
    out
}
