//! The PostgreSQL store's part of operating as a team: approvals bound to their evidence, rejections, and the append-only audit trail (as `store/audit.rs` is for SQLite).

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::{GateRunId, GateStatus, TierId, Version};
use crate::store::{ApprovalRecord, AuditRecord, NewAudit, Result, RunRecord};

impl PgStore {
    pub async fn insert_confirmation(
        &self,
        run: &RunRecord,
        by: &str,
        evidence: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO confirmations (gate_run_id, version, tier, confirmed_by, confirmed_at, evidence)
             VALUES ($1, $2, $3, $4, $5, $6)",
            run.run_id as GateRunId,
            &run.version as &Version,
            &run.tier as &TierId,
            by,
            now,
            evidence
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every approval of `version` at `tier`, oldest first.
    pub async fn approvals(&self, tier: &TierId, version: &Version) -> Result<Vec<ApprovalRecord>> {
        Ok(sqlx::query_as!(
            ApprovalRecord,
            r#"SELECT confirmed_by AS by, confirmed_at AS at, evidence
               FROM confirmations WHERE tier = $1 AND version = $2 ORDER BY id"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends a blocked run with `status` (a rejection); false if it is no
    /// longer blocked.
    pub async fn end_blocked_run(
        &self,
        id: GateRunId,
        status: &GateStatus,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let label = status.label();
        let mut tx = self.write().await?;
        let ended = sqlx::query!(
            "UPDATE gate_runs SET status = $1, outcome_json = $2, finished_at = $3, evaluated_at = $3
             WHERE id = $4 AND status = 'blocked'",
            label,
            status as &GateStatus,
            now,
            id as GateRunId
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn append_audit(&self, entry: &NewAudit<'_>) -> Result<i64> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO audit (at, actor, action, target, before_json, after_json)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            entry.before,
            entry.after
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Up to `limit` rows after the row `after`, at or after `since`, oldest first.
    pub async fn audit_page(
        &self,
        after: i64,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        Ok(sqlx::query_as!(
            AuditRecord,
            r#"SELECT id, at, actor, action, target, before_json, after_json
               FROM audit WHERE id > $1 AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY id LIMIT $3"#,
            after,
            since,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
