//! Benchmark for the build cache (issues 28 and 31): push → staging verdict
//! (build + `cargo_test`) through the real daemon with the DEFAULT config
//! (the build cache on: each version on its own overlay of the trusted base,
//! which a promoted version feeds), against `cargo build --release && cargo
//! test` in a plain checkout, in the same process, three times (median and
//! spread):
//!
//! - (a) the first version, cold, against a cold plain build + test;
//! - (b) a second version changing one line, against the plain checkout's
//!   warm, incremental build + test of the same change;
//! - (c) the disk a second version adds (the cache's base and layers, work
//!   tree, artifact) against what the first took.
//!
//! The project is the ~190-package service (`benches/warm_service/`), or
//! with `WARM_BENCH=small` a small crate (serde, serde_json, itoa, memchr).
//! Its dependencies are fetched once before anything is timed (into the
//! user's `CARGO_HOME` for the plain checkout, and into the daemon's base).
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

/// The small crate: four dependencies, one test, the same one line.
const SMALL_MANIFEST: &str = "[package]\nname = \"warm_service\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\nitoa = \"1\"\nmemchr = \"2\"\n";
const SMALL_LIB: &str = r#"use serde::Serialize;

#[derive(Serialize)]
pub struct Greeting {
    pub text: String,
    pub visits: String,
}

pub fn greet(name: &str, count: u32) -> String {
    let visits = itoa::Buffer::new().format(count).to_owned();
    let greeting = Greeting { text: format!("hello, {name}"), visits };
    serde_json::to_string(&greeting).unwrap()
}

pub fn has_comma(text: &str) -> bool {
    memchr::memchr(b',', text.as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    #[test]
    fn greets() {
        assert!(super::greet("ann", 2).contains("ann"));
        assert!(super::has_comma(&super::greet("ann", 2)));
    }
}
"#;
const SMALL_MAIN: &str =
    "fn main() {\n    println!(\"{}\", warm_service::greet(\"world\", 1));\n}\n";

fn small() -> bool {
    std::env::var("WARM_BENCH").is_ok_and(|v| v == "small")
}

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
    if small() {
        for (file, text) in
            [("Cargo.toml", SMALL_MANIFEST), ("src/lib.rs", SMALL_LIB), ("src/main.rs", SMALL_MAIN)]
        {
            let target = to.join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        }
        std::fs::write(to.join(".gitignore"), "target/\n").unwrap();
        run(to, "cargo", &["generate-lockfile"], &[]);
        return;
    }
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
        // A frame may hold a log chunk's text after its envelope: only the
        // first JSON value is the envelope.
        let Some(Ok(envelope)) =
            serde_json::Deserializer::from_str(&text).into_iter::<Value>().next()
        else {
            continue;
        };
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

/// One run's figures: (a) cold daemon and plain, (b) warm daemon and
/// plain, in seconds; (c) the first version's disk and what the second
/// added, in bytes.
struct Figures {
    cold: f64,
    plain_cold: f64,
    warm: f64,
    plain_warm: f64,
    disk_first: u64,
    disk_extra: u64,
}

/// Waits until `version` has fed the build cache's base (its promotion
/// follows the verdict by milliseconds).
fn fed(data: &Path, version: &str) {
    let fed_by = data.join("cache/base/fed-by");
    for _ in 0..6000 {
        let text = std::fs::read_to_string(&fed_by).unwrap_or_default();
        if text.starts_with(&format!("{version} ")) && !data.join("cache/base/feeding").exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{version} did not feed the base");
}

fn one_run(n: usize) -> Figures {
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
    let daemon_cargo_home = data.join("cache/base/layer/cargo-home");
    std::fs::create_dir_all(&daemon_cargo_home).unwrap();
    run(&repo, "cargo", &["fetch"], &[]);
    run(&repo, "cargo", &["fetch"], &[("CARGO_HOME", &daemon_cargo_home)]);
    let crates =
        std::fs::read_to_string(repo.join("Cargo.lock")).unwrap().matches("[[package]]").count();
    println!("run {n}: {crates} packages in Cargo.lock");

    // Baseline: a plain checkout of the same files, cold, then the
    // one-line change, warm.
    let plain = root.path().join("plain");
    let plain_target = root.path().join("plain-target");
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "src/main.rs"] {
        let target = plain.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(file), target).unwrap();
    }
    let plain_cold = plain_build_and_test(&plain, &plain_target);
    change_one_line(&plain);
    let plain_warm = plain_build_and_test(&plain, &plain_target);

    // The daemon, with the default config: the build cache on.
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
    let footprint = || du(&[data.join("cache"), data.join("worktrees"), data.join("artifacts")]);
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
        println!("run {n}: daemon (a): build {build:.1}s, cargo_test gate {gate:.1}s");
        fed(&data, "0.1.0");
        let disk_first = footprint();
        change_one_line(&repo);
        git(&repo, &["commit", "-q", "-am", "0.2.0"]);
        let second = git(&repo, &["rev-parse", "HEAD"]);
        let warm = push_to_verdict(&daemon, &mut events, &second, "0.2.0").await;
        let (build, gate) = daemon.split();
        println!("run {n}: daemon (b): build {build:.1}s, cargo_test gate {gate:.1}s");
        fed(&data, "0.2.0");
        (cold, warm, disk_first, footprint())
    });
    drop(runtime);
    let f = Figures {
        cold: secs(cold),
        plain_cold: secs(plain_cold),
        warm: secs(warm),
        plain_warm: secs(plain_warm),
        disk_first,
        disk_extra: disk_second.saturating_sub(disk_first),
    };
    println!(
        "run {n}: (a) {:.1}s / plain {:.1}s = {:.2}; (b) {:.1}s / plain {:.1}s = {:.2} \
         (/ plain + 3 s: {:.2}); (c) {:.1} MiB + {:.1} MiB = {:.1} %",
        f.cold,
        f.plain_cold,
        f.cold / f.plain_cold,
        f.warm,
        f.plain_warm,
        f.warm / f.plain_warm,
        f.warm / (f.plain_warm + 3.0),
        f.disk_first as f64 / 1048576.0,
        f.disk_extra as f64 / 1048576.0,
        100.0 * f.disk_extra as f64 / f.disk_first as f64
    );
    f
}

