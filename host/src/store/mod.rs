//! Persistence: one SQLite file (WAL) through sqlx, schema from `migrations/`, every query checked at compile time against it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod audit;
mod backlog;
mod components;
#[cfg(not(sqlx_prepare_sqlite))]
pub mod copy;
mod dispatch;
mod identify;
pub mod leadership;
mod legacy;
#[cfg(not(sqlx_prepare_sqlite))]
mod postgres;
mod records;
mod retention;
mod tier_control;

pub use crate::domain::{BackupRow, Confirmation, DeploySummary};
use crate::domain::{
    BackupSource, BuildFailure, BuildOutcome, BuildSummary, DeployFailure, DeployId, DeployOutcome,
    GateFailure, GateKind, GateRunId, GateStatus, GitSha, LogRef, NodeId, PreviousRun, RollbackOf,
    RunState, TierId, Version,
};
pub use audit::{ApprovalRecord, AuditRecord, NewAudit};
pub use backlog::{BacklogBound, BackloggedEvent, EventMarks};
pub use components::{RawRun, RecordedTranscript, process_end_text};
pub use dispatch::Store;
pub use identify::LEGACY_SCHEMA;
#[cfg(not(sqlx_prepare_sqlite))]
pub use leadership::{Candidacy, Leader, Standing};
pub use legacy::{
    Imported, LegacyBackup, LegacyDeploy, LegacyHistory, LegacyRun, LegacySource, LegacyTier,
    LegacyVersion,
};
pub use postgres::{PgStore, Role};
pub use records::{NotificationRecord, RunFilter, RunJob, RunRecord, VersionRecord};
pub use retention::{BackupAge, VersionAge};
pub use tier_control::{FreezeRecord, NewRollback, OverrideRecord, RollbackRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database {path}: applying migrations: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
    /// A file the store will not write to: why, and what to do instead.
    #[error("{0}")]
    NotOurs(String),
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
    /// A write on a standby: the leader makes every write.
    #[error("this daemon is a standby: the leading daemon makes every write")]
    Standby,
    /// A write after another daemon took the lead: refused, in the same
    /// transaction that would have made it.
    #[error("this daemon no longer leads (its epoch {epoch} was superseded): nothing was written")]
    Deposed { epoch: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierRow {
    pub name: TierId,
    pub current_version: Option<Version>,
    pub candidate_version: Option<Version>,
}

/// Which attempt a gate run is, of how many its retry policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub of: u32,
}

/// A gate's latest run, as the planner needs it.
#[derive(Debug, Clone)]
pub struct PlanRun {
    pub run_id: GateRunId,
    pub gate: GateKind,
    pub outcome: Option<GateStatus>,
    pub attempt: i64,
    pub evaluated_at: DateTime<Utc>,
    pub rerun_requested: bool,
}

/// The deploys of a version to one node, as the planner needs them.
#[derive(Debug, Clone)]
pub struct PlanDeploy {
    pub node: NodeId,
    pub outcome: DeployOutcome,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: i64,
}

/// A rebuild request not yet settled.
#[derive(Debug, Clone)]
pub struct OpenRebuild {
    pub id: i64,
    pub git_sha: GitSha,
    pub builds: i64,
    pub last_ended: Option<DateTime<Utc>>,
    pub last_outcome: Option<BuildOutcome>,
}

/// Which components a run is decided by: its runner, and the classifier in
/// service for it.
#[derive(Debug, Clone, Copy)]
pub struct RunComponents<'a> {
    pub runner_digest: &'a str,
    pub runner_contract: &'a str,
    pub classifier_digest: &'a str,
    pub classifier_contract: &'a str,
}

/// Provenance of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCost {
    pub fuel: i64,
    pub peak_memory: i64,
}

impl RunCost {
    /// A run the component never finished (the host stopped it first).
    pub const ZERO: RunCost = RunCost { fuel: 0, peak_memory: 0 };
}

