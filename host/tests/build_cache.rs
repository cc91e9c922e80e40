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
[retention]
keep_versions = 1
cache_max_mib = 1
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
    events
        .wait("0.1.0 on staging", Duration::from_secs(60), |e| {
            e["kind"] == "promoted" && e["tier"] == "staging" && e["version"] == "0.1.0"
        })
        .await;
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

    events
        .wait("0.2.0 on staging", Duration::from_secs(300), |e| {
            e["kind"] == "promoted" && e["tier"] == "staging" && e["version"] == "0.2.0"
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

    // `sando gc` brings the cache under its cap, oldest units first, and
    // keeps everything the tier's current and candidate versions need.
    let token_file = root.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let gc = |dry_run: bool| {
        let mut args =
            vec!["gc", "--url", &daemon.url, "--token-file", token_file.to_str().unwrap()];
        if dry_run {
            args.push("--dry-run");
        }
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_sando")).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let units =
        |dir: &str| std::fs::read_dir(data.join("cache/target/debug").join(dir)).unwrap().count();
    let fingerprints = units(".fingerprint");
    let dry = gc(true);
    assert!(dry.starts_with("would remove (dry run): files of 1 versions [0.1.0]"), "{dry}");
    assert!(dry.contains("cache debug/itoa-"), "the oldest unit goes first: {dry}");
    assert_eq!(units(".fingerprint"), fingerprints, "a dry run removed something");
    let done = gc(false);
    assert!(done.starts_with("removed: files of 1 versions [0.1.0]"), "{done}");
    assert!(units(".fingerprint") < fingerprints, "{done}");
    // keep_versions = 1: 0.1.0's files went; 0.2.0, staging's current
    // version, keeps all of its own.
    assert!(data.join("artifacts/0.2.0/tiny").is_file());
    assert!(data.join("worktrees").join(&second).is_dir());
    assert!(!data.join("worktrees").join(&first).exists());

    // The trimmed cache still builds: cargo rebuilds what went.
    let third = commit(&project, "0.3.0", 44);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": third }).to_string());
    assert_eq!(status, 202, "{body}");
    let built = events
        .wait("0.3.0 built", Duration::from_secs(300), |e| {
            e["kind"] == "build_done" && e["outcome"]["version"] == "0.3.0"
        })
        .await;
    assert_eq!(built["event"]["outcome"]["kind"], "ok", "{built}");
    daemon.kill();
}
