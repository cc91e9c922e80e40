//! The build cache, on by default, through the real daemon: a project with a crates.io dependency. A promoted version feeds the trusted base; the next version compiles only its own crate on it; a base whose feed a kill cut short is dropped; a failed rebuild of a registered commit leaves its layer alone. Versions that poison everything they can reach in the target directory and `CARGO_HOME` (from a build script, a test, a proc macro) fail their own gates and leave the base exactly as it was: a later version from the commit before them is judged as on a fresh machine.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use util::daemon::{Daemon, Events, Project, TOKEN};

const MINUTES: Duration = Duration::from_secs(300);

/// Overwrites every regular file under `$CARGO_TARGET_DIR` and
/// `$CARGO_HOME` (sources with a compile error, everything else with
/// garbage: rlibs, fingerprints, build-script outputs, registry sources)
/// and plants a file at each root.
const POISON: &str = r#"
pub fn poison_all() {
    fn walk(dir: &std::path::Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            if meta.is_dir() {
                walk(&path);
            } else if meta.is_file() {
                let rust = path.extension().is_some_and(|x| x == "rs");
                let bytes: &[u8] = if rust { b"compile_error!(\"poisoned\");\n" } else { b"poisoned" };
                let _ = std::fs::write(&path, bytes);
            }
        }
    }
    for var in ["CARGO_TARGET_DIR", "CARGO_HOME"] {
        if let Some(dir) = std::env::var_os(var) {
            let dir = std::path::PathBuf::from(dir);
            walk(&dir);
            let _ = std::fs::write(dir.join("planted"), "poisoned");
        }
    }
}
"#;

fn manifest(version: &str, extra: &str) -> String {
    format!(
        "[package]\nname = \"tiny\"\nversion = \"{version}\"\nedition = \"2021\"\n\n[workspace]\n\n[dependencies]\nitoa = \"1\"\n{extra}"
    )
}

fn honest_lib(answer: u32) -> String {
    format!(
        "pub fn answer() -> String {{ itoa::Buffer::new().format({answer}u32).to_owned() }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn answers() {{ assert_eq!(super::answer(), \"{answer}\"); }}\n}}\n"
    )
}

