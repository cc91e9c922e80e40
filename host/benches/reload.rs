//! Benchmarks for hot reload, each against a baseline measured in the same run:
//! 1. a component file renamed into the watched gates directory until new
//!    runs use it (the `component_loaded` event, sent right after the swap),
//!    against `Sandbox::load` of the same bytes alone; cold (never compiled)
//!    and with the compiled-component cache warm. No fixtures and no history,
//!    so the shadow test is one empty output.
//! 2. the shadow test over 1,000 recorded outputs in the database, against
//!    classifying the same outputs once with the serving component.
//!
//! Run with `./x bench` (or `cargo bench -p sando --bench reload` after `./x build`).

use sando::store::VersionRecord;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sando::config::Config;
use sando::daemon::reload::submit;
use sando::daemon::{Daemon, Started};
use sando::domain::{Decision, Event, GateKind, GateStatus, TierId};
use sando::fixtures::Case;
use sando::sandbox::{ComponentCache, Limits, Sandbox};
use sando::store::{RunCost, Store};

const COMPONENT_SIZE: usize = 200 << 10;

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_owned()
}

fn component(name: &str) -> Vec<u8> {
    let path = target_dir().join("wasm32-wasip2/gates").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run ./x build)", path.display()))
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `bytes` grown to `size` with a custom section whose content `salt`
/// varies, so each salt is a new digest the cache has never seen.
fn padded(bytes: &[u8], size: usize, salt: u64) -> Vec<u8> {
    let name = b"sando-bench-padding";
    let payload_len = size.saturating_sub(bytes.len() + name.len() + 8);
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&salt.to_le_bytes());
    content.resize(content.len() + payload_len, 0x5a);
    let mut out = bytes.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

