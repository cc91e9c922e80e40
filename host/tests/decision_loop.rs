//! The decision loop end to end, through the real `sando serve`: tiers in parallel, bounded and cancellable processes, retries by failure class, and nothing stranded by `kill -9`.
//!
//! Every test uses a real git project of a tiny Rust crate, real cargo, a
//! real SQLite file, HTTP and a real WebSocket client. Leftover processes
//! are found by a marker in their command line (an unusual `sleep` length).

mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use util::config::{self, CARGO_TEST, CONFIRM};
use util::daemon::{
    Daemon, Events, Project, TOKEN, assert_none_left, gate, gate_done, poll_state, processes_with,
    tier, wait_for_process,
};

/// A config with `staging` (the given gates, one node) and `prod` (the
/// given gates, one node). `extra` goes at the top (e.g. `[defaults]`).
fn write_config(root: &Path, repo: &Path, extra: &str, staging: &str, prod: &str) -> PathBuf {
    let nodes = root.join("nodes");
    let backup = root.join("backup.sqlite");
    std::fs::write(&backup, b"backup").unwrap();
    let top = format!("backup_source = \"{}\"\n{extra}", backup.display());
    config::write(
        root,
        &[
            &config::head(repo, &top),
            "[[tiers]]\nname = \"staging\"",
            &config::copy_node(&nodes, "staging-1", ""),
            staging,
            "[[tiers]]\nname = \"prod\"",
            &config::copy_node(&nodes, "prod-1", ""),
            prod,
        ],
    )
}

/// A test body that starts `setsid sleep <seconds>` and waits for it: a
/// descendant that leaves the process group and keeps the pipes.
fn hangs_on(seconds: u32) -> String {
    format!(
        "let mut c = std::process::Command::new(\"setsid\").args([\"sleep\", \"{seconds}\"]).spawn().unwrap(); c.wait().unwrap();"
    )
}

fn rebuild(daemon: &Daemon, sha: &str) {
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
}

