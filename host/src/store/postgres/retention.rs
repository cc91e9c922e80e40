//! Retention's part of the PostgreSQL store: what still has files, what is in use, and marking what a sweep removed, as on SQLite.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::Version;
use crate::store::{BackupAge, Result, VersionAge};

impl PgStore {
    /// Versions whose files a sweep has not removed, oldest first.
    pub async fn versions_with_files(&self) -> Result<Vec<VersionAge>> {
        let rows = sqlx::query!(
            r#"SELECT version AS "version: Version", registered_at
               FROM versions WHERE swept_at IS NULL ORDER BY registered_at, version"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| VersionAge { version: r.version, registered_at: r.registered_at })
            .collect())
    }

    /// Versions something needs now: a tier's current or candidate, or one
    /// with a gate run or a deploy in flight.
    pub async fn versions_in_use(&self) -> Result<HashSet<Version>> {
        let rows = sqlx::query_scalar!(
            r#"SELECT current_version AS "version!: Version" FROM tiers WHERE current_version IS NOT NULL
               UNION SELECT candidate_version FROM tiers WHERE candidate_version IS NOT NULL
               UNION SELECT version FROM gate_runs WHERE status = 'running'
               UNION SELECT version FROM deploys WHERE finished_at IS NULL"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Backups whose file a sweep has not removed, by id.
    pub async fn backups_on_disk(&self) -> Result<Vec<BackupAge>> {
        let rows =
            sqlx::query!("SELECT id, fetched_at FROM backups WHERE removed_at IS NULL ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| BackupAge { id: r.id, fetched_at: r.fetched_at }).collect())
    }

    /// Forgets a version's recorded outputs and transcripts and marks its
    /// files removed, in one transaction.
    pub async fn sweep_version(&self, version: &Version, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "DELETE FROM transcript_outputs WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = $1)",
            version as &Version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM run_transcripts WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = $1)",
            version as &Version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM raw_outputs WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = $1)",
            version as &Version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE versions SET swept_at = $1 WHERE version = $2",
            now,
            version as &Version
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a backup's file removed; its path, if it was still kept.
    pub async fn remove_backup(&self, id: i64, now: DateTime<Utc>) -> Result<Option<String>> {
        let mut tx = self.write().await?;
        let path = sqlx::query_scalar!(
            "UPDATE backups SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL RETURNING path",
            now,
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(path)
    }
}
