//! The store's part of operating as a team: approvals bound to their evidence, rejections, and the append-only audit trail.

use chrono::{DateTime, Utc};

use super::{Result, RunRecord, SqliteStore};
use crate::domain::{GateRunId, GateStatus, TierId, Version};

/// One approval (a confirmation) as kept: who, when, on what evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub by: String,
    pub at: DateTime<Utc>,
    /// The evidence digest it was given on; `None` before approval policies.
    pub evidence: Option<String>,
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
}

/// An act to append to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit<'a> {
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl SqliteStore {
    pub async fn insert_confirmation(
        &self,
        run: &RunRecord,
        by: &str,
        evidence: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query!(
            "INSERT INTO confirmations (gate_run_id, version, tier, confirmed_by, confirmed_at, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            run.run_id,
            run.version,
            run.tier,
            by,
            now,
            evidence
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every approval of `version` at `tier`, oldest first.
    pub async fn approvals(&self, tier: &TierId, version: &Version) -> Result<Vec<ApprovalRecord>> {
        Ok(sqlx::query_as!(
            ApprovalRecord,
            r#"SELECT confirmed_by AS by, confirmed_at AS "at: DateTime<Utc>", evidence
               FROM confirmations WHERE tier = ?1 AND version = ?2 ORDER BY id"#,
            tier,
            version
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
        Ok(sqlx::query!(
            "UPDATE gate_runs SET status = ?1, outcome_json = ?2, finished_at = ?3, evaluated_at = ?3
             WHERE id = ?4 AND status = 'blocked'",
            label,
            status,
            now,
            id
        )
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    pub async fn append_audit(&self, entry: &NewAudit<'_>) -> Result<i64> {
        Ok(sqlx::query!(
            "INSERT INTO audit (at, actor, action, target, before_json, after_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            entry.before,
            entry.after
        )
        .execute(&self.pool)
        .await?
        .last_insert_rowid())
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
            r#"SELECT id AS "id!", at AS "at: DateTime<Utc>", actor, action, target, before_json, after_json
               FROM audit WHERE id > ?1 AND (?2 IS NULL OR at >= ?2) ORDER BY id LIMIT ?3"#,
            after,
            since,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