async fn wait_promoted(events: &Events, tier_name: &'static str, version: &'static str) -> Value {
    events
        .wait(&format!("{version} promoted to {tier_name}"), Duration::from_secs(180), move |e| {
            e["kind"] == "promoted" && e["tier"] == tier_name && e["version"] == version
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prod_confirmation_deploys_while_staging_runs_for_minutes() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let first = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir, "", CARGO_TEST, CONFIRM);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &first);
    wait_promoted(&events, "staging", "0.1.0").await;
    let waiting = events
        .wait(
            "confirmation awaited",
            Duration::from_secs(60),
            gate_done("manual_confirm", "blocked"),
        )
        .await;

    // 0.2.0's tests run for minutes in staging.
    let slow = project.commit("0.2.0", &hangs_on(901));
    rebuild(&daemon, &slow);
    events
        .wait("staging's long test started", Duration::from_secs(120), |e| {
            e["kind"] == "gate_start" && e["tier"] == "staging" && e["version"] == "0.2.0"
        })
        .await;
    wait_for_process("sleep 901", Duration::from_secs(60));
    let state = daemon.state();
    let workers = &state["scheduler"]["workers"];
    assert_eq!(state["scheduler"]["alive"], true, "{state}");
    let staging_worker = workers.as_array().unwrap().iter().find(|w| w["name"] == "tier:staging");
    assert!(
        staging_worker
            .is_some_and(|w| w["doing"].as_str().unwrap_or("").contains("cargo_test for 0.2.0")),
        "{workers}"
    );

    // Meanwhile an operator confirms prod: it deploys at once.
    let run = waiting["event"]["run_id"].as_i64().unwrap();
    let confirmed_at = Instant::now();
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{run}/confirm"), Some(TOKEN), r#"{"by":"ops"}"#);
    assert_eq!(status, 200, "{body}");
    wait_promoted(&events, "prod", "0.1.0").await;
    let latency = confirmed_at.elapsed();
    assert!(latency < Duration::from_secs(2), "confirmation to deploy took {latency:?}");
    assert!(root.path().join("nodes/prod-1/tiny").is_file());
    // The confirmation passed the same run that waited for it.
    let done = events
        .wait("confirm passed", Duration::from_secs(5), gate_done("manual_confirm", "passed"))
        .await;
    assert_eq!(done["event"]["run_id"], run);
    assert!(!processes_with("sleep 901").is_empty(), "staging's test still runs");
    daemon.kill();
    assert_none_left("sleep 901", Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_test_times_out_with_its_whole_tree() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", &hangs_on(902));
    let staging = format!("{CARGO_TEST}\ntimeout = \"20s\"");
    let extra = "[defaults]\nkill_grace = \"2s\"";
    let config = write_config(root.path(), &project.dir, extra, &staging, CONFIRM);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    events
        .wait("cargo_test started", Duration::from_secs(120), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let started = Instant::now();
    let done = events
        .wait("cargo_test timed out", Duration::from_secs(60), gate_done("cargo_test", "failed"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(
        done["event"]["outcome"]["status"]["failure"],
        json!({ "kind": "timeout", "gate": "cargo_test", "after_s": 20 })
    );
    assert_none_left("sleep 902", Duration::from_secs(5));
    // A timeout is not an infrastructure failure by default: no retry.
    std::thread::sleep(Duration::from_secs(2));
    let state = daemon.state();
    assert_eq!(gate(tier(&state, "staging"), "cargo_test")["run_id"], done["event"]["run_id"]);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_the_run_and_its_processes() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", &hangs_on(903));
    let config = write_config(root.path(), &project.dir, "", CARGO_TEST, CONFIRM);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let started = events
        .wait("cargo_test started", Duration::from_secs(120), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let run = started["event"]["run_id"].as_i64().unwrap();
    wait_for_process("sleep 903", Duration::from_secs(60));
    let path = format!("/api/gate-runs/{run}/cancel");
    assert_eq!(daemon.post(&path, None, "{}").0, 401);
    let (status, body) = daemon.post("/api/gate-runs/999999/cancel", Some(TOKEN), "{}");
    assert_eq!((status, body["error"].as_str()), (404, Some("no gate run 999999")));
    let (status, body) = daemon.post(&path, Some(TOKEN), r#"{"by":"carol"}"#);
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("cargo_test cancelled", Duration::from_secs(30), gate_done("cargo_test", "failed"))
        .await;
    assert_eq!(done["event"]["run_id"], run);
    assert_eq!(
        done["event"]["outcome"]["status"]["failure"],
        json!({ "kind": "cancelled", "by": "admin" })
    );
    assert_none_left("sleep 903", Duration::from_secs(5));
    // A finished run cannot be cancelled; a cancelled one is not retried.
    let (status, body) = daemon.post(&path, Some(TOKEN), "{}");
    assert_eq!(status, 409, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    let state = daemon.state();
    assert_eq!(gate(tier(&state, "staging"), "cargo_test")["run_id"], run);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leaves_no_process_and_the_interrupted_run_passes_on_attempt_2() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    // Hangs the first time only: the marker is left in the version's work tree.
    let body = format!(
        "let marker = std::path::Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\"attempted\"); if !marker.exists() {{ std::fs::write(&marker, b\"1\").unwrap(); {} }}",
        hangs_on(904)
    );
    let sha = project.commit("0.1.0", &body);
    let config = write_config(root.path(), &project.dir, "", CARGO_TEST, CONFIRM);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let started = events
        .wait("cargo_test started", Duration::from_secs(120), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let first_run = started["event"]["run_id"].clone();
    wait_for_process("sleep 904", Duration::from_secs(60));
    daemon.kill();
    assert_none_left("sleep 904", Duration::from_secs(5));

    let daemon = Daemon::start(&config);
    let state = poll_state(&daemon, "attempt 2 to pass", Duration::from_secs(120), |state| {
        let run = gate(tier(state, "staging"), "cargo_test");
        run["run_id"] != first_run && run["status"] == "passed"
    });
    let run = gate(tier(&state, "staging"), "cargo_test");
    assert_eq!(
        (run["attempt"].as_i64(), run["max_attempts"].as_i64()),
        (Some(2), Some(3)),
        "{run}"
    );
    let (_, first) = daemon.get(&format!("/api/gate-runs/{first_run}"));
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["outcome"]["failure"]["kind"], "interrupted");
    assert_eq!(first["attempt"], 1);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_failure_is_never_retried() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 41);");
    let extra = "[defaults]\nretry = { attempts = 3, backoff = \"1s\" }";
    let config = write_config(root.path(), &project.dir, extra, CARGO_TEST, CONFIRM);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let failed = events
        .wait("cargo_test failed", Duration::from_secs(120), gate_done("cargo_test", "failed"))
        .await;
    assert_eq!(failed["event"]["outcome"]["status"]["failure"]["kind"], "cargo_test");
    // Well past the backoff: still the one run, attempt 1 of 3.
    std::thread::sleep(Duration::from_secs(4));
    let state = daemon.state();
    let run = gate(tier(&state, "staging"), "cargo_test");
    assert_eq!(run["run_id"], failed["event"]["run_id"]);
    assert_eq!((run["attempt"].as_i64(), run["max_attempts"].as_i64()), (Some(1), Some(3)));
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_deploy_then_restart_deploys_and_promotes() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir, "", "", CONFIRM);
    // staging's deploy sleeps the first time, so the kill lands mid-deploy.
    // Deploy commands are idempotent: running it again is safe.
    let script = root.path().join("deploy.sh");
    let marker = root.path().join("deploy-tried");
    std::fs::write(
        &script,
        format!(
            "if [ ! -e {m} ]; then touch {m}; sleep 905; fi\ncp \"$1\" \"$2\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "deploy = \"cp {artifact}",
        &format!("deploy = \"sh {} {{artifact}}", script.display()),
        1,
    );
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    events
        .wait("deploy started", Duration::from_secs(120), |e| {
            e["kind"] == "deploy_start" && e["tier"] == "staging"
        })
        .await;
    wait_for_process("sleep 905", Duration::from_secs(30));
    daemon.kill();
    assert_none_left("sleep 905", Duration::from_secs(5));
    assert!(!root.path().join("nodes/staging-1/tiny").exists());

    let daemon = Daemon::start(&config);
    poll_state(&daemon, "0.1.0 promoted to staging", Duration::from_secs(60), |state| {
        tier(state, "staging")["current_version"] == "0.1.0"
    });
    assert!(root.path().join("nodes/staging-1/tiny").is_file(), "deployed after the restart");
    let state = daemon.state();
    let deploys: Vec<&Value> = state["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["tier"] == "staging" && d["version"] == "0.1.0")
        .collect();
    assert_eq!(deploys.len(), 2, "{deploys:?}");
    assert_eq!(deploys[0]["outcome"], json!({ "kind": "ok" }));
    assert_eq!(
        deploys[1]["outcome"],
        json!({ "kind": "failed", "failure": { "kind": "interrupted" } })
    );
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_a_requested_build_starts_then_restart_builds_it() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let first = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let second = project.commit("0.2.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir, "", "", CONFIRM);
    // The first build takes long enough for the second request to queue behind it.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "build = \"cargo build --offline --quiet\"",
        "build = \"sh -c 'sleep 906 & wait; true'\"",
    );
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &first);
    events
        .wait("first build started", Duration::from_secs(30), |e| e["kind"] == "build_started")
        .await;
    rebuild(&daemon, &second);
    events
        .wait("second requested", Duration::from_secs(10), |e| {
            e["kind"] == "rebuild_requested" && e["sha"] == second
        })
        .await;
    wait_for_process("sleep 906", Duration::from_secs(30));
    daemon.kill();
    // The running build's sandbox ended with the daemon, not at the restart.
    assert_none_left("sleep 906", Duration::from_secs(5));

    // A work tree a kill left half-made (here: the second's, planted) is made again.
    let partial = root.path().join(format!("data/worktrees/{second}.partial"));
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("Cargo.toml"), "not a manifest").unwrap();

    // Builds are quick now; both requests survive the kill. (Read again:
    // the config may have been given a `[store]` since.)
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "build = \"sh -c 'sleep 906 & wait; true'\"",
        "build = \"cargo build --offline --quiet\"",
    );
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config);
    // Registering a version and offering it to a tier are two steps (the
    // planner's next pass offers it), so wait for the offer itself: the
    // newest ready version becomes staging's candidate, or already current.
    let state =
        poll_state(&daemon, "0.2.0 offered to staging", Duration::from_secs(120), |state| {
            let staging = tier(state, "staging");
            staging["candidate_version"] == "0.2.0" || staging["current_version"] == "0.2.0"
        });
    let versions: Vec<&str> = state["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert!(versions.contains(&"0.1.0") && versions.contains(&"0.2.0"), "{versions:?}");
    assert!(!partial.exists(), "the half-made tree is gone");
    assert!(root.path().join(format!("data/worktrees/{second}/Cargo.toml")).is_file());
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_burn_in_keeps_one_run_across_ten_triggers() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let prod = "[[tiers.gates]]\nkind = \"burn_in\"\nduration = \"168h\"";
    let config = write_config(root.path(), &project.dir, "", "", prod);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let blocked = events
        .wait("burn_in blocked", Duration::from_secs(120), gate_done("burn_in", "blocked"))
        .await;
    let run = blocked["event"]["run_id"].clone();
    for _ in 0..10 {
        // Each fetch is a trigger and a changed input: evaluated again in place.
        let (status, body) = daemon.post("/api/backup/fetch", Some(TOKEN), "{}");
        assert_eq!(status, 200, "{body}");
        events
            .wait("burn_in evaluated again", Duration::from_secs(10), {
                let id = body["id"].clone();
                move |e| e["kind"] == "backup_fetched" && e["backup_id"] == id
            })
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let updates = events.count(|e| e["kind"] == "gate_updated" && e["run_id"] == run);
        if updates >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no in-place update of the blocked run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starts = events.count(|e| e["kind"] == "gate_start" && e["gate"] == "burn_in");
    assert_eq!(starts, 1, "one burn_in run");
    let state = daemon.state();
    let burn_in = gate(tier(&state, "prod"), "burn_in");
    assert_eq!((&burn_in["run_id"], &burn_in["status"]), (&run, &json!("blocked")));
    let logs = root.path().join("data/logs/0.1.0/burn_in");
    let files = std::fs::read_dir(&logs).unwrap().count();
    assert_eq!(files, 1, "one log file in {}", logs.display());
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_is_cancelled_with_its_processes_and_not_resumed() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir, "", "", CONFIRM);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "build = \"cargo build --offline --quiet\"",
        "build = \"sh -c 'setsid sleep 912; true'\"",
    );
    std::fs::write(&config, &text).unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    events.wait("build started", Duration::from_secs(30), |e| e["kind"] == "build_started").await;
    wait_for_process("sleep 912", Duration::from_secs(30));
    let path = format!("/api/builds/{}/cancel", &sha[..7]);
    assert_eq!(daemon.post(&path, None, "{}").0, 401);
    let (status, body) = daemon.post(&path, Some(TOKEN), r#"{"by":"dave"}"#);
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("build cancelled", Duration::from_secs(30), |e| e["kind"] == "build_done")
        .await;
    assert_eq!(
        done["event"]["outcome"],
        json!({ "kind": "failed", "failure": { "kind": "cancelled", "by": "admin" } })
    );
    assert_none_left("sleep 912", Duration::from_secs(5));
    let (status, body) = daemon.post(&path, Some(TOKEN), "{}");
    assert_eq!((status, body["error"].as_str().is_some()), (404, true), "{body}");
    // A cancelled build's request is settled: a restart does not build it
    // again (each build writes its own log).
    daemon.kill();
    let build_logs = || std::fs::read_dir(root.path().join("data/logs/builds")).unwrap().count();
    assert_eq!(build_logs(), 1);
    let daemon = Daemon::start(&config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(build_logs(), 1, "the cancelled build was not resumed");
    assert!(processes_with("sleep 912").is_empty());
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_orphaned_by_a_previous_daemon_are_ended_at_start() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let config = write_config(root.path(), &project.dir, "", "", CONFIRM);
    // As a daemon killed the instant it forked would leave them: orphans
    // (adopted by init), marked as this data directory's, or another's.
    let plant = |owner: &Path, seconds: u32| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "bwrap --dev-bind / / --unshare-pid --setenv SANDO_OWNER '{}' -- sleep {seconds} >/dev/null 2>&1 &",
                owner.display()
            ))
            .status()
            .unwrap();
        assert!(status.success());
        wait_for_process(&format!("sleep {seconds}"), Duration::from_secs(10));
    };
    plant(&root.path().join("data"), 913);
    plant(&root.path().join("elsewhere"), 914);
    let daemon = Daemon::start(&config);
    assert_none_left("sleep 913", Duration::from_secs(5));
    let stderr = daemon.stderr.lock().unwrap().clone();
    assert!(stderr.contains("sandboxes left by the previous daemon were ended"), "{stderr}");
    assert!(!processes_with("sleep 914").is_empty(), "another owner's sandbox is left alone");
    daemon.kill();
    for line in processes_with("sleep 914") {
        let pid: i32 = line.split(':').next().unwrap().parse().unwrap();
        kill_now(pid);
    }
}

/// SIGKILL through the `kill` command (the tests link no libc).
fn kill_now(pid: i32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}
