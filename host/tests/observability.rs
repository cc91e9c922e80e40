//! Sando seen from outside, through the real `sando serve`: `/metrics` parsed by a Prometheus text-format parser, and the event stream resumed with `?since=`.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use util::config::{self, CARGO_TEST};
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

/// One tier whose `cargo_test` fails or passes with the commit.
fn write_config(root: &Path, repo: &Path) -> PathBuf {
    config::write(
        root,
        &[
            &config::head(repo, ""),
            "[[tiers]]\nname = \"staging\"",
            &config::copy_node(&root.join("nodes"), "staging-1", ""),
            CARGO_TEST,
        ],
    )
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
    // gate_start and gate_done carry the run as /api/state shows it.
    let done = events.wait("gate_done", Duration::ZERO, |e| e["kind"] == "gate_done").await;
    let summary = &done["event"]["summary"];
    assert_eq!(summary["run_id"], done["event"]["run_id"], "{done}");
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["outcome"], done["event"]["outcome"]["status"]);
    assert!(summary["finished_at"].is_string() && summary["component_digest"].is_string());
    let start = events.wait("gate_start", Duration::ZERO, |e| e["kind"] == "gate_start").await;
    assert_eq!(start["event"]["summary"]["status"], "running", "{start}");
    assert_eq!(start["event"]["summary"]["attempt"], 1);
    let run_id = summary["run_id"].as_i64().unwrap();
    let (_, body) = daemon.get(&format!("/api/gate-runs/{run_id}"));
    let row: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(summary, &row, "the same as the run's own route");

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

