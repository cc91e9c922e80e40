//! Several `sando serve` on one PostgreSQL, through the real binary: one leads, the others stand by (reads, `307` for writes, the leader's events), a standby takes over after `kill -9` or a pause, and a deposed leader writes nothing.
//!
//! Both daemons share the config and the data directory, as daemons on
//! several machines share one mounted directory: logs, work trees and
//! artifacts are named by ids from the store, so they never write the same
//! file.

mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use util::config;
use util::daemon::{
    Daemon, Events, Project, TOKEN, assert_none_left, gate, poll_state, tier, wait_for_process,
};

const LEASE_SECS: u64 = 3;

/// `staging` and `prod`, one node each; `prod_deploy` is prod's command.
fn write_config(root: &Path, repo: &Path, url: &str, staging: &str, prod_deploy: &str) -> PathBuf {
    let nodes = root.join("nodes");
    std::fs::create_dir_all(nodes.join("prod-1")).unwrap();
    let store = format!("\n[store]\nurl = \"{url}\"\nleader_lease = \"{LEASE_SECS}s\"");
    let prod = format!(
        "[[tiers]]\nname = \"prod\"\n[[tiers.nodes]]\nname = \"prod-1\"\ndeploy = \"{prod_deploy}\""
    );
    config::write(
        root,
        &[
            &config::head(repo, &store),
            "[[tiers]]\nname = \"staging\"",
            &config::copy_node(&nodes, "staging-1", ""),
            staging,
            &prod,
        ],
    )
}