/// Commits `files` (path, contents) on top of the checked-out commit,
/// removing what `remove` names.
fn commit(project: &Project, version: &str, files: &[(&str, String)], remove: &[&str]) -> String {
    for name in remove {
        let path = project.dir.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, text) in files {
        let path = project.dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", version]);
    project.git(&["rev-parse", "HEAD"])
}

fn honest(project: &Project, version: &str, answer: u32) -> String {
    let files = [("Cargo.toml", manifest(version, "")), ("src/lib.rs", honest_lib(answer))];
    commit(project, version, &files, &["build.rs", "poison_macro"])
}

fn config(root: &Path, project: &Project, node: &Path) -> PathBuf {
    let config = root.join("sando.toml");
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
[retention]
keep_versions = 1
keep_promoted = 1
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
    config
}

fn setup(root: &Path) -> (Project, PathBuf) {
    let project = Project::new(root);
    let node = root.join("nodes/staging-1");
    std::fs::create_dir_all(&node).unwrap();
    let config = config(root, &project, &node);
    (project, config)
}

/// A way in: its name, the version, and the files it commits.
type Way = (&'static str, &'static str, Vec<(&'static str, String)>);

fn promoted(version: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == "promoted" && e["tier"] == "staging" && e["version"] == version
}

fn tested(version: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["kind"] == "gate_done" && e["gate"] == "cargo_test" && e["version"] == version
}

/// Asks for a build of `sha`.
fn push(daemon: &Daemon, sha: &str) {
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
}

/// The newest build log of `sha`.
fn build_log(data: &Path, sha: &str) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("logs/builds"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(sha))
        .collect();
    files.sort();
    std::fs::read_to_string(files.last().expect("a build log")).unwrap()
}

/// The crates a build log says it compiled.
fn compiled(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
        .map(str::to_owned)
        .collect()
}

/// The test run's log of a gate_done event.
fn run_log(daemon: &Daemon, done: &Value) -> String {
    let run = done["event"]["run_id"].as_i64().unwrap();
    daemon.get(&format!("/api/gate-runs/{run}/log")).1
}

/// Every entry under `dir`, by relative path: its kind and bytes (a link's
/// target), never following a link.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (char, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, (char, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let key = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                into.insert(key, ('d', Vec::new()));
                walk(root, &path, into);
            } else if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                into.insert(key, ('l', target.to_string_lossy().as_bytes().to_vec()));
            } else {
                into.insert(key, ('f', std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut into = BTreeMap::new();
    walk(dir, dir, &mut into);
    into
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_version_feeds_the_base_and_the_next_compiles_only_its_own_crate() {
    let root = tempfile::tempdir().unwrap();
    let (project, config) = setup(root.path());
    let data = root.path().join("data");
    // A cache of the old opt-in layout, which any version could write: gone
    // at start.
    for old in ["cache/target/debug/deps", "cache/cargo-home/registry"] {
        std::fs::create_dir_all(data.join(old)).unwrap();
        std::fs::write(data.join(old).join("planted"), "poisoned").unwrap();
    }
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    assert!(!data.join("cache/target").exists() && !data.join("cache/cargo-home").exists());

    let first = honest(&project, "0.1.0", 42);
    push(&daemon, &first);
    let done = events.wait("0.1.0's tests", MINUTES, tested("0.1.0")).await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    events.wait("0.1.0 on staging", MINUTES, promoted("0.1.0")).await;
    fed(&data, "0.1.0").await;
    let artifact = data.join("artifacts/0.1.0/tiny");
    let before = std::fs::read(&artifact).unwrap();

    let second = honest(&project, "0.2.0", 43);
    push(&daemon, &second);
    let done = events.wait("0.2.0's tests", MINUTES, tested("0.2.0")).await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    let test_log = run_log(&daemon, &done);
    events.wait("0.2.0 on staging", MINUTES, promoted("0.2.0")).await;
    fed(&data, "0.2.0").await;

    // The first compiled the dependency; the second, on the base the first
    // fed, only its own crate; its tests reused what its build compiled.
    let logs = [build_log(&data, &first), build_log(&data, &second)];
    assert!(compiled(&logs[0]).iter().any(|c| c.starts_with("itoa ")), "{}", logs[0]);
    assert_eq!(compiled(&logs[1]).len(), 1, "{}", logs[1]);
    assert!(compiled(&logs[1])[0].starts_with("tiny v0.2.0"), "{}", logs[1]);
    assert!(logs[1].contains("last fed by 0.1.0"), "{}", logs[1]);
    assert!(!test_log.contains("Compiling itoa"), "{test_log}");
    let state = daemon.state();
    let builds = state["builds"].as_array().unwrap();
    assert_eq!((&builds[0]["warm"], &builds[0]["cache_from"]), (&json!(true), &json!("0.1.0")));
    assert_eq!((&builds[1]["warm"], &builds[1]["cache_from"]), (&json!(false), &Value::Null));

    // The base holds the fetched crate, and names who fed it last; a fed
    // version's own layer is gone into it.
    let base = data.join("cache/base/layer");
    let crates: Vec<String> = std::fs::read_dir(base.join("cargo-home/registry/cache"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(crates.iter().any(|f| f.starts_with("itoa-")), "{crates:?}");
    assert!(!data.join("cache/versions").join(&second).exists());

    // Each version keeps its own artifact; the later build changed none.
    assert_eq!(std::fs::read(&artifact).unwrap(), before);
    assert_ne!(std::fs::read(data.join("artifacts/0.2.0/tiny")).unwrap(), before);

    // `sando gc` brings the base under its cap, oldest units first.
    let token_file = root.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let units = || std::fs::read_dir(base.join("target/debug/.fingerprint")).unwrap().count();
    let fingerprints = units();
    let dry = gc(&daemon, &token_file, true);
    assert!(dry.starts_with("would remove (dry run): files of 1 versions [0.1.0]"), "{dry}");
    assert!(dry.contains("cache debug/itoa-"), "the oldest unit goes first: {dry}");
    assert_eq!(units(), fingerprints, "a dry run removed something");
    let done = gc(&daemon, &token_file, false);
    assert!(done.starts_with("removed: files of 1 versions [0.1.0]"), "{done}");
    assert!(units() < fingerprints, "{done}");
    assert!(data.join("artifacts/0.2.0/tiny").is_file());
    assert!(!data.join("worktrees").join(&first).exists());

    // The trimmed base still builds: cargo rebuilds what went.
    let third = honest(&project, "0.3.0", 44);
    push(&daemon, &third);
    let done = events.wait("0.3.0's tests", MINUTES, tested("0.3.0")).await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    events.wait("0.3.0 on staging", MINUTES, promoted("0.3.0")).await;
    fed(&data, "0.3.0").await;

    // Killed (SIGKILL) in the middle of a feed: the `feeding` marker is
    // down and the base half moved. The next daemon drops the base rather
    // than trust it, and the next version builds cold, and passes.
    daemon.kill();
    std::fs::write(data.join("cache/base/feeding"), "").unwrap();
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    for _ in 0..600 {
        if !base.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!base.exists() && !data.join("cache/base/feeding").exists());
    let said = daemon.stderr.lock().unwrap().clone();
    assert!(said.contains("a feed of the base was interrupted; dropping the base"), "{said}");
    let fourth = honest(&project, "0.4.0", 45);
    push(&daemon, &fourth);
    let done = events.wait("0.4.0's tests", MINUTES, tested("0.4.0")).await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    let log = build_log(&data, &fourth);
    assert!(compiled(&log).iter().any(|c| c.starts_with("itoa ")), "{log}");
    assert!(!log.contains("last fed by"), "{log}");
    daemon.kill();
}

/// Waits until `version` has fed the base (the feed follows its promotion).
async fn fed(data: &Path, version: &str) {
    let fed_by = data.join("cache/base/fed-by");
    for _ in 0..600 {
        let text = std::fs::read_to_string(&fed_by).unwrap_or_default();
        if text.starts_with(&format!("{version} ")) && !data.join("cache/base/feeding").exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{version} did not feed the base: {:?}", std::fs::read_to_string(&fed_by));
}

fn gc(daemon: &Daemon, token_file: &Path, dry_run: bool) -> String {
    let mut args = vec!["gc", "--url", &daemon.url, "--token-file", token_file.to_str().unwrap()];
    if dry_run {
        args.push("--dry-run");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sando")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_that_poison_the_cache_change_nothing_another_version_builds() {
    let root = tempfile::tempdir().unwrap();
    let (project, config) = setup(root.path());
    let data = root.path().join("data");
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    let good = honest(&project, "0.1.0", 42);
    push(&daemon, &good);
    events.wait("0.1.0 on staging", MINUTES, promoted("0.1.0")).await;
    fed(&data, "0.1.0").await;
    let base = data.join("cache/base/layer");
    let clean = snapshot(&base);
    assert!(clean.keys().any(|k| k.extension().is_some_and(|x| x == "rlib")), "a warm base");

    // Three ways in, each on its own branch from 0.1.0's commit.
    let build_script = format!("{POISON}\nfn main() {{ poison_all(); }}\n");
    let test_lib = format!(
        "{}\n#[cfg(test)]\nmod poison {{\n{POISON}\n    #[test]\n    fn poisons() {{ poison_all(); panic!(\"poisoned\"); }}\n}}\n",
        honest_lib(42)
    );
    let macro_crate = format!(
        "extern crate proc_macro;\n{POISON}\n#[proc_macro]\npub fn poison(_: proc_macro::TokenStream) -> proc_macro::TokenStream {{ poison_all(); proc_macro::TokenStream::new() }}\n"
    );
    let macro_manifest = "[package]\nname = \"poison_macro\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n".to_owned();
    let ways: [Way; 3] = [
        (
            "build script",
            "0.2.0",
            vec![
                ("Cargo.toml", manifest("0.2.0", "")),
                ("src/lib.rs", honest_lib(42)),
                ("build.rs", build_script),
            ],
        ),
        ("test", "0.3.0", vec![("Cargo.toml", manifest("0.3.0", "")), ("src/lib.rs", test_lib)]),
        (
            "proc macro",
            "0.4.0",
            vec![
                ("Cargo.toml", manifest("0.4.0", "poison_macro = { path = \"poison_macro\" }\n")),
                ("src/lib.rs", format!("poison_macro::poison!();\n{}", honest_lib(42))),
                ("poison_macro/Cargo.toml", macro_manifest),
                ("poison_macro/src/lib.rs", macro_crate),
            ],
        ),
    ];
    let mut poisoners = Vec::new();
    for (way, version, files) in ways {
        project.git(&["checkout", "-q", "-B", version, &good]);
        let sha = commit(&project, version, &files, &[]);
        push(&daemon, &sha);
        let failed = {
            let sha = sha.clone();
            move |e: &Value| {
                (e["kind"] == "build_done"
                    && e["sha"] == sha.as_str()
                    && e["outcome"]["kind"] == "failed")
                    || (tested(version)(e) && e["outcome"]["status"]["kind"] == "failed")
            }
        };
        events.wait(&format!("the {way} poisoner to fail"), MINUTES, failed).await;
        assert_eq!(events.count(promoted(version)), 0, "the {way} poisoner was promoted");
        // Its gates ended with its own view unmounted: the base is as it was.
        assert!(snapshot(&base) == clean, "the {way} poisoner changed the base");
        poisoners.push(sha);
    }

    // A later version from the commit before them: built on the clean base
    // (only its own crate compiled), tested honestly, promoted.
    project.git(&["checkout", "-q", "-B", "later", &good]);
    let later = honest(&project, "0.5.0", 44);
    push(&daemon, &later);
    let done = events.wait("0.5.0's tests", MINUTES, tested("0.5.0")).await;
    let test_log = run_log(&daemon, &done);
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}\n{test_log}");
    assert!(test_log.contains("test tests::answers ... ok"), "{test_log}");
    assert!(!test_log.contains("poisoned"), "{test_log}");
    let log = build_log(&data, &later);
    let crates = compiled(&log);
    assert!(crates.len() == 1 && crates[0].starts_with("tiny v0.5.0"), "{log}");
    events.wait("0.5.0 on staging", MINUTES, promoted("0.5.0")).await;
    fed(&data, "0.5.0").await;
    assert!(!data.join("cache/base/layer/target/planted").exists());
    assert!(!data.join("cache/base/layer/cargo-home/planted").exists());

    // The poisoners' own layers were never fed; a sweep removes them.
    let token_file = root.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    gc(&daemon, &token_file, false);
    for sha in &poisoners {
        assert!(!data.join("cache/versions").join(sha).exists(), "{sha}'s layer is still there");
    }
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_of_a_registered_commit_keeps_the_layer_its_gates_build_on() {
    let root = tempfile::tempdir().unwrap();
    let (project, config) = setup(root.path());
    // Builds take a moment (so one can be cancelled); a manual confirmation
    // keeps 0.1.0 staging's candidate, its layer in use.
    let text = std::fs::read_to_string(&config).unwrap();
    let text =
        text.replace("build = \"cargo build\"", "build = \"sh -c 'sleep 2 && cargo build'\"");
    std::fs::write(&config, format!("{text}[[tiers.gates]]\nkind = \"manual_confirm\"\n")).unwrap();
    let data = root.path().join("data");
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    let sha = honest(&project, "0.1.0", 42);
    push(&daemon, &sha);
    let done = events.wait("0.1.0's tests", MINUTES, tested("0.1.0")).await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    // Its compiled units (cargo's own bookkeeping in CARGO_HOME changes
    // with every command, a fetch too).
    let layer = data.join("cache/versions").join(&sha).join("upper/target");
    let before = snapshot(&layer);
    assert!(before.keys().any(|p| p.starts_with("debug/deps")), "{:?}", before.keys());

    // The same commit again, cancelled while it builds: a failed build, but
    // of a registered version, whose layer stays as it was.
    push(&daemon, &sha);
    let starts = |e: &Value| e["kind"] == "build_started" && e["sha"] == sha.as_str();
    for _ in 0..600 {
        if events.count(starts) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.count(starts), 2);
    let (status, body) = daemon.post(&format!("/api/builds/{sha}/cancel"), Some(TOKEN), "");
    assert_eq!(status, 202, "{body}");
    let cancelled =
        |e: &Value| e["kind"] == "build_done" && e["outcome"]["failure"]["kind"] == "cancelled";
    events.wait("the rebuild cancelled", MINUTES, cancelled).await;
    assert_eq!(snapshot(&layer), before, "the registered version's layer changed");
    daemon.kill();
}
