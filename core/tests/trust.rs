//! The known-peers store against a hostile LAN and an unreliable disk: bounded by its caps whatever a host sends,
//! keyed by id rather than by name, and saved atomically.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use multipeer::{KnownPeers, PeerId, Trust, TrustError, MAX_SEEN_PEERS, MAX_VERIFIED_PEERS, PEER_ID_LEN};

/// A fresh directory for one test, removed when dropped.
struct TestDir(PathBuf);

impl TestDir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("multipeer-trust-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("known.json")
    }

    /// The names in the directory, sorted.
    fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A distinct id per `(kind, n)`: ids cost an attacker nothing, so the tests do not pay for key generation.
fn id(kind: u8, n: u32) -> PeerId {
    let mut bytes = [0u8; PEER_ID_LEN];
    bytes[0] = kind;
    bytes[1..5].copy_from_slice(&n.to_be_bytes());
    PeerId::from_bytes(bytes)
}

const ALICE: u8 = 1;
const MALLORY: u8 = 2;

/// A store at `path` where Alice is verified.
fn store_with_verified_alice(path: &Path) -> KnownPeers {
    let mut known = KnownPeers::open(path).unwrap();
    assert_eq!(known.check_at(id(ALICE, 0), "Alice", 100).trust, Trust::New);
    known.mark_verified_at(id(ALICE, 0), 100).unwrap();
    known
}

#[test]
fn a_host_with_ten_thousand_fresh_ids_cannot_grow_the_store_or_its_file() {
    let dir = TestDir::new("flood");
    let mut known = store_with_verified_alice(&dir.file());
    let file_before = std::fs::read(dir.file()).unwrap();

    for n in 0..10_000 {
        let verdict = known.check_at(
            id(MALLORY, n),
            &format!("mallory-{n}-{}", "x".repeat(n as usize % 500)),
            200,
        );
        assert_eq!(verdict.trust, Trust::New, "id {n}");
        assert!(
            known.seen_count() <= MAX_SEEN_PEERS,
            "after id {n}: {}",
            known.seen_count()
        );
    }
    assert_eq!(known.seen_count(), MAX_SEEN_PEERS);
    assert_eq!(known.verified_count(), 1);
    assert!(
        known.is_verified(&id(ALICE, 0)),
        "flooding must not evict a verified peer"
    );
    // The oldest fresh ids were forgotten, the latest kept; each name clipped whatever its length.
    assert!(known.get(&id(MALLORY, 0)).is_none());
    assert!(known.get(&id(MALLORY, 9_999)).is_some());
    assert!(known.seen().all(|r| r.names.iter().all(|n| n.len() <= 63)));

    // Unverified peers are never written: the file is the same even after an explicit save.
    assert_eq!(std::fs::read(dir.file()).unwrap(), file_before);
    known.save().unwrap();
    assert_eq!(std::fs::read(dir.file()).unwrap(), file_before);
    assert_eq!(dir.listing(), ["known.json"]);
    let reopened = KnownPeers::open(dir.file()).unwrap();
    assert_eq!((reopened.verified_count(), reopened.seen_count()), (1, 0));
}

#[test]
fn a_verified_name_arriving_with_a_new_id_is_flagged_and_not_verified() {
    let dir = TestDir::new("impostor");
    drop(store_with_verified_alice(&dir.file()));
    let mut known = KnownPeers::open(dir.file()).unwrap();
    let impostor = id(MALLORY, 0);

    for (round, expected) in [Trust::New, Trust::Seen].into_iter().enumerate() {
        let verdict = known.check_at(impostor, "Alice", 300 + round as u64);
        assert_eq!(verdict.trust, expected, "round {round}");
        let clash = verdict
            .name_clash
            .expect("a verified name with another id must be flagged");
        assert_eq!(clash.name, "Alice");
        assert_eq!(clash.other, id(ALICE, 0));
        assert!(clash.other_verified);
    }
    assert!(!known.is_verified(&impostor));
    assert!(!known.get(&impostor).unwrap().verified);

    // A longer name that clips to the same 63 bytes is not a way around the warning.
    known.mark_verified_at(id(ALICE, 1), 300).unwrap();
    let long = "L".repeat(63);
    known.check_at(id(ALICE, 1), &long, 300);
    let verdict = known.check_at(id(MALLORY, 1), &format!("{long}-and-more"), 301);
    assert_eq!(verdict.name_clash.map(|c| c.other), Some(id(ALICE, 1)));

    // The real Alice is still verified, and told that her name is used by another id.
    let verdict = known.check_at(id(ALICE, 0), "Alice", 302);
    assert_eq!(verdict.trust, Trust::Verified);
    assert_eq!(
        verdict.name_clash.map(|c| (c.other, c.other_verified)),
        Some((impostor, false))
    );

    // A name seen (not verified) with another id is flagged too, as unverified.
    known.check_at(id(MALLORY, 2), "Bob", 303);
    let clash = known.check_at(id(MALLORY, 3), "Bob", 304).name_clash.unwrap();
    assert_eq!((clash.other, clash.other_verified), (id(MALLORY, 2), false));
    // A name nobody else uses raises nothing.
    assert_eq!(known.check_at(id(MALLORY, 4), "Carol", 305).name_clash, None);
}