/// Waits up to `within` for a line of the daemon's stderr holding `text`.
fn wait_for_line(daemon: &Daemon, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let stderr = daemon.stderr.lock().unwrap().clone();
        if let Some(line) = stderr.lines().find(|l| l.contains(text)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no {text:?} within {within:?} in: {stderr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One database, one config and one data directory, two daemons on them:
/// the first leads, the second stands by. The commit's test is
/// `test_body`, staging's gates `staging`, prod's deploy what `prod_deploy`
/// makes of the test's directory.
struct Pair {
    url: String,
    root: tempfile::TempDir,
    sha: String,
    leader: Daemon,
    standby: Daemon,
    /// The standby's `standing by: …` line.
    stood_by: String,
}

async fn leader_and_standby(
    test_body: &str,
    staging: &str,
    prod_deploy: impl FnOnce(&Path) -> String,
) -> Pair {
    let url = util::postgres::fresh_database().await;
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", test_body);
    let deploy = prod_deploy(root.path());
    let config = write_config(root.path(), &project.dir, &url, staging, &deploy);
    let leader = Daemon::start(&config);
    let standby = Daemon::start(&config);
    let stood_by = wait_for_line(&standby, "standing by: ", Duration::from_secs(30));
    Pair { url, root, sha, leader, standby, stood_by }
}

/// prod's deploy: a copy of the artifact to its node.
fn copy_to_prod(root: &Path) -> String {
    format!("cp {{artifact}} {}", root.join("nodes/prod-1/tiny").display())
}

const NOCAPTURE: &str =
    "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = \"test --offline -- --nocapture\"";

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_mid_deploy_the_standby_takes_over_and_deploys_once_more() {
    // prod's deploy sleeps the first time, so the kill lands mid-deploy.
    let Pair { url, root, sha, leader, standby, stood_by } =
        leader_and_standby("assert_eq!(super::answer(), 42);", "", |root| {
            let script = root.join("deploy.sh");
            let marker = root.join("deploy-tried");
            std::fs::write(
                &script,
                format!(
                    "if [ ! -e {m} ]; then touch {m}; sleep 906; fi\ncp \"$1\" \"$2\"\n",
                    m = marker.display()
                ),
            )
            .unwrap();
            let prod = root.join("nodes/prod-1/tiny");
            format!("sh {} {{artifact}} {}", script.display(), prod.display())
        })
        .await;
    let prod = root.path().join("nodes/prod-1/tiny");
    assert!(
        stood_by.contains(&format!("(pid {}) leads (epoch 1, at {})", leader.pid(), leader.url)),
        "{stood_by}"
    );
    let shown = standby.state()["leader"].clone();
    assert_eq!(
        (shown["epoch"].as_i64(), shown["this_daemon"].as_bool()),
        (Some(1), Some(false)),
        "{shown}"
    );
    assert_eq!(shown["url"], leader.url.as_str());

    // A write to the standby is sent to the leader, unread.
    let no_redirects: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let body = json!({ "sha": sha }).to_string();
    let answer = no_redirects
        .post(format!("{}/api/rebuild", standby.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .content_type("application/json")
        .send(&body)
        .unwrap();
    assert_eq!(answer.status().as_u16(), 307);
    let location = answer.headers().get("location").unwrap().to_str().unwrap();
    assert_eq!(location, format!("{}/api/rebuild", leader.url));
    let (status, answer) = leader.post("/api/rebuild", Some(TOKEN), &body);
    assert_eq!(status, 202, "{answer}");

    // The standby's clients see the leader's events.
    let events = Events::connect(&standby.url).await;
    events
        .wait("prod's deploy started, through the standby", Duration::from_secs(180), |e| {
            e["kind"] == "deploy_start" && e["tier"] == "prod"
        })
        .await;
    wait_for_process("sleep 906", Duration::from_secs(30));
    let killed = Instant::now();
    leader.kill();
    assert_none_left("sleep 906", Duration::from_secs(5));

    wait_for_line(&standby, "this daemon leads (epoch 2)", Duration::from_secs(LEASE_SECS + 5));
    let took = killed.elapsed();
    let state = poll_state(&standby, "0.1.0 promoted to prod", Duration::from_secs(60), |state| {
        tier(state, "prod")["current_version"] == "0.1.0"
    });
    assert!(prod.is_file(), "deployed by the new leader");
    assert_eq!(state["leader"]["this_daemon"], true);
    assert_eq!(state["leader"]["epoch"], 2);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM builds").await, 1, "one build for the push");
    let deploys: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT outcome_json FROM deploys WHERE tier = 'prod' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        deploys,
        [
            json!({ "kind": "failed", "failure": { "kind": "interrupted" } }),
            json!({ "kind": "ok" })
        ],
        "the interrupted deploy ran once more, and only once"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM deploys WHERE tier = 'staging'").await, 1);
    eprintln!("takeover after kill -9: {took:?}");
    standby.kill();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_deposed_writes_nothing_after_and_steps_down() {
    let staging = "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = \"test --offline\"";
    let Pair { url, root: _root, sha, mut leader, standby, .. } = leader_and_standby(
        "std::thread::sleep(std::time::Duration::from_secs(6));",
        staging,
        copy_to_prod,
    )
    .await;
    let events = Events::connect(&standby.url).await;
    let (status, answer) =
        leader.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{answer}");
    let started = events
        .wait("cargo_test started", Duration::from_secs(180), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let first_run = started["event"]["run_id"].as_i64().unwrap();

    // Paused past its lease: the standby ends its session and takes over.
    nix_kill(leader.pid(), "STOP");
    wait_for_line(&standby, "this daemon leads (epoch 2)", Duration::from_secs(LEASE_SECS + 10));
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let first_outcome = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, serde_json::Value>(
            "SELECT outcome_json FROM gate_runs WHERE id = $1",
        )
        .bind(first_run)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let interrupted = json!({ "kind": "failed", "failure": { "kind": "interrupted" } });
    assert_eq!(first_outcome(pool.clone()).await, interrupted);
    // Resumed: whatever it was doing, it writes nothing, and it goes.
    nix_kill(leader.pid(), "CONT");
    let status = leader.exited_within(Duration::from_secs(15));
    let stderr = leader.stderr.lock().unwrap().clone();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(stderr.contains("this daemon no longer leads (epoch 1)"), "{stderr}");

    let state = poll_state(&standby, "attempt 2 passes", Duration::from_secs(180), |state| {
        gate(tier(state, "staging"), "cargo_test")["status"] == "passed"
    });
    let run = gate(tier(&state, "staging"), "cargo_test");
    assert_eq!(
        (run["attempt"].as_i64(), run["max_attempts"].as_i64()),
        (Some(2), Some(3)),
        "{run}"
    );
    assert_eq!(first_outcome(pool.clone()).await, interrupted, "the deposed leader wrote nothing");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM gate_runs WHERE gate_kind = 'cargo_test'").await,
        2
    );
    assert_eq!(count(&pool, "SELECT epoch FROM leader").await, 2);
    standby.kill();
    pool.close().await;
}

/// Sends `signal` (a name `kill` knows) to `pid`.
fn nix_kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standbys_clients_see_a_running_gates_log_as_the_leaders_do() {
    // Both streams, in many writes over a second or two.
    let body = "for i in 0..400 { println!(\"out line {i}\"); eprintln!(\"err line {i}\"); std::thread::sleep(std::time::Duration::from_millis(3)); }";
    let Pair { root: _root, sha, leader, standby, .. } =
        leader_and_standby(body, NOCAPTURE, copy_to_prod).await;
    let (on_leader, on_standby) =
        (Events::connect(&leader.url).await, Events::connect(&standby.url).await);
    let (status, answer) =
        leader.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{answer}");
    let done = |e: &serde_json::Value| e["kind"] == "gate_done" && e["gate"] == "cargo_test";
    let finished = on_leader.wait("cargo_test done", Duration::from_secs(180), done).await;
    on_standby.wait("cargo_test done, through the standby", Duration::from_secs(10), done).await;
    let run_id = finished["event"]["run_id"].as_i64().unwrap();
    let of_run = |events: &Events| {
        let mut chunks: Vec<_> = events
            .chunks()
            .into_iter()
            .filter(|c| c.run_id == run_id)
            .map(|c| (c.offset, c.stdout, c.bytes.to_vec()))
            .collect();
        chunks.sort();
        chunks
    };
    let (leaders, standbys) = (of_run(&on_leader), of_run(&on_standby));
    assert!(leaders.len() > 10, "{} chunks", leaders.len());
    assert_eq!(standbys, leaders, "the same chunks: offsets, streams and bytes");
    let text: Vec<u8> = standbys.iter().flat_map(|(_, _, b)| b.clone()).collect();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("out line 399") && text.contains("err line 399"), "{text}");
    leader.kill();
    standby.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tui_on_the_standby_shows_a_gates_log_to_its_verdict_through_a_takeover() {
    use util::tmux::Tmux;
    let body = "for i in 0..30 { println!(\"tick {i:02}\"); std::thread::sleep(std::time::Duration::from_millis(250)); }";
    let Pair { url, root, sha, leader, standby, .. } =
        leader_and_standby(body, NOCAPTURE, copy_to_prod).await;
    let token = root.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let command = format!(
        "env -u RUST_BACKTRACE {sando} tui --url {standby} --url {leader} --token-file {token}; sleep 600",
        sando = env!("CARGO_BIN_EXE_sando"),
        standby = standby.url,
        leader = leader.url,
        token = token.display(),
    );
    let tmux = Tmux::start(140, 40, &command);
    tmux.wait("the standby's header", Duration::from_secs(30), |s| {
        s.contains(&format!("standby; leader {} (epoch 1)", leader.url))
    });
    let (status, answer) =
        leader.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{answer}");
    tmux.wait("cargo_test running", Duration::from_secs(180), |s| s.contains("cargo_test"));
    // The events pane may name the gate a frame before its row can be
    // opened: open it until the run's screen shows.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !tmux.screen().contains("staging · 0.1.0 · cargo_test") {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never opened: {}",
            tmux.screen().text()
        );
        tmux.keys(&["g", "Enter"]);
        std::thread::sleep(Duration::from_millis(500));
    }
    tmux.wait("the live log, through the standby", Duration::from_secs(60), |s| {
        s.contains("staging · 0.1.0 · cargo_test") && s.contains("tick 03")
    });

    leader.kill();
    tmux.wait("the standby leads", Duration::from_secs(LEASE_SECS + 10), |s| {
        s.contains("leader, epoch 2")
    });
    let screen = tmux.wait("attempt 2 to its verdict", Duration::from_secs(120), |s| {
        s.contains("attempt 2 of 3") && s.contains("✓ passed")
    });
    let text = screen.text();
    for i in 20..30 {
        assert!(text.contains(&format!("tick {i:02}")), "tick {i} missing:\n{text}");
    }
    assert!(screen.contains("● live"), "{text}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let runs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, attempt FROM gate_runs WHERE gate_kind = 'cargo_test' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        runs,
        [("failed".to_owned(), 1), ("passed".to_owned(), 2)],
        "the interrupted run and its retry, each recorded once"
    );
    pool.close().await;
    standby.kill();
}
