//! Project tasks.
//!
//! - `cargo xtask test` — every check and test, installing what the tests need first (JNA, the Kotlin
//!   compiler, iproute2, tcpdump, Python's zeroconf).
//! - `cargo xtask bindings [--release]` — builds the native library and regenerates the Kotlin and Swift
//!   bindings into `target/bindings/` (generated code is never edited by hand).
//! - `cargo xtask kotlin-test` — compiles the Kotlin bindings, the Flow wrapper and the JVM tests with `kotlinc`
//!   and runs them against the host-built library.
//! - `cargo xtask swift-check` — generates the Swift bindings and checks they contain the expected API.
//! - `cargo xtask bench [--quick]` — the benchmark suite against raw quinn (`target/bench/bench.md`, `.json`).
//! - `cargo xtask fuzz [seconds]` — runs each fuzz target (frame decoder, discovery records) for a while.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

type Result<T = ()> = std::result::Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("bindings") => bindings(args.iter().any(|a| a == "--release")).map(drop),
        Some("kotlin-test") => kotlin_test(),
        Some("python-drop-test") => python_drop_test(),
        Some("python-test") => python_test(),
        Some("swift-check") => swift_check(),
        Some("bench") => bench(args.iter().any(|a| a == "--quick")),
        Some("fuzz") => fuzz(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60)),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|bindings [--release]|kotlin-test|python-drop-test|python-test|swift-check|bench [--quick]|fuzz [seconds]>"
            );
            exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        exit(1);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Cargo's build directory: `CARGO_TARGET_DIR` (relative to the workspace) if set, else `target/`. Generated
/// bindings and tools stay under the workspace's `target/`, where the Gradle build and the XCFramework script
/// look for them.
fn cargo_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

/// Every check and test, installing what they need first.
fn test() -> Result {
    // A one-off build: incremental caches would only take disk (GiBs over all test binaries).
    std::env::set_var("CARGO_INCREMENTAL", "0");
    disk_space();
    install_prerequisites()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    run(cargo().args(["test", "--workspace", "--all-features"]))?;
    prune_test_binaries();
    kotlin_test()?;
    python_drop_test()?;
    python_test()?;
    swift_check()?;
    // The benchmarks only prove they still run here; figures come from `cargo xtask bench`.
    bench(true)?;
    fuzz(20)?;
    disk_space();
    Ok(())
}

/// Deletes the test executables of the debug build once they have run (about 0.6 GiB): cargo links again any
/// that a later step runs. The examples stay (the Python LAN test runs the chat example). Never fails.
fn prune_test_binaries() {
    let debug = cargo_target_dir().join("debug");
    let Ok(entries) = std::fs::read_dir(debug.join("deps")) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let executable = entry.metadata().is_ok_and(|m| m.is_file() && is_executable(&m));
        // Test executables are `<name>-<hash>` without an extension; libraries (.so, .rlib, .rmeta, .d) stay.
        if executable && path.extension().is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
    disk_space();
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Prints the free space where the build goes (for a run that fails with a full disk); never fails itself.
fn disk_space() {
    let target = cargo_target_dir();
    let dir = if target.exists() { target } else { root() };
    let _ = Command::new("df").arg("-h").arg(dir).status();
}

/// Fuzz targets of the frame decoder and the discovery-record parser, each for `seconds`.
///
/// cargo-fuzz needs nightly features; `RUSTC_BOOTSTRAP=1` enables them on the stable toolchain. A crash is
/// saved under `core/fuzz/artifacts/` and becomes a regression test in the crate's unit tests.
fn fuzz(seconds: u32) -> Result {
    let fuzz_installed = succeeds(cargo().args(["fuzz", "--version"]));
    if !fuzz_installed {
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    for target in ["frame_decoder", "discovery_record"] {
        run(cargo()
            .current_dir(root().join("core"))
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048"))?;
    }
    Ok(())
}

/// Runs the benchmark suite; writes `target/bench/bench.md` and `bench.json`.
fn bench(quick: bool) -> Result {
    // The peer process of the mDNS mesh measurement (the `lan` group, on a virtual LAN when run as root).
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "multipeer",
        "--features",
        "test-peer",
        "--bin",
        "multipeer-test-peer",
    ]))?;
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "multipeer-bench", "--"]);
    if quick {
        cmd.args(["--quick", "--out", "target/bench-quick"]);
    }
    run(&mut cmd)
}

