//! Whatever `sando check` accepts, `sando serve` can run: a config with every duration, retry and limit at the largest value the parser allows drives one version through every gate kind, through the real binary, with no panic and typed outcomes.

mod util;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use util::daemon::{Daemon, Events, Project, TOKEN, gate, gate_done, tier};

/// The largest duration the config accepts (`config::MAX_DURATION`).
const LONGEST: &str = "3660d";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_values_check_accepts_serve_through_every_gate_kind() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let migrations = project.dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("20260101000000_init.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n",
    )
    .unwrap();
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let nodes = root.path().join("nodes");
    for node in ["staging-1", "prod-1"] {
        std::fs::create_dir_all(nodes.join(node)).unwrap();
    }
    // An empty file is an empty SQLite database.
    std::fs::write(root.path().join("backup.sqlite"), b"").unwrap();
    let scratch = root.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let retry = format!("{{ attempts = 100, backoff = \"{LONGEST}\" }}");
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
backup_source = "backup.sqlite"
shadow_runs = 4294967295
max_event_clients = 10000

[defaults]
build_timeout = "{LONGEST}"
git_timeout = "{LONGEST}"
gate_timeout = "{LONGEST}"
deploy_timeout = "{LONGEST}"
health_timeout = "{LONGEST}"
kill_grace = "{LONGEST}"
retry = {retry}
deploy_retry = {retry}

[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"

[[tiers]]
name = "staging"
deploy_retry = {retry}
[[tiers.nodes]]
name = "staging-1"
deploy = "cp {{artifact}} {nodes}/staging-1/tiny"
health = "test -x {nodes}/staging-1/tiny"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"
timeout = "{LONGEST}"
retry = {retry}
[[tiers.gates]]
kind = "migration_dry_run"
scratch_db_url = "sqlite://{scratch}/scratch.sqlite"
migrate = "'{sando}'"
restore = "cp {{backup}} '{scratch}/scratch.sqlite'"
timeout = "{LONGEST}"
[[tiers.gates]]
kind = "boot_smoke"
stay_up = "2s"
timeout = "{LONGEST}"
[[tiers.gates]]
kind = "manual_confirm"
timeout = "{LONGEST}"

[[tiers]]
name = "prod"
[[tiers.nodes]]
name = "prod-1"
deploy = "cp {{artifact}} {nodes}/prod-1/tiny"
[[tiers.gates]]
kind = "burn_in"
duration = "{LONGEST}"
timeout = "{LONGEST}"
"#,
            repo = project.dir.display(),
            nodes = nodes.display(),
            scratch = scratch.display(),
            sando = env!("CARGO_BIN_EXE_sando"),
        ),
    )
    .unwrap();

    let check = Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    assert_eq!(daemon.post("/api/backup/fetch", Some(TOKEN), "{}").0, 200);
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202);
    let wait = Duration::from_secs(240);
    for kind in ["cargo_test", "migration_dry_run", "boot_smoke"] {
        events.wait(kind, wait, gate_done(kind, "passed")).await;
    }
    let waiting =
        events.wait("awaiting confirmation", wait, gate_done("manual_confirm", "blocked")).await;
    let run = waiting["event"]["run_id"].as_i64().unwrap();
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{run}/confirm"), Some(TOKEN), "{\"by\":\"ops\"}");
    assert_eq!(status, 200, "{body}");
    events.wait("confirmed", wait, gate_done("manual_confirm", "passed")).await;
    events
        .wait("promoted to staging", wait, |e| e["kind"] == "promoted" && e["tier"] == "staging")
        .await;
    let burn_in = events.wait("burn-in", wait, gate_done("burn_in", "blocked")).await;
    let blocker = &burn_in["event"]["outcome"]["status"]["blocker"];
    assert_eq!(blocker["kind"], "burn_in_remaining", "{burn_in}");

    // The daemon is still whole: it answers, its loop runs, nothing panicked.
    let state = daemon.state();
    assert_eq!(tier(&state, "staging")["current_version"], "0.1.0", "{state}");
    assert_eq!(gate(tier(&state, "prod"), "burn_in")["status"], "blocked");
    assert_eq!(state["scheduler"]["alive"], true, "{state}");
    let stderr = daemon.stderr.lock().unwrap().clone();
    assert!(!stderr.contains("panicked"), "{stderr}");
    daemon.kill();
}
