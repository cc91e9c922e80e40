//! `sando import-legacy`: reads the old, stringly-typed daemon's SQLite file (never writing to it), types every row, and writes the history into this daemon's database in one transaction.
//!
//! The order: check the old file really is the old schema; read and type
//! every row (a row that cannot be typed stops everything, naming its table,
//! id and value); copy the old log files beside the runs they belong to;
//! then the store writes it all at once. The old file's sha256 makes a
//! second import of the same file a no-op.

pub mod map;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::config::{Config, StoreLocation};
use crate::domain::{
    BackupSource, Canary, DeployOutcome, GateKind, GateRunId, GateStatus, GitSha, LogRef, NodeId,
    TierId, Version,
};
use crate::store::{
    Imported, LegacyBackup, LegacyDeploy, LegacyHistory, LegacyRun, LegacySource, LegacyTier,
    LegacyVersion, Store, StoreError,
};

/// What `sando import-legacy` was asked to do.
#[derive(Debug)]
pub struct ImportRequest<'a> {
    pub from: &'a Path,
    pub config: &'a Config,
    pub logs: Option<&'a Path>,
    pub dry_run: bool,
}

/// Why an import stopped. Each is one line naming what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error("{path} is not the old Sando's database: it has no {missing}")]
    NotLegacy { path: String, missing: String },
    #[error("{table} row {id}: {column} {value:?} {reason}; nothing was imported")]
    Row { table: &'static str, id: String, column: &'static str, value: String, reason: String },
    #[error("{0}; nothing was imported")]
    Refused(String),
    #[error("{path}: {message}; nothing was imported")]
    Logs { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import did (or, dry, would do); also written with `--report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub source: String,
    pub source_sha256: String,
    pub dry_run: bool,
    pub versions: usize,
    /// Short shas made full from `[project] repo`.
    pub shas_resolved: usize,
    /// Versions whose commit stays a short sha (the repository does not have it).
    pub short_shas_kept: Vec<String>,
    pub tiers: Vec<TierReport>,
    pub gate_runs: Counts,
    /// Runs that got the old log file as their log.
    pub logs_attached: usize,
    pub deploys: Counts,
    pub backups: usize,
    /// Backups whose file is not on this machine: kept as history, never used.
    pub backups_missing: usize,
    /// One entry per old row, in the old tables' order: what it became.
    #[serde(default)]
    pub rows: Vec<RowReport>,
}

/// One old row and what the import made of it: a line of `--report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RowReport {
    /// The old table: `versions`, `tiers`, `gate_runs`, `deploys`, `backups`.
    pub table: String,
    /// The old row's key: its id, or for versions and tiers its name.
    pub legacy_id: serde_json::Value,
    /// Its key here (ids are kept, so the same value).
    pub new_id: serde_json::Value,
    /// A run's `passed`/`failed`/`blocked`, a deploy's `ok`/`failed`, else
    /// `imported`, or `kept_as_history` (a tier the config no longer has, a
    /// backup whose file is not here).
    pub status: String,
    /// A run's GateStatus or a deploy's outcome, in the contract's JSON form.
    pub outcome: Option<serde_json::Value>,
}

impl RowReport {
    fn new(table: &str, id: serde_json::Value, status: &str) -> RowReport {
        RowReport {
            table: table.to_owned(),
            legacy_id: id.clone(),
            new_id: id,
            status: status.to_owned(),
            outcome: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TierReport {
    pub name: String,
    pub canary: Canary,
    /// The config's policy, which is what the daemon uses from now on.
    pub config_canary: Option<Canary>,
    pub current_version: Option<String>,
    /// A version the old daemon was gating: not carried over, since nothing
    /// here has built it. Push it again.
    pub candidate_not_carried: Option<String>,
}

/// Rows by what they became: `status` (`passed`, `failed`, `blocked`, or a
/// deploy's `ok`, `failed`) and, for failures and blockers, their class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_class: BTreeMap<String, usize>,
}

/// How it ended: written, or already there from an earlier import.
#[derive(Debug)]
pub enum Outcome {
    Imported(Report),
    AlreadyImported { imported_at: DateTime<Utc>, report: Report },
}

/// Imports `request.from` into the database of `request.config`.
pub async fn import(request: &ImportRequest<'_>) -> Result<Outcome, ImportError> {
    let from = request.from;
    let shown = from.display().to_string();
    let sha256 = crate::daemon::work::sha256_file(from.to_path_buf()).await.map_err(|e| {
        ImportError::Open { path: shown.clone(), message: crate::fixtures::io_message(&e) }
    })?;
    let old = open_read_only(from).await?;
    check_schema(&old, &shown).await?;
    let read = read(&old, request.config).await;
    old.close().await;
    let (mut history, mut report, candidates) = read?;
    report.source = shown.clone();
    report.source_sha256 = sha256.clone();
    report.dry_run = request.dry_run;
    for tier in &mut report.tiers {
        tier.candidate_not_carried = candidates.get(&tier.name).cloned();
    }

    let data_dir = &request.config.data_dir;
    if !request.dry_run {
        std::fs::create_dir_all(data_dir).map_err(|e| ImportError::Open {
            path: data_dir.display().to_string(),
            message: crate::fixtures::io_message(&e),
        })?;
    }
    if let Some(logs) = request.logs {
        report.logs_attached =
            attach_logs(&mut history, logs, &data_dir.join("logs"), request.dry_run)?;
    }
    let report_json = serde_json::to_string(&report).expect("a report serialises");
    let source = LegacySource { path: &shown, sha256: &sha256, report_json: &report_json };
    let location = &request.config.store;
    let missing = matches!(location, StoreLocation::Sqlite(db) if !db.exists());
    if request.dry_run && missing {
        // A dry run leaves no database behind: it writes into a scratch one.
        // (On PostgreSQL it writes into the real one, and rolls back.)
        let scratch = tempfile::tempdir().map_err(|e| ImportError::Open {
            path: "a scratch directory".into(),
            message: crate::fixtures::io_message(&e),
        })?;
        let store = Store::open(&scratch.path().join("sando.sqlite")).await?;
        return finish(&store, &history, &source, report, false).await;
    }
    finish(&Store::connect(location).await?, &history, &source, report, !request.dry_run).await
}

async fn finish(
    store: &Store,
    history: &LegacyHistory,
    source: &LegacySource<'_>,
    report: Report,
    commit: bool,
) -> Result<Outcome, ImportError> {
    match store.import_legacy(history, source, Utc::now(), commit).await? {
        Imported::Done if commit => {
            // An import is an act of a person: the one at this machine,
            // holding the store's credentials (no API token is involved).
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let entry = crate::store::NewAudit {
                at: Utc::now(),
                actor: &format!("local:{user}"),
                action: "import",
                target: format!("legacy database {}", source.path),
                before: None,
                after: Some(serde_json::json!({ "sha256": source.sha256 }).to_string()),
            };
            store.append_audit(&entry).await?;
            Ok(Outcome::Imported(report))
        }
        Imported::Done => Ok(Outcome::Imported(report)),
        Imported::Already { imported_at, report_json } => Ok(Outcome::AlreadyImported {
            imported_at,
            report: serde_json::from_str(&report_json).unwrap_or(report),
        }),
        Imported::Refused(why) => Err(ImportError::Refused(why)),
    }
}

async fn open_read_only(path: &Path) -> Result<SqlitePool, ImportError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(ImportError::Open { path: shown, message: "no such file".into() });
    }
    // Read-only, not immutable: an old database in WAL mode keeps its
    // newest rows in the WAL, which an immutable open would not read.
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(|e| {
        ImportError::Open { path: shown, message: crate::text::one_line(&e.to_string()) }
    })
}

async fn check_schema(old: &SqlitePool, shown: &str) -> Result<(), ImportError> {
    let not_sqlite = |e: sqlx::Error| ImportError::Open {
        path: shown.to_owned(),
        message: crate::text::one_line(&e.to_string()),
    };
    for (table, columns) in crate::store::LEGACY_SCHEMA {
        let rows = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(old)
            .await
            .map_err(not_sqlite)?;
        let have: HashSet<String> =
            rows.iter().filter_map(|r| r.try_get::<String, _>("name").ok()).collect();
        if have.is_empty() {
            return Err(ImportError::NotLegacy {
                path: shown.to_owned(),
                missing: format!("table {table}"),
            });
        }
        if let Some(missing) = columns.iter().find(|c| !have.contains(**c)) {
            return Err(ImportError::NotLegacy {
                path: shown.to_owned(),
                missing: format!("column {table}.{missing}"),
            });
        }
    }
    Ok(())
}

/// A cell as text, whatever SQLite stored, for reading and for messages.
fn text(row: &sqlx::sqlite::SqliteRow, column: &str) -> Option<String> {
    use sqlx::ValueRef as _;
    let raw = row.try_get_raw(column).ok()?;
    if raw.is_null() {
        return None;
    }
    row.try_get::<String, _>(column)
        .ok()
        .or_else(|| row.try_get::<i64, _>(column).ok().map(|n| n.to_string()))
        .or_else(|| row.try_get::<f64, _>(column).ok().map(|n| n.to_string()))
}

/// Parses column `column` of `row` (of `table`, row `id`) with `parse`.
struct Cells<'a> {
    table: &'static str,
    id: String,
    row: &'a sqlx::sqlite::SqliteRow,
}

