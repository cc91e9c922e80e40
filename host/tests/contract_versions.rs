//! Gate contract 0.2 and the components built against 0.1, through the real `sando serve`: a 0.1 component is pushed, serves runs and is rolled back to from a 0.2 one; configured arguments reach the test process intact.

mod util;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use util::daemon::{Daemon, Events, Project, TOKEN, gate, gate_done, tier};

fn push(daemon: &Daemon, kind: &str, bytes: &[u8]) -> (u16, Value) {
    let agent = Daemon::agent();
    let mut response = agent
        .post(format!("{}/api/gates/{kind}", daemon.url))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .content_type("application/wasm")
        .send(bytes)
        .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), serde_json::from_str(&text).unwrap())
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn serving(daemon: &Daemon, kind: &str) -> Value {
    let (status, body) = daemon.get("/api/gates");
    assert_eq!(status, 200, "{body}");
    let gates: Value = serde_json::from_str(&body).unwrap();
    gates["gates"].as_array().unwrap().iter().find(|g| g["kind"] == kind).unwrap()["serving"]
        .clone()
}

fn write_config(root: &Path, repo: &Path, gates: &str) -> std::path::PathBuf {
    let node = root.join("nodes/prod-1");
    std::fs::create_dir_all(&node).unwrap();
    let config = root.join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
fixtures_dir = "{fixtures}"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "prod"
[[tiers.nodes]]
name = "prod-1"
deploy = "cp {{artifact}} {node}/tiny"
{gates}
"#,
            fixtures = util::fixtures_dir().display(),
            repo = repo.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_component_serves_and_a_0_2_update_rolls_back_to_it() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config =
        write_config(root.path(), &project.dir, "[[tiers.gates]]\nkind = \"manual_confirm\"\n");
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    assert_eq!(serving(&daemon, "manual_confirm")["contract"], "0.2.0");

    // The shipped gate as it was built under 0.1: it loads and serves.
    let old = util::contract_0_1_gate("manual_confirm");
    let (status, verdict) = push(&daemon, "manual_confirm", &old);
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["decision"], "loaded", "{verdict}");
    assert_eq!(serving(&daemon, "manual_confirm")["contract"], "0.1.0");
    assert_eq!(serving(&daemon, "manual_confirm")["digest"], sha256(&old));

    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    assert_eq!(daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string()).0, 202);
    let waiting = events
        .wait(
            "awaiting confirmation",
            Duration::from_secs(180),
            gate_done("manual_confirm", "blocked"),
        )
        .await;
    let run_id = waiting["event"]["run_id"].as_i64().unwrap();
    let (status, run) = daemon.get(&format!("/api/gate-runs/{run_id}"));
    assert_eq!(status, 200);
    let run: Value = serde_json::from_str(&run).unwrap();
    assert_eq!(
        (&run["component_digest"], &run["contract"]),
        (&json!(sha256(&old)), &json!("0.1.0"))
    );
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{run_id}/confirm"), Some(TOKEN), r#"{"by":"alice"}"#);
    assert_eq!(status, 200, "{body}");
    let confirmed = events
        .wait("confirmed", Duration::from_secs(60), gate_done("manual_confirm", "passed"))
        .await;
    assert_eq!(confirmed["event"]["outcome"]["status"]["note"]["kind"], "operator_confirmed");

    // A 0.2 update replaces it; rolling back brings the 0.1 one back.
    let (status, verdict) =
        push(&daemon, "manual_confirm", &util::component_bytes("confirm_honest"));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(serving(&daemon, "manual_confirm")["contract"], "0.2.0");
    let (status, verdict) = daemon.post("/api/gates/manual_confirm/rollback", Some(TOKEN), "{}");
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(serving(&daemon, "manual_confirm")["digest"], sha256(&old));
    assert_eq!(serving(&daemon, "manual_confirm")["contract"], "0.1.0");

    // And it decides the next version's run.
    let sha = project.commit("0.2.0", "assert_eq!(super::answer(), 42);");
    assert_eq!(daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string()).0, 202);
    let waiting = events
        .wait("0.2.0 awaiting confirmation", Duration::from_secs(180), |e| {
            gate_done("manual_confirm", "blocked")(e) && e["version"] == "0.2.0"
        })
        .await;
    let state = daemon.state();
    let confirm = gate(tier(&state, "prod"), "manual_confirm");
    assert_eq!(confirm["run_id"], waiting["event"]["run_id"]);
    assert_eq!(confirm["component_digest"], sha256(&old), "{confirm}");
    daemon.kill();
}

