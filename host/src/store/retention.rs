//! The store's part of retention: what still has files, what is in use, and marking what a sweep removed.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{Result, SqliteStore};
use crate::domain::Version;

/// A version whose files are still kept, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionAge {
    pub version: Version,
    pub registered_at: DateTime<Utc>,
}

/// A backup whose file is still kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupAge {
    pub id: i64,
    pub fetched_at: DateTime<Utc>,
}

impl SqliteStore {
    /// Versions whose files a sweep has not removed.
    pub async fn versions_with_files(&self) -> Result<Vec<VersionAge>> {
        let rows = sqlx::query!(
            r#"SELECT version AS "version!: Version", registered_at AS "registered_at!: DateTime<Utc>"
               FROM versions WHERE swept_at IS NULL"#
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
        let rows = sqlx::query!(
            r#"SELECT current_version AS "version: Version" FROM tiers
               UNION SELECT candidate_version FROM tiers
               UNION SELECT version FROM gate_runs WHERE status = 'running'
               UNION SELECT version FROM deploys WHERE finished_at IS NULL"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(|r| r.version).collect())
    }

    /// Backups whose file a sweep has not removed.
    pub async fn backups_on_disk(&self) -> Result<Vec<BackupAge>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id!", fetched_at AS "fetched_at!: DateTime<Utc>"
               FROM backups WHERE removed_at IS NULL"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| BackupAge { id: r.id, fetched_at: r.fetched_at }).collect())
    }

    /// Forgets a version's recorded outputs and transcripts and marks its
    /// files removed, in one transaction.
    pub async fn sweep_version(&self, version: &Version, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "DELETE FROM transcript_outputs WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = ?1)",
            version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM run_transcripts WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = ?1)",
            version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM raw_outputs WHERE gate_run_id IN (SELECT id FROM gate_runs WHERE version = ?1)",
            version
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("UPDATE versions SET swept_at = ?1 WHERE version = ?2", now, version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a backup's file removed; its path, if it was still kept.
    pub async fn remove_backup(&self, id: i64, now: DateTime<Utc>) -> Result<Option<String>> {
        let row = sqlx::query!(
            "UPDATE backups SET removed_at = ?1 WHERE id = ?2 AND removed_at IS NULL RETURNING path",
            now,
            id
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.path))
    }
}