impl Cells<'_> {
    fn bad(&self, column: &'static str, value: &str, reason: impl Into<String>) -> ImportError {
        ImportError::Row {
            table: self.table,
            id: self.id.clone(),
            column,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    fn opt(&self, column: &str) -> Option<String> {
        text(self.row, column)
    }

    fn get<T>(&self, column: &'static str) -> Result<T, ImportError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.opt(column).ok_or_else(|| self.bad(column, "NULL", "is missing"))?;
        value.parse().map_err(|e: T::Err| self.bad(column, &value, reason(&e.to_string())))
    }

    fn required_time(&self, column: &'static str) -> Result<DateTime<Utc>, ImportError> {
        self.time(column)?.ok_or_else(|| self.bad(column, "NULL", "is missing"))
    }

    fn time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>, ImportError> {
        let Some(value) = self.opt(column) else { return Ok(None) };
        DateTime::parse_from_rfc3339(&value)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| self.bad(column, &value, format!("is not an RFC 3339 time ({e})")))
    }
}

/// A parse error's reason, without the value it repeats.
fn reason(message: &str) -> String {
    match message.split_once(": ") {
        Some((_, reason)) => format!("is not valid: {reason}"),
        None => format!("is not valid: {message}"),
    }
}

type Read = (LegacyHistory, Report, HashMap<String, String>);

