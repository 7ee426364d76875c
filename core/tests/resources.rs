//! Resources (files) between sessions over real sockets: integrity, memory, cancellation, resumption,
//! refusal, hostile names, several transfers at once, and a local attacker who swaps files in the resource
//! directory.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use multipeer::{Event, Events, MemoryNetwork, PeerId, RefusalReason, ResourceError, ResourceTransfer};

const T: Duration = Duration::from_secs(20);
/// The test that measures the process's memory runs alone; the others may run together.
static MEMORY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn expect_started(events: &mut Events) -> ResourceTransfer {
    expect(events, T, "resource started", |e| match e {
        Event::ResourceStarted(t) => Some(t),
        _ => None,
    })
    .await
}

async fn expect_finished(events: &mut Events, limit: Duration) -> (ResourceTransfer, Result<PathBuf, ResourceError>) {
    expect(events, limit, "resource finished", |e| match e {
        Event::ResourceFinished { transfer, result } => Some((transfer, result)),
        _ => None,
    })
    .await
}

/// Files in `dir`, names sorted.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn pair_with_inbox(inbox: &std::path::Path) -> (multipeer::Session, Events, multipeer::Session, Events) {
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b").resource_directory(inbox)).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    (a, a_events, b, b_events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_file_arrives_intact_with_bounded_memory() {
    let _alone = MEMORY.write().await;
    init_tracing();
    let dir = TempDir::new("gib");
    let size = 1u64 << 30;
    let source = dir.join("source.bin");
    let digest = write_pattern_file(&source, size, 1);
    let inbox = dir.join("inbox");
    let (a, _a_events, b, mut b_events) = pair_with_inbox(&inbox).await;
    let rss_before = rss().unwrap_or(0);
    let began = Instant::now();
    let sending = a.send_resource(&source, "big.bin", b.local_peer().id).await.unwrap();
    let receiving = expect_started(&mut b_events).await;
    assert_eq!((receiving.name(), receiving.size()), ("big.bin", size));
    assert_eq!(receiving.peer(), a.local_peer().id);
    assert_eq!(receiving.id(), sending.id());
    // Watch memory and progress while it runs (bounded: 1 GiB at >= 4 MB/s).
    let mut peak = rss_before;
    let mut seen_progress = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while sending.outcome().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss().unwrap_or(0));
        seen_progress.push(receiving.progress().transferred);
    }
    let delivered = sending.finished().await.unwrap();
    let (_, saved) = expect_finished(&mut b_events, T).await;
    let elapsed = began.elapsed();
    let saved = saved.unwrap();
    assert_eq!(saved, inbox.join("big.bin"));
    assert_eq!(delivered.sha256, digest);
    assert_eq!(delivered.resumed_from, 0);
    assert_eq!(sha256_file(&saved), digest, "saved file differs");
    assert_eq!(receiving.progress().transferred, size);
    assert!(
        seen_progress.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back"
    );
    assert!(
        seen_progress.iter().any(|p| *p > 0 && *p < size),
        "progress reported along the way"
    );
    assert_eq!(files(&inbox), vec!["big.bin".to_owned()], "no partial file left");
    let growth = peak.saturating_sub(rss_before);
    eprintln!(
        "1 GiB in {:.1} s ({:.0} MB/s), RSS growth {} MiB",
        elapsed.as_secs_f64(),
        size as f64 / elapsed.as_secs_f64() / 1e6,
        growth >> 20
    );
    assert!(
        growth < 128 << 20,
        "memory grew by {} MiB for a 1 GiB file",
        growth >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_side_can_cancel() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("cancel");
    let source = dir.join("source.bin");
    write_pattern_file(&source, 512 << 20, 2);
    let inbox = dir.join("inbox");
    let (a, _a_events, b, mut b_events) = pair_with_inbox(&inbox).await;
    let b_id = b.local_peer().id;

    // The sender cancels once the receiver has some of it.
    let sending = a.send_resource(&source, "one.bin", b_id).await.unwrap();
    let mut receiving = expect_started(&mut b_events).await;
    while let Some(p) = within(T, "progress", receiving.progress_changed()).await {
        if p.transferred >= 1 << 20 {
            break;
        }
    }
    sending.cancel();
    assert!(matches!(sending.finished().await, Err(ResourceError::Cancelled)));
    let (_, result) = expect_finished(&mut b_events, T).await;
    assert!(matches!(result, Err(ResourceError::CancelledByPeer)), "{result:?}");

    // The receiver cancels.
    let sending = a.send_resource(&source, "two.bin", b_id).await.unwrap();
    let mut receiving = expect_started(&mut b_events).await;
    while let Some(p) = within(T, "progress", receiving.progress_changed()).await {
        if p.transferred >= 1 << 20 {
            break;
        }
    }
    receiving.cancel();
    let (_, result) = expect_finished(&mut b_events, T).await;
    assert!(matches!(result, Err(ResourceError::Cancelled)), "{result:?}");
    let sent = within(T, "sender outcome", sending.finished()).await;
    assert!(matches!(sent, Err(ResourceError::CancelledByPeer)), "{sent:?}");
    assert!(
        files(&inbox).is_empty(),
        "cancelled transfers leave nothing: {:?}",
        files(&inbox)
    );
    // The session carries on.
    let ok = dir.join("small.txt");
    std::fs::write(&ok, "after the cancels").unwrap();
    a.send_resource(&ok, "small.txt", b_id)
        .await
        .unwrap()
        .finished()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transfer_resumes_where_it_stopped() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("resume");
    let size = 96u64 << 20;
    let source = dir.join("source.bin");
    let digest = write_pattern_file(&source, size, 3);
    let inbox = dir.join("inbox");
    let idle = Duration::from_secs(1);
    let (a, mut a_events, b, mut b_events, relay) = relayed_pair(
        config("a").idle_timeout(idle),
        config("b")
            .idle_timeout(idle)
            .resource_directory(&inbox)
            .resume_window(Duration::from_secs(60)),
        Default::default(),
    )
    .await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let sending = a
        .send_resource(&source, "resumed.bin", b.local_peer().id)
        .await
        .unwrap();
    let mut receiving = expect_started(&mut b_events).await;
    while let Some(p) = within(T, "progress", receiving.progress_changed()).await {
        if p.transferred >= 16 << 20 {
            break;
        }
    }
    relay.set_cut(true);
    expect_removal(&mut a_events, idle * 10, "a loses b").await;
    expect_removal(&mut b_events, idle * 10, "b loses a").await;
    let kept = receiving.progress().transferred;
    assert!(kept >= 16 << 20 && kept < size, "partial data kept: {kept}");
    assert!(sending.outcome().is_none(), "the sender waits to resume");
    relay.set_cut(false);
    let delivered = within(Duration::from_secs(60), "resumed transfer", sending.finished())
        .await
        .unwrap();
    let (transfer, saved) = expect_finished(&mut b_events, T).await;
    assert_eq!(
        transfer.id(),
        sending.id(),
        "the same transfer finished, no new one started"
    );
    let saved = saved.unwrap();
    assert_eq!(sha256_file(&saved), digest);
    assert!(
        delivered.resumed_from > 0 && delivered.resumed_from <= kept,
        "resumed from {} (kept {kept})",
        delivered.resumed_from
    );
    eprintln!(
        "cut after {} MiB, resumed from {} MiB",
        kept >> 20,
        delivered.resumed_from >> 20
    );
    assert_eq!(files(&inbox), vec!["resumed.bin".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_refuse_by_size_and_by_choice() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("refuse");
    let inbox = dir.join("inbox");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let config_b = config("b").resource_directory(&inbox).max_resource_size(1 << 20);
    let (b, mut b_events) = multipeer::Session::builder(config_b.build().unwrap())
        .discovery(net.discovery())
        .resource_filter(|offer| !offer.name.ends_with(".exe"))
        .start_with_events()
        .await
        .unwrap();
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let b_id = b.local_peer().id;
    let small = dir.join("small");
    std::fs::write(&small, vec![7u8; 1000]).unwrap();
    let large = dir.join("large");
    write_pattern_file(&large, (1 << 20) + 1, 4);

    let declined = a
        .send_resource(&small, "tool.exe", b_id)
        .await
        .unwrap()
        .finished()
        .await;
    assert!(
        matches!(declined, Err(ResourceError::Refused(RefusalReason::Declined))),
        "{declined:?}"
    );
    let too_large = a
        .send_resource(&large, "large.bin", b_id)
        .await
        .unwrap()
        .finished()
        .await;
    assert!(
        matches!(too_large, Err(ResourceError::Refused(RefusalReason::TooLarge))),
        "{too_large:?}"
    );
    let accepted = a
        .send_resource(&small, "fine.txt", b_id)
        .await
        .unwrap()
        .finished()
        .await;
    assert!(accepted.is_ok(), "{accepted:?}");
    // Only the accepted one ever started on b.
    let started = expect_started(&mut b_events).await;
    assert_eq!(started.name(), "fine.txt");
    assert_eq!(files(&inbox), vec!["fine.txt".to_owned()]);

    // Typed errors on the sending side before anything is sent.
    let nobody = PeerId::from_bytes([9; 32]);
    assert!(matches!(
        a.send_resource(&small, "x", nobody).await,
        Err(multipeer::SendResourceError::NotConnected(_))
    ));
    assert!(matches!(
        a.send_resource(&small, "", b_id).await,
        Err(multipeer::SendResourceError::InvalidName)
    ));
    assert!(matches!(
        a.send_resource(dir.join("missing"), "x", b_id).await,
        Err(multipeer::SendResourceError::Io(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_peers_never_escape_the_directory_or_overwrite() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("names");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("notes.txt"), "original").unwrap();
    let (a, _a_events, b, mut b_events) = pair_with_inbox(&inbox).await;
    let source = dir.join("payload");
    std::fs::write(&source, "payload").unwrap();
    let hostile = [
        ("../../escape.txt", "_.._escape.txt"),
        ("/etc/passwd", "_etc_passwd"),
        ("..", "resource"),
        ("notes.txt", "notes (1).txt"),
        ("a/b/c.txt", "a_b_c.txt"),
        ("..\\..\\win.txt", "_.._win.txt"),
        (".hidden", "hidden"),
        ("CON", "_CON"),
        ("con .txt", "_con .txt"),
        ("photo\u{202E}gpj.exe", "photo_gpj.exe"),
        ("notes\u{200B}.txt", "notes_.txt"),
    ];
    for (name, want) in hostile {
        a.send_resource(&source, name, b.local_peer().id)
            .await
            .unwrap()
            .finished()
            .await
            .unwrap();
        let (_, saved) = expect_finished(&mut b_events, T).await;
        let saved = saved.unwrap();
        assert_eq!(saved, inbox.join(want), "{name:?}");
        assert_eq!(std::fs::read_to_string(&saved).unwrap(), "payload");
    }
    assert_eq!(std::fs::read_to_string(inbox.join("notes.txt")).unwrap(), "original");
    assert!(!dir.join("escape.txt").exists() && !dir.0.parent().unwrap().join("escape.txt").exists());
    assert_eq!(files(&inbox).len(), hostile.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_transfers_to_several_peers_at_once() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("many");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b").resource_directory(dir.join("b"))).await;
    let (c, mut c_events) = start(&net, config("c").resource_directory(dir.join("c"))).await;
    for events in [&mut a_events, &mut b_events, &mut c_events] {
        expect_peers_added(events, 2, T).await;
    }
    let mut sends = Vec::new();
    let mut digests = Vec::new();
    for i in 0..5u64 {
        let path = dir.join(&format!("f{i}"));
        digests.push(write_pattern_file(&path, (4 << 20) + i * 1000, 10 + i));
        let to = if i % 2 == 0 {
            b.local_peer().id
        } else {
            c.local_peer().id
        };
        sends.push(a.send_resource(&path, &format!("f{i}.bin"), to).await.unwrap());
    }
    for (i, s) in sends.iter().enumerate() {
        let d = within(Duration::from_secs(60), "transfer", s.finished()).await.unwrap();
        assert_eq!(d.sha256, digests[i]);
    }
    for (events, want) in [(&mut b_events, vec![0, 2, 4]), (&mut c_events, vec![1, 3])] {
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let (t, saved) = expect_finished(events, T).await;
            let i: usize = t.name()[1..2].parse().unwrap();
            assert_eq!(sha256_file(&saved.unwrap()), digests[i]);
            got.push(i);
        }
        got.sort();
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_transfer_offered_again_gets_its_verdict_not_a_second_copy() {
    let _shared = MEMORY.read().await;
    use common::raw;
    use multipeer::proto::resource::{encode_offer, Offer, Reply};
    init_tracing();
    let inbox = TempDir::new("reoffer");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a").resource_directory(&inbox.0)).await;
    // A hand-driven peer that sends the same resource twice, as a sender does that lost the connection
    // before the verdict reached it.
    let (conn, control) = raw::join(a.local_addr(), "raw").await;
    expect_peers_added(&mut a_events, 1, T).await;
    let content = b"the same twice".to_vec();
    let sha256 = ring::digest::digest(&ring::digest::SHA256, &content);
    let offer = encode_offer(&Offer {
        id: [5; 16],
        size: content.len() as u64,
        name: "once.txt".into(),
    })
    .unwrap();
    let mut offsets = Vec::new();
    for _ in 0..2 {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&offer).await.unwrap();
        let reply = raw::read_reply(&mut recv).await;
        let Reply::Accept { offset } = reply else {
            panic!("refused: {reply:?}")
        };
        offsets.push(offset);
        send.write_all(&content[offset as usize..]).await.unwrap();
        send.write_all(sha256.as_ref()).await.unwrap();
        send.finish().unwrap();
        let verdict = within(T, "verdict", recv.read_to_end(16)).await.unwrap();
        assert_eq!(verdict, vec![0], "verified");
    }
    assert_eq!(
        offsets,
        vec![0, content.len() as u64],
        "the second offer starts at the end"
    );
    let (_, saved) = expect_finished(&mut a_events, T).await;
    assert_eq!(std::fs::read(saved.unwrap()).unwrap(), content);
    let more = collect_for(&mut a_events, Duration::from_millis(500)).await;
    assert!(
        !more
            .iter()
            .any(|e| matches!(e, Event::ResourceStarted(_) | Event::ResourceFinished { .. })),
        "no second transfer: {more:?}"
    );
    assert_eq!(files(&inbox.0), vec!["once.txt".to_owned()]);
    drop(control);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_the_receiver_cancelled_is_not_accepted_again() {
    let _shared = MEMORY.read().await;
    use common::raw;
    use multipeer::proto::resource::{encode_offer, Offer, Refusal, Reply};
    init_tracing();
    let inbox = TempDir::new("recancel");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a").resource_directory(&inbox.0)).await;
    let (conn, control) = raw::join(a.local_addr(), "raw").await;
    expect_peers_added(&mut a_events, 1, T).await;
    let offer = encode_offer(&Offer {
        id: [6; 16],
        size: 1 << 20,
        name: "unwanted.bin".into(),
    })
    .unwrap();
    // First offer: accepted, then the app cancels it.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&offer).await.unwrap();
    assert_eq!(raw::read_reply(&mut recv).await, Reply::Accept { offset: 0 });
    let started = expect_started(&mut a_events).await;
    started.cancel();
    let (_, result) = expect_finished(&mut a_events, T).await;
    assert!(matches!(result, Err(ResourceError::Cancelled)), "{result:?}");
    // The same transfer offered again is refused as cancelled, and the app is not asked again.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&offer).await.unwrap();
    assert_eq!(raw::read_reply(&mut recv).await, Reply::Refuse(Refusal::Cancelled));
    let more = collect_for(&mut a_events, Duration::from_millis(300)).await;
    assert!(!more.iter().any(|e| matches!(e, Event::ResourceStarted(_))), "{more:?}");
    assert!(files(&inbox.0).is_empty());
    drop(control);
}

/// The only `.part` file in `dir`.
fn the_part_file(dir: &std::path::Path) -> PathBuf {
    let parts: Vec<String> = files(dir).into_iter().filter(|n| n.ends_with(".part")).collect();
    assert_eq!(parts.len(), 1, "one part file: {parts:?}");
    dir.join(&parts[0])
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_file_swapped_for_a_symlink_before_a_resume_is_never_written_through() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("swap");
    let size = 64u64 << 20;
    let source = dir.join("source.bin");
    write_pattern_file(&source, size, 7);
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"the victim's own bytes").unwrap();
    let inbox = dir.join("inbox");
    let idle = Duration::from_secs(1);
    let (a, mut a_events, b, mut b_events, relay) = relayed_pair(
        config("a").idle_timeout(idle),
        config("b")
            .idle_timeout(idle)
            .resource_directory(&inbox)
            .resume_window(Duration::from_secs(60)),
        Default::default(),
    )
    .await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let sending = a
        .send_resource(&source, "swapped.bin", b.local_peer().id)
        .await
        .unwrap();
    let mut receiving = expect_started(&mut b_events).await;
    while let Some(p) = within(T, "progress", receiving.progress_changed()).await {
        if p.transferred >= 8 << 20 {
            break;
        }
    }
    relay.set_cut(true);
    expect_removal(&mut a_events, idle * 10, "a loses b").await;
    expect_removal(&mut b_events, idle * 10, "b loses a").await;
    assert!(sending.outcome().is_none(), "the sender waits to resume");

    // The attacker replaces the part file with a symlink to the victim while the transfer waits.
    let part = the_part_file(&inbox);
    std::fs::remove_file(&part).unwrap();
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    relay.set_cut(false);

    let sent = within(Duration::from_secs(60), "resumed transfer", sending.finished()).await;
    let (transfer, saved) = expect_finished(&mut b_events, T).await;
    assert_eq!(transfer.id(), sending.id());
    assert!(
        matches!(saved, Err(ResourceError::PartialFileReplaced)),
        "the receiver notices: {saved:?}"
    );
    assert!(
        matches!(sent, Err(ResourceError::Refused(RefusalReason::Unavailable))),
        "the sender is told it was not saved: {sent:?}"
    );
    assert!(
        receiving.progress().transferred < size,
        "refused when resuming, not after the rest arrived"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"the victim's own bytes",
        "victim untouched"
    );
    assert_eq!(
        std::fs::read_link(&part).unwrap(),
        victim,
        "the attacker's symlink is left alone"
    );
    assert_eq!(files(&inbox).len(), 1, "nothing saved: {:?}", files(&inbox));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_at_the_final_name_is_never_followed() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("finalsym");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "victim").unwrap();
    let source = dir.join("payload");
    std::fs::write(&source, "payload").unwrap();
    let net = MemoryNetwork::new();
    let keep = dir.join("keep");
    let replace = dir.join("replace");
    for inbox in [&keep, &replace] {
        std::fs::create_dir_all(inbox).unwrap();
        std::os::unix::fs::symlink(&victim, inbox.join("target.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("made-by-following"), inbox.join("dangling.txt")).unwrap();
    }
    let (a, mut a_events) = start(&net, config("a")).await;
    let (b, mut b_events) = start(&net, config("b").resource_directory(&keep)).await;
    let (c, mut c_events) = start(&net, config("c").resource_directory(&replace).overwrite_resources(true)).await;
    expect_peers_added(&mut a_events, 2, T).await;
    for (to, events, inbox, want) in [
        (&b, &mut b_events, &keep, ["target (1).txt", "dangling (1).txt"]),
        (&c, &mut c_events, &replace, ["target.txt", "dangling.txt"]),
    ] {
        for (name, want) in ["target.txt", "dangling.txt"].into_iter().zip(want) {
            let sent = a.send_resource(&source, name, to.local_peer().id).await.unwrap();
            within(T, "transfer", sent.finished()).await.unwrap();
            let (_, saved) = expect_finished(events, T).await;
            let saved = saved.unwrap();
            assert_eq!(saved, inbox.join(want));
            let meta = std::fs::symlink_metadata(&saved).unwrap();
            assert!(meta.file_type().is_file(), "{saved:?} is a regular file");
            assert_eq!(std::fs::read_to_string(&saved).unwrap(), "payload");
        }
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim");
    assert!(!dir.join("made-by-following").exists());
    assert_eq!(
        std::fs::read_link(keep.join("target.txt")).unwrap(),
        victim,
        "kept, not followed"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_resource_directories_are_refused_and_created_ones_are_private() {
    let _shared = MEMORY.read().await;
    use multipeer::config::DirectoryError;
    use multipeer::ConfigError;
    use std::os::unix::fs::PermissionsExt;
    init_tracing();
    let dir = TempDir::new("dirs");
    let reason = |path: &std::path::Path| match config("b").resource_directory(path).build() {
        Err(ConfigError::UnsafeResourceDirectory { path: p, reason }) => {
            assert_eq!(p, path);
            Some(reason)
        }
        Err(e) => panic!("{e}"),
        Ok(_) => None,
    };
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        reason(&open),
        Some(DirectoryError::WritableByOthers { mode: 0o777 })
    ));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert!(matches!(reason(&open), Some(DirectoryError::WritableByOthers { .. })));
    let link = dir.join("link");
    std::os::unix::fs::symlink(dir.join("private"), &link).unwrap();
    std::fs::create_dir(dir.join("private")).unwrap();
    assert_eq!(reason(&link), Some(DirectoryError::Symlink));
    std::fs::write(dir.join("file"), "").unwrap();
    assert_eq!(reason(&dir.join("file")), Some(DirectoryError::NotADirectory));
    assert_eq!(reason(&dir.join("private")), None);
    let theirs = dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    match std::os::unix::fs::chown(&theirs, Some(65534), None) {
        Ok(()) => assert!(
            matches!(reason(&theirs), Some(DirectoryError::NotOwned { owner: 65534, .. })),
            "{:?}",
            reason(&theirs)
        ),
        Err(e) => eprintln!("owner check not exercised (chown needs root): {e}"),
    }

    // A missing directory is created 0700 when the session starts; received files are 0600.
    let inbox = dir.join("new").join("inbox");
    let (a, _a_events, b, mut b_events) = pair_with_inbox(&inbox).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&inbox), 0o700);
    assert_eq!(mode(&dir.join("new")), 0o700);
    let source = dir.join("payload");
    std::fs::write(&source, "payload").unwrap();
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sent = a.send_resource(&source, "p.txt", b.local_peer().id).await.unwrap();
    within(T, "transfer", sent.finished()).await.unwrap();
    let (_, saved) = expect_finished(&mut b_events, T).await;
    assert_eq!(mode(&saved.unwrap()), 0o600);

    // A directory that turns unsafe between building the configuration and starting: every offer is
    // refused as "cannot store", and the directory is left as it is.
    let late = dir.join("late");
    let config_c = config("c").resource_directory(&late).build().unwrap();
    std::fs::create_dir(&late).unwrap();
    std::fs::set_permissions(&late, std::fs::Permissions::from_mode(0o777)).unwrap();
    let net = MemoryNetwork::new();
    let (a2, mut a2_events) = start(&net, config("a")).await;
    let (c, mut c_events) = multipeer::Session::builder(config_c)
        .discovery(net.discovery())
        .start_with_events()
        .await
        .unwrap();
    expect_peers_added(&mut a2_events, 1, T).await;
    expect_peers_added(&mut c_events, 1, T).await;
    let refused = a2.send_resource(&source, "p.txt", c.local_peer().id).await.unwrap();
    let refused = within(T, "refusal", refused.finished()).await;
    assert!(
        matches!(refused, Err(ResourceError::Refused(RefusalReason::Unavailable))),
        "{refused:?}"
    );
    assert_eq!(mode(&late), 0o777);
    assert!(files(&late).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_beyond_its_byte_quota_is_refused() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("quota");
    let inbox = dir.join("inbox");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let config_b = config("b")
        .resource_directory(&inbox)
        .max_resource_bytes_per_peer(1 << 20);
    let (b, mut b_events) = start(&net, config_b).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let b_id = b.local_peer().id;
    let part = dir.join("600k");
    write_pattern_file(&part, 600 << 10, 8);
    let small = dir.join("300k");
    write_pattern_file(&small, 300 << 10, 9);
    let send = |path: PathBuf, name: &'static str| {
        let a = &a;
        async move { a.send_resource(&path, name, b_id).await.unwrap().finished().await }
    };
    assert!(send(part.clone(), "one.bin").await.is_ok());
    let over = send(part.clone(), "two.bin").await;
    assert!(
        matches!(over, Err(ResourceError::Refused(RefusalReason::TooLarge))),
        "{over:?}"
    );
    assert!(
        send(small.clone(), "three.bin").await.is_ok(),
        "what is left of the quota"
    );
    let over = send(small, "four.bin").await;
    assert!(
        matches!(over, Err(ResourceError::Refused(RefusalReason::TooLarge))),
        "{over:?}"
    );
    assert_eq!(files(&inbox), vec!["one.bin".to_owned(), "three.bin".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_part_files_are_swept_at_start_and_nothing_else() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("sweep");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let part_name = |seed: char| {
        format!(
            ".{}-{}-{}.part",
            "ab".repeat(32),
            "cd".repeat(16),
            seed.to_string().repeat(8)
        )
    };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let write_aged = |path: &std::path::Path, aged: bool| {
        std::fs::write(path, "x").unwrap();
        if aged {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(hour_ago).unwrap();
        }
    };
    let stale = inbox.join(part_name('1'));
    let fresh = inbox.join(part_name('2'));
    write_aged(&stale, true);
    write_aged(&fresh, false);
    let unrelated = ["notes.txt", ".other.part", "x.part", &part_name('3')[1..]];
    for name in unrelated {
        write_aged(&inbox.join(name), true);
    }
    let victim = dir.join("victim");
    write_aged(&victim, true);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&victim, inbox.join(part_name('4'))).unwrap();

    let net = MemoryNetwork::new();
    let (_b, _b_events) = start(
        &net,
        config("b")
            .resource_directory(&inbox)
            .resume_window(Duration::from_secs(60)),
    )
    .await;
    assert!(!stale.exists(), "the stale part file is gone");
    assert!(fresh.exists(), "a part file within the window stays");
    for name in unrelated {
        assert!(inbox.join(name).exists(), "{name} stays");
    }
    assert!(victim.exists());
    #[cfg(unix)]
    assert!(
        std::fs::symlink_metadata(inbox.join(part_name('4'))).is_ok(),
        "a symlink with a part file's name stays"
    );
}

async fn expect_offered(events: &mut Events) -> multipeer::PendingResource {
    expect(events, T, "resource offered", |e| match e {
        Event::ResourceOffered(offer) => Some(offer),
        Event::ResourceStarted(t) => panic!("{} started before the app answered", t.name()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_answers_offers_when_its_user_decided_and_silence_declines() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("ask");
    let inbox = dir.join("inbox");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let config_b = config("b")
        .resource_directory(&inbox)
        .resource_acceptance(multipeer::ResourceAcceptance::Manual)
        .answer_timeout(Duration::from_secs(2));
    let (b, mut b_events) = start(&net, config_b).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let b_id = b.local_peer().id;
    let photo = dir.join("photo");
    std::fs::write(&photo, vec![5u8; 4000]).unwrap();

    // Accepted from another thread, after the user thought about it.
    let sending = a.send_resource(&photo, "photo.jpg", b_id).await.unwrap();
    let offer = expect_offered(&mut b_events).await;
    assert_eq!(
        (offer.name.as_str(), offer.size, offer.peer),
        ("photo.jpg", 4000, a.local_peer().id)
    );
    assert!(files(&inbox).is_empty(), "nothing is written before the answer");
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        offer.accept().unwrap();
    });
    sending.finished().await.unwrap();
    assert_eq!(expect_started(&mut b_events).await.name(), "photo.jpg");
    assert!(expect_finished(&mut b_events, T).await.1.is_ok());

    // Declined: the sender is told, nothing is stored.
    let sending = a.send_resource(&photo, "second.jpg", b_id).await.unwrap();
    expect_offered(&mut b_events).await.decline().unwrap();
    let declined = sending.finished().await;
    assert!(
        matches!(declined, Err(ResourceError::Refused(RefusalReason::Declined))),
        "{declined:?}"
    );

    // Not answered: declined once the answer timeout passes; a late answer is refused.
    let sending = a.send_resource(&photo, "third.jpg", b_id).await.unwrap();
    let mut offer = expect_offered(&mut b_events).await;
    tokio::time::timeout(T, offer.expired())
        .await
        .expect("the offer to expire");
    assert_eq!(offer.accept(), Err(multipeer::AnswerError::Expired));
    let unanswered = sending.finished().await;
    assert!(
        matches!(unanswered, Err(ResourceError::Refused(RefusalReason::Declined))),
        "{unanswered:?}"
    );
    assert_eq!(files(&inbox), vec!["photo.jpg".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_offers_gets_at_most_eight_questions_at_a_time() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("ask-flood");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let config_b = config("b")
        .resource_directory(dir.join("inbox"))
        .resource_acceptance(multipeer::ResourceAcceptance::Manual);
    let (b, mut b_events) = start(&net, config_b).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let small = dir.join("small");
    std::fs::write(&small, b"x").unwrap();
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(
            a.send_resource(&small, &format!("f{i}"), b.local_peer().id)
                .await
                .unwrap(),
        );
    }
    let mut held = Vec::new();
    while held.len() < multipeer::MAX_PENDING_OFFERS {
        held.push(expect_offered(&mut b_events).await);
    }
    // While eight wait, the others are refused as busy (the sender retries them later), never asked.
    for event in collect_for(&mut b_events, Duration::from_millis(1500)).await {
        assert!(
            !matches!(event, Event::ResourceOffered(_)),
            "a ninth question: {event:?}"
        );
    }
    held.clear();
    let mut later = 0;
    while later < 12 - multipeer::MAX_PENDING_OFFERS {
        expect_offered(&mut b_events).await.decline().unwrap();
        later += 1;
    }
    for transfer in sent {
        let outcome = transfer.finished().await;
        assert!(
            matches!(outcome, Err(ResourceError::Refused(RefusalReason::Declined))),
            "{outcome:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cancelling_while_the_receiver_decides_is_done_at_once() {
    let _shared = MEMORY.read().await;
    init_tracing();
    let dir = TempDir::new("ask-cancel");
    let net = MemoryNetwork::new();
    let (a, mut a_events) = start(&net, config("a")).await;
    let config_b = config("b")
        .resource_directory(dir.join("inbox"))
        .resource_acceptance(multipeer::ResourceAcceptance::Manual)
        .answer_timeout(Duration::from_secs(60));
    let (b, mut b_events) = start(&net, config_b).await;
    expect_peers_added(&mut a_events, 1, T).await;
    expect_peers_added(&mut b_events, 1, T).await;
    let small = dir.join("small");
    std::fs::write(&small, b"x").unwrap();
    let sending = a.send_resource(&small, "later.txt", b.local_peer().id).await.unwrap();
    let _held = expect_offered(&mut b_events).await;
    sending.cancel();
    // Not after the receiver's 60 s answer timeout: the bound only keeps the test finite.
    let outcome = tokio::time::timeout(T, sending.finished())
        .await
        .expect("the cancelled transfer to end");
    assert!(matches!(outcome, Err(ResourceError::Cancelled)), "{outcome:?}");
}
