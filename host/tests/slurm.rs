//! Gates as Slurm jobs, against the real one-node cluster `./x test` starts (`SLURM_CONF`): the Slurm executor gives the same bytes and ends as the local one, its cancels, timeouts and windows go through `scancel` and leave nothing in `squeue`, Slurm's own failures are typed infrastructure failures; and through the real binary, the demo passes and fails as locally, a cancel over the API and an outside `scancel` end as they should, and `sando check` names each Slurm problem in one line.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use sando::config::SlurmResources;
use sando::domain::ProcessEnd;
use sando::executor::{
    CancellationToken, Ended, Executor, Finished, Isolation, LocalExecutor, LogSink, Mount,
    Mounted, ProcessSpec, SlurmExecutor, Stream, block_on,
};
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

/// The suite's cluster, from `./x test`.
fn slurm_conf() -> String {
    std::env::var("SLURM_CONF").unwrap_or_else(|_| {
        panic!("SLURM_CONF is not set: run the suite with `./x test`, which starts Slurm")
    })
}

/// A directory the daemon and the node share: under the target dir, not
/// `/tmp`, which a sandbox replaces.
fn shared_dir() -> tempfile::TempDir {
    slurm_conf();
    let base = util::target_dir().join("slurm-tests");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new().prefix("shared-").tempdir_in(base).unwrap()
}

fn resources(partition: &str) -> SlurmResources {
    SlurmResources { partition: Some(partition.parse().unwrap()), ..SlurmResources::default() }
}

fn local() -> LocalExecutor {
    let local = LocalExecutor::detect(Duration::from_secs(2));
    assert!(local.isolates(), "bubblewrap is needed (./x installs it)");
    local
}

fn slurm(shared: &Path, partition: &str) -> SlurmExecutor {
    SlurmExecutor::new(local(), resources(partition), shared, &shared.join("owner"))
}

#[derive(Default)]
struct Collect(Mutex<Vec<(Stream, Bytes)>>);

impl LogSink for Collect {
    fn chunk(&self, stream: Stream, bytes: Bytes) {
        self.0.lock().unwrap().push((stream, bytes));
    }
}

impl Collect {
    fn stream(&self, which: Stream) -> Vec<u8> {
        let chunks = self.0.lock().unwrap();
        chunks.iter().filter(|(s, _)| *s == which).flat_map(|(_, b)| b.to_vec()).collect()
    }
}

fn sh(script: &str) -> ProcessSpec {
    ProcessSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        ..ProcessSpec::default()
    }
}

/// Says, of the stdout so far, when to cancel.
type CancelWhen = Box<dyn Fn(&[u8]) -> bool + Send>;

/// Runs `spec` on `executor`, cancelling when `cancel_when` says so of the
/// output so far; what it finished with and what the sink got.
fn run(
    executor: &dyn Executor,
    spec: ProcessSpec,
    cancel_when: Option<CancelWhen>,
) -> (Finished, Arc<Collect>) {
    let sink = Arc::new(Collect::default());
    let stop = CancellationToken::new();
    let watcher = cancel_when.map(|when| {
        let (sink, stop) = (sink.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !when(&sink.stream(Stream::Stdout)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.cancel();
        })
    });
    let finished =
        block_on(executor.run(spec, Some(sink.clone() as Arc<dyn LogSink>), stop.clone()));
    stop.cancel();
    if let Some(watcher) = watcher {
        watcher.join().unwrap();
    }
    (finished, sink)
}

