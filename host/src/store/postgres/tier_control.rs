//! The PostgreSQL store's part of holding and reversing a tier (as `store/tier_control.rs` is for SQLite).

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::{DeployOutcome, NodeId, RollbackProgress, TierId, Version};
use crate::store::tier_control::{RollbackRow, progress_text};
use crate::store::{FreezeRecord, NewRollback, OverrideRecord, PlanDeploy, Result, RollbackRecord};

impl PgStore {
    pub async fn insert_freeze(
        &self,
        tier: Option<&TierId>,
        reason: &str,
        by: &str,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<FreezeRecord> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO freezes (tier, reason, frozen_by, frozen_at, until) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
            tier as Option<&TierId>,
            reason,
            by,
            now,
            until
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(FreezeRecord {
            id,
            tier: tier.cloned(),
            reason: reason.to_owned(),
            by: by.to_owned(),
            at: now,
            until,
        })
    }

    pub async fn lift_freeze(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<FreezeRecord>> {
        let mut tx = self.write().await?;
        let lifted = sqlx::query_as!(
            FreezeRecord,
            r#"UPDATE freezes SET lifted_by = $1, lifted_at = $2
               WHERE id = $3 AND lifted_at IS NULL AND (until IS NULL OR until > $2)
               RETURNING id, tier AS "tier: TierId", reason, frozen_by AS by, frozen_at AS at, until"#,
            by,
            now,
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(lifted)
    }

    pub async fn freezes_in_force(&self, now: DateTime<Utc>) -> Result<Vec<FreezeRecord>> {
        Ok(sqlx::query_as!(
            FreezeRecord,
            r#"SELECT id, tier AS "tier: TierId", reason, frozen_by AS by, frozen_at AS at, until
               FROM freezes WHERE lifted_at IS NULL AND (until IS NULL OR until > $1) ORDER BY id"#,
            now
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn put_override(&self, entry: &OverrideRecord) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO freeze_overrides (tier, version, granted_by, reason, granted_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tier, version) DO UPDATE SET granted_by = EXCLUDED.granted_by,
                 reason = EXCLUDED.reason, granted_at = EXCLUDED.granted_at",
            &entry.tier as &TierId,
            &entry.version as &Version,
            entry.by,
            entry.reason,
            entry.at
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn freeze_override(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<OverrideRecord>> {
        Ok(sqlx::query_as!(
            OverrideRecord,
            r#"SELECT tier AS "tier: TierId", version AS "version: Version", granted_by AS by, reason,
                      granted_at AS at
               FROM freeze_overrides WHERE tier = $1 AND version = $2"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn arrivals(&self, tier: &TierId) -> Result<Vec<(Version, DateTime<Utc>)>> {
        let rows = sqlx::query!(
            r#"SELECT version AS "version: Version", at FROM tier_arrivals WHERE tier = $1
               ORDER BY at DESC, version DESC"#,
            tier as &TierId
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.version, r.at)).collect())
    }

    pub async fn insert_rollback(&self, new: &NewRollback<'_>) -> Result<Option<RollbackRecord>> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            r#"INSERT INTO rollbacks (tier, from_version, to_version, requested_by, reason, requested_at, progress)
               SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::text
               WHERE EXISTS (SELECT 1 FROM tiers WHERE name = $1 AND (current_version = $2 OR candidate_version = $2))
                  OR EXISTS (SELECT 1 FROM rollbacks r
                             WHERE r.id = (SELECT MAX(id) FROM rollbacks WHERE tier = $1)
                               AND r.progress = 'failed' AND r.from_version = $2 AND r.to_version = $3)
               ON CONFLICT (tier) WHERE progress = 'pending' DO NOTHING
               RETURNING id"#,
            new.tier as &TierId,
            new.from as &Version,
            new.to as &Version,
            new.by,
            new.reason,
            new.at,
            progress_text(RollbackProgress::Pending)
        )
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id.map(|id| new.pending(id)))
    }

    pub async fn rollbacks(&self) -> Result<Vec<RollbackRecord>> {
        let rows = sqlx::query_as!(
            RollbackRow,
            r#"SELECT id, tier AS "tier: TierId", from_version AS "from: Version",
                      to_version AS "to: Version", requested_by AS by, reason, requested_at,
                      progress, finished_at
               FROM rollbacks ORDER BY id ASC"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(RollbackRecord::from).collect())
    }

    pub async fn rollback_deploys(&self, id: i64) -> Result<Vec<PlanDeploy>> {
        Ok(sqlx::query_as!(
            PlanDeploy,
            r#"SELECT d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.finished_at AS "finished_at: DateTime<Utc>",
                      (SELECT COUNT(*) FROM deploys c WHERE c.rollback_id = d.rollback_id AND c.node = d.node)
                          AS "attempts!: i64"
               FROM deploys d
               WHERE d.id IN (SELECT MAX(id) FROM deploys WHERE rollback_id = $1 GROUP BY node)"#,
            id
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn finish_rollback(
        &self,
        id: i64,
        progress: RollbackProgress,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let settled = sqlx::query!(
            r#"UPDATE rollbacks SET progress = $1, finished_at = $2
               WHERE id = $3 AND progress = 'pending'
               RETURNING tier AS "tier: TierId", to_version AS "to: Version""#,
            progress_text(progress),
            now,
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = settled
            && progress == RollbackProgress::Done
        {
            sqlx::query!(
                "UPDATE tiers SET current_version = $1 WHERE name = $2",
                &row.to as &Version,
                &row.tier as &TierId
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