/// The median of `values`, and their lowest and highest.
fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

fn main() {
    let runs: usize =
        std::env::var("WARM_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let project =
        if small() { "a small crate (serde, serde_json, itoa, memchr)" } else { "the service" };
    println!("warm builds with the default config, {project}, {runs} runs");
    let all: Vec<Figures> = (1..=runs).map(one_run).collect();
    let show = |name: &str, values: Vec<f64>, target: &str| {
        let (m, lo, hi) = median(values);
        println!("{name}: median {m:.2} ({lo:.2}-{hi:.2}){target}");
    };
    let ratios = |f: fn(&Figures) -> f64| all.iter().map(f).collect::<Vec<_>>();
    show(
        "(a) cold push->verdict / cold plain",
        ratios(|f| f.cold / f.plain_cold),
        ", target <= 1.1",
    );
    show("(b) one-line push->verdict / warm plain", ratios(|f| f.warm / f.plain_warm), "");
    show(
        "(b) one-line push->verdict / (warm plain + 3 s)",
        ratios(|f| f.warm / (f.plain_warm + 3.0)),
        ", target <= 1.3",
    );
    show(
        "(c) disk a second version adds, % of the first",
        ratios(|f| 100.0 * f.disk_extra as f64 / f.disk_first as f64),
        ", target <= 10",
    );
    show("seconds, cold push->verdict", ratios(|f| f.cold), "");
    show("seconds, cold plain", ratios(|f| f.plain_cold), "");
    show("seconds, one-line push->verdict", ratios(|f| f.warm), "");
    show("seconds, warm plain", ratios(|f| f.plain_warm), "");
}
