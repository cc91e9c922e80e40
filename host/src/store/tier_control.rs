//! The store's part of holding and reversing a tier: freezes, an admin's override of one, the tier's promotion history, and rollbacks.

use chrono::{DateTime, Utc};

use super::{PlanDeploy, Result, SqliteStore};
use crate::domain::{DeployOutcome, NodeId, RollbackProgress, TierId, Version};

/// A freeze made from the API, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeRecord {
    pub id: i64,
    /// `None`: every tier.
    pub tier: Option<TierId>,
    pub reason: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// An admin's leave for one version to enter a frozen tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRecord {
    pub tier: TierId,
    pub version: Version,
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A rollback of a tier, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRecord {
    pub id: i64,
    pub tier: TierId,
    pub from: Version,
    pub to: Version,
    pub by: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub progress: RollbackProgress,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A rollback to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollback<'a> {
    pub tier: &'a TierId,
    pub from: &'a Version,
    pub to: &'a Version,
    pub by: &'a str,
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

pub(crate) fn progress_text(progress: RollbackProgress) -> &'static str {
    match progress {
        RollbackProgress::Pending => "pending",
        RollbackProgress::Done => "done",
        RollbackProgress::Failed => "failed",
    }
}

/// The column's CHECK allows only the three words.
/// A rollback's row as both stores read it (only the query text is each
/// store's own).
pub(crate) struct RollbackRow {
    pub id: i64,
    pub tier: TierId,
    pub from: Version,
    pub to: Version,
    pub by: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub progress: String,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RollbackRow> for RollbackRecord {
    fn from(r: RollbackRow) -> RollbackRecord {
        RollbackRecord {
            id: r.id,
            tier: r.tier,
            from: r.from,
            to: r.to,
            by: r.by,
            reason: r.reason,
            requested_at: r.requested_at,
            progress: progress_of(&r.progress),
            finished_at: r.finished_at,
        }
    }
}

impl NewRollback<'_> {
    /// The record of this rollback, just inserted as `id`.
    pub(crate) fn pending(&self, id: i64) -> RollbackRecord {
        RollbackRecord {
            id,
            tier: self.tier.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            by: self.by.to_owned(),
            reason: self.reason.to_owned(),
            requested_at: self.at,
            progress: RollbackProgress::Pending,
            finished_at: None,
        }
    }
}

pub(crate) fn progress_of(text: &str) -> RollbackProgress {
    match text {
        "done" => RollbackProgress::Done,
        "failed" => RollbackProgress::Failed,
        _ => RollbackProgress::Pending,
    }
}

