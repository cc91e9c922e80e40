//! `sando gate push|rollback|accept|reject`, `sando reclassify` and `sando gc`: the binary's commands that act on a running daemon through its API (the typed client of `sando-tui`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use sando::domain::{
    ComponentPart, ComponentVerdict, Decision, GateKind, GateRunId, ReclassifyRequest,
    VerdictChange,
};
use sando::sandbox::{Limits, Sandbox};
use sando_tui::client::Client;

fn client(url: &str, token_file: &Path) -> anyhow::Result<Client> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("token file {}", token_file.display()))?;
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "token file {} is empty", token_file.display());
    Ok(Client::new(url, Some(token.to_owned()))?)
}

fn kind(text: &str) -> anyhow::Result<GateKind> {
    Ok(text.parse()?)
}

pub fn push(
    component: &Path,
    url: &str,
    token_file: &Path,
    accept_changes: bool,
    part: Option<ComponentPart>,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(component).with_context(|| format!("{}", component.display()))?;
    // Checked here first: a file that is not a gate component is refused
    // without a round trip, and its kind says where it goes.
    let sandbox =
        Sandbox::new(Limits::default(), None).map_err(|e| anyhow::anyhow!("sandbox: {e}"))?;
    let loaded =
        sandbox.load(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", component.display()))?;
    let verdict =
        client(url, token_file)?.push_component(loaded.kind(), &bytes, accept_changes, part)?;
    Ok(report(&verdict))
}

pub fn rollback(
    kind_text: &str,
    url: &str,
    token_file: &Path,
    accept_changes: bool,
    part: Option<ComponentPart>,
) -> anyhow::Result<ExitCode> {
    let verdict =
        client(url, token_file)?.rollback_component(kind(kind_text)?, accept_changes, part)?;
    Ok(report(&verdict))
}

/// Writes `dir/<gate>/run-<id>/` from the run's recorded classifier input
/// and returns the case's directory; an existing one is never overwritten.
pub fn record(dir: &Path, run: &str, url: &str, token_file: &Path) -> anyhow::Result<PathBuf> {
    use base64::Engine as _;
    let id: GateRunId = run.parse().map_err(|e| anyhow::anyhow!("--run {run:?}: {e}"))?;
    let case = client(url, token_file)?.recorded_case(id)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let stdout = b64.decode(&case.stdout_base64).context("the daemon's stdout_base64")?;
    let stderr = b64.decode(&case.stderr_base64).context("the daemon's stderr_base64")?;
    let kind_dir = dir.join(case.gate.as_str());
    let case_dir = kind_dir.join(format!("run-{id}"));
    anyhow::ensure!(
        !case_dir.exists(),
        "{} already exists: run {id} was recorded before",
        case_dir.display()
    );
    std::fs::create_dir_all(&kind_dir).with_context(|| format!("{}", kind_dir.display()))?;
    // Written whole in a hidden directory beside it, then renamed into
    // place: a record cut short leaves no half case for `gate test` to load
    // or for the next try to refuse (`fixtures::discover` skips hidden ones).
    let partial = tempfile::Builder::new()
        .prefix(&format!(".run-{id}."))
        .tempdir_in(&kind_dir)
        .with_context(|| format!("{}", kind_dir.display()))?;
    for (name, bytes) in [
        ("case.toml", case.case_toml.as_bytes()),
        ("expected.json", case.expected_json.as_bytes()),
        ("stdout", &stdout[..]),
        ("stderr", &stderr[..]),
    ] {
        let path = partial.path().join(name);
        std::fs::write(&path, bytes).with_context(|| format!("{}", path.display()))?;
    }
    std::fs::rename(partial.path(), &case_dir)
        .with_context(|| format!("{}", case_dir.display()))?;
    // Moved into place: nothing is left for it to remove.
    let _ = partial.keep();
    println!(
        "recorded {} from run {id}: edit its expected.json to what the output should mean",
        case_dir.display()
    );
    Ok(case_dir)
}

pub fn settle(
    kind_text: &str,
    digest: Option<&str>,
    url: &str,
    token_file: &Path,
    accept: bool,
) -> anyhow::Result<ExitCode> {
    let record = client(url, token_file)?.settle_component(kind(kind_text)?, accept, digest)?;
    println!("{} component {}: {}", record.kind, short(&record.digest), record.state);
    Ok(ExitCode::SUCCESS)
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn print_diff(diff: &[VerdictChange]) {
    for change in diff {
        println!("  {}: {}  ->  {}", change.case, change.old, change.new);
    }
}

/// One line for the decision, then the verdict diff. Exit 0 when it serves,
/// 2 when it waits for acceptance, 3 when rejected (1 is any other error).
fn report(verdict: &ComponentVerdict) -> ExitCode {
    let what = format!("{} component {}", verdict.kind, short(&verdict.digest));
    let code = match verdict.decision {
        Decision::Loaded => {
            println!("{what}: loaded; new runs use it ({} cases replayed)", verdict.cases);
            ExitCode::SUCCESS
        }
        Decision::Unchanged => {
            println!("{what}: already serving");
            ExitCode::SUCCESS
        }
        Decision::Pending => {
            println!(
                "{what}: held: it changes {} verdict(s) of {} cases replayed. Accept with \
                 `sando gate accept {}` (or push with --accept-changes), or reject it.",
                verdict.diff.len(),
                verdict.cases,
                verdict.kind
            );
            ExitCode::from(2)
        }
        Decision::Rejected => {
            println!(
                "{what}: rejected: {}",
                verdict.reason.as_deref().unwrap_or("no reason given")
            );
            ExitCode::from(3)
        }
    };
    print_diff(&verdict.diff);
    code
}

fn parse_since(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        anyhow::anyhow!("--since {text:?}: expected a date (2026-11-27) or an RFC 3339 time")
    })
}