async fn read(old: &SqlitePool, config: &Config) -> Result<Read, ImportError> {
    let all = |sql: &'static str| sqlx::query(sql).fetch_all(old);
    let mut history = LegacyHistory::default();
    let mut report = Report {
        source: String::new(),
        source_sha256: String::new(),
        dry_run: false,
        versions: 0,
        shas_resolved: 0,
        short_shas_kept: Vec::new(),
        tiers: Vec::new(),
        gate_runs: Counts::default(),
        logs_attached: 0,
        deploys: Counts::default(),
        backups: 0,
        backups_missing: 0,
        rows: Vec::new(),
    };

    let rows = all("SELECT version, git_sha, built_at FROM versions ORDER BY rowid").await?;
    let mut versions = HashSet::new();
    for row in &rows {
        let id = text(row, "version").unwrap_or_default();
        let cells = Cells { table: "versions", id, row };
        let version: Version = cells.get("version")?;
        let written = cells.opt("git_sha").unwrap_or_default();
        let git_sha = match resolve_sha(&config.project.repo, &written) {
            Some(full) => {
                report.shas_resolved += usize::from(written.len() != 40);
                full
            }
            None => {
                let sha: GitSha = cells.get("git_sha")?;
                report.short_shas_kept.push(version.to_string());
                sha
            }
        };
        let registered_at = cells.required_time("built_at")?;
        report.rows.push(RowReport::new("versions", version.to_string().into(), "imported"));
        versions.insert(version.clone());
        history.versions.push(LegacyVersion { version, git_sha, registered_at });
    }
    report.versions = history.versions.len();
    let known = |cells: &Cells<'_>, column: &'static str| -> Result<Version, ImportError> {
        let version: Version = cells.get(column)?;
        if versions.contains(&version) {
            Ok(version)
        } else {
            Err(cells.bad(column, &version.to_string(), "is not in the versions table"))
        }
    };

    let mut candidates = HashMap::new();
    let states =
        all("SELECT tier, current_version, candidate_version, arrived_at FROM tier_state").await?;
    let rows = all("SELECT name, position, canary FROM tiers ORDER BY position, name").await?;
    let after_config = config.tiers.len() as i64;
    let mut tiers = HashSet::new();
    for (n, row) in rows.iter().enumerate() {
        let cells = Cells { table: "tiers", id: text(row, "name").unwrap_or_default(), row };
        let name: TierId = cells.get("name")?;
        let canary_text = cells.opt("canary").unwrap_or_default();
        let canary = map::canary(&canary_text).ok_or_else(|| {
            cells.bad(
                "canary",
                &canary_text,
                "is not a canary policy (all-at-once or one-then-rest)",
            )
        })?;
        let configured = config.tiers.iter().position(|t| t.name == name);
        let state = states.iter().find(|s| text(s, "tier").as_deref() == Some(name.as_str()));
        let (mut current, mut arrived_at) = (None, None);
        if let Some(state) = state {
            let cells = Cells { table: "tier_state", id: name.to_string(), row: state };
            if cells.opt("current_version").is_some() {
                current = Some(known(&cells, "current_version")?);
                arrived_at = cells.time("arrived_at")?;
            }
            if let Some(candidate) = cells.opt("candidate_version") {
                candidates.insert(name.to_string(), candidate);
            }
        }
        report.tiers.push(TierReport {
            name: name.to_string(),
            canary,
            config_canary: configured.map(|i| config.tiers[i].canary),
            current_version: current.as_ref().map(Version::to_string),
            candidate_not_carried: None,
        });
        let status = if configured.is_some() { "imported" } else { "kept_as_history" };
        report.rows.push(RowReport::new("tiers", name.as_str().into(), status));
        tiers.insert(name.clone());
        let position = configured.map_or(after_config + n as i64, |i| i as i64);
        history.tiers.push(LegacyTier { name, position, current, arrived_at });
    }
    let tier_of = |cells: &Cells<'_>| -> Result<TierId, ImportError> {
        let tier: TierId = cells.get("tier")?;
        if tiers.contains(&tier) {
            Ok(tier)
        } else {
            Err(cells.bad("tier", tier.as_str(), "is not in the tiers table"))
        }
    };

    let rows = all("SELECT id, version, tier, gate_kind, started_at, finished_at, passed, detail
         FROM gate_runs ORDER BY id")
    .await?;
    for row in &rows {
        let cells = Cells { table: "gate_runs", id: text(row, "id").unwrap_or_default(), row };
        let id: i64 = cells.get("id")?;
        let gate: GateKind = cells.get("gate_kind")?;
        let started_at = cells.required_time("started_at")?;
        let passed = match cells.opt("passed") {
            None => None,
            Some(p) => {
                Some(p.parse::<i64>().map_err(|_| cells.bad("passed", &p, "is not 1, 0 or NULL"))?)
            }
        };
        let detail = cells.opt("detail");
        let status = map::gate_status(gate, passed, detail.as_deref());
        count(&mut report.gate_runs, status.label(), class_of(&status));
        report.rows.push(RowReport {
            outcome: Some(serde_json::to_value(&status).expect("a status serialises")),
            ..RowReport::new("gate_runs", id.into(), status.label())
        });
        history.gate_runs.push(LegacyRun {
            id: GateRunId::try_from(id)
                .map_err(|e| cells.bad("id", &id.to_string(), reason(&e.to_string())))?,
            version: known(&cells, "version")?,
            tier: tier_of(&cells)?,
            gate,
            started_at,
            // A run the old daemon never finished ends where it began.
            finished_at: cells.time("finished_at")?.unwrap_or(started_at),
            status,
            log_ref: None,
            detail,
        });
    }

    let rows = all("SELECT id, version, tier, node, started_at, finished_at, outcome, error
         FROM deploys ORDER BY id")
    .await?;
    for row in &rows {
        let cells = Cells { table: "deploys", id: text(row, "id").unwrap_or_default(), row };
        let id: i64 = cells.get("id")?;
        let started_at = cells.required_time("started_at")?;
        let error = cells.opt("error");
        let outcome = map::deploy_outcome(cells.opt("outcome").as_deref(), error.as_deref());
        let class = match &outcome {
            DeployOutcome::Failed { failure } => Some(failure.class()),
            _ => None,
        };
        count(&mut report.deploys, outcome.label(), class);
        report.rows.push(RowReport {
            outcome: Some(serde_json::to_value(&outcome).expect("an outcome serialises")),
            ..RowReport::new("deploys", id.into(), outcome.label())
        });
        history.deploys.push(LegacyDeploy {
            id,
            version: known(&cells, "version")?,
            tier: tier_of(&cells)?,
            node: cells.get::<NodeId>("node")?,
            started_at,
            finished_at: cells.time("finished_at")?.unwrap_or(started_at),
            outcome,
            error,
            log_ref: format!("legacy/deploy-{id}.log").parse::<LogRef>().expect("a log-safe name"),
        });
    }

    let rows = all("SELECT id, source, path, fetched_at FROM backups ORDER BY id").await?;
    for row in &rows {
        let cells = Cells { table: "backups", id: text(row, "id").unwrap_or_default(), row };
        let path = cells.opt("path").ok_or_else(|| cells.bad("path", "NULL", "is missing"))?;
        let backup = LegacyBackup {
            id: cells.get("id")?,
            source: cells.get::<BackupSource>("source")?,
            file_missing: !Path::new(&path).is_file(),
            path,
            fetched_at: cells.required_time("fetched_at")?,
        };
        let status = if backup.file_missing { "kept_as_history" } else { "imported" };
        report.rows.push(RowReport::new("backups", backup.id.into(), status));
        history.backups.push(backup);
    }
    report.backups = history.backups.len();
    report.backups_missing = history.backups.iter().filter(|b| b.file_missing).count();
    Ok((history, report, candidates))
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Open {
            path: "the old database".into(),
            message: crate::text::one_line(&e.to_string()),
        }
    }
}

