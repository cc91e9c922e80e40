//! What the store returns for a version and a gate run: its own values, which the API turns into wire bodies (`daemon/bodies.rs`), so a column can change without changing what clients read, and the reverse.

use chrono::{DateTime, Utc};

use crate::domain::{GateKind, GateRunId, GateStatus, GitSha, LogRef, RunState, TierId, Version};

/// A registered version: the commit it was built from and its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub version: Version,
    pub git_sha: GitSha,
    pub registered_at: DateTime<Utc>,
    /// Where the artifact is kept, under the data directory.
    pub artifact: String,
}

/// One gate run: where it ran, its outcome, and the components that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: GateRunId,
    pub tier: TierId,
    pub version: Version,
    pub gate: GateKind,
    pub status: RunState,
    /// `None` while running.
    pub outcome: Option<GateStatus>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log_ref: Option<LogRef>,
    pub component_digest: String,
    pub contract: String,
    pub classifier_digest: Option<String>,
    pub classifier_contract: Option<String>,
    pub fuel: Option<i64>,
    pub peak_memory: Option<i64>,
    pub attempt: i64,
    pub max_attempts: i64,
}

/// A running gate run whose process outlives the daemon (a Slurm job): what
/// a daemon after a crash, or a standby taking over, adopts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunJob {
    pub run_id: GateRunId,
    pub tier: TierId,
    pub version: Version,
    pub gate: GateKind,
    pub attempt: i64,
    pub max_attempts: i64,
    pub log_ref: Option<LogRef>,
    /// The executor's handle for the process.
    pub handle: String,
    /// Which of the run's spawns it is (0 for the first).
    pub spawn: i64,
    /// Where its output starts in the run's log.
    pub log_at: i64,
}

/// One delivery in the notification outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub id: i64,
    /// The `[[notify]]` target's URL.
    pub target: String,
    pub event: String,
    /// What is posted, exactly (the signature is over these bytes).
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    /// Not tried again before.
    pub next_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Which runs a page of history holds (`GET /api/gate-runs`): each filter
/// given must match; `before` is a run id, exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub tier: Option<TierId>,
    pub gate: Option<GateKind>,
    pub version: Option<Version>,
    pub before: Option<i64>,
}

impl RunFilter {
    /// The filters as the columns hold them.
    pub(crate) fn texts(&self) -> (Option<String>, Option<String>, Option<String>) {
        (
            self.tier.as_ref().map(ToString::to_string),
            self.gate.map(|g| g.to_string()),
            self.version.as_ref().map(ToString::to_string),
        )
    }
}
