//! The send-file example on the virtual LAN: two files arrive complete, and their SHA-256 on the receiver's disk
//! is the one the sender reports.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{example, line, netns};

const T: Duration = Duration::from_secs(60);

fn sha256_hex(path: &std::path::Path) -> String {
    let data = std::fs::read(path).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn files_sent_on_one_host_arrive_verified_on_another() {
    let Some(lan) = netns::VirtualLan::new(2) else { return };
    let bin = example("send_file");
    let dir = std::env::temp_dir().join(format!("multipeer-send-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("video.bin");
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let small = dir.join("notes.txt");
    std::fs::write(&small, "meeting at noon\n").unwrap();
    let inbox = dir.join("inbox");
    let inbox_arg = inbox.to_str().unwrap();

    let mut receiver = lan.spawn(
        0,
        &bin,
        &[
            "receive",
            "--dir",
            inbox_arg,
            "--count",
            "2",
            "--service",
            "sendtest",
            "--name",
            "desk",
        ],
    );
    line(&mut receiver, T, "receiving into ");
    let mut sender = lan.spawn(
        1,
        &bin,
        &[
            "send",
            big.to_str().unwrap(),
            small.to_str().unwrap(),
            "--to",
            "desk",
            "--service",
            "sendtest",
        ],
    );
    let mut received = Vec::new();
    for _ in 0..2 {
        received.push(line(&mut receiver, T, "received "));
    }
    let mut sent = Vec::new();
    for _ in 0..2 {
        sent.push(line(&mut sender, T, "sent "));
    }
    for (file, name) in [(&big, "video.bin"), (&small, "notes.txt")] {
        let want = sha256_hex(file);
        let saved = inbox.join(name);
        assert_eq!(sha256_hex(&saved), want, "{name} on the receiver's disk");
        assert!(
            sent.iter()
                .any(|l| l.starts_with(&format!("{name} to desk")) && l.contains(&want)),
            "sender reports {name}: {sent:?}"
        );
        assert!(
            received
                .iter()
                .any(|l| l.starts_with(&format!("{name} -> ")) && l.contains(&want)),
            "receiver reports {name}: {received:?}"
        );
    }
    assert!(sender.wait_exit(T).is_some_and(|s| s.success()), "sender exits cleanly");
    assert!(
        receiver.wait_exit(T).is_some_and(|s| s.success()),
        "receiver exits after --count files"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