/// What `sando reclassify` was asked for, beside the gate.
pub struct Reclassify<'a> {
    pub since: Option<&'a str>,
    pub all: bool,
    pub apply: bool,
    pub legacy: bool,
}

pub fn reclassify(
    gate: &str,
    how: Reclassify<'_>,
    url: &str,
    token_file: &Path,
) -> anyhow::Result<ExitCode> {
    let request = ReclassifyRequest {
        gate: kind(gate)?,
        since: how.since.map(parse_since).transpose()?,
        all: how.all,
        apply: how.apply,
        legacy: how.legacy,
    };
    let answer = client(url, token_file)?.reclassify(&request)?;
    let verb = match (answer.applied, how.legacy) {
        (true, _) => "reclassified",
        (false, true) => "would change (dry run on the old daemon's kept text; never applied)",
        (false, false) => "would change (dry run; --apply writes)",
    };
    let runs = if how.legacy { "imported runs" } else { "runs" };
    println!(
        "{} {runs} classified by the serving component {} (contract {}): {} {verb}, {} unchanged, {} without a recorded output",
        answer.gate,
        short(&answer.digest),
        answer.contract,
        answer.changed.len(),
        answer.unchanged,
        answer.without_output
    );
    for run in &answer.changed {
        println!(
            "  run {} ({} {}): {}  ->  {}",
            run.run_id, run.tier, run.version, run.old, run.new
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn gc(dry_run: bool, url: &str, token_file: &Path) -> anyhow::Result<ExitCode> {
    let swept = client(url, token_file)?.sweep(dry_run)?;
    let verb = if swept.dry_run { "would remove (dry run)" } else { "removed" };
    let versions: Vec<String> = swept.versions.iter().map(ToString::to_string).collect();
    println!(
        "{verb}: files of {} versions [{}], {} backups, {} build cache units ({} MiB)",
        versions.len(),
        versions.join(", "),
        swept.backups.len(),
        swept.cache_units.len(),
        swept.cache_bytes >> 20
    );
    for unit in &swept.cache_units {
        println!("  cache {unit}");
    }
    Ok(ExitCode::SUCCESS)
}
