//! A hostile commit, through the real `sando serve`: its tests try to read the token, the daemon's environment, the database and the backups, to write into the data directory, replace the artifact, reach the network and leave a sleeper behind. Each attempt fails, no secret reaches a log, an event or an API response, and the daemon goes on.

mod util;

use std::time::{Duration, Instant};

use serde_json::json;

use util::daemon::{Daemon, Events, Project, TOKEN, gate_done, tier};

const BACKUP_SECRET: &str = "PROD-SECRET-ROW-7f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_commit_reaches_nothing_and_leaks_nothing() {
    hostile_commit(None, false).await;
}

/// The same, with `run_as`: the code under test runs as `nobody`, owns its
/// work tree, and still builds and tests with the daemon's toolchain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_commit_run_as_an_unprivileged_user_reaches_nothing() {
    hostile_commit(Some("nobody"), false).await;
}

/// The same, its build and tests run as Slurm jobs on the suite's cluster
/// (`./x test` starts it): the node runs the same sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_commit_run_as_a_slurm_job_reaches_nothing() {
    hostile_commit(None, true).await;
}

async fn hostile_commit(run_as: Option<&str>, on_slurm: bool) {
    // On Slurm, where the node sees it: not under /tmp, which sandboxes replace.
    let root = match on_slurm {
        false => tempfile::tempdir().unwrap(),
        true => {
            std::env::var("SLURM_CONF").expect("SLURM_CONF: run the suite with ./x test");
            let base = util::target_dir().join("slurm-tests");
            std::fs::create_dir_all(&base).unwrap();
            tempfile::tempdir_in(base).unwrap()
        }
    };
    let project = Project::new(root.path());
    let data = root.path().join("data");
    // Work trees, artifacts and backups: in the data directory, or with
    // Slurm under the shared directory's `files`.
    let shared = root.path().join("shared");
    let work = if on_slurm { shared.join("files") } else { data.clone() };
    let executor = match on_slurm {
        true => format!(
            "[executor]\nkind = \"slurm\"\npartition = \"gates\"\nshared_dir = \"{}\"\n",
            shared.display()
        ),
        false => String::new(),
    };
    let token_file = root.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let backup_source = root.path().join("prod-db.sqlite");
    std::fs::write(&backup_source, BACKUP_SECRET).unwrap();
    let node = root.path().join("nodes/staging-1");
    std::fs::create_dir_all(&node).unwrap();
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
{run_as}
data_dir = "data"
token_file = "{token}"
backup_source = "{backup}"
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
args = "test --offline -- --nocapture"
[[tiers]]
name = "prod"
[[tiers.gates]]
kind = "manual_confirm"
{executor}
"#,
            run_as = run_as.map(|user| format!("run_as = {user:?}")).unwrap_or_default(),
            token = token_file.display(),
            backup = backup_source.display(),
            repo = project.dir.display(),
            node = node.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let (status, body) = daemon.post("/api/backup/fetch", Some(TOKEN), "{}");
    assert_eq!(status, 200, "{body}");

    // The test knows where everything is, as an attacker who read the docs would.
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let hostile = format!(
        r##"
        fn attempt(what: &str, result: std::io::Result<String>) {{
            match result {{
                Ok(found) => println!("REACHED {{what}}: {{found}}"),
                Err(e) => println!("denied {{what}}: {{e}}"),
            }}
        }}
        let read = |p: &str| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
        let sh = |script: &str| -> std::io::Result<String> {{
            let out = std::process::Command::new("sh").args(["-c", script]).output()?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
            if out.status.success() {{ Ok(text(&out.stdout)) }} else {{ Err(std::io::Error::other(text(&out.stderr))) }}
        }};
        println!("running as uid {{}}", sh("id -u").unwrap_or_default());
        attempt("unmount what hides the token", sh(&format!("umount {{0}} && cat {{0}}", {token:?})));
        attempt("remount the root writable", sh(&format!("mount -o remount,rw / && touch {{}}", {outside:?})));
        attempt("token file", read({token:?}));
        attempt("database", read({db:?}));
        attempt("backup source", read({backup:?}));
        attempt("backups", std::fs::read_dir({backups:?}).map(|d| {{
            d.flatten().map(|e| read(&e.path().display().to_string()).unwrap_or_default()).collect::<Vec<_>>().join(",")
        }}));
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {{
            if let Ok(environ) = std::fs::read(entry.path().join("environ")) {{
                let environ = String::from_utf8_lossy(&environ).into_owned();
                if environ.contains("SANDO_TEST_TOKEN") {{
                    println!("REACHED environ of {{}}: {{environ}}", entry.path().display());
                }}
            }}
        }}
        attempt("write into the data directory", std::fs::write({planted:?}, "x").map(|_| "written".into()));
        attempt("replace the artifact", std::fs::write({artifact:?}, "evil").map(|_| "replaced".into()));
        attempt("network", std::net::TcpStream::connect({address:?}).map(|_| "connected".into()));
        let _ = std::process::Command::new("setsid").args(["sleep", "911"]).spawn();
        "##,
        token = token_file.display().to_string(),
        db = data.join("sando.sqlite").display().to_string(),
        backup = backup_source.display().to_string(),
        backups = work.join("backups").display().to_string(),
        planted = data.join("planted").display().to_string(),
        outside = root.path().join("planted").display().to_string(),
        artifact = work.join("artifacts/0.1.0/tiny").display().to_string(),
    );
    let sha = project.commit_lib(
        "0.1.0",
        &format!("pub fn answer() -> u32 {{ 42 }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn hostile() {{ {hostile} }}\n}}\n"),
    );
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("the hostile test ran", Duration::from_secs(180), gate_done("cargo_test", "passed"))
        .await;
    events
        .wait("staging promoted", Duration::from_secs(60), |e| {
            e["kind"] == "promoted" && e["tier"] == "staging"
        })
        .await;

    // Every attempt was made, and every one was denied.
    let run = done["event"]["run_id"].as_i64().unwrap();
    let (status, log) = daemon.get(&format!("/api/gate-runs/{run}/log"));
    assert_eq!(status, 200);
    for what in [
        "token file",
        "database",
        "backup source",
        "backups",
        "write into the data directory",
        "replace the artifact",
        "network",
        "unmount what hides the token",
        "remount the root writable",
    ] {
        assert!(log.contains(&format!("denied {what}:")), "{what} was not denied:\n{log}");
    }
    assert!(!log.contains("REACHED"), "{log}");

    // It ran as the user it was meant to, in a tree that user owns.
    let uid = match run_as {
        None => 0,
        Some(user) => sando::run_as::RunAs::lookup(user).unwrap().uid(),
    };
    assert!(log.contains(&format!("running as uid {uid}\n")), "{log}");
    // Its build's outputs: in its work tree on Slurm (no build cache
    // there), else in the build cache, whose base its promotion fed.
    let target = match on_slurm {
        true => work.join("worktrees").join(&sha).join("target"),
        false => {
            let fed = work.join("cache/base/fed-by");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !std::fs::read_to_string(&fed).is_ok_and(|f| f.starts_with("0.1.0 ")) {
                assert!(Instant::now() < deadline, "0.1.0 did not feed the build cache");
                std::thread::sleep(Duration::from_millis(50));
            }
            work.join("cache/base/layer/target/debug")
        }
    };
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&target).unwrap()), uid);

    // Nothing was changed, and what was deployed is what was built.
    assert!(!data.join("planted").exists());
    assert!(!root.path().join("planted").exists());
    let deployed = std::fs::read(node.join("tiny")).unwrap();
    assert_eq!(deployed, std::fs::read(work.join("artifacts/0.1.0/tiny")).unwrap());
    assert_ne!(deployed, b"evil");

    // No secret anywhere an outsider can read.
    let state = daemon.state().to_string();
    let (_, logs) = daemon.get("/logs/0.1.0/cargo_test");
    let (_, run_json) = daemon.get(&format!("/api/gate-runs/{run}"));
    let frames = events.all();
    assert!(frames.iter().any(|f| f["event"]["kind"] == "gate_log_chunk"), "the log went out live");
    let mut frames = serde_json::to_string(&frames).unwrap();
    for chunk in events.chunks() {
        frames.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
    for (name, text) in
        [("state", &state), ("logs", &logs), ("run", &run_json), ("events", &frames)]
    {
        assert!(!text.contains(TOKEN), "the token leaked into {name}");
        assert!(!text.contains(BACKUP_SECRET), "the backup leaked into {name}");
    }

    // No sleeper outlived the run, and the daemon goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("sleep 911"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    if on_slurm {
        // Every job ended, and its files went with it.
        let out = std::process::Command::new("squeue")
            .args(["--noheader", "--format=%i %Z"])
            .output()
            .unwrap();
        let queued = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!queued.contains(&shared.display().to_string()), "{queued}");
        for daemons in std::fs::read_dir(shared.join("jobs")).unwrap().flatten() {
            assert_eq!(std::fs::read_dir(daemons.path()).unwrap().count(), 0);
        }
    }
    let state = daemon.state();
    assert_eq!(tier(&state, "staging")["current_version"], "0.1.0");
    assert_eq!(state["scheduler"]["alive"], true);
    assert_eq!(state["warnings"], json!([]));
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_database_password_never_leaks() {
    const PASSWORD: &str = "S3cr3tPa55word";
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    std::fs::create_dir_all(project.dir.join("migrations")).unwrap();
    std::fs::write(project.dir.join("migrations/0001_init.sql"), "CREATE TABLE t (id INTEGER);")
        .unwrap();
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
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
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "migration_dry_run"
scratch_db_url = "postgres://sando:{PASSWORD}@127.0.0.1:9/scratch"
migrate = "{sando}"
restore = "true"
"#,
            backup = backup_source.display(),
            repo = project.dir.display(),
            sando = env!("CARGO_BIN_EXE_sando"),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    assert_eq!(daemon.post("/api/backup/fetch", Some(TOKEN), "{}").0, 200);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("the migration gate ran", Duration::from_secs(180), |e| {
            e["kind"] == "gate_done" && e["gate"] == "migration_dry_run"
        })
        .await;
    let run = done["event"]["run_id"].as_i64().unwrap();
    let (_, log) = daemon.get(&format!("/api/gate-runs/{run}/log"));
    assert!(log.contains("sando: running"), "the spawn was echoed: {log}");
    let (_, run_json) = daemon.get(&format!("/api/gate-runs/{run}"));
    let state = daemon.state().to_string();
    let frames = serde_json::to_string(&events.all()).unwrap();
    let stderr = daemon.stderr.lock().unwrap().clone();
    for (name, text) in [
        ("log", &log),
        ("run", &run_json),
        ("state", &state),
        ("events", &frames),
        ("daemon log", &stderr),
    ] {
        assert!(!text.contains(PASSWORD), "the password leaked into the {name}:\n{text}");
    }
    daemon.kill();
}