/// The schema, from `migrations/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// The store on one SQLite file (WAL), the embedded default.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    /// A file that is not Sando's, or is a newer Sando's, is refused before
    /// anything is written to it.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let found = identify::identify(path, &MIGRATOR)
            .await
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        if let Some(refusal) = found.refusal(&shown) {
            return Err(StoreError::NotOurs(refusal));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        MIGRATOR.run(&pool).await.map_err(|source| StoreError::Migrate { path: shown, source })?;
        Ok(SqliteStore { pool })
    }

    /// Records the configured tiers (in order); tiers removed from the config
    /// keep their rows, so history is never lost.
    pub async fn sync_tiers(&self, tiers: &[TierId]) -> Result<()> {
        for (position, tier) in tiers.iter().enumerate() {
            let position = position as i64;
            sqlx::query!(
                "INSERT INTO tiers (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                tier,
                position
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Gives every run, build and deploy left in flight by a previous daemon
    /// a typed outcome, but for runs whose process outlives the daemon (those
    /// are adopted, or let go of first). Returns how many gate runs were
    /// interrupted.
    pub async fn interrupt_unfinished(&self, now: DateTime<Utc>) -> Result<u64> {
        let interrupted = GateStatus::failed(GateFailure::Interrupted);
        let runs = sqlx::query!(
            "UPDATE gate_runs SET status = 'failed', outcome_json = ?1, finished_at = ?2
             WHERE status = 'running' AND job IS NULL",
            interrupted,
            now
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        let build = BuildOutcome::Failed { failure: BuildFailure::Interrupted };
        sqlx::query!(
            "UPDATE builds SET outcome_json = ?1, finished_at = ?2 WHERE outcome_json IS NULL",
            build,
            now
        )
        .execute(&self.pool)
        .await?;
        let deploy = DeployOutcome::Failed { failure: DeployFailure::Interrupted };
        let in_progress = DeployOutcome::InProgress;
        sqlx::query!(
            "UPDATE deploys SET outcome_json = ?1, finished_at = ?2 WHERE outcome_json = ?3",
            deploy,
            now,
            in_progress
        )
        .execute(&self.pool)
        .await?;
        Ok(runs)
    }

    pub async fn version(&self, version: &Version) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE version = ?1"#,
            version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn version_by_sha(&self, sha: &GitSha) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE git_sha = ?1 OR substr(git_sha, 1, 7) = ?1"#,
            sha
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_version(&self, row: &VersionRecord) -> Result<()> {
        sqlx::query!(
            "INSERT INTO versions (version, git_sha, registered_at, artifact) VALUES (?1, ?2, ?3, ?4)",
            row.version,
            row.git_sha,
            row.registered_at,
            row.artifact
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The `limit` most recently registered versions, newest first.
    pub async fn recent_versions(&self, limit: i64) -> Result<Vec<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions ORDER BY registered_at DESC LIMIT ?1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn tiers(&self) -> Result<Vec<TierRow>> {
        Ok(sqlx::query_as!(
            TierRow,
            r#"SELECT name AS "name: TierId", current_version AS "current_version: Version",
                      candidate_version AS "candidate_version: Version"
               FROM tiers ORDER BY position"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn arrival(&self, tier: &TierId, version: &Version) -> Result<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT at AS "at: DateTime<Utc>" FROM tier_arrivals WHERE tier = ?1 AND version = ?2"#,
            tier,
            version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Inserts the run before it starts, so its id exists for every event,
    /// with the log path made from that id, in one transaction: nobody sees
    /// the run without its log.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_gate_run(
        &self,
        tier: &TierId,
        version: &Version,
        gate: GateKind,
        component: RunComponents<'_>,
        attempt: Attempt,
        now: DateTime<Utc>,
        log_ref: impl FnOnce(GateRunId) -> LogRef,
    ) -> Result<(GateRunId, LogRef)> {
        let mut tx = self.pool.begin().await?;
        let (number, of) = (i64::from(attempt.number), i64::from(attempt.of));
        let id = sqlx::query!(
            "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract,
                                    classifier_digest, classifier_contract, attempt, max_attempts)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7, ?8, ?9, ?10)",
            version,
            tier,
            gate,
            now,
            component.runner_digest,
            component.runner_contract,
            component.classifier_digest,
            component.classifier_contract,
            number,
            of
        )
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        let id = GateRunId::try_from(id).expect("AUTOINCREMENT ids are positive");
        let log_ref = log_ref(id);
        sqlx::query!("UPDATE gate_runs SET log_ref = ?1 WHERE id = ?2", log_ref, id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((id, log_ref))
    }

    pub async fn finish_gate_run(
        &self,
        id: GateRunId,
        status: &GateStatus,
        cost: RunCost,
        now: DateTime<Utc>,
        evaluated_at: DateTime<Utc>,
    ) -> Result<()> {
        let label = status.label();
        sqlx::query!(
            "UPDATE gate_runs SET status = ?1, outcome_json = ?2, finished_at = ?3, evaluated_at = ?7,
                                  fuel = ?4, peak_memory = ?5
             WHERE id = ?6",
            label,
            status,
            now,
            cost.fuel,
            cost.peak_memory,
            id,
            evaluated_at
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the process a running run started that outlives the daemon,
    /// before it may start. False when the run is no longer running.
    pub async fn record_run_job(
        &self,
        id: GateRunId,
        spawn: i64,
        handle: &str,
        log_at: i64,
    ) -> Result<bool> {
        let updated = sqlx::query!(
            "UPDATE gate_runs SET job = ?1, job_spawn = ?2, job_log_at = ?3
             WHERE id = ?4 AND status = 'running'",
            handle,
            spawn,
            log_at,
            id
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Running runs whose process outlives the daemon, oldest first.
    pub async fn run_jobs(&self) -> Result<Vec<RunJob>> {
        Ok(sqlx::query_as!(
            RunJob,
            r#"SELECT id AS "run_id: GateRunId", tier AS "tier: TierId", version AS "version: Version",
                      gate_kind AS "gate: GateKind", attempt, max_attempts, log_ref AS "log_ref: LogRef",
                      job AS "handle!", job_spawn AS "spawn!", job_log_at AS "log_at!"
               FROM gate_runs WHERE status = 'running' AND job IS NOT NULL ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Lets go of a run's process (no executor here can follow it): the
    /// run is then interrupted like any other.
    pub async fn forget_run_job(&self, id: GateRunId) -> Result<()> {
        sqlx::query!("UPDATE gate_runs SET job = NULL WHERE id = ?1 AND status = 'running'", id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Puts a delivery in the outbox; its id.
    pub async fn enqueue_notification(
        &self,
        target: &str,
        event: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO notifications (target, event, body, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            target,
            event,
            body,
            now
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// The oldest delivery `target` has not taken yet.
    pub async fn next_notification(&self, target: &str) -> Result<Option<NotificationRecord>> {
        Ok(sqlx::query_as!(
            NotificationRecord,
            r#"SELECT id AS "id!", target, event, body, created_at AS "created_at: DateTime<Utc>",
                      attempts, next_at AS "next_at: DateTime<Utc>",
                      delivered_at AS "delivered_at: DateTime<Utc>", last_error
               FROM notifications WHERE target = ?1 AND delivered_at IS NULL ORDER BY id LIMIT 1"#,
            target
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a delivery's attempt: taken (`error` is `None`), or not,
    /// and when to try again.
    pub async fn notification_tried(
        &self,
        id: i64,
        error: Option<&str>,
        next_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let delivered = error.is_none().then_some(now);
        sqlx::query!(
            "UPDATE notifications SET attempts = attempts + 1, last_error = ?1, next_at = ?2,
                                      delivered_at = ?3
             WHERE id = ?4",
            error,
            next_at,
            delivered,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries not taken yet, oldest first (at most `limit`).
    pub async fn pending_notifications(&self, limit: i64) -> Result<Vec<NotificationRecord>> {
        Ok(sqlx::query_as!(
            NotificationRecord,
            r#"SELECT id AS "id!", target, event, body, created_at AS "created_at: DateTime<Utc>",
                      attempts, next_at AS "next_at: DateTime<Utc>",
                      delivered_at AS "delivered_at: DateTime<Utc>", last_error
               FROM notifications WHERE delivered_at IS NULL ORDER BY id LIMIT ?1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets deliveries taken before `before`; how many.
    pub async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query!("DELETE FROM notifications WHERE delivered_at < ?1", before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn gate_run(&self, id: GateRunId) -> Result<Option<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id: GateRunId", tier AS "tier: TierId", version AS "version: Version",
                      gate_kind AS "gate: GateKind", status AS "status: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest, contract, classifier_digest,
                      classifier_contract, fuel, peak_memory,
                      attempt, max_attempts
               FROM gate_runs WHERE id = ?1"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Runs matching every filter given, newest first, with ids below
    /// `before`, at most `limit`.
    pub async fn gate_runs_page(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunRecord>> {
        let (tier, gate, version) = filter.texts();
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs
               WHERE (?1 IS NULL OR tier = ?1) AND (?2 IS NULL OR gate_kind = ?2)
                 AND (?3 IS NULL OR version = ?3) AND (?4 IS NULL OR id < ?4)
               ORDER BY id DESC LIMIT ?5"#,
            tier,
            gate,
            version,
            filter.before,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest run of each gate kind of `version` at `tier`.
    pub async fn latest_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs
               WHERE id IN (SELECT MAX(id) FROM gate_runs WHERE tier = ?1 AND version = ?2 GROUP BY gate_kind)
               ORDER BY id"#,
            tier,
            version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// For each gate kind, its latest finished run at `tier` for a version
    /// other than `version`: what the shown runs are compared with.
    pub async fn previous_runs(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Vec<PreviousRun>> {
        // One walk back per kind along `gate_runs_by_tier_kind`, from the
        // newest: a tier's whole history is never read.
        let mut runs = Vec::new();
        for gate in GateKind::ALL {
            let row = sqlx::query!(
                r#"SELECT id AS "id!: GateRunId", version AS "version!: Version",
                          started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at!: DateTime<Utc>"
                   FROM gate_runs
                   WHERE tier = ?1 AND gate_kind = ?2 AND version != ?3
                     AND status IN ('passed', 'failed') AND finished_at IS NOT NULL
                   ORDER BY id DESC LIMIT 1"#,
                tier,
                gate,
                version
            )
            .fetch_optional(&self.pool)
            .await?;
            runs.extend(row.map(|r| PreviousRun {
                gate,
                version: r.version,
                run_id: r.id,
                duration_ms: (r.finished_at - r.started_at).num_milliseconds(),
            }));
        }
        runs.sort_by_key(|r| r.run_id);
        Ok(runs)
    }

    /// The newest `limit` builds, each with the duration of the finished
    /// build before it.
    pub async fn recent_builds(&self, limit: i64) -> Result<Vec<BuildSummary>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id!", git_sha AS "git_sha!: GitSha", outcome_json AS "outcome: BuildOutcome",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      warm, cache_from AS "cache_from: Version"
               FROM builds ORDER BY id DESC LIMIT ?1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        let builds = rows
            .into_iter()
            .map(|r| BuildSummary {
                build_id: r.id,
                git_sha: r.git_sha,
                outcome: r.outcome,
                started_at: r.started_at,
                finished_at: r.finished_at,
                duration_ms: r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
                previous_duration_ms: None,
                warm: r.warm.map(|w| w != 0),
                cache_from: r.cache_from,
            })
            .collect();
        Ok(with_previous_durations(builds))
    }

    /// The latest run of a gate kind for a version, at any tier (for `/logs`).
    pub async fn latest_run_of(
        &self,
        version: &Version,
        gate: GateKind,
    ) -> Result<Option<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs WHERE version = ?1 AND gate_kind = ?2 ORDER BY id DESC LIMIT 1"#,
            version,
            gate
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_deploy(
        &self,
        tier: &TierId,
        version: &Version,
        node: &NodeId,
        log_ref: &LogRef,
        now: DateTime<Utc>,
    ) -> Result<DeployId> {
        let mut conn = self.pool.acquire().await?;
        insert_deploy_on(&mut conn, tier, version, node, log_ref, None, now).await
    }

    pub async fn finish_deploy(
        &self,
        id: DeployId,
        outcome: &DeployOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE deploys SET outcome_json = ?1, finished_at = ?2 WHERE id = ?3",
            outcome,
            now,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn recent_deploys(&self, limit: i64) -> Result<Vec<DeploySummary>> {
        let rows = sqlx::query!(
            r#"SELECT d.id AS "deploy_id!: DeployId", d.tier AS "tier!: TierId", d.version AS "version!: Version",
                      d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.started_at AS "started_at!: DateTime<Utc>", d.finished_at AS "finished_at: DateTime<Utc>",
                      d.log_ref AS "log_ref!: LogRef", r.from_version AS "rollback_from?: Version",
                      r.to_version AS "rollback_to?: Version", r.requested_by AS "rollback_by?: String"
               FROM deploys d LEFT JOIN rollbacks r ON r.id = d.rollback_id
               ORDER BY d.id DESC LIMIT ?1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeploySummary {
                deploy_id: row.deploy_id,
                tier: row.tier,
                version: row.version,
                node: row.node,
                outcome: row.outcome,
                started_at: row.started_at,
                finished_at: row.finished_at,
                log_ref: row.log_ref,
                rollback: match (row.rollback_from, row.rollback_to, row.rollback_by) {
                    (Some(from), Some(to), Some(by)) => Some(RollbackOf { from, to, by }),
                    _ => None,
                },
            })
            .collect())
    }

    pub async fn insert_backup(
        &self,
        source: &BackupSource,
        path: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO backups (source, path, fetched_at) VALUES (?1, ?2, ?3)",
            source,
            path,
            now
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    pub async fn latest_backup(&self) -> Result<Option<BackupRow>> {
        Ok(sqlx::query_as!(
            BackupRow,
            r#"SELECT id AS "id!", source AS "source: BackupSource", path,
                      fetched_at AS "fetched_at: DateTime<Utc>"
               FROM backups WHERE removed_at IS NULL ORDER BY id DESC LIMIT 1"#
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that `run` should run again. Asking twice is one request.
    pub async fn request_rerun(&self, run: GateRunId, by: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query!(
            "INSERT OR IGNORE INTO rerun_requests (gate_run_id, requested_by, requested_at)
             VALUES (?1, ?2, ?3)",
            run,
            by,
            now
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The first confirmation given for `version` at `tier`, if any.
    pub async fn confirmation(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<Confirmation>> {
        Ok(sqlx::query_as!(
            Confirmation,
            r#"SELECT gate_run_id AS "run_id: GateRunId", confirmed_by,
                      confirmed_at AS "confirmed_at: DateTime<Utc>"
               FROM confirmations WHERE tier = ?1 AND version = ?2 ORDER BY id LIMIT 1"#,
            tier,
            version
        )
        .fetch_optional(&self.pool)
        .await?)
    }
    // ---- the decision loop ---------------------------------------------------

    pub async fn insert_rebuild_request(&self, sha: &GitSha, now: DateTime<Utc>) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO rebuild_requests (git_sha, requested_at) VALUES (?1, ?2)",
            sha,
            now
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// Requests still needing a build, oldest first, with how many builds
    /// each has had.
    pub async fn open_rebuilds(&self) -> Result<Vec<OpenRebuild>> {
        Ok(sqlx::query_as!(
            OpenRebuild,
            r#"SELECT r.id AS "id!", r.git_sha AS "git_sha: GitSha",
                      (SELECT COUNT(*) FROM builds b WHERE b.request_id = r.id) AS "builds!: i64",
                      (SELECT MAX(b.finished_at) FROM builds b WHERE b.request_id = r.id)
                          AS "last_ended: DateTime<Utc>",
                      (SELECT b.outcome_json FROM builds b WHERE b.request_id = r.id ORDER BY b.id DESC LIMIT 1)
                          AS "last_outcome: BuildOutcome"
               FROM rebuild_requests r WHERE r.settled_at IS NULL ORDER BY r.id"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks a request as needing no more builds.
    pub async fn settle_rebuild(
        &self,
        id: i64,
        cancelled_by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        Ok(sqlx::query!(
            "UPDATE rebuild_requests SET settled_at = ?1, cancelled_by = ?2
             WHERE id = ?3 AND settled_at IS NULL",
            now,
            cancelled_by,
            id
        )
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// The open request for `sha` (full, or a 7-character prefix), if any.
    pub async fn open_rebuild_for(&self, sha: &GitSha) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM rebuild_requests
               WHERE settled_at IS NULL AND (git_sha = ?1 OR substr(git_sha, 1, 7) = ?1)
               ORDER BY id LIMIT 1"#,
            sha
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_build_for(
        &self,
        request_id: i64,
        sha: &GitSha,
        log_ref: &LogRef,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO builds (git_sha, started_at, log_ref, request_id) VALUES (?1, ?2, ?3, ?4)",
            sha,
            now,
            log_ref,
            request_id
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    /// How build `build_id` used the build cache: whether its base had been
    /// fed, and by which version.
    pub async fn record_build_cache(
        &self,
        build_id: i64,
        warm: bool,
        from: Option<&Version>,
    ) -> Result<()> {
        let warm = i64::from(warm);
        sqlx::query!(
            "UPDATE builds SET warm = ?1, cache_from = ?2 WHERE id = ?3",
            warm,
            from,
            build_id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a build in one transaction: its outcome; the version it made and
    /// that version as the first tier's candidate (unless the tier already
    /// runs or waits for something newer); the request settled unless the
    /// outcome asks for another build. Returns the candidate it replaced.
    pub async fn finish_build_and_register(
        &self,
        build_id: i64,
        request_id: i64,
        outcome: &BuildOutcome,
        registered: Option<(&VersionRecord, Option<&str>, &TierId)>,
        settle: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Version>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE builds SET outcome_json = ?1, finished_at = ?2 WHERE id = ?3",
            outcome,
            now,
            build_id
        )
        .execute(&mut *tx)
        .await?;
        let mut replaced = None;
        if let Some((row, artifact_sha256, first_tier)) = registered {
            sqlx::query!(
                // A version imported from the old daemon has no artifact
                // until this build of its commit keeps one.
                "INSERT INTO versions (version, git_sha, registered_at, artifact, artifact_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (version) DO UPDATE SET git_sha = excluded.git_sha,
                     artifact = excluded.artifact, artifact_sha256 = excluded.artifact_sha256,
                     swept_at = NULL
                 WHERE versions.artifact = ''",
                row.version,
                row.git_sha,
                row.registered_at,
                row.artifact,
                artifact_sha256
            )
            .execute(&mut *tx)
            .await?;
            replaced = offer_candidate(&mut tx, first_tier, &row.version).await?;
        }
        if settle {
            sqlx::query!(
                "UPDATE rebuild_requests SET settled_at = ?1 WHERE id = ?2 AND settled_at IS NULL",
                now,
                request_id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// The latest run of each gate kind of `version` at `tier`, with what
    /// the planner needs: attempt, last evaluation, and a rerun request.
    pub async fn plan_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanRun>> {
        Ok(sqlx::query_as!(
            PlanRun,
            r#"SELECT g.id AS "run_id!: GateRunId", g.gate_kind AS "gate!: GateKind",
                      g.outcome_json AS "outcome: GateStatus", g.attempt AS "attempt!",
                      COALESCE(g.evaluated_at, g.finished_at, g.started_at) AS "evaluated_at!: DateTime<Utc>",
                      (r.gate_run_id IS NOT NULL) AS "rerun_requested!: bool"
               FROM gate_runs g LEFT JOIN rerun_requests r ON r.gate_run_id = g.id
               WHERE g.id IN (SELECT MAX(id) FROM gate_runs WHERE tier = ?1 AND version = ?2 GROUP BY gate_kind)"#,
            tier,
            version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Per node: the latest deploy of `version` at `tier`, and how many there were.
    pub async fn plan_deploys(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanDeploy>> {
        Ok(sqlx::query_as!(
            PlanDeploy,
            r#"WITH reset AS (SELECT COALESCE(MAX(id), 0) AS id FROM deploys
                              WHERE tier = ?1 AND rollback_id IS NOT NULL),
                    mine AS (SELECT * FROM deploys
                             WHERE tier = ?1 AND version = ?2 AND rollback_id IS NULL
                               AND id > (SELECT id FROM reset))
               SELECT d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.finished_at AS "finished_at: DateTime<Utc>",
                      (SELECT COUNT(*) FROM mine c WHERE c.node = d.node) AS "attempts!: i64"
               FROM mine d WHERE d.id IN (SELECT MAX(id) FROM mine GROUP BY node)"#,
            tier,
            version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// When something a blocked gate of `version` at `tier` may wait for last
    /// changed: a confirmation, a fetched backup.
    pub async fn inputs_changed(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<DateTime<Utc>>> {
        let confirmed = sqlx::query_scalar!(
            r#"SELECT MAX(confirmed_at) AS "at: DateTime<Utc>" FROM confirmations WHERE tier = ?1 AND version = ?2"#,
            tier,
            version
        )
        .fetch_one(&self.pool)
        .await?;
        let backup = sqlx::query_scalar!(
            r#"SELECT fetched_at AS "at: DateTime<Utc>" FROM backups ORDER BY id DESC LIMIT 1"#
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(confirmed.max(backup))
    }

    /// Every node of `tier` runs `version`: it becomes current there, its
    /// arrival starts the next tier's burn-in clock, and it is offered to the
    /// next tier, all in one transaction. Returns the next tier's candidate
    /// it replaced.
    pub async fn promote_to(
        &self,
        tier: &TierId,
        version: &Version,
        next: Option<&TierId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Version>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "UPDATE tiers SET current_version = ?1,
                 candidate_version = CASE WHEN candidate_version = ?1 THEN NULL ELSE candidate_version END
             WHERE name = ?2",
            version,
            tier
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT OR IGNORE INTO tier_arrivals (tier, version, at) VALUES (?1, ?2, ?3)",
            tier,
            version,
            now
        )
        .execute(&mut *tx)
        .await?;
        let replaced = match next {
            Some(next) => offer_candidate(&mut tx, next, version).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(replaced)
    }

    /// The sha256 (hex) recorded for a version's artifact when it was kept.
    pub async fn artifact_sha256(&self, version: &Version) -> Result<Option<String>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT artifact_sha256 AS "sha: String" FROM versions WHERE version = ?1"#,
            version
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Clears `tier`'s candidate if it is still `version`.
    pub async fn drop_candidate(&self, tier: &TierId, version: &Version) -> Result<()> {
        sqlx::query!(
            "UPDATE tiers SET candidate_version = NULL WHERE name = ?1 AND candidate_version = ?2",
            tier,
            version
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a deploy before its command runs, durably even across a power
    /// loss (`synchronous = FULL` for this one commit), so a restart knows a
    /// deploy may have half-happened and runs it again.
    pub async fn insert_deploy_durably(
        &self,
        tier: &TierId,
        version: &Version,
        node: &NodeId,
        log_ref: &LogRef,
        rollback: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<DeployId> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        let inserted =
            insert_deploy_on(&mut conn, tier, version, node, log_ref, rollback, now).await;
        // Back to the pool's setting whatever happened above.
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        inserted
    }

    /// Gives a deploy a worker left unfinished its outcome.
    pub async fn finish_deploy_if_in_progress(
        &self,
        id: DeployId,
        outcome: &DeployOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let in_progress = DeployOutcome::InProgress;
        sqlx::query!(
            "UPDATE deploys SET outcome_json = ?1, finished_at = ?2 WHERE id = ?3 AND outcome_json = ?4",
            outcome,
            now,
            id,
            in_progress
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a build a worker left unfinished its outcome.
    pub async fn finish_build_if_running(
        &self,
        id: i64,
        outcome: &BuildOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE builds SET outcome_json = ?1, finished_at = ?2 WHERE id = ?3 AND outcome_json IS NULL",
            outcome,
            now,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// `builds`, newest first, each given the duration of the finished build
/// before it (further down the list).
fn with_previous_durations(mut builds: Vec<BuildSummary>) -> Vec<BuildSummary> {
    let mut before = None;
    for build in builds.iter_mut().rev() {
        build.previous_duration_ms = before;
        if build.duration_ms.is_some() {
            before = build.duration_ms;
        }
    }
    builds
}

/// Makes `version` the candidate of `tier` unless the tier already runs it
/// or something newer, or waits for something newer. Returns the candidate
/// it replaced.
async fn offer_candidate(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tier: &TierId,
    version: &Version,
) -> Result<Option<Version>> {
    let row = sqlx::query!(
        r#"SELECT current_version AS "current: Version", candidate_version AS "candidate: Version"
           FROM tiers WHERE name = ?1"#,
        tier
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.current.as_ref().is_some_and(|c| c >= version)
        || row.candidate.as_ref().is_some_and(|c| c >= version)
    {
        return Ok(None);
    }
    sqlx::query!("UPDATE tiers SET candidate_version = ?1 WHERE name = ?2", version, tier)
        .execute(&mut **tx)
        .await?;
    Ok(row.candidate)
}

/// A deploy's row, `in_progress`, on `conn` (so a caller can set how durably
/// it is committed).
async fn insert_deploy_on(
    conn: &mut sqlx::SqliteConnection,
    tier: &TierId,
    version: &Version,
    node: &NodeId,
    log_ref: &LogRef,
    rollback: Option<i64>,
    now: DateTime<Utc>,
) -> Result<DeployId> {
    let outcome = DeployOutcome::InProgress;
    let id = sqlx::query!(
        "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref, rollback_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        version,
        tier,
        node,
        now,
        outcome,
        log_ref,
        rollback
    )
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    Ok(DeployId::try_from(id).expect("AUTOINCREMENT ids are positive"))
}
