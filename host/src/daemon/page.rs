//! The status page: read-only HTML a browser (or a notification's link) opens, rendered on the server from the same bodies the API serves: tiers, versions, approvals and each gate's typed verdict in the TUI's colours, and a run's page with its log, followed while the run runs.
//!
//! Small by design: no framework, no assets, no JavaScript but the few lines
//! that follow a running run's log (`?from=`, the API's own route) and
//! reload the page when the run ends. Every value goes through `maud`,
//! which escapes it: a log, a version or a failure's text cannot inject
//! markup. It offers no action: writes stay behind the token, in the API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Html;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::api::{ApiError, find_run, state_of};
use super::shared::Daemon;
use crate::domain::{GateFailure, GateRunSummary, GateStatus, RunState, StateResponse};

/// How much of a log's end a run's page shows; the whole log is a link.
const SHOWN_LOG: u64 = 256 << 10;

/// `GET /`: every tier, its versions and gates; recent versions and deploys.
pub(crate) async fn overview(State(daemon): State<Arc<Daemon>>) -> Result<Html<String>, ApiError> {
    let state = state_of(&daemon).await?;
    Ok(Html(page("status", overview_body(&state)).into_string()))
}

/// `GET /runs/{run_id}`: one run's verdict, times and log.
pub(crate) async fn run(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let run: GateRunSummary = find_run(&daemon, &id).await?.into();
    let (log, from) = match &run.log_ref {
        Some(log_ref) => log_tail(&daemon.logs.path(log_ref)).await,
        None => (String::new(), 0),
    };
    let title = format!("{} {} {} (run {})", run.tier, run.version, run.gate, run.run_id);
    Ok(Html(page(&title, run_body(&run, &log, from)).into_string()))
}

/// The end of a log file (at most `SHOWN_LOG`), and where it ends.
async fn log_tail(path: &std::path::Path) -> (String, u64) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut file) = tokio::fs::File::open(path).await else { return (String::new(), 0) };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(SHOWN_LOG);
    let mut bytes = Vec::new();
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err()
        || file.take(len - start).read_to_end(&mut bytes).await.is_err()
    {
        return (String::new(), 0);
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        text.insert_str(0, &format!("… the first {start} bytes are in the whole log\n"));
    }
    (text, start + bytes.len() as u64)
}

/// A verdict's look: its CSS class (the TUI's colour) and its word.
fn tone(status: RunState, outcome: Option<&GateStatus>) -> (&'static str, &'static str) {
    match (status, outcome) {
        (_, Some(GateStatus::Failed { failure: GateFailure::Unclassified { .. } })) => {
            ("failed", "unclassified")
        }
        (RunState::Passed, _) => ("passed", "passed"),
        (RunState::Blocked, _) => ("blocked", "blocked"),
        (RunState::Failed, _) => ("failed", "failed"),
        (RunState::Running, _) => ("running", "running"),
    }
}

/// A verdict's class (its `kind` tag, as the API and retry policies name
/// it) and its words.
fn verdict(outcome: &GateStatus) -> Markup {
    let class = match outcome {
        GateStatus::Passed { .. } => None,
        GateStatus::Failed { failure } => Some(failure.class()),
        GateStatus::Blocked { blocker } => Some(blocker.class()),
    };
    html! {
        span.why {
            @if let Some(class) = class { code { (class) } ": " }
            (outcome)
        }
    }
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { a href="/" { "Sando" } " · " (title) }
                main { (body) }
            }
        }
    }
}

