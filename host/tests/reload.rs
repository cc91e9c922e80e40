//! Hot reload end to end: real components built in the workspace (`tests/components/candidate` and friends) pushed to the real daemon over its API, through the CLI and through the watched gates directory, with a real project's runs as the recorded history.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

fn write_config(root: &Path, repo: &Path) -> PathBuf {
    let nodes = root.join("nodes");
    std::fs::create_dir_all(nodes.join("staging-1")).unwrap();
    std::fs::create_dir_all(root.join("gates")).unwrap();
    let config = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
gates_dir = "gates"
fixtures_dir = "{fixtures}"

[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"

[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "staging-1"
deploy = "cp {{artifact}} {nodes}/staging-1/tiny"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"
"#,
        repo = repo.display(),
        nodes = nodes.display(),
        fixtures = util::fixtures_dir().display(),
    );
    let path = root.join("sando.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::write(root.join("token"), TOKEN).unwrap();
    path
}

/// A test binary that exits before libtest's summary: the shipped
/// classifier cannot say what happened.
const EXITS_EARLY: &str = "std::process::exit(3);";

const FLAKY: &str = "pub fn answer() -> u32 { 42 }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn answers() { assert_eq!(super::answer(), 42); }\n    #[test]\n    fn flaky() { assert_eq!(super::answer(), 41, \"sometimes\"); }\n}\n";

fn push_bytes(daemon: &Daemon, kind: &str, bytes: Vec<u8>) -> (u16, Value) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent
        .post(format!("{}/api/gates/{kind}", daemon.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .content_type("application/wasm")
        .send(&bytes[..])
        .expect("POST component");
    let text = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn serving_digest(daemon: &Daemon) -> String {
    let (status, body) = daemon.get("/api/gates");
    assert_eq!(status, 200, "{body}");
    let gates: Value = serde_json::from_str(&body).unwrap();
    let cargo_test = gates["gates"].as_array().unwrap().iter().find(|g| g["kind"] == "cargo_test");
    cargo_test.unwrap()["serving"]["digest"].as_str().unwrap().to_owned()
}

fn digest_of(component: &str) -> String {
    use sha2::Digest;
    let bytes = util::component_bytes(component);
    sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn sando(root: &Path, daemon: &Daemon, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(args)
        .args(["--url", &daemon.url, "--token-file"])
        .arg(root.join("token"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sando")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn run(daemon: &Daemon, id: &Value) -> Value {
    let (status, body) = daemon.get(&format!("/api/gate-runs/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_classifiers_are_checked_swapped_held_rejected_and_rolled_back() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let shipped = serving_digest(&daemon);

    // History: an output nobody recognises, and a failing `flaky` test.
    let early = project.commit("0.1.0", EXITS_EARLY);
    assert_eq!(
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": early }).to_string()).0,
        202
    );
    let unclassified = events
        .wait("0.1.0 unclassified", Duration::from_secs(180), |e| {
            gate_done("cargo_test", "failed")(e) && e["version"] == "0.1.0"
        })
        .await;
    assert_eq!(
        unclassified["event"]["outcome"]["status"]["failure"],
        json!({ "kind": "unclassified" })
    );
    let unclassified_run = unclassified["event"]["run_id"].clone();
    let flaky = project.commit_lib("0.2.0", FLAKY);
    assert_eq!(
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": flaky }).to_string()).0,
        202
    );
    let failed = events
        .wait("0.2.0 failed", Duration::from_secs(180), |e| {
            gate_done("cargo_test", "failed")(e) && e["version"] == "0.2.0"
        })
        .await;
    assert_eq!(failed["event"]["outcome"]["status"]["failure"]["first_failed"], "tests::flaky");

    // A classifier that regresses a fixture is rejected, with the case named.
    let (status, verdict) =
        push_bytes(&daemon, "cargo_test", util::component_bytes("candidate_regressed"));
    assert_eq!(status, 422, "{verdict}");
    assert_eq!(verdict["decision"], "rejected");
    let reason = verdict["reason"].as_str().unwrap();
    assert!(reason.contains("would now fail; first: fixture cargo_test/"), "{reason}");
    events
        .wait("component_rejected", Duration::from_secs(10), |e| {
            e["kind"] == "component_rejected" && e["digest"] == verdict["digest"]
        })
        .await;
    assert_eq!(serving_digest(&daemon), shipped, "the old one keeps serving");
    let regressed = util::component("candidate_regressed");
    let out = sando(root.path(), &daemon, &["gate", "push", regressed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "rejected: {}", stdout(&out));
    assert!(stdout(&out).contains("rejected: "), "{}", stdout(&out));

    // Broken ones are rejected with a reason that says what is wrong.
    for (component, expected) in [
        ("candidate_spin", "ran out of its CPU budget"),
        ("candidate_hoard", "exceeded its memory cap"),
        (
            "test_component_next_major",
            "built against gate contract sando:gate@1.0.0, but this Sando speaks sando:gate@0.2.0 (and still serves sando:gate@0.1)",
        ),
        // Classifier-only: taken as the kind's classifier, and its
        // `unclassified` answers fail the shipped fixtures.
        ("test_component_misbehave", "fixture case(s) would now fail"),
    ] {
        let (status, verdict) = push_bytes(&daemon, "cargo_test", util::component_bytes(component));
        assert_eq!(status, 422, "{component}: {verdict}");
        let reason = verdict["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(expected), "{component}: {reason}");
    }
    let (status, verdict) =
        push_bytes(&daemon, "boot_smoke", util::component_bytes("candidate_improved"));
    assert_eq!(status, 422, "{verdict}");
    assert!(verdict["reason"].as_str().unwrap().contains("serves cargo_test, not boot_smoke"));
    assert_eq!(push_bytes(&daemon, "cargo_test", b"not wasm".to_vec()).0, 422);
    assert_eq!(daemon.get("/api/state").0, 200, "the daemon keeps serving");
    assert_eq!(serving_digest(&daemon), shipped);

    // One that turns a shipped failure case into a pass is rejected, whatever
    // the history holds, naming the case.
    let (status, verdict) =
        push_bytes(&daemon, "cargo_test", util::component_bytes("candidate_lenient"));
    assert_eq!(status, 422, "{verdict}");
    let reason = verdict["reason"].as_str().unwrap();
    assert!(
        reason.contains("first: fixture cargo_test/libtest_flaky_named_failure: expected"),
        "{reason}"
    );
    assert_eq!(serving_digest(&daemon), shipped);

    // One that turns a failure of this history (and of no fixture) into a
    // pass is held for an operator.
    let forgiving = util::component("candidate_forgiving");
    let out = sando(root.path(), &daemon, &["gate", "push", forgiving.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = stdout(&out);
    assert!(printed.contains("held"), "{printed}");
    assert!(
        printed.contains("tests failed: 1 (first: tests::flaky)  ->  0 tests passed in 0s"),
        "{printed}"
    );
    let state: Value = serde_json::from_str(&daemon.get("/api/state").1).unwrap();
    assert_eq!(state["pending_components"][0]["digest"], digest_of("candidate_forgiving"));
    assert_eq!(serving_digest(&daemon), shipped);
    // Accepting asks for the candidate the operator reviewed, not whatever waits.
    let stale =
        sando(root.path(), &daemon, &["gate", "accept", "cargo_test", "--digest", "0123abcd"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("review it first"), "{stale:?}");
    assert_eq!(serving_digest(&daemon), shipped);
    let out = sando(root.path(), &daemon, &["gate", "reject", "cargo_test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("rejected"), "{}", stdout(&out));
    assert_eq!(serving_digest(&daemon), shipped);

    // An improved one, dropped in the watched directory while a run is in
    // flight: that run finishes on the old one, the next uses the new one.
    let slow = project.commit(
        "0.3.0",
        "std::thread::sleep(std::time::Duration::from_secs(5)); std::process::exit(3);",
    );
    assert_eq!(
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": slow }).to_string()).0,
        202
    );
    let started = events
        .wait("0.3.0 started", Duration::from_secs(180), |e| {
            e["kind"] == "gate_start" && e["version"] == "0.3.0"
        })
        .await;
    let in_flight = started["event"]["run_id"].clone();
    std::fs::copy(util::component("candidate_improved"), root.path().join("gates/cargo_test.wasm"))
        .unwrap();
    let loaded = events
        .wait("component_loaded", Duration::from_secs(30), |e| e["kind"] == "component_loaded")
        .await;
    let improved = digest_of("candidate_improved");
    assert_eq!(loaded["event"]["digest"], improved.as_str());
    assert!(loaded["event"]["source"].as_str().unwrap().starts_with("watched "), "{loaded}");
    let finished = events
        .wait("the in-flight run", Duration::from_secs(120), |e| {
            e["kind"] == "gate_done" && e["run_id"] == in_flight
        })
        .await;
    assert_eq!(finished["event"]["outcome"]["status"]["failure"]["kind"], "unclassified");
    assert_eq!(run(&daemon, &in_flight)["component_digest"], shipped.as_str());
    let (status, _) = daemon.post(&format!("/api/gate-runs/{in_flight}/rerun"), Some(TOKEN), "{}");
    assert_eq!(status, 202);
    let next = events
        .wait("the next run", Duration::from_secs(120), |e| {
            e["kind"] == "gate_done" && e["version"] == "0.3.0" && e["run_id"] != in_flight
        })
        .await;
    assert_eq!(
        next["event"]["outcome"]["status"],
        json!({ "kind": "failed", "failure": { "kind": "cargo_test", "failed_count": 1, "first_failed": null } })
    );
    let next_run = run(&daemon, &next["event"]["run_id"]);
    assert_eq!(next_run["component_digest"], improved.as_str());
    assert_eq!(next_run["contract"], "0.2.0");
    assert_eq!(
        next_run["classifier_digest"],
        improved.as_str(),
        "a whole gate judges with its own"
    );
    assert!(next_run["fuel"].as_i64().unwrap() > 0, "{next_run}");

    // Reclassify: a dry run first, then the recorded unclassified run gets a
    // typed outcome, with the old one kept.
    let out = sando(root.path(), &daemon, &["reclassify", "--gate", "cargo_test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!("run {unclassified_run} (staging 0.1.0): unclassified failure: read the log  ->  tests failed: 1")),
        "{printed}"
    );
    assert_eq!(run(&daemon, &unclassified_run)["outcome"]["failure"]["kind"], "unclassified");
    let out = sando(
        root.path(),
        &daemon,
        &["reclassify", "--gate", "cargo_test", "--since", "2000-01-01", "--apply"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("reclassified"), "{}", stdout(&out));
    let reclassified = run(&daemon, &unclassified_run);
    assert_eq!(reclassified["outcome"]["failure"]["kind"], "cargo_test", "{reclassified}");
    assert_eq!(reclassified["classifier_digest"], improved.as_str());
    let bad = sando(
        root.path(),
        &daemon,
        &["reclassify", "--gate", "cargo_test", "--since", "yesterday"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since \"yesterday\""));

    // Rollback goes through the same checks: it changes verdicts back, so
    // it is held until accepted.
    let out = sando(root.path(), &daemon, &["gate", "rollback", "cargo_test"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(serving_digest(&daemon), improved);
    let out = sando(root.path(), &daemon, &["gate", "rollback", "cargo_test", "--accept-changes"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(serving_digest(&daemon), shipped, "rollback restores the previous digest");
    let (_, gates) = daemon.get("/api/gates");
    let gates: Value = serde_json::from_str(&gates).unwrap();
    let history = &gates["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["kind"] == "cargo_test")
        .unwrap()["history"];
    let states: Vec<&str> =
        history.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states.iter().filter(|s| **s == "serving").count(), 1, "{states:?}");
    assert!(states.contains(&"rejected") && states.contains(&"retired"), "{states:?}");
    assert!(history.as_array().unwrap().iter().all(|r| r["loaded_at"].is_string()));
    let regressed = history
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == digest_of("candidate_regressed").as_str())
        .unwrap();
    assert_eq!(
        (&regressed["state"], &regressed["contract"]),
        (&json!("rejected"), &json!("0.2.0"))
    );
    assert!(!regressed["diff"].as_array().unwrap().is_empty(), "{regressed}");

    // A restart keeps the operator's choice: the improved file still in the
    // gates directory was seen before and is not submitted again.
    daemon.kill();
    let daemon = Daemon::start(&config);
    assert_eq!(serving_digest(&daemon), shipped);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(serving_digest(&daemon), shipped, "the watched file did not undo the rollback");
    daemon.kill();
}
