//! The `file` group: a file sent with `send_resource` against a plain library stream of the same size, both
//! between two processes on loopback, and the disk's own write rate.
//!
//! The bench binary runs itself again with [`PEER_ARG`] as the receiving process: that child starts a session
//! bound to 127.0.0.1, prints its ticket on stdout, saves the resources it is sent (deleting each once saved)
//! and reads the streams it is sent, reporting each on stdout. The parent joins it with the ticket (no mDNS)
//! and measures file and stream rounds in alternation, so both see the same machine state.

use crate::Spread;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use multipeer::{Event, MemoryNetwork, PeerId, Session, SessionConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// The hidden first argument that makes the bench binary the receiving process.
pub(crate) const PEER_ARG: &str = "--file-peer";

/// What the child prints: its ticket, a saved resource, a stream read to its end.
const TICKET: &str = "ticket ";
const SAVED: &str = "saved ";
const READ: &str = "read ";

/// How long any one step of the child may take before the bench gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Rows (measurement | multipeer | baseline | ratio) and figures of the `file` group: `rounds` alternating
/// rounds of a `total`-byte resource and a `total`-byte stream to a child process, then the disk write rate.
pub(crate) async fn file_group(total: usize, rounds: usize) -> (Vec<(String, String, String, String)>, Value) {
    let dir = std::env::temp_dir().join(format!("multipeer-bench-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source.bin");
    write_source(&source, total as u64);
    let mut peer = Peer::spawn(&dir.join("inbox")).await;
    let (mut files, mut streams) = (Vec::new(), Vec::new());
    let (mut file_cpu, mut stream_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = peer.cpu_seconds();
        files.push(peer.file(&source, total as u64).await);
        let between = peer.cpu_seconds();
        streams.push(peer.stream(total).await);
        let after = peer.cpu_seconds();
        file_cpu.push([between[0] - before[0], between[1] - before[1]]);
        stream_cpu.push([after[0] - between[0], after[1] - between[1]]);
    }
    peer.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    let disk = disk_write(total as u64);

    let (file, stream) = (Spread::of(files), Spread::of(streams));
    let gib = total as f64 / f64::from(1u32 << 30);
    // Median seconds per GiB of the sender and of the receiver.
    let per_gib = |cpu: &[[f64; 2]]| {
        let side = |i: usize| Spread::of(cpu.iter().map(|c| c[i]).collect()).median / gib;
        [side(0), side(1)]
    };
    let (file_cpu, stream_cpu) = (per_gib(&file_cpu), per_gib(&stream_cpu));
    let sum = |c: [f64; 2]| c[0] + c[1];
    let mib = total >> 20;
    let rows = vec![
        (
            format!("file (send_resource) vs stream, {mib} MiB, two processes, median (min–max) of {rounds}"),
            file.show(1.0, 0, "MB/s"),
            format!("{} (stream)", stream.show(1.0, 0, "MB/s")),
            format!("{:.2}× (medians)", file.median / stream.median),
        ),
        (
            "CPU time per GiB (medians), sender + receiver: file / stream".into(),
            format!("{:.2} + {:.2} s", file_cpu[0], file_cpu[1]),
            format!("{:.2} + {:.2} s (stream)", stream_cpu[0], stream_cpu[1]),
            format!("{:.2}× (sums)", sum(file_cpu) / sum(stream_cpu)),
        ),
        (
            format!("file (send_resource, two processes) vs disk write + sync, {mib} MiB"),
            format!("{:.0} MB/s", file.median),
            format!("{disk:.0} MB/s (disk)"),
            format!("{:.2}×", file.median / disk),
        ),
    ];
    let figures = json!({
        "two_processes": true,
        "rounds": rounds,
        "resource": file.median, "resource_min": file.min, "resource_max": file.max,
        "stream": stream.median, "stream_min": stream.min, "stream_max": stream.max,
        "disk_write_sync": disk,
        "cpu_s_per_gib": {
            "resource_sender": file_cpu[0], "resource_receiver": file_cpu[1],
            "stream_sender": stream_cpu[0], "stream_receiver": stream_cpu[1],
        },
    });
    (rows, figures)
}

/// Writes `total` bytes of varied (not compressible, not all equal) content to `path`.
fn write_source(path: &Path, total: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
}

fn session_config(name: &str, inbox: Option<&Path>) -> SessionConfig {
    let mut builder = SessionConfig::builder("bench", name).bind_addr("127.0.0.1:0".parse().unwrap());
    if let Some(inbox) = inbox {
        builder = builder.resource_directory(inbox);
    }
    builder.build().unwrap()
}

/// This process's session and the child process it is joined to.
struct Peer {
    session: Session,
    id: PeerId,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    /// Starts the child (saving into `inbox`) and joins it with its ticket.
    async fn spawn(inbox: &Path) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg(PEER_ARG)
            .arg(inbox)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ticket = next_line(&mut lines, TICKET).await;
        let ticket: multipeer::Ticket = ticket.parse().unwrap();
        let (session, mut events) = Session::builder(session_config("parent", None))
            .discovery(MemoryNetwork::new().discovery())
            .start_with_events()
            .await
            .unwrap();
        session.connect_ticket(&ticket).await.unwrap();
        tokio::time::timeout(STEP_TIMEOUT, crate::added(&mut events, 1))
            .await
            .expect("the child joins");
        // Dropping the events would shut the session down: drain them instead.
        tokio::spawn(async move { while events.next().await.is_some() {} });
        Self {
            session,
            id: ticket.peer,
            child,
            lines,
        }
    }

    /// CPU time (user and system) this process (the sender) and the child (the receiver) have used so far, in
    /// seconds.
    fn cpu_seconds(&self) -> [f64; 2] {
        let child = self.child.id().map_or(0.0, |pid| cpu_seconds(&pid.to_string()));
        [cpu_seconds("self"), child]
    }

    /// MB/s of a resource of `total` bytes at `source`, until this side has the receiver's verdict.
    async fn file(&mut self, source: &Path, total: u64) -> f64 {
        let started = Instant::now();
        let transfer = self.session.send_resource(source, "file.bin", self.id).await.unwrap();
        let delivered = tokio::time::timeout(STEP_TIMEOUT, transfer.finished())
            .await
            .expect("the transfer ends")
            .unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(delivered.size, total);
        // The child deletes the saved file before the next round.
        let saved = next_line(&mut self.lines, SAVED).await;
        assert_eq!(saved.parse::<u64>().ok(), Some(total), "the child saved the whole file");
        total as f64 / secs / 1e6
    }

    /// MB/s of one named stream of `total` bytes in 64 KiB writes, until the child has read all of it.
    async fn stream(&mut self, total: usize) -> f64 {
        let started = Instant::now();
        let mut stream = self.session.stream("bulk", self.id).await.unwrap();
        let chunk = vec![3u8; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        stream.finish().await.unwrap();
        let read = next_line(&mut self.lines, READ).await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(
            read.parse::<usize>().ok(),
            Some(total),
            "the child read the whole stream"
        );
        total as f64 / secs / 1e6
    }

    /// Closes the child's stdin (its signal to leave) and waits for it.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.child.wait()).await;
        self.session.shutdown().await.unwrap();
    }
}

/// CPU time (user + system) of process `pid` (or `self`) from `/proc`, in seconds (USER_HZ = 100); 0 elsewhere.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The rest of the next line from the child that starts with `prefix` (other lines are skipped).
async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> String {
    let found = tokio::time::timeout(STEP_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
        panic!("the child ended before printing {prefix:?}");
    });
    found.await.expect("the child answers in time")
}

