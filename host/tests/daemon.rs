//! The daemon end to end: the real `sando serve` on a loopback port, a real
//! git repository of a tiny Rust project, real cargo, a real SQLite file,
//! driven over HTTP and a real WebSocket client.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use util::config::{self, CARGO_TEST, CONFIRM};
use util::daemon::{Daemon, Events, Project, TOKEN, gate, gate_done, tier};

fn write_config(root: &Path, repo: &Path) -> PathBuf {
    let nodes = root.join("nodes");
    let health = format!("health = \"test -x {}/staging-1/tiny\"", nodes.display());
    config::write(
        root,
        &[
            &config::head(repo, ""),
            "[[tiers]]\nname = \"staging\"",
            &config::copy_node(&nodes, "staging-1", &health),
            CARGO_TEST,
            "[[tiers.gates]]\nkind = \"boot_smoke\"\nstay_up = \"1s\"",
            "[[tiers]]\nname = \"prod\"",
            &config::copy_node(&nodes, "prod-1", ""),
            "[[tiers.gates]]\nkind = \"burn_in\"\nduration = \"3s\"",
            CONFIRM,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_walks_through_the_tiers() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let good = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    // Mutating routes need the token; bad input is a 4xx that says what is wrong.
    let (status, body) = daemon.post("/api/rebuild", None, &json!({ "sha": good }).to_string());
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "missing or wrong bearer token");
    let (status, _) =
        daemon.post("/api/rebuild", Some("wrong"), &json!({ "sha": good }).to_string());
    assert_eq!(status, 401);
    let (status, body) = daemon.post("/api/rebuild", Some(TOKEN), r#"{"sha":"xyz"}"#);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("invalid git sha \"xyz\""), "{body}");
    let (status, body) = daemon.post("/api/rebuild", Some(TOKEN), r#"{"sha": "#);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().starts_with("request body: "), "{body}");
    let (status, body) = daemon.post("/api/rebuild", Some(TOKEN), r#"{"commit":"abcdef1"}"#);
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("unknown field `commit`"), "{body}");

    // A push: build, gates in order with live logs, deploy, promote.
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": good }).to_string());
    assert_eq!(status, 202, "{body}");
    let built =
        events.wait("build_done", Duration::from_secs(120), |e| e["kind"] == "build_done").await;
    assert_eq!(built["event"]["outcome"], json!({ "kind": "ok", "version": "0.1.0" }));
    let tests = events
        .wait("cargo_test passed", Duration::from_secs(120), gate_done("cargo_test", "passed"))
        .await;
    let run_id = tests["event"]["run_id"].clone();
    let start = events
        .wait("gate_start", Duration::ZERO, |e| e["kind"] == "gate_start" && e["run_id"] == run_id)
        .await;
    let chunk = events
        .wait("a log chunk", Duration::ZERO, |e| {
            e["kind"] == "gate_log_chunk" && e["run_id"] == run_id
        })
        .await;
    assert!(
        start["seq"].as_u64() < chunk["seq"].as_u64()
            && chunk["seq"].as_u64() < tests["seq"].as_u64()
    );
    assert_eq!(tests["event"]["outcome"]["status"]["note"]["count"], 1);
    events
        .wait("boot_smoke passed", Duration::from_secs(30), gate_done("boot_smoke", "passed"))
        .await;
    events
        .wait("staging promoted", Duration::from_secs(30), |e| {
            e["kind"] == "promoted" && e["tier"] == "staging"
        })
        .await;
    assert!(root.path().join("nodes/staging-1/tiny").is_file(), "deployed to the staging node");

    // prod: burn_in is blocked (typed) until the clock passes, then manual_confirm waits.
    let blocked = events
        .wait("burn_in blocked", Duration::from_secs(30), gate_done("burn_in", "blocked"))
        .await;
    assert_eq!(blocked["event"]["outcome"]["status"]["blocker"]["kind"], "burn_in_remaining");
    let waiting = events
        .wait(
            "manual_confirm blocked",
            Duration::from_secs(30),
            gate_done("manual_confirm", "blocked"),
        )
        .await;
    assert_eq!(
        waiting["event"]["outcome"]["status"]["blocker"]["kind"],
        "awaiting_operator_confirmation"
    );
    let state = daemon.state();
    let prod = tier(&state, "prod");
    assert_eq!(prod["candidate_version"], "0.1.0");
    assert_eq!(gate(prod, "burn_in")["status"], "passed");
    assert_eq!(gate(prod, "manual_confirm")["status"], "blocked");
    assert_eq!(tier(&state, "staging")["current_version"], "0.1.0");

    // Confirming needs the token and the right run.
    let confirm_run = waiting["event"]["run_id"].as_i64().unwrap();
    let confirm_path = format!("/api/gate-runs/{confirm_run}/confirm");
    assert_eq!(daemon.post(&confirm_path, None, "{}").0, 401);
    let (status, body) = daemon.post("/api/gate-runs/999999/confirm", Some(TOKEN), "{}");
    assert_eq!((status, body["error"].as_str()), (404, Some("no gate run 999999")));
    let (status, body) = daemon.post("/api/gate-runs/abc/confirm", Some(TOKEN), "{}");
    assert_eq!(status, 400, "{body}");
    let test_run = run_id.as_i64().unwrap();
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{test_run}/confirm"), Some(TOKEN), "{}");
    assert_eq!(status, 409, "{body}");
    let (status, body) = daemon.post(&confirm_path, Some(TOKEN), r#"{"by":"alice"}"#);
    assert_eq!(status, 200, "{body}");
    // Recorded as the token's operator (the old single token is `admin`), not the body's `by`.
    assert_eq!(body["confirmed_by"], "admin");
    let confirmed = events
        .wait(
            "manual_confirm passed",
            Duration::from_secs(30),
            gate_done("manual_confirm", "passed"),
        )
        .await;
    assert_eq!(confirmed["event"]["outcome"]["status"]["note"]["kind"], "operator_confirmed");
    events
        .wait("prod promoted", Duration::from_secs(30), |e| {
            e["kind"] == "promoted" && e["tier"] == "prod"
        })
        .await;
    assert!(root.path().join("nodes/prod-1/tiny").is_file(), "deployed to the prod node");
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(prod["current_version"], "0.1.0");
    assert_eq!(prod["confirmation"]["confirmed_by"], "admin", "{prod}");

    // A push whose test fails: red, typed, with its log.
    let bad = project.commit("0.2.0", "assert_eq!(super::answer(), 41, \"the answer moved\");");
    assert_eq!(
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": &bad[..7] }).to_string()).0,
        202
    );
    let failed = events
        .wait("cargo_test failed", Duration::from_secs(120), gate_done("cargo_test", "failed"))
        .await;
    assert_eq!(
        failed["event"]["outcome"]["status"],
        json!({ "kind": "failed", "failure": { "kind": "cargo_test", "failed_count": 1, "first_failed": "tests::answers" } })
    );
    let state = daemon.state();
    let staging = tier(&state, "staging").clone();
    assert_eq!(staging["candidate_version"], "0.2.0");
    assert_eq!(gate(&staging, "cargo_test")["status"], "failed");

    // Each build's and gate's time sits beside the version before's.
    let builds = state["builds"].as_array().unwrap();
    assert_eq!(builds[0]["outcome"]["version"], "0.2.0", "{builds:?}");
    let (latest, before) = (&builds[0], &builds[1]);
    assert!(latest["duration_ms"].as_i64().is_some(), "{latest}");
    assert_eq!(latest["previous_duration_ms"], before["duration_ms"], "{builds:?}");
    let previous = staging["previous_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["gate"] == "cargo_test")
        .unwrap_or_else(|| panic!("no previous cargo_test: {staging}"));
    assert_eq!(previous["version"], "0.1.0");
    assert!(previous["duration_ms"].as_i64().unwrap() > 0, "{previous}");
    assert_eq!(gate(&staging, "cargo_test")["outcome"], failed["event"]["outcome"]["status"]);
    let (status, log) = daemon.get("/logs/0.2.0/cargo_test");
    assert_eq!(status, 200);
    assert!(log.contains("the answer moved"), "{log}");
    let (status, by_sha) = daemon.get(&format!("/logs/{}/cargo_test", &bad[..7]));
    assert_eq!((status, by_sha == log), (200, true));
    assert_eq!(daemon.get("/logs/0.9.9/cargo_test").0, 404);
    assert_eq!(daemon.get("/logs/0.2.0/unit_tests").0, 400);
    assert_eq!(daemon.get("/logs/..%2F..%2Fetc/cargo_test").0, 400);

    // The operator runs the failed gate again: a new run of the same gate.
    let failed_run = failed["event"]["run_id"].as_i64().unwrap();
    let (status, run_log) = daemon.get(&format!("/api/gate-runs/{failed_run}/log"));
    assert_eq!((status, run_log == log), (200, true));
    let rerun_path = format!("/api/gate-runs/{failed_run}/rerun");
    assert_eq!(daemon.post(&rerun_path, None, "{}").0, 401);
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{confirm_run}/rerun"), Some(TOKEN), "{}");
    assert_eq!(status, 409, "a passed run cannot run again: {body}");
    let (status, body) = daemon.post(&rerun_path, Some(TOKEN), r#"{"by":"bob"}"#);
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["run_id"].as_i64(), &body["requested_by"]),
        (Some(failed_run), &json!("admin"))
    );
    events
        .wait("rerun requested", Duration::from_secs(10), |e| {
            e["kind"] == "rerun_requested" && e["run_id"] == failed_run && e["by"] == "admin"
        })
        .await;
    let again = events
        .wait("cargo_test ran again", Duration::from_secs(120), |e| {
            gate_done("cargo_test", "failed")(e) && e["run_id"] != failed_run
        })
        .await;
    let staging = tier(&daemon.state(), "staging").clone();
    assert_eq!(gate(&staging, "cargo_test")["run_id"], again["event"]["run_id"]);
    let (status, body) = daemon.post(&rerun_path, Some(TOKEN), "{}");
    assert_eq!(status, 409, "only the latest run can run again: {body}");
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_leaves_nothing_running() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let slow = project.commit("0.3.0", "std::thread::sleep(std::time::Duration::from_secs(60));");
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    assert_eq!(
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": slow }).to_string()).0,
        202
    );
    let started = events
        .wait("cargo_test started", Duration::from_secs(120), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let run_id = started["event"]["run_id"].clone();
    let state = daemon.state();
    assert_eq!(gate(tier(&state, "staging"), "cargo_test")["status"], "running");
    daemon.kill();

    let daemon = Daemon::start(&config);
    let stderr = daemon.stderr.lock().unwrap().clone();
    assert!(stderr.contains("1 gate runs were interrupted"), "{stderr}");
    // The interrupted run has a typed outcome, and the gate runs again (the
    // scheduler may start it before any client could subscribe, so poll).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = daemon.state();
        let latest = &gate(tier(&state, "staging"), "cargo_test")["run_id"];
        if *latest != run_id {
            break;
        }
        assert!(Instant::now() < deadline, "the interrupted gate did not run again: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = daemon.get("/logs/0.3.0/cargo_test");
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon.get(&format!("/api/gate-runs/{run_id}"));
    assert_eq!(status, 200, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["status"], "failed");
    assert_eq!(run["outcome"], json!({ "kind": "failed", "failure": { "kind": "interrupted" } }));
    assert!(run["finished_at"].is_string());
    let state = daemon.state();
    let running: Vec<&Value> = tier(&state, "staging")["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["status"] == "running" && g["run_id"] == run_id)
        .collect();
    assert!(running.is_empty(), "the interrupted run is no longer running");
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_push_through_the_post_receive_hook_builds_the_commit() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.4.0", "assert_eq!(super::answer(), 42);");
    let origin = root.path().join("origin.git");
    let init = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&origin)
        .status()
        .unwrap();
    assert!(init.success());
    let hook = origin.join("hooks/post-receive");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/post-receive"), &hook)
        .unwrap();
    let token_file = root.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();

    let config = write_config(root.path(), &origin);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let push = Command::new("git")
        .args(["push", "-q"])
        .arg(&origin)
        .arg("main")
        .current_dir(&project.dir)
        .env("SANDO_URL", &daemon.url)
        .env("SANDO_TOKEN_FILE", &token_file)
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    let requested = events
        .wait("rebuild_requested", Duration::from_secs(30), |e| e["kind"] == "rebuild_requested")
        .await;
    assert_eq!(requested["event"]["sha"], sha);
    let built =
        events.wait("build_done", Duration::from_secs(120), |e| e["kind"] == "build_done").await;
    assert_eq!(built["event"]["outcome"], json!({ "kind": "ok", "version": "0.4.0" }));
    daemon.kill();
}