fn class_of(status: &GateStatus) -> Option<&'static str> {
    match status {
        GateStatus::Passed { .. } => None,
        GateStatus::Failed { failure } => Some(failure.class()),
        GateStatus::Blocked { blocker } => Some(blocker.class()),
    }
}

fn count(counts: &mut Counts, status: &str, class: Option<&str>) {
    counts.total += 1;
    *counts.by_status.entry(status.to_owned()).or_default() += 1;
    if let Some(class) = class {
        *counts.by_class.entry(class.to_owned()).or_default() += 1;
    }
}

/// The full sha `written` names in `repo`, when the repository is here and
/// has exactly one such commit.
fn resolve_sha(repo: &Path, written: &str) -> Option<GitSha> {
    if written.len() < 4 || written.len() > 40 || !written.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if written.len() == 40 {
        return written.parse().ok();
    }
    if !repo.is_dir() {
        return None;
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", &format!("{written}^{{commit}}")])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Gives each old log file (`<logs>/<version>/<gate>.log`) to the run it
/// belongs to, copying it where this daemon keeps run logs. The old daemon
/// kept one file per version and gate, rewritten by each run that wrote
/// one: it is the newest run whose detail it holds, else the newest run.
fn attach_logs(
    history: &mut LegacyHistory,
    logs: &Path,
    logs_dir: &Path,
    dry_run: bool,
) -> Result<usize, ImportError> {
    if !logs.is_dir() {
        return Err(ImportError::Logs {
            path: logs.display().to_string(),
            message: "is not a directory".into(),
        });
    }
    let mut newest: BTreeMap<(Version, GateKind), Vec<usize>> = BTreeMap::new();
    for (i, run) in history.gate_runs.iter().enumerate() {
        newest.entry((run.version.clone(), run.gate)).or_default().push(i);
    }
    let mut attached = 0;
    for ((version, gate), runs) in newest {
        let file: PathBuf = logs.join(version.to_string()).join(format!("{gate}.log"));
        let Ok(bytes) = std::fs::read(&file) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let owner = runs
            .iter()
            .rev()
            .find(|&&i| history.gate_runs[i].detail.as_deref() == Some(&*text))
            .or(runs.last())
            .copied()
            .expect("a group has a run");
        let run = &mut history.gate_runs[owner];
        let log_ref = crate::daemon::work::run_log_ref(&run.version, run.gate, run.id);
        if !dry_run {
            let target = logs_dir.join(log_ref.as_str());
            let copied = std::fs::create_dir_all(target.parent().expect("a log has a directory"))
                .and_then(|()| std::fs::write(&target, &bytes));
            copied.map_err(|e| ImportError::Logs {
                path: target.display().to_string(),
                message: crate::fixtures::io_message(&e),
            })?;
        }
        run.log_ref = Some(log_ref);
        attached += 1;
    }
    Ok(attached)
}

impl Report {
    /// The `--report` file: one JSON line per old row, then the summary as a
    /// last line whose `table` is `summary`.
    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&serde_json::to_string(row).expect("a row serialises"));
            out.push('\n');
        }
        let mut summary = serde_json::Map::new();
        summary.insert("table".into(), "summary".into());
        let serde_json::Value::Object(fields) =
            serde_json::to_value(self).expect("a report serialises")
        else {
            unreachable!("a report is an object")
        };
        summary.extend(fields.into_iter().filter(|(k, _)| k != "rows"));
        out.push_str(&serde_json::to_string(&summary).expect("a summary serialises"));
        out.push('\n');
        out
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let classes = |c: &Counts| {
            c.by_status.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
        };
        let mut lines = vec![
            format!(
                "{} versions ({} short shas resolved, {} kept short)",
                self.versions,
                self.shas_resolved,
                self.short_shas_kept.len()
            ),
            format!("{} gate runs: {}", self.gate_runs.total, classes(&self.gate_runs)),
            format!("{} deploys: {}", self.deploys.total, classes(&self.deploys)),
            format!(
                "{} backups ({} whose file is not here, kept as history)",
                self.backups, self.backups_missing
            ),
        ];
        if self.logs_attached > 0 {
            lines.push(format!("{} old log files attached to their runs", self.logs_attached));
        }
        for tier in &self.tiers {
            let mut line = format!(
                "tier {}: current {}",
                tier.name,
                tier.current_version.as_deref().unwrap_or("none")
            );
            match tier.config_canary {
                Some(config) if config != tier.canary => line.push_str(&format!(
                    "; the old canary was {}, the config's {} applies",
                    tier.canary.as_str(),
                    config.as_str()
                )),
                None => line.push_str("; not in the config, kept as history"),
                _ => {}
            }
            if let Some(candidate) = &tier.candidate_not_carried {
                line.push_str(&format!("; {candidate} was waiting here: push it again to gate it"));
            }
            lines.push(line);
        }
        lines.join("\n")
    }
}
