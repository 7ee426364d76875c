//! What the example tests share: the virtual LAN, where the example binaries are, and matching their lines.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

#[path = "../../../core/tests/common/netns.rs"]
pub mod netns;

use std::time::Duration;

use netns::PeerProcess;

/// The example binary `name`, built by `cargo test` (or `cargo build --examples`) next to the test binaries.
pub fn example(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "build the examples first: {}", path.display());
    path.to_str().unwrap().to_owned()
}

/// Waits at most `limit` for a stdout line starting with `prefix` and returns the rest of it.
pub fn line(peer: &mut PeerProcess, limit: Duration, prefix: &str) -> String {
    peer.expect(limit, &format!("a line starting with {prefix:?}"), |v| {
        v["line"]
            .as_str()
            .and_then(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
    })
}

/// Waits the whole of `window` and panics if a stdout line starting with `prefix` arrives.
pub fn no_line(peer: &mut PeerProcess, window: Duration, prefix: &str) {
    peer.expect_none(window, &format!("line starting with {prefix:?}"), |v| {
        v["line"].as_str().is_some_and(|l| l.starts_with(prefix))
    });
}

/// Runs `f` on a thread that has entered network namespace `namespace`: sockets it creates live in that
/// namespace (and can then be used from any thread).
#[cfg(target_os = "linux")]
pub fn in_namespace<T: Send + 'static>(namespace: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = std::path::Path::new("/run/netns").join(namespace);
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}