fn config(root: &Path, shadow_runs: u32) -> Config {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{root}/data"
token_env = "SANDO_BENCH_TOKEN"
gates_dir = "{root}/gates"
shadow_runs = {shadow_runs}

[project]
repo = "{root}/repo"
build = "true"
artifact = "x"

[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "staging-1"
deploy = "true"
[[tiers.gates]]
kind = "cargo_test"
"#,
        root = root.display()
    );
    let path = root.join("sando.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

async fn start(root: &Path, shadow_runs: u32) -> Arc<Daemon> {
    let started = Started::start(config(root, shadow_runs), Some("bench".into())).await.unwrap();
    let daemon = started.daemon.clone();
    tokio::spawn(started.run(std::future::pending()));
    daemon
}

/// Renames `bytes` into the gates directory; returns when new runs use it.
async fn drop_in(daemon: &Daemon, root: &Path, bytes: &[u8]) -> Duration {
    let mut events = daemon.subscribe();
    let staging = root.join("cargo_test.wasm.tmp");
    std::fs::write(&staging, bytes).unwrap();
    let start = Instant::now();
    std::fs::rename(&staging, root.join("gates/cargo_test.wasm")).unwrap();
    loop {
        let envelope = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("component_loaded within 60 s")
            .unwrap();
        match &envelope.event {
            Event::ComponentLoaded { .. } => return start.elapsed(),
            Event::ComponentRejected { reason, .. } => panic!("rejected: {reason}"),
            _ => {}
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn swap_latency() {
    let root = tempfile::tempdir().unwrap();
    let daemon = start(root.path(), 0).await;
    let same = component("candidate_same");
    let improved = component("candidate_improved");
    println!(
        "1. new file in the gates dir -> new runs use it ({} KiB components, padded from {} KiB)",
        COMPONENT_SIZE >> 10,
        same.len() >> 10
    );

    // Baseline: Sandbox::load alone, with its own cache.
    let cache_dir = root.path().join("baseline-cache");
    let sandbox = Sandbox::new(Limits::default(), Some(ComponentCache::new(cache_dir))).unwrap();
    let mut load_cold = Vec::new();
    let mut load_warm = Vec::new();
    for salt in 0..5 {
        let bytes = padded(&same, COMPONENT_SIZE, 1000 + salt);
        let t = Instant::now();
        sandbox.load(&bytes).unwrap();
        load_cold.push(t.elapsed());
        let t = Instant::now();
        sandbox.load(&bytes).unwrap();
        load_warm.push(t.elapsed());
    }

    let mut cold = Vec::new();
    for salt in 0..5 {
        let source = if salt % 2 == 0 { &improved } else { &same };
        cold.push(drop_in(&daemon, root.path(), &padded(source, COMPONENT_SIZE, salt)).await);
    }
    // Now both of these are compiled and cached; alternate so each is new to
    // the serving slot.
    let a = padded(&improved, COMPONENT_SIZE, 0);
    let b = padded(&same, COMPONENT_SIZE, 1);
    let mut warm = Vec::new();
    for i in 0..10 {
        warm.push(drop_in(&daemon, root.path(), if i % 2 == 0 { &b } else { &a }).await);
    }
    let (cold, warm) = (median(cold), median(warm));
    let (load_cold, load_warm) = (median(load_cold), median(load_warm));
    println!(
        "  cold: median {:.1} ms (target <= 500 ms); Sandbox::load alone {:.1} ms; ratio {:.2}",
        ms(cold),
        ms(load_cold),
        cold.as_secs_f64() / load_cold.as_secs_f64()
    );
    println!(
        "  warm cache: median {:.1} ms (target <= 50 ms); Sandbox::load alone {:.1} ms; ratio {:.2}",
        ms(warm),
        ms(load_warm),
        warm.as_secs_f64() / load_warm.as_secs_f64()
    );
}

/// 1,000 finished cargo_test runs with the fixtures' outputs as their recorded raw output.
async fn record_history(root: &Path, runs: usize) -> Vec<sando::domain::RawOutput> {
    std::fs::create_dir_all(root.join("data")).unwrap();
    let store = Store::open(&root.join("data/sando.sqlite")).await.unwrap();
    let tier: TierId = "staging".parse().unwrap();
    store.sync_tiers(std::slice::from_ref(&tier)).await.unwrap();
    let version = VersionRecord {
        version: "0.1.0".parse().unwrap(),
        git_sha: "0123456789abcdef0123456789abcdef01234567".parse().unwrap(),
        registered_at: Utc::now(),
        artifact: "x".into(),
    };
    store.insert_version(&version).await.unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/cargo_test");
    let cases: Vec<Case> = sando::fixtures::discover(&fixtures)
        .unwrap()
        .iter()
        .map(|dir| Case::load(dir).unwrap())
        .collect();
    let mut outputs = Vec::new();
    for i in 0..runs {
        let case = &cases[i % cases.len()];
        let (id, _) = store
            .insert_gate_run(
                &tier,
                &version.version,
                GateKind::CargoTest,
                sando::store::RunComponents {
                    runner_digest: "bench",
                    runner_contract: "0.2.0",
                    classifier_digest: "bench",
                    classifier_contract: "0.2.0",
                },
                sando::store::Attempt { number: 1, of: 1 },
                Utc::now(),
                |id| format!("0.1.0/cargo_test/{id}.log").parse().unwrap(),
            )
            .await
            .unwrap();
        store
            .finish_gate_run(
                id,
                &case.expected,
                RunCost { fuel: 0, peak_memory: 0 },
                Utc::now(),
                Utc::now(),
            )
            .await
            .unwrap();
        store.record_raw_output(id, GateKind::CargoTest, &case.output).await.unwrap();
        outputs.push(case.output.clone());
    }
    outputs
}

async fn shadow_test() {
    const RUNS: usize = 1000;
    let root = tempfile::tempdir().unwrap();
    let outputs = record_history(root.path(), RUNS).await;
    let daemon = start(root.path(), RUNS as u32).await;
    let total: usize = outputs.iter().map(|o| o.stdout.len() + o.stderr.len()).sum();
    println!(
        "2. shadow test over {RUNS} recorded cargo_test outputs ({:.1} MiB in all)",
        total as f64 / (1 << 20) as f64
    );

    // Baseline: the serving component classifying each output once.
    let sandbox = Sandbox::new(Limits::default(), None).unwrap();
    let shipped = sandbox.load(&component("gate_cargo_test")).unwrap();
    let start = Instant::now();
    for output in &outputs {
        let status: GateStatus = shipped.classify(&sandbox, GateKind::CargoTest, output).status;
        std::hint::black_box(status);
    }
    let baseline = start.elapsed();

    // Compile first, so the figure is the shadow test and not the compiler.
    let improved = component("candidate_improved");
    sandbox.load(&improved).unwrap();
    let start = Instant::now();
    let verdict =
        submit(&daemon, GateKind::CargoTest, improved, "bench".into(), Default::default())
            .await
            .unwrap();
    let shadow = start.elapsed();
    assert_eq!(verdict.decision, Decision::Loaded, "{verdict:?}");
    assert_eq!(verdict.cases as usize, RUNS);
    println!(
        "  submit with shadow test: {:.0} ms (target <= 2000 ms); one classify per output alone: {:.0} ms; ratio {:.2}",
        ms(shadow),
        ms(baseline),
        shadow.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn main() {
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var("SANDO_BENCH_TOKEN", "bench") };
    if std::env::var_os("SANDO_GATES_DIR").is_none() {
        unsafe { std::env::set_var("SANDO_GATES_DIR", target_dir().join("release/gates")) };
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(swap_latency());
    runtime.block_on(shadow_test());
}
