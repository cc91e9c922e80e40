//! Runner updates are reviewed, through the real `sando serve`: a `manual_confirm` component whose runner passes without a confirmation is held for an operator with the changed verdict named, and nothing deploys; one whose runner changes nothing loads.

mod util;

use std::time::Duration;

use serde_json::{Value, json};

use util::daemon::{Daemon, Events, Project, TOKEN, gate, gate_done, tier};

fn push(daemon: &Daemon, kind: &str, bytes: Vec<u8>) -> (u16, Value) {
    let agent = Daemon::agent();
    let mut response = agent
        .post(format!("{}/api/gates/{kind}", daemon.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .content_type("application/wasm")
        .send(&bytes[..])
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), serde_json::from_str(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_confirmation_runner_is_held_and_nothing_deploys() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let node = root.path().join("nodes/prod-1");
    std::fs::create_dir_all(&node).unwrap();
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
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
[[tiers]]
name = "prod"
[[tiers.nodes]]
name = "prod-1"
deploy = "cp {{artifact}} {node}/tiny"
[[tiers.gates]]
kind = "manual_confirm"
"#,
            repo = project.dir.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202);
    let waiting = events
        .wait(
            "awaiting confirmation",
            Duration::from_secs(120),
            gate_done("manual_confirm", "blocked"),
        )
        .await;

    // The forged runner: held, with the changed verdict named as the runner's.
    let (status, verdict) =
        push(&daemon, "manual_confirm", util::component_bytes("confirm_forged"));
    assert_eq!(status, 202, "{verdict}");
    assert_eq!(verdict["decision"], "pending");
    let diff = verdict["diff"].as_array().unwrap();
    let change = diff
        .iter()
        .find(|c| c["case"] == "runner: manual_confirm, no confirmation yet")
        .unwrap_or_else(|| panic!("{verdict}"));
    assert_eq!(change["old"]["blocker"]["kind"], "awaiting_operator_confirmation");
    assert_eq!(change["new"]["kind"], "passed");

    // Nothing deploys: the confirmation gate waits as before, evaluated again.
    for _ in 0..3 {
        daemon.post("/api/backup/fetch", Some(TOKEN), "{}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = daemon.state();
    let prod = tier(&state, "prod");
    assert_eq!(prod["current_version"], Value::Null, "{prod}");
    assert_eq!(gate(prod, "manual_confirm")["status"], "blocked");
    assert_eq!(gate(prod, "manual_confirm")["run_id"], waiting["event"]["run_id"]);
    assert!(!node.join("tiny").exists(), "nothing was deployed");

    // A runner that changes nothing loads (and replaces the held one).
    let (status, verdict) =
        push(&daemon, "manual_confirm", util::component_bytes("confirm_honest"));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["decision"], "loaded", "{verdict}");
    assert_eq!(verdict["diff"], json!([]));
    assert!(verdict["cases"].as_u64().unwrap() >= 2, "{verdict}");
    let state = daemon.state();
    assert_eq!(state["pending_components"], json!([]));
    assert_eq!(gate(tier(&state, "prod"), "manual_confirm")["status"], "blocked");
    daemon.kill();
}

/// A `cargo_test` runner that runs the tests and then decides a pass
/// itself, whatever they printed: refused as a fault on every replay, and
/// held with no recorded run to replay (the probes show it), then
/// held against a recorded failing run, with that run named as the
/// runner's change. The serving component never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_cargo_test_runner_is_held_with_and_without_recorded_runs() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 41);");
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
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
"#,
            repo = project.dir.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let serving = || {
        let gates: Value = serde_json::from_str(&daemon.get("/api/gates").1).unwrap();
        gates["cargo_test"]["serving"]["digest"].clone()
    };
    let shipped = serving();

    // Nothing recorded yet: the probes see it decide a pass itself, which the
    // host refuses (a 0.2 runner's pass of cargo_test is the classifier's).
    let (status, verdict) = push(&daemon, "cargo_test", util::component_bytes("candidate_forged"));
    assert_eq!(status, 202, "{verdict}");
    assert_eq!(verdict["decision"], "pending");
    let reason = verdict["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no recorded cargo_test run exists"), "{verdict}");
    let probed = verdict["diff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"].as_str().unwrap().starts_with("runner: cargo_test, probe with fixture"))
        .unwrap_or_else(|| panic!("{verdict}"));
    assert_eq!(probed["old"]["kind"], "failed", "{probed}");
    assert_eq!(probed["new"]["failure"]["fault"]["kind"], "capability_denied", "{probed}");
    let (status, _) = daemon.post("/api/gates/cargo_test/reject", Some(TOKEN), "");
    assert_eq!(status, 200);
    assert_eq!(serving(), shipped);

    // One failing run recorded.
    let events = Events::connect(&daemon.url).await;
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202);
    let failed = events
        .wait("the tests fail", Duration::from_secs(180), gate_done("cargo_test", "failed"))
        .await;
    let run = failed["event"]["run_id"].as_i64().unwrap();

    let (status, verdict) = push(&daemon, "cargo_test", util::component_bytes("candidate_forged"));
    assert_eq!(status, 202, "{verdict}");
    assert_eq!(verdict["reason"], Value::Null, "{verdict}");
    let replayed = verdict["diff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["case"] == format!("runner: cargo_test, run {run} (staging 0.1.0)"))
        .unwrap_or_else(|| panic!("{verdict}"));
    assert_eq!(replayed["old"]["failure"]["kind"], "cargo_test", "{replayed}");
    assert_eq!(replayed["new"]["failure"]["fault"]["kind"], "capability_denied", "{replayed}");
    assert_eq!(serving(), shipped);
    let (status, _) = daemon.post("/api/gates/cargo_test/reject", Some(TOKEN), "");
    assert_eq!(status, 200);

    // The shipped runner, rebuilt: it asks the same and decides the same.
    let (status, verdict) = push(&daemon, "cargo_test", util::component_bytes("candidate_same"));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["decision"], "loaded", "{verdict}");
    assert_eq!(verdict["diff"], json!([]), "{verdict}");
    daemon.kill();
}