#[test]
fn mark_verified_persists_and_survives_reopen() {
    let dir = TestDir::new("persist");
    let mut known = store_with_verified_alice(&dir.file());
    known.check_at(id(ALICE, 0), "Alice's phone", 150);
    known.check_at(id(MALLORY, 0), "Mallory", 150);
    known.save().unwrap();
    // An id verified before it was checked (e.g. its entry was evicted meanwhile) has no names yet.
    known.mark_verified_at(id(ALICE, 1), 160).unwrap();

    let mut reopened = KnownPeers::open(dir.file()).unwrap();
    assert!(!reopened.loaded_legacy_file());
    assert_eq!(reopened.verified_count(), 2);
    assert_eq!(reopened.seen_count(), 0, "unverified peers are not saved");
    let alice = reopened.get(&id(ALICE, 0)).unwrap();
    assert_eq!(alice.names, ["Alice's phone", "Alice"]);
    assert_eq!((alice.first_seen, alice.last_seen, alice.verified), (100, 150, true));
    let second = reopened.get(&id(ALICE, 1)).unwrap();
    assert!(second.names.is_empty());
    assert_eq!((second.first_seen, second.verified), (160, true));
    assert_eq!(reopened.check_at(id(ALICE, 0), "Alice", 170).trust, Trust::Verified);
    assert_eq!(reopened.check_at(id(MALLORY, 0), "Mallory", 170).trust, Trust::New);

    assert!(reopened.forget(&id(ALICE, 0)).unwrap());
    assert!(!reopened.forget(&id(ALICE, 0)).unwrap());
    let reopened = KnownPeers::open(dir.file()).unwrap();
    assert!(reopened.get(&id(ALICE, 0)).is_none());
    assert!(reopened.is_verified(&id(ALICE, 1)));
}

#[test]
fn a_failed_save_leaves_the_peer_unverified() {
    let dir = TestDir::new("failed-save");
    let path = dir.0.join("missing-directory").join("known.json");
    let mut known = KnownPeers::open(&path).unwrap();
    known.check_at(id(ALICE, 0), "Alice", 1);
    assert!(matches!(
        known.mark_verified_at(id(ALICE, 0), 1),
        Err(TrustError::Io { .. })
    ));
    assert!(!known.is_verified(&id(ALICE, 0)));
    assert_eq!(known.check_at(id(ALICE, 0), "Alice", 2).trust, Trust::Seen);
}

#[test]
fn verified_peers_are_capped_with_a_typed_error() {
    let mut known = KnownPeers::in_memory();
    for n in 0..MAX_VERIFIED_PEERS as u32 {
        known.mark_verified_at(id(ALICE, n), 1).unwrap();
    }
    known.check_at(id(MALLORY, 0), "Mallory", 2);
    assert!(matches!(
        known.mark_verified_at(id(MALLORY, 0), 2),
        Err(TrustError::Full)
    ));
    assert!(!known.is_verified(&id(MALLORY, 0)));
    assert_eq!(known.check_at(id(MALLORY, 0), "Mallory", 3).trust, Trust::Seen);
    // Verifying a verified peer again is not an error, and forgetting one makes room.
    known.mark_verified_at(id(ALICE, 0), 3).unwrap();
    assert!(known.forget(&id(ALICE, 0)).unwrap());
    known.mark_verified_at(id(MALLORY, 0), 3).unwrap();
    assert_eq!(known.verified_count(), MAX_VERIFIED_PEERS);
}

