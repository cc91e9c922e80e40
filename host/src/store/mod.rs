//! Persistence: one SQLite file (WAL) through sqlx, schema from `migrations/`, every query checked at compile time against it.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod components;

pub use crate::domain::{BackupRow, Confirmation, DeploySummary, GateRunSummary, VersionRow};
use crate::domain::{
    BuildFailure, BuildOutcome, DeployFailure, DeployId, DeployOutcome, GateFailure, GateKind,
    GateRunId, GateStatus, GitSha, LogRef, NodeId, RunState, TierId, Version,
};
pub use components::{RawRun, process_end_text};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database {path}: applying migrations: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierRow {
    pub name: TierId,
    pub current_version: Option<Version>,
    pub candidate_version: Option<Version>,
}

/// Provenance of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCost {
    pub fuel: i64,
    pub peak_memory: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
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
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { path: shown, source })?;
        Ok(Store { pool })
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
    /// a typed outcome. Returns how many gate runs were interrupted.
    pub async fn interrupt_unfinished(&self, now: DateTime<Utc>) -> Result<u64> {
        let interrupted = GateStatus::failed(GateFailure::Interrupted);
        let runs = sqlx::query!(
            "UPDATE gate_runs SET status = 'failed', outcome_json = ?1, finished_at = ?2
             WHERE status = 'running'",
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

    pub async fn insert_build(
        &self,
        sha: &GitSha,
        log_ref: &LogRef,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO builds (git_sha, started_at, log_ref) VALUES (?1, ?2, ?3)",
            sha,
            now,
            log_ref
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
    }

    pub async fn finish_build(
        &self,
        id: i64,
        outcome: &BuildOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query!(
            "UPDATE builds SET outcome_json = ?1, finished_at = ?2 WHERE id = ?3",
            outcome,
            now,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn version(&self, version: &Version) -> Result<Option<VersionRow>> {
        Ok(sqlx::query_as!(
            VersionRow,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE version = ?1"#,
            version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn version_by_sha(&self, sha: &GitSha) -> Result<Option<VersionRow>> {
        Ok(sqlx::query_as!(
            VersionRow,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE git_sha = ?1 OR substr(git_sha, 1, 7) = ?1"#,
            sha
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_version(&self, row: &VersionRow) -> Result<()> {
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
    pub async fn recent_versions(&self, limit: i64) -> Result<Vec<VersionRow>> {
        Ok(sqlx::query_as!(
            VersionRow,
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

    pub async fn set_candidate(&self, tier: &TierId, version: Option<&Version>) -> Result<()> {
        sqlx::query!("UPDATE tiers SET candidate_version = ?1 WHERE name = ?2", version, tier)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The version is now running on the tier: it becomes current, stops
    /// being the candidate, and its arrival starts the next tier's burn-in clock.
    pub async fn promote(
        &self,
        tier: &TierId,
        version: &Version,
        now: DateTime<Utc>,
    ) -> Result<()> {
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
        tx.commit().await?;
        Ok(())
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
        component_digest: &str,
        contract: &str,
        now: DateTime<Utc>,
        log_ref: impl FnOnce(GateRunId) -> LogRef,
    ) -> Result<(GateRunId, LogRef)> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query!(
            "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
            version,
            tier,
            gate,
            now,
            component_digest,
            contract
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
    ) -> Result<()> {
        let label = status.label();
        sqlx::query!(
            "UPDATE gate_runs SET status = ?1, outcome_json = ?2, finished_at = ?3, fuel = ?4, peak_memory = ?5
             WHERE id = ?6",
            label,
            status,
            now,
            cost.fuel,
            cost.peak_memory,
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn gate_run(&self, id: GateRunId) -> Result<Option<GateRunSummary>> {
        Ok(sqlx::query_as!(
            GateRunSummary,
            r#"SELECT id AS "run_id: GateRunId", tier AS "tier: TierId", version AS "version: Version",
                      gate_kind AS "gate: GateKind", status AS "status: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest, contract, fuel, peak_memory
               FROM gate_runs WHERE id = ?1"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The latest run of each gate kind of `version` at `tier`.
    pub async fn latest_runs(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Vec<GateRunSummary>> {
        Ok(sqlx::query_as!(
            GateRunSummary,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", fuel, peak_memory
               FROM gate_runs
               WHERE id IN (SELECT MAX(id) FROM gate_runs WHERE tier = ?1 AND version = ?2 GROUP BY gate_kind)
               ORDER BY id"#,
            tier,
            version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest run of a gate kind for a version, at any tier (for `/logs`).
    pub async fn latest_run_of(
        &self,
        version: &Version,
        gate: GateKind,
    ) -> Result<Option<GateRunSummary>> {
        Ok(sqlx::query_as!(
            GateRunSummary,
            r#"SELECT id AS "run_id: GateRunId", tier AS "tier: TierId", version AS "version: Version",
                      gate_kind AS "gate: GateKind", status AS "status: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest, contract, fuel, peak_memory
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
        let outcome = DeployOutcome::InProgress;
        let id = sqlx::query!(
            "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            version,
            tier,
            node,
            now,
            outcome,
            log_ref
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(DeployId::try_from(id).expect("AUTOINCREMENT ids are positive"))
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

    pub async fn latest_deploy(
        &self,
        tier: &TierId,
        version: &Version,
        node: &NodeId,
    ) -> Result<Option<DeploySummary>> {
        Ok(sqlx::query_as!(
            DeploySummary,
            r#"SELECT id AS "deploy_id: DeployId", tier AS "tier: TierId", version AS "version: Version",
                      node AS "node: NodeId", outcome_json AS "outcome: DeployOutcome",
                      started_at AS "started_at: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef"
               FROM deploys WHERE tier = ?1 AND version = ?2 AND node = ?3 ORDER BY id DESC LIMIT 1"#,
            tier,
            version,
            node
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn recent_deploys(&self, limit: i64) -> Result<Vec<DeploySummary>> {
        Ok(sqlx::query_as!(
            DeploySummary,
            r#"SELECT id AS "deploy_id: DeployId", tier AS "tier: TierId", version AS "version: Version",
                      node AS "node: NodeId", outcome_json AS "outcome: DeployOutcome",
                      started_at AS "started_at: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef"
               FROM deploys ORDER BY id DESC LIMIT ?1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn insert_backup(&self, source: &str, path: &str, now: DateTime<Utc>) -> Result<i64> {
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
            r#"SELECT id AS "id!", source, path, fetched_at AS "fetched_at: DateTime<Utc>"
               FROM backups ORDER BY id DESC LIMIT 1"#
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_confirmation(
        &self,
        run: &GateRunSummary,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query!(
            "INSERT INTO confirmations (gate_run_id, version, tier, confirmed_by, confirmed_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            run.run_id,
            run.version,
            run.tier,
            by,
            now
        )
        .execute(&self.pool)
        .await?;
        Ok(())
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

    pub async fn rerun_requested(&self, run: GateRunId) -> Result<bool> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM rerun_requests WHERE gate_run_id = ?1"#,
            run
        )
        .fetch_one(&self.pool)
        .await?
            > 0)
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
}