/// `secret_env`: the value reaches the build, the tests and the deploy,
/// each of which prints it, and it appears in no log, event, API response
/// or daemon output: only stars of its length do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_env_reaches_its_processes_and_nothing_they_print() {
    const SECRET: &str = "tok-7f3a9c21e5b8d04a6";
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit(
        "0.1.0",
        r#"let v = std::env::var("SANDO_DEPLOY_SECRET").unwrap(); println!("the tests see {v}"); assert_eq!(v.len(), 21);"#,
    );
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
build = "sh -c 'echo the build sees $SANDO_DEPLOY_SECRET && cargo build --offline --quiet'"
artifact = "target/debug/tiny"
secret_env = ["SANDO_DEPLOY_SECRET"]
[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "staging-1"
deploy = "sh -c 'printf %s \"$SANDO_DEPLOY_SECRET\" > {node}/secret; echo deployed with $SANDO_DEPLOY_SECRET'"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline -- --nocapture"
"#,
            repo = project.dir.display(),
            node = node.display(),
        ),
    )
    .unwrap();

    // Without the variable the daemon does not start, and says why.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("SANDO_TEST_TOKEN", TOKEN)
        .env_remove("SANDO_DEPLOY_SECRET")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("sando: project.secret_env: SANDO_DEPLOY_SECRET is not set in sando's environment"),
        "{stderr}"
    );

    let daemon = Daemon::start_with_env(&config, &[("SANDO_DEPLOY_SECRET", SECRET)]);
    let events = Events::connect(&daemon.url).await;
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let passed = events
        .wait("the tests saw it", Duration::from_secs(180), gate_done("cargo_test", "passed"))
        .await;
    events
        .wait("deployed", Duration::from_secs(60), |e| {
            e["kind"] == "promoted" && e["tier"] == "staging"
        })
        .await;
    assert_eq!(std::fs::read_to_string(node.join("secret")).unwrap(), SECRET);

    let run = passed["event"]["run_id"].as_i64().unwrap();
    let (_, log) = daemon.get(&format!("/api/gate-runs/{run}/log"));
    let stars = "*".repeat(SECRET.len());
    assert!(log.contains(&format!("the tests see {stars}")), "masked, not dropped: {log}");
    let mut logs = String::new();
    for entry in walk(&root.path().join("data/logs")) {
        logs.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    assert!(logs.contains(&format!("the build sees {stars}")), "{logs}");
    assert!(logs.contains(&format!("deployed with {stars}")), "{logs}");
    let state = daemon.state().to_string();
    let frames = serde_json::to_string(&events.all()).unwrap();
    let stderr = daemon.stderr.lock().unwrap().clone();
    for (name, text) in
        [("log files", &logs), ("state", &state), ("events", &frames), ("daemon log", &stderr)]
    {
        assert!(!text.contains(SECRET), "the secret leaked into the {name}:\n{text}");
    }
    daemon.kill();
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
