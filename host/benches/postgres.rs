//! Benchmarks for the PostgreSQL store (issue 27), each a ratio against SQLite measured in the same run, or a figure with its target:
//! 1. `state`: `GET /api/state` with 100,000 gate runs, PostgreSQL (the
//!    history copied there by `sando store copy`) against the SQLite file
//!    it came from, requests interleaved in blocks;
//! 2. `verdict`: a push (`POST /api/rebuild` of a new commit) to its
//!    `cargo_test` verdict, a daemon on each store, alternating;
//! 3. `takeover`: two daemons on one database, the leader killed with
//!    SIGKILL twenty times; the time until the standby says it leads;
//! 4. `relay`: a gate printing 64 MiB, followed live by a client of the
//!    leader and one of a standby (chunks forwarded as where they are,
//!    the bytes read from the shared log file): the standby's client's
//!    time to the last byte against the leader's, and the bytes it got.
//!
//! Needs a PostgreSQL: `./x bench` starts one (`SANDO_TEST_PG_URL`).
//! Run one with `cargo bench -p sando --bench postgres -- takeover`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{Daemon, git};

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

/// A new database on the cluster `./x bench` started; its URL.
async fn fresh_database(name: &str) -> String {
    use sqlx::Connection as _;
    let url = std::env::var("SANDO_TEST_PG_URL")
        .expect("SANDO_TEST_PG_URL: run with ./x bench, which starts PostgreSQL");
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let name = format!("sando_bench_{name}_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A config in `root` named `name`: one tier `bench` with `gates`, and
/// `store` appended.
fn config(root: &Path, name: &str, repo: &Path, gates: &str, store: &str) -> PathBuf {
    let path = root.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{name}-data"
token_env = "SANDO_BENCH_TOKEN"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "bench"
[[tiers.nodes]]
name = "bench-1"
deploy = "true"
{gates}
{store}
"#,
            repo = repo.display()
        ),
    )
    .unwrap();
    path
}

fn get_state(agent: &ureq::Agent, url: &str) -> Value {
    let body = agent.get(format!("{url}/api/state")).call().unwrap().body_mut().read_to_string();
    serde_json::from_str(&body.unwrap()).unwrap()
}