impl SqliteStore {
    pub async fn insert_freeze(
        &self,
        tier: Option<&TierId>,
        reason: &str,
        by: &str,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<FreezeRecord> {
        let id = sqlx::query!(
            "INSERT INTO freezes (tier, reason, frozen_by, frozen_at, until) VALUES (?1, ?2, ?3, ?4, ?5)",
            tier,
            reason,
            by,
            now,
            until
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(FreezeRecord {
            id,
            tier: tier.cloned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            at: now,
            until,
        })
    }

    /// Lifts freeze `id` if it is in force; the freeze it lifted.
    pub async fn lift_freeze(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<FreezeRecord>> {
        let lifted = sqlx::query_as!(
            FreezeRecord,
            r#"UPDATE freezes SET lifted_by = ?1, lifted_at = ?2
               WHERE id = ?3 AND lifted_at IS NULL AND (until IS NULL OR until > ?2)
               RETURNING id AS "id!", tier AS "tier: TierId", reason, frozen_by AS by,
                         frozen_at AS "at: DateTime<Utc>", until AS "until: DateTime<Utc>""#,
            by,
            now,
            id
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(lifted)
    }

    /// The freezes made from the API that hold at `now`, oldest first.
    pub async fn freezes_in_force(&self, now: DateTime<Utc>) -> Result<Vec<FreezeRecord>> {
        Ok(sqlx::query_as!(
            FreezeRecord,
            r#"SELECT id AS "id!", tier AS "tier: TierId", reason, frozen_by AS by,
                      frozen_at AS "at: DateTime<Utc>", until AS "until: DateTime<Utc>"
               FROM freezes WHERE lifted_at IS NULL AND (until IS NULL OR until > ?1) ORDER BY id"#,
            now
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records an override; false when `version` already had one at `tier`.
    /// Records an admin's override, replacing the one given before for the
    /// same version and tier (renewed for a freeze begun since).
    pub async fn put_override(&self, entry: &OverrideRecord) -> Result<()> {
        sqlx::query!(
            "INSERT INTO freeze_overrides (tier, version, granted_by, reason, granted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tier, version) DO UPDATE SET granted_by = excluded.granted_by,
                 reason = excluded.reason, granted_at = excluded.granted_at",
            entry.tier,
            entry.version,
            entry.by,
            entry.reason,
            entry.at
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The override for `version` at `tier`, if an admin gave one.
    pub async fn freeze_override(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<OverrideRecord>> {
        Ok(sqlx::query_as!(
            OverrideRecord,
            r#"SELECT tier AS "tier: TierId", version AS "version: Version", granted_by AS by, reason,
                      granted_at AS "at: DateTime<Utc>"
               FROM freeze_overrides WHERE tier = ?1 AND version = ?2"#,
            tier,
            version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The versions promoted to `tier`, newest arrival first.
    pub async fn arrivals(&self, tier: &TierId) -> Result<Vec<(Version, DateTime<Utc>)>> {
        let rows = sqlx::query!(
            r#"SELECT version AS "version: Version", at AS "at: DateTime<Utc>"
               FROM tier_arrivals WHERE tier = ?1 ORDER BY at DESC, rowid DESC"#,
            tier
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.version, r.at)).collect())
    }

    /// Asks for a rollback; `None` when the tier has one pending already,
    /// or `from` is neither its current version nor its candidate any more
    /// (checked in the same statement).
    pub async fn insert_rollback(&self, new: &NewRollback<'_>) -> Result<Option<RollbackRecord>> {
        let pending = progress_text(RollbackProgress::Pending);
        let id = sqlx::query_scalar!(
            r#"INSERT INTO rollbacks (tier, from_version, to_version, requested_by, reason, requested_at, progress)
               SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
               WHERE EXISTS (SELECT 1 FROM tiers WHERE name = ?1 AND (current_version = ?2 OR candidate_version = ?2))
                  OR EXISTS (SELECT 1 FROM rollbacks r
                             WHERE r.id = (SELECT MAX(id) FROM rollbacks WHERE tier = ?1)
                               AND r.progress = 'failed' AND r.from_version = ?2 AND r.to_version = ?3)
               ON CONFLICT (tier) WHERE progress = 'pending' DO NOTHING
               RETURNING id AS "id!""#,
            new.tier,
            new.from,
            new.to,
            new.by,
            new.reason,
            new.at,
            pending
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(|id| new.pending(id)))
    }

    /// Every rollback, oldest first (few: each is an operator's act or a
    /// failed health check).
    pub async fn rollbacks(&self) -> Result<Vec<RollbackRecord>> {
        let rows = sqlx::query_as!(
            RollbackRow,
            r#"SELECT id AS "id!", tier AS "tier: TierId", from_version AS "from: Version",
                      to_version AS "to: Version", requested_by AS by, reason,
                      requested_at AS "requested_at: DateTime<Utc>", progress,
                      finished_at AS "finished_at: DateTime<Utc>"
               FROM rollbacks ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RollbackRecord::from).collect())
    }

    /// The latest deploy of rollback `id` to each node.
    pub async fn rollback_deploys(&self, id: i64) -> Result<Vec<PlanDeploy>> {
        Ok(sqlx::query_as!(
            PlanDeploy,
            r#"SELECT d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.finished_at AS "finished_at: DateTime<Utc>",
                      (SELECT COUNT(*) FROM deploys c WHERE c.rollback_id = d.rollback_id AND c.node = d.node)
                          AS "attempts!: i64"
               FROM deploys d
               WHERE d.id IN (SELECT MAX(id) FROM deploys WHERE rollback_id = ?1 GROUP BY node)"#,
            id
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Settles a pending rollback; when done, `to` is the tier's current
    /// version, in the same transaction.
    pub async fn finish_rollback(
        &self,
        id: i64,
        progress: RollbackProgress,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let text = progress_text(progress);
        let settled = sqlx::query!(
            r#"UPDATE rollbacks SET progress = ?1, finished_at = ?2
               WHERE id = ?3 AND progress = 'pending'
               RETURNING tier AS "tier: TierId", to_version AS "to: Version""#,
            text,
            now,
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = settled
            && progress == RollbackProgress::Done
        {
            sqlx::query!("UPDATE tiers SET current_version = ?1 WHERE name = ?2", row.to, row.tier)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
