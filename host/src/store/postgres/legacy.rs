//! `sando import-legacy`'s part of the PostgreSQL store: an old daemon's history, already typed, written in one transaction that either lands whole or not at all, as on SQLite.

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::{
    BackupSource, DeployOutcome, GateKind, GateRunId, GateStatus, GitSha, IMPORTED_RUN, LogRef,
    NodeId, TierId, Version,
};
use crate::store::{Imported, LegacyHistory, LegacySource, Result};

impl PgStore {
    /// Writes `history` in one transaction, committed only when `commit`.
    /// Ids of runs, deploys and backups are kept; a target that already uses
    /// one, or already holds one of the versions, refuses the import.
    ///
    /// The report is `jsonb` here: an earlier import's comes back as
    /// PostgreSQL writes it (the same value, keys in its order and spacing).
    pub async fn import_legacy(
        &self,
        history: &LegacyHistory,
        source: &LegacySource<'_>,
        now: DateTime<Utc>,
        commit: bool,
    ) -> Result<Imported> {
        let mut tx = self.write().await?;
        // Two imports at once (several daemons share one database) take
        // turns: the second finds the first's row and changes nothing.
        sqlx::query!("LOCK TABLE legacy_imports IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        if let Some(done) = sqlx::query!(
            r#"SELECT imported_at, report_json::text AS "report_json!"
               FROM legacy_imports WHERE source_sha256 = $1"#,
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

        let import_id = sqlx::query_scalar!(
            "INSERT INTO legacy_imports (source_path, source_sha256, imported_at, report_json)
             VALUES ($1, $2, $3, $4::text::jsonb) RETURNING id",
            source.path,
            source.sha256,
            now,
            source.report_json
        )
        .fetch_one(&mut *tx)
        .await?;
        for v in &history.versions {
            sqlx::query!(
                // No files here: retention has nothing of it to sweep.
                "INSERT INTO versions (version, git_sha, registered_at, artifact, imported_from, swept_at)
                 VALUES ($1, $2, $3, '', $4, $5)",
                &v.version as &Version,
                &v.git_sha as &GitSha,
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
                "INSERT INTO tiers (name, position) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &tier.name as &TierId,
                tier.position
            )
            .execute(&mut *tx)
            .await?;
            let Some(current) = &tier.current else { continue };
            sqlx::query!(
                "UPDATE tiers SET current_version = $1 WHERE name = $2 AND current_version IS NULL",
                current as &Version,
                &tier.name as &TierId
            )
            .execute(&mut *tx)
            .await?;
            if let Some(at) = tier.arrived_at {
                sqlx::query!(
                    "INSERT INTO tier_arrivals (tier, version, at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &tier.name as &TierId,
                    current as &Version,
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
                &run.id as &GateRunId,
                &run.version as &Version,
                &run.tier as &TierId,
                &run.gate as &GateKind,
                run.started_at,
                run.finished_at,
                status,
                &run.status as &GateStatus,
                &run.log_ref as &Option<LogRef>,
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                d.id,
                &d.version as &Version,
                &d.tier as &TierId,
                &d.node as &NodeId,
                d.started_at,
                d.finished_at,
                &d.outcome as &DeployOutcome,
                &d.log_ref as &LogRef,
                d.error
            )
            .execute(&mut *tx)
            .await?;
        }
        for b in &history.backups {
            let removed_at = b.file_missing.then_some(now);
            sqlx::query!(
                "INSERT INTO backups (id, source, path, fetched_at, removed_at)
                 VALUES ($1, $2, $3, $4, $5)",
                b.id,
                &b.source as &BackupSource,
                b.path,
                b.fetched_at,
                removed_at
            )
            .execute(&mut *tx)
            .await?;
        }
        if commit {
            move_sequences_past_kept_ids(&mut tx).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(Imported::Done)
    }
}

/// Kept ids went in past the identity sequences: moves each past the
/// table's largest id, so the next run, deploy or backup gets a free one
/// (SQLite's AUTOINCREMENT does this by itself). Never moves one back.
/// Sequences are not transactional, so a dry run, rolled back, leaves
/// them alone.
async fn move_sequences_past_kept_ids(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('gate_runs', 'id'),
             GREATEST((SELECT max(id) FROM gate_runs),
                      pg_sequence_last_value(pg_get_serial_sequence('gate_runs', 'id'))))"
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('deploys', 'id'),
             GREATEST((SELECT max(id) FROM deploys),
                      pg_sequence_last_value(pg_get_serial_sequence('deploys', 'id'))))"
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query_scalar!(
        "SELECT setval(pg_get_serial_sequence('backups', 'id'),
             GREATEST((SELECT max(id) FROM backups),
                      pg_sequence_last_value(pg_get_serial_sequence('backups', 'id'))))"
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(())
}

/// The first thing in the target the history would collide with.
async fn collision(tx: &mut sqlx::PgConnection, history: &LegacyHistory) -> Result<Option<String>> {
    for v in &history.versions {
        let held = sqlx::query_scalar!(
            r#"SELECT version AS "version: Version" FROM versions
               WHERE version = $1 OR git_sha = $2"#,
            &v.version as &Version,
            &v.git_sha as &GitSha
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
        let used =
            sqlx::query_scalar!("SELECT id FROM gate_runs WHERE id = $1", &run.id as &GateRunId)
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
        let used = sqlx::query_scalar!("SELECT id FROM deploys WHERE id = $1", d.id)
            .fetch_optional(&mut *tx)
            .await?;
        if used.is_some() {
            return Ok(Some(format!("deploys: id {} is already used in the database", d.id)));
        }
    }
    for b in &history.backups {
        let used = sqlx::query_scalar!("SELECT id FROM backups WHERE id = $1", b.id)
            .fetch_optional(&mut *tx)
            .await?;
        if used.is_some() {
            return Ok(Some(format!("backups: id {} is already used in the database", b.id)));
        }
    }
    Ok(None)
}