/// `args = ["test", "--offline", "--", "a b"]`: cargo gets `a b` as one
/// argument and hands it to libtest as one filter, which matches neither
/// `alpha` nor `beta` (split on whitespace, `a` and `b` would run both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_arguments_reach_the_test_process_intact() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config = write_config(
        root.path(),
        &project.dir,
        "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = [\"test\", \"--offline\", \"--\", \"a b\"]\n",
    );
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let sha = project.commit_lib(
        "0.1.0",
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn alpha() {}\n    #[test]\n    fn beta() {}\n}\n",
    );
    assert_eq!(daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string()).0, 202);
    let done = events
        .wait("cargo_test done", Duration::from_secs(180), |e| {
            e["kind"] == "gate_done" && e["gate"] == "cargo_test"
        })
        .await;
    let status = &done["event"]["outcome"]["status"];
    assert_eq!(status["kind"], "passed", "{status}");
    assert_eq!(status["note"]["count"], 0, "one filter `a b` matches no test: {status}");
    let run_id = done["event"]["run_id"].as_i64().unwrap();
    let (code, log) = daemon.get(&format!("/api/gate-runs/{run_id}/log"));
    assert_eq!(code, 200);
    assert!(log.contains("sando: running cargo test --offline -- 'a b'"), "{log}");
    assert!(log.contains("2 filtered out"), "{log}");
    daemon.kill();
}

