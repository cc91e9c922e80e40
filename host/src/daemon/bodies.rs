//! The store's records as the API's wire bodies (`sando-wire`): the one place a record becomes what clients read.

use crate::domain::{AuditEntry, GateRunSummary, VersionRow};
use crate::store::{AuditRecord, RunRecord, VersionRecord};

impl From<AuditRecord> for AuditEntry {
    fn from(row: AuditRecord) -> Self {
        AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            target: row.target,
            before: row.before_json,
            after: row.after_json,
        }
    }
}

impl From<RunRecord> for GateRunSummary {
    fn from(run: RunRecord) -> Self {
        GateRunSummary {
            run_id: run.run_id,
            tier: run.tier,
            version: run.version,
            gate: run.gate,
            status: run.status,
            outcome: run.outcome,
            started_at: run.started_at,
            finished_at: run.finished_at,
            log_ref: run.log_ref,
            component_digest: run.component_digest,
            contract: run.contract,
            classifier_digest: run.classifier_digest,
            classifier_contract: run.classifier_contract,
            fuel: run.fuel,
            peak_memory: run.peak_memory,
            attempt: run.attempt,
            max_attempts: run.max_attempts,
        }
    }
}

impl From<VersionRecord> for VersionRow {
    fn from(version: VersionRecord) -> Self {
        VersionRow {
            version: version.version,
            git_sha: version.git_sha,
            registered_at: version.registered_at,
            artifact: version.artifact,
        }
    }
}