async fn state(root: &Path) {
    let repo = root.join("unused-repo");
    let sqlite = config(root, "history", &repo, "", "");
    drop(Daemon::start(&sqlite)); // creates the schema and the tier
    let db = root.join("history-data/sando.sqlite");
    support::seed_history(&db).await;
    let url = fresh_database("state").await;
    let copy = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["store", "copy", "--from", &format!("sqlite://{}", db.display()), "--to", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let copied = copy.elapsed();
    let postgres = config(root, "history-pg", &repo, "", &format!("[store]\nurl = \"{url}\""));
    // The same data directory's files do not matter here: only the store.
    let on_sqlite = Daemon::start(&sqlite);
    let on_postgres = Daemon::start(&postgres);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    // Each promotes the seeded candidate (the tier has no gates) first.
    for url in [&on_sqlite.url, &on_postgres.url] {
        while get_state(&agent, url)["tiers"][0]["current_version"] != "0.999.0" {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let same = |mut state: Value| {
        state["scheduler"] = Value::Null;
        state["leader"] = Value::Null;
        // Each daemon deploys the seeded candidate itself, at its own time.
        state["deploys"] = Value::Null;
        state
    };
    assert_eq!(
        same(get_state(&agent, &on_sqlite.url)),
        same(get_state(&agent, &on_postgres.url)),
        "both serve the same state"
    );
    let (mut lite, mut pg) = (Vec::new(), Vec::new());
    for url in [&on_sqlite.url, &on_postgres.url] {
        for _ in 0..50 {
            get_state(&agent, url);
        }
    }
    // Blocks of 100, alternating, so drift on a shared machine hits both.
    for _ in 0..20 {
        for (url, samples) in [(&on_sqlite.url, &mut lite), (&on_postgres.url, &mut pg)] {
            for _ in 0..100 {
                let start = Instant::now();
                agent
                    .get(format!("{url}/api/state"))
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                samples.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let (lite99, pg99) = (percentile(&mut lite, 0.99), percentile(&mut pg, 0.99));
    println!(
        "GET /api/state with 100,000 gate runs, 2,000 requests each (copied in {copied:.1?}):"
    );
    println!(
        "  SQLite p50 {:.2} ms p99 {lite99:.2} ms; PostgreSQL p50 {:.2} ms p99 {pg99:.2} ms",
        percentile(&mut lite, 0.5),
        percentile(&mut pg, 0.5)
    );
    println!("  p99 PostgreSQL / SQLite: {:.2} (target <= 2, and <= 5 ms)", pg99 / lite99);
}

/// A tiny crate in a git repository; each commit a new version.
fn tiny_project(root: &Path) -> PathBuf {
    let dir = root.join("tiny");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() { println!(\"tiny\"); }\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    dir
}

fn commit(repo: &Path, minor: u32) -> String {
    std::fs::write(
        repo.join("Cargo.toml"),
        format!("[package]\nname = \"tiny\"\nversion = \"0.{minor}.0\"\nedition = \"2021\"\n"),
    )
    .unwrap();
    std::fs::write(
        repo.join("src/lib.rs"),
        format!("pub fn answer() -> u32 {{ {minor} }}\n#[test]\nfn answers() {{ assert_eq!(answer(), {minor}); }}\n"),
    )
    .unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", &format!("0.{minor}.0")]);
    git(repo, &["rev-parse", "HEAD"])
}

/// Push to the `cargo_test` verdict of version `0.{minor}.0`.
fn push_to_verdict(daemon: &Daemon, sha: &str, minor: u32) -> Duration {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let version = format!("0.{minor}.0");
    let start = Instant::now();
    daemon.rebuild(sha);
    loop {
        let state = get_state(&agent, &daemon.url);
        let tier = &state["tiers"][0];
        let shown = tier["candidate_version"] == version.as_str()
            || tier["current_version"] == version.as_str();
        let done = tier["gates"].as_array().into_iter().flatten().any(|g| {
            g["gate"] == "cargo_test"
                && g["version"] == version.as_str()
                && g["status"] != "running"
        });
        if shown && done {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no verdict: {state}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn verdict(root: &Path) {
    let repo = tiny_project(root);
    let gate = "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = \"test --offline\"";
    let url = fresh_database("verdict").await;
    let on_sqlite = Daemon::start(&config(root, "verdict-sqlite", &repo, gate, ""));
    let on_postgres = Daemon::start(&config(
        root,
        "verdict-pg",
        &repo,
        gate,
        &format!("[store]\nurl = \"{url}\""),
    ));
    // The first push of each builds cold; not measured.
    let sha = commit(&repo, 1);
    push_to_verdict(&on_sqlite, &sha, 1);
    push_to_verdict(&on_postgres, &sha, 1);
    let (mut lite, mut pg) = (Vec::new(), Vec::new());
    for minor in 2..12 {
        let sha = commit(&repo, minor);
        // Alternating which goes first.
        if minor % 2 == 0 {
            lite.push(push_to_verdict(&on_sqlite, &sha, minor).as_secs_f64());
            pg.push(push_to_verdict(&on_postgres, &sha, minor).as_secs_f64());
        } else {
            pg.push(push_to_verdict(&on_postgres, &sha, minor).as_secs_f64());
            lite.push(push_to_verdict(&on_sqlite, &sha, minor).as_secs_f64());
        }
    }
    let (lite50, pg50) = (percentile(&mut lite, 0.5), percentile(&mut pg, 0.5));
    println!("push -> cargo_test verdict, 10 pushes each, alternating:");
    println!("  SQLite median {lite50:.2} s, PostgreSQL median {pg50:.2} s");
    println!("  PostgreSQL / SQLite: {:.3} (target <= 1.1)", pg50 / lite50);
}

async fn takeover(root: &Path) {
    const LEASE: &str = "10s";
    let url = fresh_database("takeover").await;
    let repo = root.join("unused-repo");
    let store = format!("[store]\nurl = \"{url}\"\nleader_lease = \"{LEASE}\"");
    let config = config(root, "takeover", &repo, "", &store);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let leads = |daemon: &Daemon| {
        agent
            .get(format!("{}/api/state", daemon.url))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .is_some_and(|s| s["leader"]["this_daemon"] == true)
    };
    let mut leader = Daemon::start(&config);
    let mut standby = Daemon::start(&config);
    let mut samples = Vec::new();
    for _ in 0..20 {
        // The standby is standing by (its campaign runs) before the kill.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(leads(&leader) && !leads(&standby));
        let killed = Instant::now();
        drop(leader); // SIGKILL
        while !leads(&standby) {
            assert!(killed.elapsed() < Duration::from_secs(60), "no takeover");
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.push(killed.elapsed().as_secs_f64());
        leader = standby;
        standby = Daemon::start(&config);
    }
    println!("takeover after SIGKILL of the leader, 20 takeovers (lease {LEASE}):");
    println!(
        "  p50 {:.2} s, p99 {:.2} s (target p99 <= lease + 5 s)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );
}

/// Follows the live chunks on `url` until a gate is done: the time from
/// `started` to the last chunk, and the bytes that came live (a client
/// takes what it missed from the log by `?from=`).
async fn follow_live(url: String, started: Instant) -> (Duration, u64) {
    use futures_util::StreamExt;
    use sando::domain::{Event, EventEnvelope};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}/api/events", url.replace("http://", "ws://")))
            .await
            .unwrap();
    let (mut bytes, mut last) = (0u64, started);
    while let Some(Ok(message)) = socket.next().await {
        let envelope = match message {
            Message::Binary(frame) => EventEnvelope::from_binary(frame).unwrap(),
            Message::Text(text) => EventEnvelope::from_text(&text).unwrap(),
            _ => continue,
        };
        match envelope.event {
            Event::GateLogChunk { bytes: chunk, .. } => {
                bytes += chunk.len() as u64;
                last = Instant::now();
            }
            Event::GateDone { .. } => break,
            _ => {}
        }
    }
    (last - started, bytes)
}

async fn relay(root: &Path) {
    const MIB: usize = 64;
    let dir = root.join("flood");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        format!(
            "#[test]\nfn floods() {{ use std::io::Write; let line = [b'x'; 1023]; let mut out = std::io::stdout().lock(); for _ in 0..{} {{ out.write_all(&line).unwrap(); out.write_all(b\"\\n\").unwrap(); }} }}\n",
            MIB * 1024
        ),
    )
    .unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "flood"]);
    let sha = git(&dir, &["rev-parse", "HEAD"]);
    let url = fresh_database("relay").await;
    let gate = "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = \"test --offline -- --nocapture\"";
    let config = config(root, "relay", &dir, gate, &format!("[store]\nurl = \"{url}\""));
    let leader = Daemon::start(&config);
    let standby = Daemon::start(&config);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let on_leader = tokio::spawn(follow_live(leader.url.clone(), started));
    let on_standby = tokio::spawn(follow_live(standby.url.clone(), started));
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.rebuild(&sha);
    let (leader_time, leader_bytes) = on_leader.await.unwrap();
    let (standby_time, standby_bytes) = on_standby.await.unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("a gate printing {MIB} MiB, followed live on the leader and on a standby:");
    println!(
        "  live bytes received: leader's client {:.1} MiB, standby's client {:.1} MiB",
        mib(leader_bytes),
        mib(standby_bytes)
    );
    println!(
        "  from the push to the last live byte: leader {leader_time:.2?}, standby {standby_time:.2?}; standby / leader {:.3}",
        standby_time.as_secs_f64() / leader_time.as_secs_f64()
    );
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let words: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let chosen = |name: &str| words.is_empty() || words.iter().any(|w| name.contains(w.as_str()));
    runtime.block_on(async {
        if chosen("state") {
            state(root.path()).await;
        }
        if chosen("verdict") {
            verdict(root.path()).await;
        }
        if chosen("takeover") {
            takeover(root.path()).await;
        }
        if chosen("relay") {
            relay(root.path()).await;
        }
    });
}