fn apt_install(packages: &[&str]) -> Result {
    if succeeds(Command::new("apt-get").args(["install", "-y", "-q"]).args(packages)) {
        return Ok(());
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-q"]).args(packages))
}

fn install_prerequisites() -> Result {
    if !Path::new("/usr/share/java/jna.jar").exists() {
        apt_install(&["libjna-java"])?;
    }
    if !succeeds(Command::new("ip").arg("-V")) {
        apt_install(&["iproute2"])?;
    }
    // The mDNS traffic test captures on the virtual LAN's bridge.
    if !succeeds(Command::new("tcpdump").arg("--version")) {
        apt_install(&["tcpdump"])?;
    }
    if !succeeds(Command::new("python3").args(["-c", "import zeroconf"])) {
        run(Command::new("python3").args(["-m", "pip", "install", "-q", "zeroconf"]))?;
    }
    kotlin_home().map(drop)
}

/// The Kotlin compiler from npm's `kotlin-compiler` package, installed into `target/tools` if needed.
fn kotlin_home() -> Result<PathBuf> {
    let home = root().join("target/tools/node_modules/kotlin-compiler");
    if !home.join("bin/kotlinc").exists() {
        std::fs::create_dir_all(root().join("target/tools")).map_err(|e| e.to_string())?;
        run(Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
            .arg(root().join("target/tools"))
            .arg("kotlin-compiler"))?;
    }
    Ok(home)
}

/// Builds the native library and generates both languages' bindings; returns the library's directory.
fn bindings(release: bool) -> Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    let mut build = cargo();
    build.args(["build", "-p", "multipeer-ffi", "--lib"]);
    if release {
        build.arg("--release");
    }
    run(&mut build)?;
    let lib_dir = cargo_target_dir().join(profile);
    let lib = lib_dir.join(if cfg!(target_os = "macos") {
        "libmultipeer_ffi.dylib"
    } else {
        "libmultipeer_ffi.so"
    });
    for language in ["kotlin", "swift", "python"] {
        let out = root().join("target/bindings").join(language);
        let _ = std::fs::remove_dir_all(&out);
        run(cargo()
            .args([
                "run",
                "-q",
                "-p",
                "multipeer-ffi",
                "--features",
                "cli",
                "--bin",
                "uniffi-bindgen",
                "--",
            ])
            .args(["generate", "--no-format", "-l", language, "-o"])
            .arg(&out)
            .arg(&lib))?;
    }
    Ok(lib_dir)
}

/// Releasing a session from Python (the generated bindings, before any Python package) says goodbye.
fn python_drop_test() -> Result {
    let lib_dir = bindings(false)?;
    let out = root().join("target/bindings/python");
    let lib = if cfg!(target_os = "macos") {
        "libmultipeer_ffi.dylib"
    } else {
        "libmultipeer_ffi.so"
    };
    std::fs::copy(lib_dir.join(lib), out.join(lib)).map_err(|e| format!("copy {lib}: {e}"))?;
    run(Command::new("python3")
        .arg(root().join("core/ffi/tests/drop.py"))
        .arg(&out))
}

/// A virtualenv at `dir` (made if missing) with `packages` installed; returns its Python.
fn venv(dir: &Path, packages: &[&str]) -> Result<PathBuf> {
    let python = dir.join("bin/python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    }
    if !packages.is_empty() {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages))?;
    }
    Ok(python)
}

/// Builds the Python wheel with maturin, installs it into a fresh virtualenv and runs the Python tests against
/// the installed package (not the source tree), then a Python peer against a Rust one on the virtual LAN.
fn python_test() -> Result {
    let build = venv(&root().join("target/python/build"), &["maturin>=1.16,<2"])?;
    let wheels = root().join("target/python/wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    run(Command::new(&build)
        .current_dir(root().join("python"))
        .args(["-m", "maturin", "build", "-q", "-o"])
        .arg(&wheels))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("{}: {e}", wheels.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin made no wheel")?;
    let test_env = root().join("target/python/test");
    let _ = std::fs::remove_dir_all(&test_env);
    let python = venv(&test_env, &["pytest"])?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
        .arg(&wheel))?;
    // From a directory without the sources, so that `import multipeer` finds the installed wheel.
    run(Command::new(&python)
        .current_dir(&test_env)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
        ])
        .arg(root().join("python/tests")))?;
    run(cargo()
        .args([
            "test",
            "-p",
            "multipeer-examples",
            "--test",
            "python_lan",
            "--",
            "--ignored",
        ])
        .env("MULTIPEER_PYTHON", &python))
}

fn kotlin_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                kotlin_sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "kt") {
                out.push(path);
            }
        }
    }
}

fn kotlin_test() -> Result {
    install_prerequisites()?;
    let lib_dir = bindings(false)?;
    let home = kotlin_home()?;
    let jna = "/usr/share/java/jna.jar";
    let coroutines = home.join("lib/kotlinx-coroutines-core-jvm.jar");
    let stdlib = home.join("lib/kotlin-stdlib.jar");
    let mut sources = Vec::new();
    kotlin_sources(&root().join("target/bindings/kotlin"), &mut sources);
    kotlin_sources(&root().join("ffi-kotlin/multipeer/src/main/kotlin"), &mut sources);
    kotlin_sources(&root().join("ffi-kotlin/jvm-test"), &mut sources);
    let out = root().join("target/kotlin-test");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let jar = out.join("tests.jar");
    let classpath = format!("{jna}:{}", coroutines.display());
    run(Command::new(home.join("bin/kotlinc"))
        .args(&sources)
        .args(["-nowarn", "-jvm-target", "17", "-cp", &classpath, "-d"])
        .arg(&jar))?;
    run(Command::new("java")
        .arg(format!("-Djna.library.path={}", lib_dir.display()))
        .arg("-cp")
        .arg(format!("{}:{classpath}:{}", jar.display(), stdlib.display()))
        .arg("SessionTestKt"))
}

