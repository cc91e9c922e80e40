//! The store's part of `sando import-legacy`: writing an old daemon's history, already typed, in one transaction that either lands whole or not at all.

use chrono::{DateTime, Utc};

use super::{Result, SqliteStore};
use crate::domain::{
    BackupSource, DeployOutcome, GateKind, GateRunId, GateStatus, GitSha, IMPORTED_RUN, LogRef,
    NodeId, TierId, Version,
};

/// An old daemon's history, every value typed.
#[derive(Debug, Default)]
pub struct LegacyHistory {
    pub versions: Vec<LegacyVersion>,
    pub tiers: Vec<LegacyTier>,
    pub gate_runs: Vec<LegacyRun>,
    pub deploys: Vec<LegacyDeploy>,
    pub backups: Vec<LegacyBackup>,
}

#[derive(Debug)]
pub struct LegacyVersion {
    pub version: Version,
    pub git_sha: GitSha,
    pub registered_at: DateTime<Utc>,
}

/// A tier and what it ran: its current version and when that arrived.
#[derive(Debug)]
pub struct LegacyTier {
    pub name: TierId,
    pub position: i64,
    pub current: Option<Version>,
    pub arrived_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct LegacyRun {
    pub id: GateRunId,
    pub version: Version,
    pub tier: TierId,
    pub gate: GateKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: GateStatus,
    pub log_ref: Option<LogRef>,
    pub detail: Option<String>,
}

#[derive(Debug)]
pub struct LegacyDeploy {
    pub id: i64,
    pub version: Version,
    pub tier: TierId,
    pub node: NodeId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: DeployOutcome,
    pub error: Option<String>,
    pub log_ref: LogRef,
}

#[derive(Debug)]
pub struct LegacyBackup {
    pub id: i64,
    pub source: BackupSource,
    pub path: String,
    pub fetched_at: DateTime<Utc>,
    /// Its file is not on this machine: the row is history, never used.
    pub file_missing: bool,
}

/// The old file that was imported, and what its import reported.
#[derive(Debug)]
pub struct LegacySource<'a> {
    pub path: &'a str,
    pub sha256: &'a str,
    pub report_json: &'a str,
}

/// How an import ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Imported {
    /// Written (or, for a dry run, written and rolled back).
    Done,
    /// This very file was imported before: nothing changed. Its report.
    Already { imported_at: DateTime<Utc>, report_json: String },
    /// The target holds something the history would collide with.
    Refused(String),
}