fn overview_body(state: &StateResponse) -> Markup {
    html! {
        @if let Some(leader) = &state.leader {
            p.leader {
                @if leader.this_daemon { "This daemon leads (epoch " (leader.epoch) ")." }
                @else { "A standby; " a href=(leader.url) { (leader.holder) } " leads (epoch " (leader.epoch) ")." }
            }
        }
        @for warning in &state.warnings { p.warning { (warning) } }
        section.tiers {
            @for tier in &state.tiers {
                article.tier id=(format!("tier-{}", tier.name)) {
                    h2 { (tier.name) }
                    dl {
                        dt { "current" } dd { (tier.current_version.as_ref().map_or("none".to_owned(), ToString::to_string)) }
                        dt { "candidate" } dd { (tier.candidate_version.as_ref().map_or("none".to_owned(), ToString::to_string)) }
                    }
                    @if let Some(c) = &tier.confirmation {
                        p.confirmation { "confirmed by " (c.confirmed_by) " at " (c.confirmed_at.to_rfc3339()) }
                    }
                    @if let Some(approvals) = &tier.approvals {
                        p.approvals {
                            "approvals: " (approvals)
                            @for a in approvals.approvals.iter().filter(|a| a.voided) {
                                " · " span.voided { (a.by) " (voided by newer evidence)" }
                            }
                        }
                    }
                    table.gates {
                        tr { th { "gate" } th { "version" } th { "verdict" } th { "run" } }
                        @for kind in &tier.pipeline {
                            @let run = tier.gates.iter().find(|g| g.gate == *kind);
                            tr {
                                td { (kind) }
                                @if let Some(run) = run {
                                    @let (class, word) = tone(run.status, run.outcome.as_ref());
                                    td { (run.version) }
                                    td { span class=(format!("verdict {class}")) { (word) } " "
                                        @if let Some(outcome) = &run.outcome { (verdict(outcome)) } }
                                    td { a href=(format!("/runs/{}", run.run_id)) { "run " (run.run_id) } }
                                } @else {
                                    td { "" } td { span.verdict.none { "not run" } } td { "" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Versions" }
            table {
                tr { th { "version" } th { "commit" } th { "registered" } }
                @for v in &state.versions {
                    tr { td { (v.version) } td { code { (v.git_sha.short()) } } td { (v.registered_at.to_rfc3339()) } }
                }
            }
        }
        section {
            h2 { "Deploys" }
            table {
                tr { th { "tier" } th { "version" } th { "node" } th { "outcome" } th { "started" } }
                @for d in &state.deploys {
                    tr { td { (d.tier) } td { (d.version) } td { (d.node) } td { (d.outcome) } td { (d.started_at.to_rfc3339()) } }
                }
            }
        }
    }
}

fn run_body(run: &GateRunSummary, log: &str, from: u64) -> Markup {
    let (class, word) = tone(run.status, run.outcome.as_ref());
    let running = run.status == RunState::Running;
    html! {
        p { span class=(format!("verdict {class}")) { (word) } " "
            @if let Some(outcome) = &run.outcome { (verdict(outcome)) } }
        dl {
            dt { "tier" } dd { (run.tier) }
            dt { "version" } dd { (run.version) }
            dt { "gate" } dd { (run.gate) }
            dt { "attempt" } dd { (run.attempt) " of " (run.max_attempts) }
            dt { "started" } dd { (run.started_at.to_rfc3339()) }
            dt { "finished" } dd { (run.finished_at.map_or("(running)".to_owned(), |t| t.to_rfc3339())) }
        }
        h2 { "Log " a href=(format!("/api/gate-runs/{}/log", run.run_id)) { "(whole)" } }
        pre #log data-run=(run.run_id) data-from=(from) { (log) }
        @if running { script { (PreEscaped(FOLLOW)) } }
    }
}

/// Follows a running run's log from where the page's copy ends, and
/// reloads the page once the run has its verdict.
const FOLLOW: &str = r#"
(function () {
  const pre = document.getElementById("log");
  const run = pre.dataset.run;
  let from = Number(pre.dataset.from);
  async function step() {
    try {
      const log = await fetch(`/api/gate-runs/${run}/log?from=${from}`);
      if (log.ok) {
        const bytes = new Uint8Array(await log.arrayBuffer());
        from += bytes.length;
        pre.textContent += new TextDecoder().decode(bytes);
      }
      const state = await fetch(`/api/gate-runs/${run}`);
      if (state.ok && (await state.json()).status !== "running") {
        location.reload();
        return;
      }
    } catch (e) {}
    setTimeout(step, 1000);
  }
  setTimeout(step, 1000);
})();
"#;

/// The TUI's colours: passed green, blocked yellow, failed (and
/// unclassified) red, running blue.
const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 0; color: #1f2328; background: #fff; }
header { padding: 0.6em 1em; background: #24292f; color: #fff; }
header a { color: #fff; font-weight: bold; text-decoration: none; }
main { padding: 1em; }
section.tiers { display: flex; flex-wrap: wrap; gap: 1em; }
article.tier { border: 1px solid #d0d7de; border-radius: 6px; padding: 0 1em 1em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { color: #57606a; }
dd { margin: 0; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.3em 0.6em; border-bottom: 1px solid #eaeef2; vertical-align: top; }
.verdict { display: inline-block; min-width: 7em; padding: 0.3em 0.6em; border-radius: 4px; color: #fff; font-weight: bold; text-align: center; }
.verdict.passed { background: #1a7f37; }
.verdict.blocked { background: #d4a72c; color: #1f2328; }
.verdict.failed { background: #cf222e; }
.verdict.running { background: #0969da; }
.verdict.none { background: #eaeef2; color: #57606a; }
.why { color: #57606a; }
.voided { text-decoration: line-through; color: #57606a; }
.warning { color: #9a6700; }
pre#log { background: #f6f8fa; padding: 1em; overflow-x: auto; white-space: pre-wrap; }
"#;