/// Every frame a WebSocket client of `/api/events{query}` received, in
/// order: each as JSON (a binary frame's header), with a binary frame's bytes.
struct Recorder {
    frames: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

/// A frame as JSON (a binary frame's header), with a binary frame's bytes.
type Received = (serde_json::Value, Option<bytes::Bytes>);

impl Recorder {
    async fn connect(url: &str, query: &str) -> Recorder {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let ws_url = format!("{}/api/events{query}", url.replace("http://", "ws://"));
        let (socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket");
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = frames.clone();
        tokio::spawn(async move {
            let (_, mut read) = socket.split();
            while let Some(Ok(message)) = read.next().await {
                let frame = match message {
                    Message::Text(text) => (serde_json::from_str(&text).expect("json"), None),
                    Message::Binary(frame) => {
                        let end = frame.iter().position(|&b| b == b'\n').expect("a header");
                        let header = serde_json::from_slice(&frame[..end]).expect("json");
                        (header, Some(frame.slice(end + 1..)))
                    }
                    _ => continue,
                };
                sink.lock().unwrap().push(frame);
            }
        });
        Recorder { frames }
    }

    /// Every event but log chunks, as received.
    fn events(&self) -> Vec<serde_json::Value> {
        let frames = self.frames.lock().unwrap();
        frames
            .iter()
            .filter(|(json, _)| json["event"]["kind"] != "gate_log_chunk")
            .map(|(json, _)| json.clone())
            .collect()
    }

    /// Each run's log as its chunks carried it, put together by offset.
    fn logs(&self) -> std::collections::BTreeMap<i64, Vec<u8>> {
        use base64::Engine as _;
        let mut logs: std::collections::BTreeMap<i64, Vec<u8>> = Default::default();
        for (json, binary) in self.frames.lock().unwrap().iter() {
            let event = &json["event"];
            if event["kind"] != "gate_log_chunk" {
                continue;
            }
            let bytes = match binary {
                Some(bytes) => bytes.to_vec(),
                None => {
                    let data = event["data"].as_str().expect("a text chunk has data");
                    match event.get("encoding").and_then(|e| e.as_str()) {
                        Some("base64") => {
                            base64::engine::general_purpose::STANDARD.decode(data).unwrap()
                        }
                        None => data.as_bytes().to_vec(),
                        Some(other) => panic!("encoding {other}"),
                    }
                }
            };
            let log = logs.entry(event["run_id"].as_i64().unwrap()).or_default();
            let offset = event["offset"].as_u64().unwrap() as usize;
            if log.len() < offset + bytes.len() {
                log.resize(offset + bytes.len(), 0);
            }
            log[offset..offset + bytes.len()].copy_from_slice(&bytes);
        }
        logs
    }

    async fn wait(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(180);
        while !self.frames.lock().unwrap().iter().any(|(json, _)| pred(&json["event"])) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn seqs(events: &[serde_json::Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn after(events: &[serde_json::Value], seq: u64) -> Vec<serde_json::Value> {
    events.iter().filter(|e| e["seq"].as_u64().unwrap() > seq).cloned().collect()
}

/// Waits until `recorder` has `count` events but chunks (nothing more
/// arrives meanwhile in these tests), then a moment more for extra ones.
async fn settle(recorder: &Recorder, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while recorder.events().len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} events of {count}: {:#?}",
            recorder.events().len(),
            recorder.events()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_replays_exactly_the_missed_events_also_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let bad = project.commit("0.1.0", "assert_eq!(super::answer(), 41);");
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let all = Recorder::connect(&daemon.url, "").await;
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": bad }).to_string());
    assert_eq!(status, 202, "{body}");
    all.wait("cargo_test failed", gate_done("cargo_test", "failed")).await;
    let seen = all.events();
    assert!(seen.len() >= 5, "{seen:#?}");
    let s = seqs(&seen);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "in seq order: {s:?}");

    // A client that saw up to the build's start resumes: exactly the rest.
    let since = seen.iter().find(|e| e["event"]["kind"] == "build_started").unwrap()["seq"]
        .as_u64()
        .unwrap();
    let resumed = Recorder::connect(&daemon.url, &format!("?since={since}")).await;
    settle(&resumed, after(&seen, since).len()).await;
    assert_eq!(resumed.events(), after(&seen, since), "replayed exactly, in order");
    let from_zero = Recorder::connect(&daemon.url, "?since=0").await;
    settle(&from_zero, seen.len()).await;
    assert_eq!(from_zero.events(), seen);

    // Beyond the newest event: one line, before any upgrade.
    let newest = *s.last().unwrap();
    let (status, body) = daemon.get(&format!("/api/events?since={}", newest + 1000));
    assert_eq!(status, 400, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["error"],
        format!(
            "since={} is beyond the newest event ({newest}): resume from a seq this daemon sent",
            newest + 1000
        )
    );

    // Through a restart: the sequence goes on, and what was missed while
    // away comes from the store.
    daemon.kill();
    let daemon = Daemon::start(&config);
    let live = Recorder::connect(&daemon.url, "").await;
    let good = project.commit("0.2.0", "assert_eq!(super::answer(), 42);");
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": good }).to_string());
    assert_eq!(status, 202, "{body}");
    live.wait("promoted", |e| e["kind"] == "promoted").await;
    let later = live.events();
    assert!(seqs(&later).iter().all(|&seq| seq > newest), "{:?} after {newest}", seqs(&later));
    let back = Recorder::connect(&daemon.url, &format!("?since={newest}")).await;
    settle(&back, later.len()).await;
    assert_eq!(back.events(), later, "what was missed while away, exactly");
    let again = Recorder::connect(&daemon.url, &format!("?since={since}")).await;
    settle(&again, after(&seen, since).len() + later.len()).await;
    assert_eq!(again.events(), [after(&seen, since), later].concat(), "across the restart");
}

/// A test printing UTF-8 and bytes that are not, and a multi-byte
/// character across many lines.
const PRINTER: &str = r#"pub fn answer() -> u32 { 42 }

#[cfg(test)]
mod tests {
    #[test]
    fn prints() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for i in 0..2000u32 {
            writeln!(out, "line {i}: caf\u{e9} \u{1f980}").unwrap();
            if i % 100 == 0 {
                out.write_all(&[0xff, 0xfe, b'\n', (i % 251) as u8]).unwrap();
                out.flush().unwrap();
            }
        }
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_chunks_carry_the_same_bytes_as_binary_frames() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit_lib("0.1.0", PRINTER);
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let binary = Recorder::connect(&daemon.url, "").await;
    let text = Recorder::connect(&daemon.url, "?chunks=text").await;
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
    binary.wait("cargo_test done", |e| e["kind"] == "gate_done").await;
    text.wait("cargo_test done", |e| e["kind"] == "gate_done").await;
    {
        let frames = text.frames.lock().unwrap();
        assert!(frames.iter().all(|(_, bytes)| bytes.is_none()), "text frames only");
        let chunks = frames.iter().filter(|(j, _)| j["event"]["kind"] == "gate_log_chunk");
        let encodings: std::collections::BTreeSet<_> =
            chunks.map(|(j, _)| j["event"].get("encoding").map(|e| e.to_string())).collect();
        assert!(encodings.contains(&None), "UTF-8 chunks as text: {encodings:?}");
        let frames = binary.frames.lock().unwrap();
        let chunks = frames.iter().filter(|(j, _)| j["event"]["kind"] == "gate_log_chunk");
        assert!(chunks.clone().count() > 0 && chunks.clone().all(|(_, b)| b.is_some()));
    }
    let (binary_logs, text_logs) = (binary.logs(), text.logs());
    assert_eq!(binary_logs.len(), 1, "one gate run");
    assert_eq!(text_logs, binary_logs, "the same bytes");
    let (run_id, log) = binary_logs.into_iter().next().unwrap();
    let mut response =
        Daemon::agent().get(format!("{}/api/gate-runs/{run_id}/log", daemon.url)).call().unwrap();
    let persisted = response.body_mut().read_to_vec().unwrap();
    assert_eq!(log, persisted, "and the log's");
    assert!(log.windows(2).any(|w| w == [0xff, 0xfe]), "bytes that are not UTF-8 went through");
    assert_eq!(binary.events(), text.events(), "every other event alike");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_pages_exactly_and_bad_input_is_one_line() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let config = write_config(root.path(), &project.dir);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    const RUNS: usize = 7;
    for minor in 1..=RUNS {
        let sha = project.commit(&format!("0.{minor}.0"), "assert_eq!(super::answer(), 41);");
        let (status, body) =
            daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
        assert_eq!(status, 202, "{body}");
        let version = format!("0.{minor}.0");
        events
            .wait(&format!("{version} failed"), Duration::from_secs(120), |e| {
                e["kind"] == "gate_done" && e["version"] == version.as_str()
            })
            .await;
    }
    let page = |query: &str| -> serde_json::Value {
        let (status, body) = daemon.get(&format!("/api/gate-runs{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_i64().unwrap()).collect()
    };
    let everything = page("?limit=500");
    let all = ids(&everything);
    assert_eq!(all.len(), RUNS, "{everything}");
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    assert!(everything["next_before"].is_null(), "one page holds them all");

    // Pages of 2, then 3: together exactly every run, once, in order.
    for size in [2, 3] {
        let mut walked = Vec::new();
        let mut query = format!("?tier=staging&gate=cargo_test&limit={size}");
        loop {
            let this = page(&query);
            let got = ids(&this);
            assert!(got.len() <= size, "{this}");
            walked.extend(got);
            match this["next_before"].as_i64() {
                Some(before) => {
                    query = format!("?tier=staging&gate=cargo_test&limit={size}&before={before}")
                }
                None => break,
            }
        }
        assert_eq!(walked, all, "pages of {size}: no gap, no duplicate");
    }
    let one = page("?version=0.3.0");
    assert_eq!(ids(&one).len(), 1);
    assert_eq!(one["runs"][0]["version"], "0.3.0");
    assert_eq!(one["runs"][0]["status"], "failed");
    assert!(ids(&page("?gate=boot_smoke")).is_empty());
    assert!(ids(&page("?tier=prod")).is_empty());

    for (query, error) in [
        (
            "?limit=1000000000",
            "query parameter limit: 1000000000 is over the most a page holds (500)",
        ),
        ("?limit=0", "query parameter limit: 0 runs is no page; ask for 1 to 500"),
        ("?gate=cargo_tests", "query parameter gate: "),
        ("?version=one", "query parameter version: "),
        ("?before=x", "query parameter before: "),
        ("?page=2", "unknown field `page`"),
    ] {
        let (status, body) = daemon.get(&format!("/api/gate-runs{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let message = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(error) && !message.contains('\n'), "{query}: {message}");
    }
}