impl SqliteStore {
    /// Writes `history` in one transaction, committed only when `commit`.
    /// Ids of runs, deploys and backups are kept; a target that already uses
    /// one, or already holds one of the versions, refuses the import.
    pub async fn import_legacy(
        &self,
        history: &LegacyHistory,
        source: &LegacySource<'_>,
        now: DateTime<Utc>,
        commit: bool,
    ) -> Result<Imported> {
        let mut tx = self.pool.begin().await?;
        if let Some(done) = sqlx::query!(
            r#"SELECT imported_at AS "imported_at!: DateTime<Utc>", report_json
               FROM legacy_imports WHERE source_sha256 = ?1"#,
            source.sha256
        )
        .fetch_optional(&mut *tx)
        .await?
        {
            return Ok(Imported::Already {
                imported_at: done.imported_at,
                report_json: done.report_json,
            });
        }
        if let Some(refusal) = collision(&mut tx, history).await? {
            return Ok(Imported::Refused(refusal));
        }

        let import_id = sqlx::query!(
            "INSERT INTO legacy_imports (source_path, source_sha256, imported_at, report_json)
             VALUES (?1, ?2, ?3, ?4)",
            source.path,
            source.sha256,
            now,
            source.report_json
        )
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        for v in &history.versions {
            sqlx::query!(
                // No files here: retention has nothing of it to sweep.
                "INSERT INTO versions (version, git_sha, registered_at, artifact, imported_from, swept_at)
                 VALUES (?1, ?2, ?3, '', ?4, ?5)",
                v.version,
                v.git_sha,
                v.registered_at,
                import_id,
                now
            )
            .execute(&mut *tx)
            .await?;
        }
        for tier in &history.tiers {
            // A tier the config dropped keeps its history, after the rest.
            sqlx::query!(
                "INSERT INTO tiers (name, position) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                tier.name,
                tier.position
            )
            .execute(&mut *tx)
            .await?;
            let Some(current) = &tier.current else { continue };
            sqlx::query!(
                "UPDATE tiers SET current_version = ?1 WHERE name = ?2 AND current_version IS NULL",
                current,
                tier.name
            )
            .execute(&mut *tx)
            .await?;
            if let Some(at) = tier.arrived_at {
                sqlx::query!(
                    "INSERT OR IGNORE INTO tier_arrivals (tier, version, at) VALUES (?1, ?2, ?3)",
                    tier.name,
                    current,
                    at
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        for run in &history.gate_runs {
            let status = run.status.label();
            sqlx::query!(
                "INSERT INTO gate_runs (id, version, tier, gate_kind, started_at, finished_at,
                     status, outcome_json, log_ref, component_digest, contract, legacy_detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
                run.id,
                run.version,
                run.tier,
                run.gate,
                run.started_at,
                run.finished_at,
                status,
                run.status,
                run.log_ref,
                IMPORTED_RUN,
                run.detail
            )
            .execute(&mut *tx)
            .await?;
        }
        for d in &history.deploys {
            sqlx::query!(
                "INSERT INTO deploys (id, version, tier, node, started_at, finished_at,
                     outcome_json, log_ref, legacy_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                d.id,
                d.version,
                d.tier,
                d.node,
                d.started_at,
                d.finished_at,
                d.outcome,
                d.log_ref,
                d.error
            )
            .execute(&mut *tx)
            .await?;
        }
        for b in &history.backups {
            let removed_at = b.file_missing.then_some(now);
            sqlx::query!(
                "INSERT INTO backups (id, source, path, fetched_at, removed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                b.id,
                b.source,
                b.path,
                b.fetched_at,
                removed_at
            )
            .execute(&mut *tx)
            .await?;
        }
        if commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(Imported::Done)
    }
}

/// The first thing in the target the history would collide with.
async fn collision(
    tx: &mut sqlx::SqliteConnection,
    history: &LegacyHistory,
) -> Result<Option<String>> {
    for v in &history.versions {
        let held = sqlx::query_scalar!(
            r#"SELECT version AS "version!: Version" FROM versions
               WHERE version = ?1 OR git_sha = ?2"#,
            v.version,
            v.git_sha
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(held) = held {
            return Ok(Some(format!(
                "versions: {} (commit {}) is already in the database as {held}; import into a data directory that does not hold the old daemon's versions",
                v.version, v.git_sha
            )));
        }
    }
    for run in &history.gate_runs {
        let used = sqlx::query_scalar!("SELECT id FROM gate_runs WHERE id = ?1", run.id)
            .fetch_optional(&mut *tx)
            .await?;
        if used.is_some() {
            return Ok(Some(format!(
                "gate_runs: id {} is already used in the database; old run ids are kept, so import before this daemon runs its first gate",
                run.id
            )));
        }
    }
    for d in &history.deploys {
        let used = sqlx::query_scalar!("SELECT id FROM deploys WHERE id = ?1", d.id)
            .fetch_optional(&mut *tx)
            .await?;
        if used.is_some() {
            return Ok(Some(format!("deploys: id {} is already used in the database", d.id)));
        }
    }
    for b in &history.backups {
        let used = sqlx::query_scalar!("SELECT id FROM backups WHERE id = ?1", b.id)
            .fetch_optional(&mut *tx)
            .await?;
        if used.is_some() {
            return Ok(Some(format!("backups: id {} is already used in the database", b.id)));
        }
    }
    Ok(None)
}
