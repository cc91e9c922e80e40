//! Benchmarks for the decision-loop issue, each against a baseline measured in the same run:
//! 1. confirmation → deploy latency at prod while staging's gate runs (a
//!    test that hangs), against the same latency with staging idle;
//! 2. the cost of a durable deploy intent (`synchronous = FULL` for its
//!    commit) against the same insert at the pool's `NORMAL`;
//! 3. confirmation → deploy latency with every event notified to a
//!    webhook receiver that accepts and never answers, against a daemon
//!    with no `[[notify]]`, alternating.
//!
//! Run with `./x bench` (or `cargo bench -p sando --bench decision_loop` after `./x build`).

#[path = "../tests/util/daemon.rs"]
#[allow(dead_code)]
mod daemon_util;
// What `daemon_util` names as `super::postgres`: the suite's PostgreSQL,
// which this benchmark does not use.
#[path = "../tests/util/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use daemon_util::{Daemon, Events, Project, TOKEN, gate_done};
use serde_json::json;

const SAMPLES: usize = 12;

fn config(root: &Path, repo: &Path) -> PathBuf {
    config_with(root, repo, "")
}

/// The benchmark's config, with `extra` at its end.
fn config_with(root: &Path, repo: &Path, extra: &str) -> PathBuf {
    let node = root.join("prod-1");
    std::fs::create_dir_all(&node).unwrap();
    let path = root.join("sando.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"
[[tiers]]
name = "prod"
[[tiers.nodes]]
name = "prod-1"
deploy = "cp {{artifact}} {node}/tiny"
[[tiers.gates]]
kind = "manual_confirm"
{extra}
"#,
            repo = repo.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    path
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// One sample: a version that passes staging waits at prod; with `busy`, a
/// newer version's test then hangs in staging; the confirmation's latency
/// to the promotion is measured.
async fn sample(
    daemon: &Daemon,
    events: &Events,
    project: &Project,
    n: &mut u32,
    busy: bool,
) -> Duration {
    *n += 1;
    let quick = format!("0.{n}.0");
    let sha = project.commit(&quick, "assert_eq!(super::answer(), 42);");
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202);
    let v = quick.clone();
    let waiting = events
        .wait("confirmation awaited", Duration::from_secs(180), move |e| {
            gate_done("manual_confirm", "blocked")(e) && e["version"] == v.as_str()
        })
        .await;
    if busy {
        *n += 1;
        let slow = format!("0.{n}.0");
        let body = "std::thread::sleep(std::time::Duration::from_secs(3600));";
        let sha = project.commit(&slow, body);
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
        let v = slow.clone();
        events
            .wait("staging busy", Duration::from_secs(180), move |e| {
                e["kind"] == "gate_start" && e["tier"] == "staging" && e["version"] == v.as_str()
            })
            .await;
        // Let its test binary compile and start hanging.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let run = waiting["event"]["run_id"].as_i64().unwrap();
    let start = Instant::now();
    let (status, _) = daemon.post(&format!("/api/gate-runs/{run}/confirm"), Some(TOKEN), "{}");
    assert_eq!(status, 200);
    let v = quick.clone();
    events
        .wait("promoted", Duration::from_secs(60), move |e| {
            e["kind"] == "promoted" && e["tier"] == "prod" && e["version"] == v.as_str()
        })
        .await;
    start.elapsed()
}

async fn confirmation_latency() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config = config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let (mut busy, mut idle) = (Vec::new(), Vec::new());
    let mut n = 0;
    for i in 0..SAMPLES * 2 {
        // Alternate, so both see the same machine.
        if i % 2 == 0 {
            busy.push(sample(&daemon, &events, &project, &mut n, true).await.as_secs_f64() * 1e3);
        } else {
            idle.push(sample(&daemon, &events, &project, &mut n, false).await.as_secs_f64() * 1e3);
        }
    }
    let (busy_p50, busy_p99) = (percentile(&mut busy, 0.5), percentile(&mut busy, 0.99));
    let (idle_p50, idle_p99) = (percentile(&mut idle, 0.5), percentile(&mut idle, 0.99));
    println!("confirmation -> prod deploy and promotion, {SAMPLES} samples each:");
    println!(
        "  while staging's test runs: p50 {busy_p50:.1} ms, p99 {busy_p99:.1} ms (target p99 < 2000 ms)"
    );
    println!("  staging idle (baseline):   p50 {idle_p50:.1} ms, p99 {idle_p99:.1} ms");
    println!("  ratio busy/idle p50: {:.2}", busy_p50 / idle_p50);
    drop(daemon);
}

/// A webhook receiver that takes every connection and never answers.
fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

async fn latency_beside_a_silent_webhook() {
    let port = black_hole();
    let notify = format!("[[notify]]\nurl = \"http://127.0.0.1:{port}/hook\"\n");
    let (quiet_root, loud_root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (quiet_project, loud_project) =
        (Project::new(quiet_root.path()), Project::new(loud_root.path()));
    let quiet = Daemon::start(&config(quiet_root.path(), &quiet_project.dir));
    let loud = Daemon::start(&config_with(loud_root.path(), &loud_project.dir, &notify));
    let (quiet_events, loud_events) =
        (Events::connect(&quiet.url).await, Events::connect(&loud.url).await);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut n_quiet, mut n_loud) = (0, 0);
    for _ in 0..SAMPLES {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        with.push(ms(sample(&loud, &loud_events, &loud_project, &mut n_loud, false).await));
        without.push(ms(sample(&quiet, &quiet_events, &quiet_project, &mut n_quiet, false).await));
    }
    let (with_p50, with_p99) = (percentile(&mut with, 0.5), percentile(&mut with, 0.99));
    let (without_p50, without_p99) =
        (percentile(&mut without, 0.5), percentile(&mut without, 0.99));
    let (_, pending) = loud.get("/api/notifications");
    let pending = serde_json::from_str::<serde_json::Value>(&pending).unwrap();
    println!("confirmation -> prod deploy and promotion, {SAMPLES} samples each, alternating:");
    println!(
        "  every event to a webhook that never answers: p50 {with_p50:.1} ms, p99 {with_p99:.1} ms \
         ({} deliveries waiting)",
        pending.as_array().map_or(0, Vec::len)
    );
    println!(
        "  no [[notify]] (baseline):                   p50 {without_p50:.1} ms, p99 {without_p99:.1} ms"
    );
    println!("  ratio with/without p50: {:.2}", with_p50 / without_p50);
}

async fn durable_intent_cost() {
    let root = tempfile::tempdir().unwrap();
    let store = sando::store::Store::open(&root.path().join("sando.sqlite")).await.unwrap();
    let tier: sando::domain::TierId = "prod".parse().unwrap();
    store.sync_tiers(std::slice::from_ref(&tier)).await.unwrap();
    let version: sando::domain::Version = "1.0.0".parse().unwrap();
    store
        .insert_version(&sando::store::VersionRecord {
            version: version.clone(),
            git_sha: "0123456789abcdef0123456789abcdef01234567".parse().unwrap(),
            registered_at: Utc::now(),
            artifact: "/x".into(),
        })
        .await
        .unwrap();
    let node: sando::domain::NodeId = "prod-1".parse().unwrap();
    let log: sando::domain::LogRef = "deploys/x.log".parse().unwrap();
    let rounds = 400;
    let mut normal = Vec::new();
    let mut full = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        store.insert_deploy(&tier, &version, &node, &log, Utc::now()).await.unwrap();
        normal.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        store.insert_deploy_durably(&tier, &version, &node, &log, None, Utc::now()).await.unwrap();
        full.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let (n50, f50) = (percentile(&mut normal, 0.5), percentile(&mut full, 0.5));
    println!("deploy intent insert, {rounds} each, alternating:");
    println!("  synchronous = FULL: p50 {f50:.3} ms, p99 {:.3} ms", percentile(&mut full, 0.99));
    println!("  NORMAL (baseline):  p50 {n50:.3} ms, p99 {:.3} ms", percentile(&mut normal, 0.99));
    println!("  ratio FULL/NORMAL p50: {:.2}", f50 / n50);
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        durable_intent_cost().await;
        confirmation_latency().await;
        latency_beside_a_silent_webhook().await;
    });
}