/// No Swift compiler runs here: check the generated Swift carries the API the Swift package wraps.
fn swift_check() -> Result {
    bindings(false)?;
    let dir = root().join("target/bindings/swift");
    let swift = std::fs::read_to_string(dir.join("MultipeerFFI.swift")).map_err(|e| format!("generated Swift: {e}"))?;
    let header = std::fs::read_to_string(dir.join("MultipeerFFIC.h")).map_err(|e| format!("generated header: {e}"))?;
    let expected = [
        "public protocol SessionDelegate",
        "public protocol ForeignDiscovery",
        "open class Session",
        "public convenience init(config: SessionConfig, delegate: SessionDelegate) throws",
        "public static func inProcess(",
        "public static func withDiscovery(",
        "func send(data: Data, to: [String], reliable: Bool) async throws",
        "func openStream(name: String, peer: String) async throws -> OutgoingStream",
        "func shutdown() async throws",
        "func verificationCode(peer: String) throws -> String?",
        "public enum CongestionControl",
        "public enum MultipeerError",
        "public static func create(config: SessionConfig, delegate: SessionDelegate) async throws -> Session",
        "public static func createWithDiscovery(",
        "func discoveryStateChanged(state: DiscoveryState) throws",
        "func sessionEnded(reason: String) throws",
        "func stateChanged(state: DiscoveryState) throws",
        "public enum DiscoveryState",
        "public func setLogSink(level: LogLevel, sink: LogSink)",
        "public protocol LogSink",
        "public struct LogRecord",
        "public struct SessionConfig",
        "public struct PeerInfo",
        "public struct NearbyPeerInfo",
        "func peerFound(peer: NearbyPeerInfo) throws",
        "func peerLost(peer: NearbyPeerInfo) throws",
        "func nearby() -> [NearbyPeerInfo]",
        "func allowPeer(peer: String) async throws",
        "public func generateIdentity() -> Data",
        "func sendResource(path: String, name: String, peer: String) async throws -> ResourceTransfer",
        "open class ResourceTransfer",
        "func finished() async throws -> ResourceResult",
        "func progress() -> ResourceProgress",
        "func isFinished() -> Bool",
        "func isIncoming() -> Bool",
        "func cancel()",
        "func resourceStarted(transfer: ResourceTransfer) throws",
        "func resourceFinished(transfer: ResourceTransfer, path: String?, error: MultipeerError?) throws",
        "func invitationReceived(invitation: Invitation) throws",
        "func resourceOffered(offer: ResourceOffer) throws",
        "func duplexStreamReceived(stream: DuplexStream) throws",
        "func invite(peer: String, context: Data?) async throws",
        "func openDuplexStream(name: String, peer: String) async throws -> DuplexStream",
        "open class Invitation",
        "open class ResourceOffer",
        "open class DuplexStream",
        "func context() -> Data?",
        "func isExpired() -> Bool",
        "func read(max: UInt32) async throws -> Data",
        "func write(data: Data) async throws",
        "public enum InvitationMode",
        "public enum ResourceAcceptance",
        "public var invitationMode: InvitationMode?",
        "public var resourceAcceptance: ResourceAcceptance?",
        "public var answerTimeoutMs: UInt64?",
        "case InvitationDeclined(",
        "case InvitationTimedOut(",
        "case AnswerExpired",
        "case NotNearby(",
        "public struct ResourceProgress",
        "public var bytesPerSecond: Double",
        "public struct ResourceResult",
        "public enum RefusalReason",
        "case ResourceRefused(",
        "public var resourceDirectory: String?",
        "public var maxResourceSize: UInt64?",
        "public var resumeWindowMs: UInt64?",
        "public var overwriteResources: Bool",
    ];
    // The generator's spacing varies: compare without whitespace.
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let swift_squeezed = squeeze(&swift);
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|e| !swift_squeezed.contains(&squeeze(e)))
        .collect();
    if !missing.is_empty() {
        return Err(format!("generated Swift lacks: {missing:?}"));
    }
    if !header.contains("uniffi_multipeer_ffi_fn_constructor_session_new") {
        return Err("generated C header lacks the session constructor".into());
    }
    // The Swift package's sources must still match what is generated.
    let wrapper = root().join("ffi-swift/Sources/Multipeer/MultipeerSession.swift");
    if !wrapper.exists() {
        return Err(format!("{} is missing", wrapper.display()));
    }
    eprintln!("swift-check: generated Swift bindings expose the expected API");
    Ok(())
}