/// The example Python classifier (`examples/python_cargo_test`, built by
/// `./x` with componentize-py), pushed with `sando gate push` as a
/// classifier-only part: it passes validation and the shadow test, and
/// judges the next run; `/api/state` names it as the run's classifier
/// beside the shipped runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_classifier_only_component_judges_the_next_run() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config = write_config(
        root.path(),
        &project.dir,
        "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = [\"test\", \"--offline\"]\n",
    );
    std::fs::write(root.path().join("token"), TOKEN).unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let runner = serving(&daemon, "cargo_test")["digest"].as_str().unwrap().to_owned();

    // A test binary that exits before libtest's summary: the shipped
    // classifier cannot say what happened.
    let exits_early = "std::process::exit(3);";
    let sha = project.commit("0.1.0", exits_early);
    assert_eq!(daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string()).0, 202);
    let first = events
        .wait("0.1.0 unclassified", Duration::from_secs(180), |e| {
            gate_done("cargo_test", "failed")(e) && e["version"] == "0.1.0"
        })
        .await;
    assert_eq!(first["event"]["outcome"]["status"]["failure"], json!({ "kind": "unclassified" }));

    let python = util::component("python_cargo_test");
    let bytes = std::fs::read(&python).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["gate", "push", python.to_str().unwrap(), "--url", &daemon.url, "--token-file"])
        .arg(root.path().join("token"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("loaded"), "{said}");
    let (_, gates) = daemon.get("/api/gates");
    let gates: Value = serde_json::from_str(&gates).unwrap();
    let cargo_test = gates["gates"].as_array().unwrap().iter().find(|g| g["kind"] == "cargo_test");
    let cargo_test = cargo_test.unwrap();
    assert_eq!(cargo_test["classifier"]["digest"], sha256(&bytes), "{cargo_test}");
    assert_eq!(cargo_test["classifier"]["part"], "classifier");
    assert_eq!(cargo_test["classifier"]["contract"], "0.2.0");
    assert_eq!(cargo_test["serving"]["digest"], runner.as_str(), "the runner stays");
    let shadow = cargo_test["classifier"]["diff"].as_array().unwrap();
    assert!(
        shadow.iter().any(|c| c["case"].as_str().unwrap().starts_with("run ")
            && c["new"]["failure"]["kind"] == "cargo_test"),
        "the shadow test replayed the recorded run: {cargo_test}"
    );

    let sha = project.commit("0.2.0", exits_early);
    assert_eq!(daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string()).0, 202);
    let judged = events
        .wait("0.2.0 judged", Duration::from_secs(180), |e| {
            gate_done("cargo_test", "failed")(e) && e["version"] == "0.2.0"
        })
        .await;
    assert_eq!(
        judged["event"]["outcome"]["status"]["failure"],
        json!({ "kind": "cargo_test", "failed_count": 1, "first_failed": null })
    );
    let state = daemon.state();
    let run = gate(tier(&state, "prod"), "cargo_test");
    assert_eq!(run["version"], "0.2.0");
    assert_eq!(run["classifier_digest"], sha256(&bytes), "{run}");
    assert_eq!(run["classifier_contract"], "0.2.0");
    assert_eq!(run["component_digest"], runner.as_str(), "{run}");

    // The run becomes a fixture case: `gate test --record` writes it from
    // the recorded classifier input and tests it with the rest.
    let recorded = root.path().join("recorded");
    let run_id = run["run_id"].as_i64().unwrap().to_string();
    // What a record killed halfway leaves: a hidden directory holding part
    // of a case. It neither blocks the record nor loads as a case.
    let cut_short = recorded.join("cargo_test").join(format!(".run-{run_id}.cut"));
    std::fs::create_dir_all(&cut_short).unwrap();
    std::fs::write(cut_short.join("case.toml"), "gate = \"cargo_te").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["gate", "test", python.to_str().unwrap()])
        .arg(util::fixtures_dir().join("cargo_test"))
        .arg("--record")
        .arg(&recorded)
        .args(["--run", &run_id, "--url", &daemon.url, "--token-file"])
        .arg(root.path().join("token"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let case = recorded.join("cargo_test").join(format!("run-{run_id}"));
    assert!(
        said.contains(&format!("ok   cargo_test/run-{run_id}: tests failed: 1 [fuel ")),
        "{said}"
    );
    let case_toml = std::fs::read_to_string(case.join("case.toml")).unwrap();
    // cargo exits with the status of the test binary that died.
    assert!(case_toml.contains("exit_code = 3\n"), "{case_toml}");
    assert!(case_toml.contains(&format!("recorded by sando from run {run_id}")), "{case_toml}");
    let stderr = std::fs::read(case.join("stderr")).unwrap();
    assert!(String::from_utf8_lossy(&stderr).contains("process didn't exit successfully"));
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected, judged["event"]["outcome"]["status"]);
    daemon.kill();

    // A Sando upgrade shipping another cargo_test gate replaces the gate,
    // and keeps the operator's classifier part.
    let shipped = root.path().join("shipped-gates");
    std::fs::create_dir_all(&shipped).unwrap();
    for kind in ["migration_dry_run", "boot_smoke", "burn_in", "manual_confirm"] {
        std::fs::copy(
            util::component(&format!("gate_{kind}")),
            shipped.join(format!("{kind}.wasm")),
        )
        .unwrap();
    }
    let upgraded = util::component_bytes("candidate_same");
    std::fs::write(shipped.join("cargo_test.wasm"), &upgraded).unwrap();
    let daemon = Daemon::start_with_env(&config, &[("SANDO_GATES_DIR", shipped.to_str().unwrap())]);
    let (_, gates) = daemon.get("/api/gates");
    let gates: Value = serde_json::from_str(&gates).unwrap();
    let cargo_test = gates["gates"].as_array().unwrap().iter().find(|g| g["kind"] == "cargo_test");
    let cargo_test = cargo_test.unwrap();
    assert_eq!(cargo_test["serving"]["digest"], sha256(&upgraded), "{cargo_test}");
    assert_eq!(cargo_test["classifier"]["digest"], sha256(&bytes), "{cargo_test}");
    daemon.kill();
}
