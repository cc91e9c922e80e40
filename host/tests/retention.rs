//! `[retention]` through the real `sando serve`: old versions' work trees, artifacts and logs and old backups go, with a dry run first; what a tier needs, the newest and the history stay.

mod util;

use std::time::Duration;

use serde_json::{Value, json};

use util::daemon::{Daemon, Events, Project, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_files_and_backups_go_and_what_is_needed_stays() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let node = root.path().join("nodes/staging-1");
    std::fs::create_dir_all(&node).unwrap();
    let backup_source = root.path().join("prod-db.sqlite");
    std::fs::write(&backup_source, b"").unwrap();
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
backup_source = "{backup}"
[retention]
keep_versions = 1
keep_promoted = 1
keep_backups = 1
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "staging-1"
deploy = "cp {{artifact}} {node}/tiny"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"
"#,
            backup = backup_source.display(),
            repo = project.dir.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let mut shas = Vec::new();
    for version in ["0.1.0", "0.2.0", "0.3.0"] {
        let sha = project.commit(version, "assert_eq!(super::answer(), 42);");
        let (status, _) =
            daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
        assert_eq!(status, 202);
        events
            .wait(version, Duration::from_secs(180), move |e| {
                e["kind"] == "promoted" && e["version"] == version
            })
            .await;
        shas.push(sha);
    }
    let mut backups = Vec::new();
    for _ in 0..3 {
        let (status, backup) = daemon.post("/api/backup/fetch", Some(TOKEN), "{}");
        assert_eq!(status, 200, "{backup}");
        backups.push(backup);
    }
    let data = root.path().join("data");
    let kept = |version: &str, sha: &str| {
        [
            data.join("worktrees").join(sha),
            data.join("artifacts").join(version),
            data.join("logs").join(version),
        ]
        .map(|p| p.exists())
    };
    assert_eq!(kept("0.1.0", &shas[0]), [true; 3]);

    // A dry run says what would go and removes nothing.
    let (status, dry) = daemon.post("/api/retention/sweep?dry_run=true", Some(TOKEN), "");
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["versions"], json!(["0.2.0", "0.1.0"]), "{dry}");
    assert_eq!(dry["backups"], json!([backups[1]["id"], backups[0]["id"]]), "{dry}");
    assert_eq!(kept("0.1.0", &shas[0]), [true; 3]);

    let (status, swept) = daemon.post("/api/retention/sweep", Some(TOKEN), "");
    assert_eq!(status, 200, "{swept}");
    assert_eq!(swept["versions"], dry["versions"]);
    assert_eq!(kept("0.1.0", &shas[0]), [false; 3]);
    assert_eq!(kept("0.2.0", &shas[1]), [false; 3]);
    assert_eq!(kept("0.3.0", &shas[2]), [true; 3], "the current version stays");
    let on_disk = |b: &Value| std::path::Path::new(b["path"].as_str().unwrap()).exists();
    assert!(!on_disk(&backups[0]) && !on_disk(&backups[1]));
    assert!(on_disk(&backups[2]), "the latest backup stays");

    // The history stays; a second sweep finds nothing left to do.
    let state = daemon.state();
    let versions: Vec<&str> = state["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions.len(), 3, "{state}");
    let (_, again) = daemon.post("/api/retention/sweep", Some(TOKEN), "");
    assert_eq!(again["versions"], json!([]), "{again}");
    assert_eq!(again["backups"], json!([]), "{again}");
    // Without the token, nothing is swept.
    assert_eq!(daemon.post("/api/retention/sweep", None, "").0, 401);
    daemon.kill();
}