/// The jobs Slurm still has pending or running whose work directory is
/// under `shared`.
fn queued_under(shared: &Path) -> Vec<String> {
    let out = Command::new("squeue").args(["--noheader", "--format=%i %T %Z"]).output().unwrap();
    assert!(out.status.success(), "squeue: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&shared.display().to_string()))
        .map(str::to_owned)
        .collect()
}

/// Waits (a little: `scancel` takes a moment to be reflected) for no job
/// under `shared` to be left.
fn assert_nothing_queued(shared: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = queued_under(shared);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left in squeue: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A sandboxed spec whose work tree is a fresh directory under `shared`.
fn sandboxed(shared: &Path, script: &str) -> ProcessSpec {
    let tree = shared.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    ProcessSpec {
        cwd: Some(tree.clone()),
        isolation: Some(Isolation {
            hidden: vec![shared.join("hidden")],
            mounts: vec![Mount::new(Mounted::Tree, tree)],
            ..Isolation::default()
        }),
        ..sh(script)
    }
}

#[test]
fn a_job_gives_the_same_bytes_chunks_and_end_as_a_local_process() {
    let shared = shared_dir();
    let slurm = slurm(shared.path(), "gates");
    let local = local();
    // Over a read's worth on stdout, bytes that are not text on both, and
    // an exit status of its own.
    let script = "seq 1 120000; printf 'err\\000\\377\\n' >&2; printf 'end\\000\\376'; exit 3";
    let (on_slurm, slurm_sink) = run(&slurm, sandboxed(shared.path(), script), None);
    let (here, local_sink) = run(&local, sandboxed(shared.path(), script), None);
    assert_eq!(on_slurm.ended, Ended::Normally);
    assert_eq!(on_slurm.output.end, ProcessEnd::Exited(3));
    assert_eq!(on_slurm.output.end, here.output.end);
    assert!(on_slurm.output.stdout.len() > 256 << 10);
    assert!(on_slurm.output.stdout == here.output.stdout, "the same stdout");
    assert_eq!(on_slurm.output.stderr, b"err\0\xff\n");
    assert_eq!(on_slurm.output.stderr, here.output.stderr);
    for stream in [Stream::Stdout, Stream::Stderr] {
        assert!(
            slurm_sink.stream(stream) == local_sink.stream(stream),
            "the sink got the same bytes of {stream:?}, in order"
        );
    }
    let biggest = slurm_sink.0.lock().unwrap().iter().map(|(_, b)| b.len()).max().unwrap();
    assert!(biggest <= sando::executor::READ_SIZE, "a chunk is at most a read: {biggest}");

    // A signal and a program that is not there, as locally.
    for (spec, end) in [
        (sandboxed(shared.path(), "kill -ABRT $$"), ProcessEnd::Signaled(libc::SIGABRT)),
        (
            ProcessSpec { program: "/nonexistent/tool".into(), ..ProcessSpec::default() },
            ProcessEnd::SpawnError(libc::ENOENT),
        ),
    ] {
        let (on_slurm, _) = run(&slurm, spec.clone(), None);
        let (here, _) = run(&local, spec, None);
        assert_eq!(on_slurm.output.end, end);
        assert_eq!(here.output.end, end);
    }
    assert_nothing_queued(shared.path());
    // The jobs' files go with them.
    let jobs: Vec<_> = std::fs::read_dir(shared.path().join("jobs")).unwrap().flatten().collect();
    assert_eq!(jobs.len(), 1, "one daemon's jobs");
    assert_eq!(std::fs::read_dir(jobs[0].path()).unwrap().count(), 0);
}

#[test]
fn arguments_and_variables_reach_the_program_as_they_are_never_as_shell() {
    let shared = shared_dir();
    let planted = shared.path().join("planted");
    let words = [
        "a b".to_owned(),
        "$(touch PLANTED)".replace("PLANTED", &planted.display().to_string()),
        "'q'".to_owned(),
        "\"dq\"".to_owned(),
        "x;y".to_owned(),
        "\\back".to_owned(),
        "line\nbreak".to_owned(),
        "`id`".to_owned(),
        String::new(),
    ];
    let mut spec = sandboxed(shared.path(), "printf '[%s]' \"$@\"; printf '{%s}' \"$WEIRD\"");
    spec.args.push("sh".into());
    spec.args.extend(words.iter().cloned());
    spec.env.push(("WEIRD".into(), "a'b\"c $(id) `id` \\ \n end".into()));
    let (on_slurm, _) = run(&slurm(shared.path(), "gates"), spec.clone(), None);
    let (here, _) = run(&local(), spec, None);
    let printed = String::from_utf8_lossy(&on_slurm.output.stdout).into_owned();
    let expected: String = words.iter().map(|w| format!("[{w}]")).collect::<String>()
        + "{a'b\"c $(id) `id` \\ \n end}";
    assert_eq!(printed, expected);
    assert_eq!(on_slurm.output.stdout, here.output.stdout);
    assert!(!planted.exists());
}

#[test]
fn the_sandbox_on_the_node_hides_what_it_hides_locally() {
    let shared = shared_dir();
    let hidden = shared.path().join("hidden");
    std::fs::create_dir_all(&hidden).unwrap();
    std::fs::write(hidden.join("token"), "SECRET-TOKEN").unwrap();
    let script = format!(
        "cat {h}/token 2>&1; touch {h}/planted 2>/dev/null || echo no-write; \
         echo mine > /tmp/mine && echo wrote-tmp; echo tree > written && echo wrote-tree; \
         setsid sleep 912 & echo done",
        h = hidden.display()
    );
    let (out, _) = run(&slurm(shared.path(), "gates"), sandboxed(shared.path(), &script), None);
    let stdout = String::from_utf8_lossy(&out.output.stdout).into_owned();
    assert!(!stdout.contains("SECRET"), "{stdout}");
    for expected in ["no-write", "wrote-tmp", "wrote-tree", "done"] {
        assert!(stdout.contains(expected), "{expected} in {stdout}");
    }
    assert!(!hidden.join("planted").exists() && !Path::new("/tmp/mine").exists());
    assert_eq!(std::fs::read_to_string(shared.path().join("tree/written")).unwrap(), "tree\n");
    assert_no_process("sleep 912");
    assert_nothing_queued(shared.path());
}

fn assert_no_process(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(marker))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_window_a_cancel_and_a_timeout_end_the_job_through_scancel() {
    let shared = shared_dir();
    let slurm = slurm(shared.path(), "gates");
    let up = |out: &[u8]| out.starts_with(b"up\n");

    // Boot smoke's window: still running when it closed, then ended.
    let mut spec = sandboxed(shared.path(), "echo up; exec sleep 913");
    spec.stop_after = Some(Duration::from_secs(2));
    let (out, _) = run(&slurm, spec, None);
    assert_eq!((out.output.end, out.ended), (ProcessEnd::StillRunning, Ended::Normally));
    assert_eq!(out.output.stdout, b"up\n");
    assert_nothing_queued(shared.path());

    // A cancel once it is up.
    let started = Instant::now();
    let (out, _) =
        run(&slurm, sandboxed(shared.path(), "echo up; exec sleep 914"), Some(Box::new(up)));
    assert_eq!(out.ended, Ended::Cancelled);
    assert_eq!(out.output.stdout, b"up\n");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_nothing_queued(shared.path());

    // A timeout.
    let mut spec = sandboxed(shared.path(), "echo up; exec sleep 915");
    spec.timeout = Some(Duration::from_secs(2));
    let (out, _) = run(&slurm, spec, None);
    assert_eq!(out.ended, Ended::TimedOut(Duration::from_secs(2)));
    assert_nothing_queued(shared.path());
    for marker in ["sleep 913", "sleep 914", "sleep 915"] {
        assert_no_process(marker);
    }
}

#[test]
fn slurms_own_failures_are_typed_infrastructure_failures_in_one_line() {
    let shared = shared_dir();
    // Cancelled by someone else.
    let slurm_executor = slurm(shared.path(), "gates");
    let root = shared.path().to_owned();
    let outsider = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running: Vec<String> = queued_under(&root)
                .into_iter()
                .filter(|l| l.contains(" RUNNING "))
                .map(|l| l.split_whitespace().next().unwrap().to_owned())
                .collect();
            if let Some(job) = running.first() {
                std::thread::sleep(Duration::from_millis(300));
                assert!(Command::new("scancel").arg(job).status().unwrap().success());
                return job.clone();
            }
            assert!(Instant::now() < deadline, "the job never ran");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let (out, _) = run(&slurm_executor, sandboxed(shared.path(), "echo up; exec sleep 916"), None);
    let job = outsider.join().unwrap();
    assert_eq!(out.output.end, ProcessEnd::StillRunning);
    assert_eq!(
        out.ended,
        Ended::Lost(format!("slurm ended job {job}: CANCELLED (not by Sando)")),
        "{out:?}"
    );
    assert_nothing_queued(shared.path());

    // A job Slurm refuses: what it said, in one line.
    let (out, _) =
        run(&slurm(shared.path(), "no-such-partition"), sandboxed(shared.path(), "true"), None);
    let Ended::Lost(why) = &out.ended else { panic!("{out:?}") };
    assert!(why.starts_with("slurm did not take the job: sbatch failed: "), "{why}");
    assert!(why.contains("Invalid partition name"), "{why}");
    assert!(!why.contains('\n'), "{why}");

    // What a job is given but no node sees (outside the shared directory):
    // refused before anything is submitted, naming it.
    let elsewhere = tempfile::tempdir().unwrap();
    let artifact = elsewhere.path().join("app");
    std::fs::write(&artifact, "").unwrap();
    let mut spec = sandboxed(shared.path(), "true");
    spec.isolation.as_mut().unwrap().mounts.push(Mount::new(Mounted::Artifact, &artifact));
    let (out, _) = run(&slurm(shared.path(), "gates"), spec, None);
    assert_eq!(
        out.ended,
        Ended::Lost(format!(
            "the artifact at {} is outside shared_dir {}: no node sees it",
            artifact.display(),
            shared.path().display()
        ))
    );
    assert_nothing_queued(shared.path());
}

/// A `sando check` config with `executor` as its `[executor]` table.
fn check(dir: &Path, executor: &str, env: &[(&str, &str)]) -> (bool, String) {
    let config = dir.join("sando.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[project]\nrepo = \"repo\"\nbuild = \"true\"\nartifact = \"a\"\n\
             [[tiers]]\nname = \"staging\"\n[executor]\n{executor}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["check", "--config"])
        .arg(&config)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn sando_check_names_each_slurm_problem_in_one_line() {
    let shared = shared_dir();
    let dir = shared.path();
    let slurm = |partition: &str, shared: &Path| {
        format!(
            "kind = \"slurm\"\npartition = \"{partition}\"\nshared_dir = \"{}\"",
            shared.display()
        )
    };
    let (ok, text) = check(dir, &slurm("gates", &dir.join("shared")), &[]);
    assert!(ok, "{text}");
    assert!(text.contains(": ok ("), "{text}");

    let (ok, text) = check(dir, &slurm("nope", &dir.join("shared")), &[]);
    assert!(!ok, "{text}");
    let line =
        text.lines().find(|l| l.contains("executor.partition")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("\"nope\"") && line.contains("Partition nope not found"), "{line}");

    // A controller nobody listens for: the cluster's config, another port.
    let conf = std::fs::read_to_string(slurm_conf()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = dir.join("unreachable.conf");
    let conf: String = conf
        .lines()
        .filter(|l| !l.starts_with("SlurmctldPort="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&unreachable, format!("{conf}SlurmctldPort={port}\n")).unwrap();
    let (ok, text) = check(
        dir,
        &slurm("gates", &dir.join("shared")),
        &[("SLURM_CONF", unreachable.to_str().unwrap())],
    );
    assert!(!ok, "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("executor")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("the Slurm controller is not reachable"), "{text}");
    assert!(lines[0].contains("DOWN") || lines[0].contains("connect"), "what Slurm said: {text}");

    // A shared directory under a file: nobody can make it.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let (ok, text) = check(dir, &slurm("gates", &dir.join("a-file/shared")), &[]);
    assert!(!ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("executor.shared_dir"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("cannot be written"), "{line}");
}

/// What a demo run gave: every gate's log of both versions, by
/// `<version>/<gate>`, and how long each build and gate run took (ms).
struct DemoRun {
    logs: Vec<(String, String)>,
    took: Vec<(String, i64)>,
}

/// `sando demo`, locally or on the suite's cluster, until 0.1.0 is green
/// in staging and yellow in prod and 0.2.0 red in staging.
fn demo_logs(dir: &Path, shared: Option<&Path>) -> DemoRun {
    let mut args: Vec<&std::ffi::OsStr> = Vec::new();
    if let Some(shared) = shared {
        args.extend(["--slurm-partition", "gates", "--slurm-shared-dir"].map(std::ffi::OsStr::new));
        args.push(shared.as_os_str());
    }
    let demo = util::Demo::start_with(&dir.join("demo"), &args);
    let (_, red, _) = demo.outcomes(Duration::from_secs(240));
    assert_eq!(
        red["outcome"],
        json!({"kind":"failed","failure":{"kind":"migration_modified","migration":"20260101000000"}})
    );
    let get = |path: &str| demo.get(path);
    let mut logs = Vec::new();
    for version in ["0.1.0", "0.2.0"] {
        for gate in ["cargo_test", "migration_dry_run", "boot_smoke"] {
            if let Some(log) = get(&format!("/logs/{version}/{gate}")) {
                logs.push((format!("{version}/{gate}"), log));
            }
        }
    }
    // How long each took, from the daemon's own record.
    let ms = |run: &Value| {
        let at = |key: &str| {
            run[key].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        };
        at("finished_at").zip(at("started_at")).map(|(end, start)| (end - start).num_milliseconds())
    };
    let mut took = Vec::new();
    for id in 1..=20 {
        let Some(run) = get(&format!("/api/gate-runs/{id}"))
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .filter(|r| r["run_id"].is_number())
        else {
            continue;
        };
        if let Some(ms) = ms(&run) {
            took.push((format!("{} {} {}", run["version"], run["tier"], run["gate"]), ms));
        }
    }
    let state: Value =
        get("/api/state").and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null);
    for build in state["builds"].as_array().into_iter().flatten().rev() {
        if let Some(ms) = build["duration_ms"].as_i64() {
            took.push((format!("build {}", build["build_id"]), ms));
        }
    }
    DemoRun { logs, took }
}

/// A log with what differs from run to run (times, ports, ids, paths of
/// this run) made the same: the form, not the figures.
fn form(log: &str, dir: &Path, shared: Option<&Path>) -> String {
    let mut text = log.replace(&dir.display().to_string(), "<dir>");
    // Locally the build cache is on (its target directory is the cache's
    // view); a Slurm job cannot mount it and builds in the work tree.
    text = text.replace("<dir>/demo/state/cache/view/target/", "target/");
    if let Some(shared) = shared {
        text = text.replace(&shared.join("files").display().to_string(), "<dir>/demo/state");
        text =
            text.replace(&shared.join("demo-scratch").display().to_string(), "<dir>/demo/scratch");
    }
    // Commits (made at different times in each run) by their length.
    let words: Vec<String> = text
        .split_inclusive(|c: char| !c.is_ascii_hexdigit())
        .map(|w| {
            let hex = w.trim_end_matches(|c: char| !c.is_ascii_hexdigit());
            if hex.len() == 40 { w.replacen(hex, "<commit>", 1) } else { w.to_owned() }
        })
        .collect();
    let text = words.concat();
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

#[test]
fn the_demo_on_slurm_passes_and_fails_as_locally_with_logs_of_the_same_form() {
    let shared = shared_dir();
    let here = tempfile::Builder::new().tempdir_in(shared.path()).unwrap();
    let there = tempfile::Builder::new().tempdir_in(shared.path()).unwrap();
    let on_slurm_shared = shared.path().join("cluster");
    let local = demo_logs(here.path(), None);
    let slurm = demo_logs(there.path(), Some(&on_slurm_shared));
    // The figures BENCHMARKS.md records (`-- --nocapture` shows them):
    // each build and gate run, on Slurm and locally, in this one run.
    for ((what, on_slurm), (_, locally)) in slurm.took.iter().zip(&local.took) {
        eprintln!(
            "{what}: slurm {:.2} s, local {:.2} s, ratio {:.2}",
            *on_slurm as f64 / 1000.0,
            *locally as f64 / 1000.0,
            *on_slurm as f64 / (*locally).max(1) as f64
        );
    }
    let (local_logs, slurm_logs) = (local.logs, slurm.logs);
    let jobs =
        std::fs::read_to_string(Path::new(&slurm_conf()).parent().unwrap().join("jobcomp.txt"))
            .unwrap_or_default();
    let ran = jobs.lines().filter(|l| l.contains(&on_slurm_shared.display().to_string())).count();
    assert!(ran >= 6, "the build and the gates' processes ran as Slurm jobs: {ran}");
    assert_eq!(
        local_logs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        slurm_logs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
    );
    // The same lines: how stdout's and stderr's lines interleave in the
    // file depends on timing, here as locally (each stream's bytes and
    // order are the same: `a_job_gives_the_same_bytes_chunks_and_end_…`).
    let lines = |log: &str| {
        let mut lines: Vec<String> = log.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    for ((name, local), (_, slurm)) in local_logs.iter().zip(&slurm_logs) {
        assert!(!local.is_empty(), "{name}");
        assert_eq!(
            lines(&form(local, here.path(), None)),
            lines(&form(slurm, there.path(), Some(&on_slurm_shared))),
            "{name}'s log"
        );
    }
    assert_nothing_queued(shared.path());
}

/// A daemon on the cluster whose one staging gate is a test that waits on
/// its first attempt (until `release` exists, or long) and passes on the
/// next.
fn waiting_daemon(root: &Path, shared: &Path) -> (Daemon, Project) {
    let project = Project::new(root);
    let token_file = root.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = root.join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_file = "{token}"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline -- --nocapture"
retry = {{ attempts = 2, backoff = "1s" }}
[[tiers]]
name = "prod"
[[tiers.gates]]
kind = "manual_confirm"
[executor]
kind = "slurm"
partition = "gates"
shared_dir = "{shared}"
"#,
            token = token_file.display(),
            repo = project.dir.display(),
            shared = shared.display(),
        ),
    )
    .unwrap();
    (Daemon::start(&config), project)
}

/// A test that prints `waiting`, then waits, the first time it runs in its
/// work tree; passes at once the next.
const WAITS_THE_FIRST_TIME: &str = r#"
    if std::path::Path::new("ran-once").exists() { return; }
    std::fs::write("ran-once", "").unwrap();
    println!("waiting");
    std::thread::sleep(std::time::Duration::from_secs(300));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_over_the_api_ends_the_job_and_an_outside_scancel_is_retried() {
    let root = shared_dir();
    let shared = root.path().join("shared");
    let (daemon, project) = waiting_daemon(root.path(), &shared);
    let events = Events::connect(&daemon.url).await;
    let waiting = |events: &Events| {
        let chunks = events.chunks();
        chunks
            .iter()
            .find(|c| String::from_utf8_lossy(&c.bytes).contains("waiting"))
            .map(|c| c.run_id)
    };

    // 0.1.0: cancelled over the API while its test waits.
    let sha = project.commit("0.1.0", WAITS_THE_FIRST_TIME);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let run = loop {
        if let Some(run) = waiting(&events) {
            break run;
        }
        assert!(Instant::now() < deadline, "the test never started waiting: {:?}", events.all());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(queued_under(&shared).len(), 1, "the test runs as a job");
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{run}/cancel"), Some(TOKEN), "{\"by\":\"tester\"}");
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("the cancelled run", Duration::from_secs(60), |e| {
            e["kind"] == "gate_done" && e["run_id"] == run
        })
        .await;
    assert_eq!(
        done["event"]["outcome"]["status"],
        json!({"kind":"failed","failure":{"kind":"cancelled","by":"admin"}}),
        "{done}"
    );
    assert_nothing_queued(&shared);

    // 0.2.0: its job cancelled from outside Sando: an infrastructure
    // failure, retried, and the retry passes.
    let sha = project.commit("0.2.0", WAITS_THE_FIRST_TIME);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let second = loop {
        let chunks = events.chunks();
        let found = chunks
            .iter()
            .find(|c| c.run_id != run && String::from_utf8_lossy(&c.bytes).contains("waiting"))
            .map(|c| c.run_id);
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "0.2.0's test never started waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let jobs = queued_under(&shared);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs[0].split_whitespace().next().unwrap().to_owned();
    assert!(Command::new("scancel").arg(&job).status().unwrap().success());
    let lost = events
        .wait("the lost run", Duration::from_secs(60), |e| {
            e["kind"] == "gate_done" && e["run_id"] == second
        })
        .await;
    assert_eq!(
        lost["event"]["outcome"]["status"],
        json!({"kind":"failed","failure":{"kind":"host_fault","message":format!("slurm ended job {job}: CANCELLED (not by Sando)")}}),
        "{lost}"
    );
    events
        .wait("the retry passed", Duration::from_secs(120), |e| {
            gate_done("cargo_test", "passed")(e) && e["version"] == "0.2.0"
        })
        .await;
    assert_nothing_queued(&shared);
    daemon.kill();
}

/// A test that counts its starts in its work tree, prints `waiting`, and
/// passes once `release` appears there.
const WAITS_FOR_RELEASE: &str = r#"
    use std::io::Write;
    let mut starts = std::fs::OpenOptions::new().append(true).create(true).open("starts").unwrap();
    starts.write_all(b"started\n").unwrap();
    println!("waiting");
    while !std::path::Path::new("release").exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("released");
"#;

/// The one directory under `root` holding a file named `name`.
fn dir_holding(root: &Path, name: &str) -> Option<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name() == name {
                return Some(dir.clone());
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            }
        }
    }
    None
}

/// A daemon killed (-9) while its gate's job runs leaves the job running;
/// the next daemon of the same data directory adopts it: the run stays
/// the same run, its job is followed to its end and never started again
/// (one job in Slurm's record), its log is whole and its verdict recorded
/// once. A job left by a daemon with no run to follow it (here: planted
/// under the daemon's job name) is cancelled on sight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_left_by_a_killed_daemon_is_adopted_not_run_again() {
    let root = shared_dir();
    let shared = root.path().join("shared");
    let (daemon, project) = waiting_daemon(root.path(), &shared);
    let events = Events::connect(&daemon.url).await;
    let sha = project.commit("0.1.0", WAITS_FOR_RELEASE);
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let run = loop {
        let chunks = events.chunks();
        if let Some(c) =
            chunks.iter().find(|c| String::from_utf8_lossy(&c.bytes).contains("waiting"))
        {
            break c.run_id;
        }
        assert!(Instant::now() < deadline, "the test never started waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let jobs = queued_under(&shared);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs[0].split_whitespace().next().unwrap().to_owned();
    // A job of this daemon's name that no run recorded: an orphan.
    let job_name = {
        let out = Command::new("squeue").args(["--noheader", "--format=%j", "-j", &job]).output();
        String::from_utf8_lossy(&out.unwrap().stdout).trim().to_owned()
    };
    let orphan = Command::new("sbatch")
        .args(["--parsable", &format!("--job-name={job_name}"), "--output=/dev/null"])
        .arg(format!("--chdir={}", root.path().display()))
        .args(["--wrap", "sleep 913"])
        .output()
        .unwrap();
    assert!(orphan.status.success(), "{orphan:?}");
    let orphan = String::from_utf8_lossy(&orphan.stdout).trim().to_owned();
    // kill -9: the job outlives the daemon.
    daemon.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(queued_under(&shared).len(), 1, "the job outlived its daemon");

    let daemon = Daemon::start(&root.path().join("sando.toml"));
    let events = Events::connect(&daemon.url).await;
    // The orphan is cancelled on sight; the run's job is not.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = Command::new("scontrol").args(["show", "job", "-o", &orphan]).output().unwrap();
        let state = String::from_utf8_lossy(&state.stdout).into_owned();
        if state.contains("JobState=CANCELLED") {
            break;
        }
        assert!(Instant::now() < deadline, "the orphan cancelled on sight: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(queued_under(&shared), jobs, "the run's job kept running");
    let (status, body) = daemon.get(&format!("/api/gate-runs/{run}"));
    assert_eq!(status, 200, "{body}");
    let record: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(record["status"], "running", "still the same run: {record}");

    let tree = dir_holding(root.path(), "starts").expect("the test's work tree");
    std::fs::write(tree.join("release"), "").unwrap();
    let done = events
        .wait("the adopted run's verdict", Duration::from_secs(120), |e| {
            e["kind"] == "gate_done" && e["run_id"] == run
        })
        .await;
    assert_eq!(done["event"]["outcome"]["status"]["kind"], "passed", "{done}");
    let (_, body) = daemon.get(&format!("/api/gate-runs/{run}"));
    let record: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((record["status"].as_str(), record["attempt"].as_i64()), (Some("passed"), Some(1)));
    // Followed live by the new daemon's clients, from the job's first byte.
    let live: Vec<u8> = events
        .chunks()
        .iter()
        .filter(|c| c.run_id == run)
        .flat_map(|c| c.bytes.iter().copied())
        .collect();
    let live = String::from_utf8_lossy(&live).into_owned();
    assert!(live.contains("waiting") && live.contains("released"), "{live}");

    // Started once, its log whole and once over, one job in Slurm's record.
    assert_eq!(std::fs::read_to_string(tree.join("starts")).unwrap(), "started\n");
    let (status, log) = daemon.get(&format!("/api/gate-runs/{run}/log"));
    assert_eq!(status, 200, "{log}");
    for line in ["sando: running cargo test", "waiting", "released"] {
        assert_eq!(log.matches(line).count(), 1, "{line:?} once in the log:\n{log}");
    }
    assert!(log.find("waiting") < log.find("released"), "{log}");
    let started: Vec<Value> =
        events.all().into_iter().filter(|e| e["kind"] == "gate_start").collect();
    assert!(started.is_empty(), "no run started again: {started:?}");
    let comp =
        std::fs::read_to_string(Path::new(&slurm_conf()).parent().unwrap().join("jobcomp.txt"))
            .unwrap_or_default();
    let ran: Vec<&str> =
        comp.lines().filter(|l| l.contains(&format!("WorkDir={}", shared.display()))).collect();
    assert_eq!(ran.len(), 2, "the build's job and the test's, once each: {ran:#?}");
    assert_eq!(ran.iter().filter(|l| l.contains(&format!("JobId={job} "))).count(), 1);
    assert_nothing_queued(&shared);
    daemon.kill();
}
