//! The shared build cache (`[project] build_cache = true`) through the real daemon: a project with a crates.io dependency, fetched once into Sando's `CARGO_HOME`; the second version's build and the tests reuse the compiled dependency, and the first version's artifact is unchanged by the later build.

mod util;

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

fn commit(project: &Project, version: &str, answer: u32) -> String {
    std::fs::write(
        project.dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"tiny\"\nversion = \"{version}\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        project.dir.join("src/lib.rs"),
        format!(
            "pub fn answer() -> String {{ itoa::Buffer::new().format({answer}u32).to_owned() }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn answers() {{ assert_eq!(super::answer(), \"{answer}\"); }}\n}}\n"
        ),
    )
    .unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", version]);
    project.git(&["rev-parse", "HEAD"])
}

/// The build logs under `data/logs/builds/`, oldest first.
fn build_logs(data: &Path) -> Vec<String> {
    let mut files: Vec<_> =
        std::fs::read_dir(data.join("logs/builds")).unwrap().flatten().map(|e| e.path()).collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_share_compiled_dependencies_and_keep_their_own_artifacts() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let data = root.path().join("data");
    let node = root.path().join("nodes/staging-1");
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
build = "cargo build"
artifact = "target/debug/tiny"
build_cache = true
[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "staging-1"
deploy = "cp {{artifact}} {node}/tiny"
[[tiers.gates]]
kind = "cargo_test"
args = "test"
"#,
            repo = project.dir.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    let first = commit(&project, "0.1.0", 42);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": first }).to_string());
    assert_eq!(status, 202, "{body}");
    let tested = events
        .wait("0.1.0's tests", Duration::from_secs(300), gate_done("cargo_test", "passed"))
        .await;
    let run = tested["event"]["run_id"].as_i64().unwrap();
    let (_, test_log) = daemon.get(&format!("/api/gate-runs/{run}/log"));
    let artifact = data.join("artifacts/0.1.0/tiny");
    let before = std::fs::read(&artifact).unwrap();

    let second = commit(&project, "0.2.0", 43);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": second }).to_string());
    assert_eq!(status, 202, "{body}");
    events
        .wait("0.2.0 built", Duration::from_secs(300), |e| {
            e["kind"] == "build_done" && e["outcome"]["version"] == "0.2.0"
        })
        .await;

    let logs = build_logs(&data);
    assert_eq!(logs.len(), 2, "{logs:?}");
    // The dependency was fetched once into Sando's CARGO_HOME and compiled
    // once; the second build compiled only the service, offline.
    assert!(logs[0].contains("Compiling itoa"), "{}", logs[0]);
    assert!(!logs[1].contains("Compiling itoa"), "{}", logs[1]);
    assert!(logs[1].contains("Compiling tiny v0.2.0"), "{}", logs[1]);
    assert!(
        !test_log.contains("Compiling itoa"),
        "the tests reuse the build's dependency: {test_log}"
    );
    let crates = data.join("cache/cargo-home/registry/cache");
    let fetched: Vec<String> = std::fs::read_dir(&crates)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(fetched.iter().any(|f| f.starts_with("itoa-")), "{fetched:?}");

    // Each version keeps its own artifact; the later build changed none.
    assert_eq!(std::fs::read(&artifact).unwrap(), before);
    assert_ne!(std::fs::read(data.join("artifacts/0.2.0/tiny")).unwrap(), before);
    daemon.kill();
}
