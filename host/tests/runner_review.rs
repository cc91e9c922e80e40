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