/// The child process: `args` are what follows [`PEER_ARG`] (the resource directory). Runs until stdin closes.
pub(crate) async fn peer_main(args: &[String]) {
    let inbox = PathBuf::from(args.first().expect("the resource directory"));
    let (session, mut events) = Session::builder(session_config("file-peer", Some(&inbox)))
        .discovery(MemoryNetwork::new().discovery())
        .start_with_events()
        .await
        .unwrap();
    println!("{TICKET}{}", session.ticket());
    let serve = async {
        while let Some(event) = events.next().await {
            match event {
                Event::ResourceFinished { transfer, result } => {
                    let path = result.unwrap();
                    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                    assert_eq!(size, transfer.size());
                    std::fs::remove_file(&path).unwrap();
                    println!("{SAVED}{size}");
                }
                Event::Stream(mut stream) => {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut got = 0usize;
                        loop {
                            let n = stream.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            got += n;
                        }
                        println!("{READ}{got}");
                    });
                }
                _ => {}
            }
        }
    };
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    tokio::select! {
        () = serve => {}
        _ = async { while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => {}
    }
    session.shutdown().await.unwrap();
}

/// MB/s of writing `total` bytes to a file in the temporary directory and syncing it: the disk's own limit,
/// which a received resource also pays.
fn disk_write(total: u64) -> f64 {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("multipeer-bench-disk-{}", std::process::id()));
    let block = vec![5u8; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_data().unwrap();
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    total as f64 / secs / 1e6
}
