//! Benchmark for the warm-builds issue: push → staging verdict (build +
//! `cargo_test`) through the real daemon with the shared build cache, for a
//! service with ~190 crates of dependencies (`benches/warm_service/`),
//! against `cargo build --release && cargo test` in a plain checkout, in the
//! same run:
//!
//! - (a) the first version, cold, against a cold plain build + test;
//! - (b) a second version changing one line, against the plain checkout's
//!   warm, incremental build + test of the same change;
//! - the disk a second version adds (cache, work tree, artifact) against
//!   what the first took.
//!
//! The dependencies are fetched once before anything is timed (into the
//! user's `CARGO_HOME` for the plain checkout, and into the daemon's own).
//! Run with `cargo bench -p sando --bench warm_builds` after `./x build`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

mod support;

use support::{Daemon, git};
const SERVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/warm_service");
/// The one line version 0.2.0 changes (and its version, which Sando reads).
const LINE_BEFORE: &str = "Greeting { text: format!(\"hello, {name}\"), visits }";
const LINE_AFTER: &str = "Greeting { text: format!(\"hello again, {name}\"), visits }";

fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &Path)]) {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "{program} {args:?} in {}", dir.display());
}

fn copy_service(to: &Path) {
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "src/main.rs"] {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(SERVICE).join(file), target).unwrap();
    }
    std::fs::write(to.join(".gitignore"), "target/\n").unwrap();
}

/// Version 0.2.0: the one-line change, and the version Sando reads.
fn change_one_line(dir: &Path) {
    let lib = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    assert!(text.contains(LINE_BEFORE));
    std::fs::write(&lib, text.replace(LINE_BEFORE, LINE_AFTER)).unwrap();
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1))
        .unwrap();
}

/// `cargo build --release && cargo test` in `dir`, timed.
fn plain_build_and_test(dir: &Path, target: &Path) -> Duration {
    let start = Instant::now();
    run(dir, "cargo", &["build", "--release", "--offline"], &[("CARGO_TARGET_DIR", target)]);
    run(dir, "cargo", &["test", "--offline"], &[("CARGO_TARGET_DIR", target)]);
    start.elapsed()
}

fn du(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| {
            let out = Command::new("du").args(["-sb"]).arg(p).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            text.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

impl Daemon {
    /// Where a push's time went: the newest build's duration, and the
    /// newest cargo_test run's, from `/api/state`.
    fn split(&self) -> (f64, f64) {
        let body = ureq::get(format!("{}/api/state", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let state: Value = serde_json::from_str(&body).unwrap();
        let build = state["builds"][0]["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        let run = &state["tiers"][0]["gates"][0];
        let at = |key: &str| {
            chrono::DateTime::parse_from_rfc3339(run[key].as_str().unwrap_or_default()).ok()
        };
        let gate = match (at("started_at"), at("finished_at")) {
            (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        (build, gate)
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Push → verdict: from the rebuild request to the staging `cargo_test`
/// gate's end, which must be a pass.
async fn push_to_verdict(
    daemon: &Daemon,
    events: &mut Socket,
    sha: &str,
    version: &str,
) -> Duration {
    let start = Instant::now();
    daemon.rebuild(sha);
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(3600), events.next())
            .await
            .expect("a verdict within the hour")
            .expect("the event stream stays open")
            .unwrap();
        let Ok(text) = frame.into_text() else { continue };
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let event = &envelope["event"];
        if event["kind"] == "build_done" && event["outcome"]["kind"] == "failed" {
            panic!("the build failed: {event}");
        }
        if event["kind"] == "gate_done" && event["version"] == version {
            let status = &event["outcome"]["status"];
            assert_eq!(status["kind"], "passed", "{status}");
            return start.elapsed();
        }
    }
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let secs = |d: Duration| d.as_secs_f64();

    // The project, committed as 0.1.0; its dependencies fetched once.
    let repo = root.path().join("service");
    copy_service(&repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "0.1.0"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let data = root.path().join("data");
    let daemon_cargo_home = data.join("cache/cargo-home");
    std::fs::create_dir_all(&daemon_cargo_home).unwrap();
    run(&repo, "cargo", &["fetch"], &[]);
    run(&repo, "cargo", &["fetch"], &[("CARGO_HOME", &daemon_cargo_home)]);
    let crates =
        std::fs::read_to_string(repo.join("Cargo.lock")).unwrap().matches("[[package]]").count();
    println!("benchmark service: {crates} packages in Cargo.lock");

    // Baseline: a plain checkout, cold, then the one-line change, warm.
    let plain = root.path().join("plain");
    let plain_target = root.path().join("plain-target");
    copy_service(&plain);
    let plain_cold = plain_build_and_test(&plain, &plain_target);
    change_one_line(&plain);
    let plain_warm = plain_build_and_test(&plain, &plain_target);
    println!(
        "plain checkout: cold {:.1}s, one-line change {:.1}s",
        secs(plain_cold),
        secs(plain_warm)
    );

    // The daemon, with the shared build cache.
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{data}"
token_env = "SANDO_BENCH_TOKEN"
[project]
repo = "{repo}"
build = "cargo build --release"
artifact = "target/release/warm_service"
build_cache = true
[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "cargo_test"
args = ["test"]
timeout = "1h"
"#,
            data = data.display(),
            repo = repo.display(),
        ),
    )
    .unwrap();
    let footprint =
        || du(&[data.join("cache/target"), data.join("worktrees"), data.join("artifacts")]);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (cold, warm, disk_first, disk_second) = runtime.block_on(async {
        let daemon = Daemon::start(&config);
        let (mut events, _) = tokio_tungstenite::connect_async(format!(
            "{}/api/events",
            daemon.url.replace("http://", "ws://")
        ))
        .await
        .unwrap();
        let cold = push_to_verdict(&daemon, &mut events, &first, "0.1.0").await;
        let (build, gate) = daemon.split();
        println!("daemon (a): build {build:.1}s, cargo_test gate {gate:.1}s");
        let disk_first = footprint();
        change_one_line(&repo);
        git(&repo, &["commit", "-q", "-am", "0.2.0"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        let warm = push_to_verdict(&daemon, &mut events, &second, "0.2.0").await;
        let (build, gate) = daemon.split();
        println!("daemon (b): build {build:.1}s, cargo_test gate {gate:.1}s");
        (cold, warm, disk_first, footprint())
    });
    drop(runtime);

    let extra = disk_second.saturating_sub(disk_first);
    println!("plain checkout, cold build + test: {:.1}s", secs(plain_cold));
    println!("plain checkout, one-line change, warm build + test: {:.1}s", secs(plain_warm));
    println!("daemon (a) first version, cold, push to verdict: {:.1}s", secs(cold));
    println!("daemon (b) one-line change, push to verdict: {:.1}s", secs(warm));
    println!("ratio (a) / cold plain: {:.2} (target <= 1.1)", secs(cold) / secs(plain_cold));
    println!("ratio (b) / warm plain: {:.2} (target <= 1.3)", secs(warm) / secs(plain_warm));
    println!(
        "disk: first version {:.1} MiB, the second adds {:.1} MiB: {:.1} % (target < 10 %)",
        disk_first as f64 / 1048576.0,
        extra as f64 / 1048576.0,
        100.0 * extra as f64 / disk_first as f64
    );
}
