//! Sando seen from outside, through the real `sando serve`: `/metrics` parsed by a Prometheus text-format parser, and the event stream resumed with `?since=`.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

/// One tier whose `cargo_test` fails or passes with the commit.
fn write_config(root: &Path, repo: &Path) -> PathBuf {
    let nodes = root.join("nodes");
    std::fs::create_dir_all(nodes.join("staging-1")).unwrap();
    let config = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"

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
    );
    let path = root.join("sando.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A scrape, parsed; every sample line must parse.
fn scrape(daemon: &Daemon) -> prometheus_parse::Scrape {
    let mut response =
        Daemon::agent().get(format!("{}/metrics", daemon.url)).call().expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let scrape = prometheus_parse::Scrape::parse(lines.iter().cloned().map(Ok)).expect("parses");
    // Every sample line parsed (a histogram's lines are one sample).
    for line in lines.iter().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let known = scrape.samples.iter().any(|s| {
            name == s.metric
                || ["_bucket", "_sum", "_count", "_created"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(&s.metric))
        });
        assert!(known, "{line} parsed:\n{text}");
    }
    for sample in &scrape.samples {
        for label in ["version", "run_id", "sha"] {
            assert!(sample.labels.get(label).is_none(), "{label} is never a label: {sample:?}");
        }
    }
    scrape
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric}: {other:?}"),
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_moves_its_failure_series_and_the_scrape_parses() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let bad = project.commit("0.1.0", "assert_eq!(super::answer(), 41);");
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let failures = [
        ("tier", "staging"),
        ("gate", "cargo_test"),
        ("status", "failed"),
        ("class", "cargo_test"),
    ];
    let before = scrape(&daemon);
    assert_eq!(value(&before, "sando_gate_runs_total", &failures), 0.0);
    assert_eq!(value(&before, "sando_event_clients", &[]), 1.0, "the client above");
    assert_eq!(value(&before, "sando_versions_waiting", &[("tier", "staging")]), 0.0);

    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": bad }).to_string());
    assert_eq!(status, 202, "{body}");
    events
        .wait("cargo_test failed", Duration::from_secs(180), gate_done("cargo_test", "failed"))
        .await;
    let after = scrape(&daemon);
    assert_eq!(value(&after, "sando_gate_runs_total", &failures), 1.0);
    assert_eq!(
        value(&after, "sando_gate_runs_total", &[("status", "passed")]),
        0.0,
        "nothing passed"
    );
    let durations = [("gate", "cargo_test"), ("status", "failed")];
    assert_eq!(value(&after, "sando_gate_run_duration_seconds_count", &durations), 1.0);
    assert_eq!(value(&after, "sando_builds_total", &[("outcome", "ok")]), 1.0);
    assert_eq!(value(&after, "sando_build_duration_seconds_count", &[("outcome", "ok")]), 1.0);
    assert!(value(&after, "sando_planner_passes_total", &[]) >= 1.0);
    assert!(value(&after, "sando_log_written_bytes_total", &[]) > 0.0);
    assert_eq!(value(&after, "sando_versions_waiting", &[("tier", "staging")]), 1.0);
}