#[test]
fn a_corrupt_file_is_a_typed_error_and_is_left_alone() {
    let dir = TestDir::new("corrupt");
    let alice = id(ALICE, 0);
    let peer = |id: PeerId| format!(r#"{{"id":"{id}","names":["A"],"first_seen":1,"last_seen":2}}"#);
    let too_many = vec![peer(alice); MAX_VERIFIED_PEERS + 1].join(",");
    let padded = format!(r#"{{"version":1,"peers":[]}}{}"#, " ".repeat(16 << 20));
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("not JSON", "not json".into()),
        ("truncated", format!(r#"{{"version":1,"peers":[{}"#, peer(alice))),
        (
            "bad id",
            r#"{"version":1,"peers":[{"id":"xyz","names":[],"first_seen":1,"last_seen":2}]}"#.into(),
        ),
        (
            "unknown field",
            r#"{"version":1,"peers":[],"trust_everyone":true}"#.into(),
        ),
        (
            "a peer twice",
            format!(r#"{{"version":1,"peers":[{},{}]}}"#, peer(alice), peer(alice)),
        ),
        ("too many peers", format!(r#"{{"version":1,"peers":[{too_many}]}}"#)),
        ("too large", padded),
        ("a JSON array", "[1, 2, 3]".into()),
    ];
    for (what, content) in cases {
        std::fs::write(dir.file(), &content).unwrap();
        match KnownPeers::open(dir.file()) {
            Err(TrustError::Corrupt { path, .. }) => assert_eq!(path, dir.file(), "{what}"),
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(dir.file()).unwrap(),
            content,
            "{what}: the file was changed"
        );
    }
    std::fs::write(dir.file(), r#"{"version":2,"peers":[]}"#).unwrap();
    assert!(matches!(
        KnownPeers::open(dir.file()),
        Err(TrustError::UnsupportedVersion { version: 2, .. })
    ));
}

#[test]
fn the_earlier_name_to_id_format_is_loaded_as_unverified() {
    let dir = TestDir::new("legacy");
    let alice = id(ALICE, 0);
    let legacy = format!(r#"{{"Alice":"{alice}","version":"{}"}}"#, id(ALICE, 1));
    std::fs::write(dir.file(), &legacy).unwrap();

    let mut known = KnownPeers::open(dir.file()).unwrap();
    assert!(known.loaded_legacy_file());
    assert_eq!((known.verified_count(), known.seen_count()), (0, 2));
    assert!(!known.get(&alice).unwrap().verified);
    assert_eq!(known.check_at(alice, "Alice", 10).trust, Trust::Seen);
    let clash = known.check_at(id(MALLORY, 0), "Alice", 11).name_clash.unwrap();
    assert_eq!((clash.other, clash.other_verified), (alice, false));
    assert_eq!(
        std::fs::read_to_string(dir.file()).unwrap(),
        legacy,
        "opening does not rewrite the file"
    );

    known.save().unwrap();
    let reopened = KnownPeers::open(dir.file()).unwrap();
    assert!(!reopened.loaded_legacy_file());
    assert_eq!((reopened.verified_count(), reopened.seen_count()), (0, 0));
}

#[test]
fn saving_is_atomic_leaves_no_temp_file_and_is_owner_only() {
    let dir = TestDir::new("atomic");
    // An earlier file, readable by everyone, is replaced by an owner-only one.
    std::fs::write(dir.file(), "{}").unwrap();
    let mut known = KnownPeers::open(dir.file()).unwrap();
    for n in 0..5 {
        known.check_at(id(ALICE, n), "Alice", 1);
        known.mark_verified_at(id(ALICE, n), 1).unwrap();
        assert_eq!(dir.listing(), ["known.json"], "after save {n}");
    }
    assert_eq!(KnownPeers::open(dir.file()).unwrap().verified_count(), 5);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

#[test]
fn a_stale_temp_file_from_a_crashed_writer_breaks_neither_open_nor_save() {
    let dir = TestDir::new("stale");
    drop(store_with_verified_alice(&dir.file()));
    // What a writer that crashed before its rename leaves: a half-written temporary file, under the name this
    // version uses and under the fixed name earlier versions used.
    let stale = [".known.json.0011223344556677.tmp", "known.tmp"];
    for name in stale {
        std::fs::write(dir.0.join(name), r#"{"version":1,"peers":[{"id":"#).unwrap();
    }

    let mut known = KnownPeers::open(dir.file()).unwrap();
    assert!(known.is_verified(&id(ALICE, 0)), "the file before the crash is intact");
    known.mark_verified_at(id(ALICE, 1), 2).unwrap();
    let reopened = KnownPeers::open(dir.file()).unwrap();
    assert!(reopened.is_verified(&id(ALICE, 0)) && reopened.is_verified(&id(ALICE, 1)));
    let mut expected = vec!["known.json".to_owned()];
    expected.extend(stale.iter().map(|s| s.to_string()));
    expected.sort();
    assert_eq!(dir.listing(), expected, "the save added no file of its own");
}

#[test]
fn readers_never_see_a_partial_file_while_another_store_saves() {
    let dir = TestDir::new("concurrent");
    drop(store_with_verified_alice(&dir.file()));
    let path = dir.file();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            let mut known = KnownPeers::open(&path).unwrap();
            for n in 0..50 {
                known.check_at(id(ALICE, n + 1), &format!("Alice {n}"), 5);
                known.mark_verified_at(id(ALICE, n + 1), 5).unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let known = KnownPeers::open(&path).unwrap();
        assert!(known.is_verified(&id(ALICE, 0)));
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(KnownPeers::open(&path).unwrap().verified_count(), 51);
    assert_eq!(dir.listing(), ["known.json"]);
}
