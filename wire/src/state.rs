//! HTTP bodies of BRIEF.md contract 6: `/api/state` and the action requests and answers.
//!
//! Responses accept unknown fields, so an older client keeps working against
//! a newer daemon; requests refuse them, so a typo is an error, not a no-op.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    DeployId, DeployOutcome, GateKind, GateRunId, GateStatus, GitSha, LogRef, NodeId, ParseError,
    TierId, Version,
};

/// `GET /api/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    /// In promotion order.
    pub tiers: Vec<TierState>,
    /// Newest first.
    pub versions: Vec<VersionRow>,
    /// Newest first.
    pub deploys: Vec<DeploySummary>,
    /// Updated components waiting for an operator (absent from daemons before it).
    #[serde(default)]
    pub pending_components: Vec<ComponentRecord>,
    /// The decision loop's health (absent from daemons before it).
    #[serde(default)]
    pub scheduler: Option<SchedulerState>,
    /// What an operator must know about how the daemon runs (e.g. code
    /// under test not sandboxed).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Recent builds, newest first (absent from daemons before it).
    #[serde(default)]
    pub builds: Vec<BuildSummary>,
    /// Who leads the daemons sharing a PostgreSQL store; absent when the
    /// store has one daemon (SQLite), and from daemons before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderState>,
}

/// The leading daemon: the one that plans, runs gates, deploys and sweeps;
/// the others serve reads and send writes to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderState {
    /// Raised by each takeover; every write the leader makes carries it.
    pub epoch: i64,
    /// The leading daemon: host and process id.
    pub holder: String,
    pub url: String,
    pub since: DateTime<Utc>,
    /// Whether the daemon that answered is the leader.
    pub this_daemon: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierState {
    pub name: TierId,
    pub canary: Canary,
    pub current_version: Option<Version>,
    /// The version whose gates run at this tier now, if any.
    pub candidate_version: Option<Version>,
    /// The tier's gates, in the order they run (absent from daemons before it).
    #[serde(default)]
    pub pipeline: Vec<GateKind>,
    /// The latest run of each gate for the candidate (else the current version).
    pub gates: Vec<GateRunSummary>,
    /// Who confirmed that version here, if anyone has.
    pub confirmation: Option<Confirmation>,
    /// For each gate in `gates`, its latest finished run here for another
    /// version: how long that took, to set beside this one's (absent from
    /// daemons before it).
    #[serde(default)]
    pub previous_runs: Vec<PreviousRun>,
    /// The tier's approval policy and the approvals given for that version
    /// (absent where the tier has no policy, and from daemons before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalState>,
    /// The freeze in force on this tier, if any (absent from daemons before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<crate::FreezeState>,
    /// Why the candidate, its gates passed, does not deploy yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_blocked: Option<crate::PromotionBlocker>,
    /// The version an admin let into the frozen tier, until it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_version: Option<Version>,
    /// Where `POST /api/tiers/{tier}/rollback` without `to` would go: the
    /// version current before this one, its artifact kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<Version>,
    /// The tier's latest rollback, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::RollbackState>,
}

/// Where a version stands against its tier's approval policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// Approvals that count: given on the evidence as it is now.
    pub have: u32,
    pub need: u32,
    /// Who may approve; empty: any operator.
    pub from: Vec<String>,
    pub forbid_author: bool,
    /// Every approval given, oldest first, voided ones too.
    pub approvals: Vec<Approval>,
}

/// One operator's approval of a version at a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub at: DateTime<Utc>,
    /// Given on evidence that has changed since (a rerun, a reclassification):
    /// it no longer counts.
    pub voided: bool,
}

impl std::fmt::Display for ApprovalState {
    /// `1 of 2: alice` (voided approvals are not named).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.have, self.need)?;
        let counting: Vec<&str> =
            self.approvals.iter().filter(|a| !a.voided).map(|a| a.by.as_str()).collect();
        if !counting.is_empty() {
            write!(f, ": {}", counting.join(", "))?;
        }
        Ok(())
    }
}

/// `POST /api/retention/sweep` (what `sando gc` prints): what went, or with
/// `dry_run` what would go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepResponse {
    pub dry_run: bool,
    /// Versions whose work tree, artifact and logs went.
    pub versions: Vec<Version>,
    /// Backups whose file went.
    pub backups: Vec<i64>,
    /// Compiled units of the shared build cache, oldest first, removed to
    /// bring it under `cache_max_mib` (absent from daemons before it).
    #[serde(default)]
    pub cache_units: Vec<String>,
    #[serde(default)]
    pub cache_bytes: u64,
}

/// A gate's latest finished run for the version before, for comparing durations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousRun {
    pub gate: GateKind,
    pub version: Version,
    pub run_id: GateRunId,
    pub duration_ms: i64,
}

/// A build in `/api/state`, newest first, with the previous build's
/// duration beside its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSummary {
    pub build_id: i64,
    pub git_sha: GitSha,
    /// `null` while building.
    pub outcome: Option<crate::BuildOutcome>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// How long the finished build before it took.
    pub previous_duration_ms: Option<i64>,
    /// Whether it built on a build cache some version had fed (`false`: on
    /// an empty one); `null` when it ran without the cache.
    #[serde(default)]
    pub warm: Option<bool>,
    /// The version that last fed the build cache's base it built on.
    #[serde(default)]
    pub cache_from: Option<Version>,
}

/// How a tier deploys to its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Canary {
    /// Deploy to every node, in order, stopping at the first failure.
    AllAtOnce,
    /// Deploy to the first node; only if it is healthy, to the rest.
    OneThenRest,
}

impl Canary {
    pub fn as_str(self) -> &'static str {
        match self {
            Canary::AllAtOnce => "all_at_once",
            Canary::OneThenRest => "one_then_rest",
        }
    }
}

/// Where a gate run is: still running, or the label of its `GateStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Passed,
    Failed,
    Blocked,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
            RunState::Blocked => "blocked",
        }
    }

    pub fn of(status: &GateStatus) -> Self {
        match status {
            GateStatus::Passed { .. } => RunState::Passed,
            GateStatus::Failed { .. } => RunState::Failed,
            GateStatus::Blocked { .. } => RunState::Blocked,
        }
    }
}

impl FromStr for RunState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "running" => RunState::Running,
            "passed" => RunState::Passed,
            "failed" => RunState::Failed,
            "blocked" => RunState::Blocked,
            _ => {
                return Err(ParseError::new(
                    "run state",
                    s,
                    "expected running, passed, failed or blocked",
                ));
            }
        })
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest (or one) run of a gate: contract 6's GateRunSummary, plus the
/// provenance of the component that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRunSummary {
    pub run_id: GateRunId,
    pub tier: TierId,
    pub version: Version,
    pub gate: GateKind,
    pub status: RunState,
    /// Contract 1's GateStatus; `null` while running.
    pub outcome: Option<GateStatus>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log_ref: Option<LogRef>,
    /// sha256 of the component that ran, hex: the runner.
    pub component_digest: String,
    /// The `sando:gate` contract version the component was built against.
    pub contract: String,
    /// sha256 of the classifier in service for the run (absent from runs
    /// before contract 0.2, whose component was also their classifier).
    #[serde(default)]
    pub classifier_digest: Option<String>,
    #[serde(default)]
    pub classifier_contract: Option<String>,
    pub fuel: Option<i64>,
    pub peak_memory: Option<i64>,
    /// Which attempt this run is (1 for the first), and how many the gate's
    /// retry policy allows (absent from daemons before retries: 1 of 1).
    #[serde(default = "one")]
    pub attempt: i64,
    #[serde(default = "one")]
    pub max_attempts: i64,
}

/// The `component_digest` and `contract` of a run imported from the old
/// daemon (`sando import-legacy`): no component decided it.
pub const IMPORTED_RUN: &str = "legacy";

fn one() -> i64 {
    1
}

/// What the decision loop is doing: whether it is alive, and each worker's task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// False once the coordinator has stopped: nothing is built, gated or
    /// deployed any more, and the daemon must be restarted.
    pub alive: bool,
    /// When the coordinator last planned.
    pub planned_at: Option<DateTime<Utc>>,
    /// The build worker and one worker per tier, with what each is doing.
    pub workers: Vec<WorkerState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    /// `build`, or `tier:<name>`.
    pub name: String,
    /// What it is doing, in words (`cargo_test for 0.2.0 (run 12)`), or `None` when idle.
    pub doing: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploySummary {
    pub deploy_id: DeployId,
    pub tier: TierId,
    pub version: Version,
    pub node: NodeId,
    pub outcome: DeployOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub log_ref: LogRef,
    /// Set when this deploy was part of a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::RollbackOf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRow {
    pub version: Version,
    pub git_sha: GitSha,
    pub registered_at: DateTime<Utc>,
    pub artifact: String,
}

/// `POST /api/backup/fetch`'s answer: the backup now used for migration dry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRow {
    pub id: i64,
    pub source: crate::BackupSource,
    pub path: String,
    pub fetched_at: DateTime<Utc>,
}

/// `POST /api/rebuild`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    pub sha: GitSha,
}

/// `POST /api/gate-runs/{id}/confirm`; the body is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// Ignored: the confirmation is recorded as the token's operator's.
    /// Kept so older clients' bodies still parse.
    pub by: Option<String>,
}

/// An operator's confirmation of a `manual_confirm` gate; also the answer
/// to `POST /api/gate-runs/{id}/confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub run_id: GateRunId,
    pub confirmed_by: String,
    pub confirmed_at: DateTime<Utc>,
}

/// `POST /api/gate-runs/{id}/reject`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why: one line for whoever reads the outcome (at most 1 KiB).
    pub reason: String,
}

/// One act of a person, as `GET /api/audit` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing: the cursor `?since=` takes.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The operator whose token made the request.
    pub actor: String,
    /// `approve`, `reject`, `rerun`, `cancel_run`, `cancel_build`, ...
    pub action: String,
    /// What it was done to: `gate_run 12`, `build 1a2b3c4`, `gate cargo_test`.
    pub target: String,
    /// The state before and after, as JSON text.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// `GET /api/audit`: a page of the trail, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `?since=` for the next page; absent on the last.
    pub next: Option<i64>,
}

/// `POST /api/gate-runs/{id}/cancel` and `POST /api/builds/{sha}/cancel`;
/// the body is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Ignored: the cancel is recorded as the token's operator's.
    pub by: Option<String>,
}

/// `POST /api/gate-runs/{id}/rerun`; the body is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Ignored: the request is recorded as the token's operator's.
    pub by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunResponse {
    /// The failed run that will be run again.
    pub run_id: GateRunId,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
}

/// `GET /api/gate-runs`: one page of past runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRunsPage {
    pub runs: Vec<GateRunSummary>,
    /// The `before` of the next (older) page; `null` on the last.
    pub next_before: Option<GateRunId>,
}

/// Every API error: one sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

// ---- gate components (hot reload) ---------------------------------------------

/// One case whose verdict differs between the serving component and a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictChange {
    /// `fixture <kind>/<case>` or `run <id> (<tier> <version>)`.
    pub case: String,
    pub old: GateStatus,
    pub new: GateStatus,
}

impl VerdictChange {
    /// The one change a candidate may make on its own: an output nobody
    /// recognised now has a typed failure or blocker. Never a pass: turning
    /// anything into `passed` is an operator's call.
    pub fn only_classifies_the_unclassified(&self) -> bool {
        let unclassified = |s: &GateStatus| {
            matches!(s, GateStatus::Failed { failure: crate::GateFailure::Unclassified { .. } })
        };
        unclassified(&self.old)
            && !unclassified(&self.new)
            && !matches!(self.new, GateStatus::Passed { .. })
    }
}

/// Where a component is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// New runs of its kind use it.
    Serving,
    /// Served before another replaced it; a rollback can return to it.
    Retired,
    /// Changes verdicts; waits for an operator to accept or reject it.
    Pending,
    Rejected,
}

impl ComponentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Serving => "serving",
            ComponentState::Retired => "retired",
            ComponentState::Pending => "pending",
            ComponentState::Rejected => "rejected",
        }
    }
}

impl FromStr for ComponentState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "serving" => ComponentState::Serving,
            "retired" => ComponentState::Retired,
            "pending" => ComponentState::Pending,
            "rejected" => ComponentState::Rejected,
            _ => return Err(ParseError::new("component state", s, "unknown state")),
        })
    }
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of a gate kind a component serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentPart {
    /// A whole gate: the kind's runner, and its classifier too unless a
    /// `classifier` part serves.
    Gate,
    /// Only the classifier: it judges every run of the kind whose runner
    /// asks for a judgement (contract 0.2 runners), whoever wrote the runner.
    Classifier,
}

impl ComponentPart {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentPart::Gate => "gate",
            ComponentPart::Classifier => "classifier",
        }
    }
}

impl FromStr for ComponentPart {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "gate" => ComponentPart::Gate,
            "classifier" => ComponentPart::Classifier,
            _ => return Err(ParseError::new("component part", s, "expected gate or classifier")),
        })
    }
}

impl fmt::Display for ComponentPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component the daemon was given, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub id: i64,
    pub kind: GateKind,
    /// sha256 of the component file, hex.
    pub digest: String,
    pub contract: String,
    /// `shipped`, `api`, `watched <path>` or `rollback`.
    pub source: String,
    /// What it serves as (absent from daemons before contract 0.2: a gate).
    #[serde(default = "whole_gate")]
    pub part: ComponentPart,
    pub state: ComponentState,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// How its verdicts differed from the component serving when it came.
    pub diff: Vec<VerdictChange>,
    pub loaded_at: DateTime<Utc>,
}

fn whole_gate() -> ComponentPart {
    ComponentPart::Gate
}

/// What the daemon decided about a submitted component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Swapped in: new runs use it.
    Loaded,
    /// The same file is already serving.
    Unchanged,
    /// Held until an operator accepts it (or it is pushed with `accept_changes`).
    Pending,
    Rejected,
}

/// The answer to `POST /api/gates/{kind}` and `POST /api/gates/{kind}/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVerdict {
    pub kind: GateKind,
    pub digest: String,
    /// What it was submitted to serve as.
    #[serde(default = "whole_gate")]
    pub part: ComponentPart,
    pub decision: Decision,
    /// Why it was rejected, in one sentence.
    pub reason: Option<String>,
    /// Fixture cases and recorded outputs replayed.
    pub cases: u32,
    pub diff: Vec<VerdictChange>,
}

/// `GET /api/gates`: per gate kind, what serves, what waits, what came before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatesResponse {
    pub gates: Vec<GateComponents>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateComponents {
    pub kind: GateKind,
    /// The whole gate serving: the kind's runner.
    pub serving: Option<ComponentRecord>,
    /// A classifier-only part serving beside it, if any; else the serving
    /// gate's own classifier judges.
    #[serde(default)]
    pub classifier: Option<ComponentRecord>,
    pub pending: Option<ComponentRecord>,
    /// Newest first.
    pub history: Vec<ComponentRecord>,
}

/// `GET /api/gate-runs/{id}/case`: a fixture case made from what the run's
/// classifier was given, for `sando gate test --record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCase {
    pub run_id: GateRunId,
    pub gate: GateKind,
    /// The files of `fixtures/<gate>/<case>/`: `case.toml` and
    /// `expected.json` as text, `stdout` and `stderr` as standard base64.
    pub case_toml: String,
    pub expected_json: String,
    pub stdout_base64: String,
    pub stderr_base64: String,
}

/// `POST /api/reclassify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReclassifyRequest {
    pub gate: GateKind,
    /// Only runs started at or after this.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Every recorded run, not only the `unclassified` ones.
    #[serde(default)]
    pub all: bool,
    /// Write the new outcomes (the old ones are kept); else a dry run.
    #[serde(default)]
    pub apply: bool,
    /// Runs imported from the old daemon: replay the text it kept (a tail
    /// of the output, not the output) through the serving classifier. Always
    /// a dry run: the text is not evidence enough to change a verdict.
    #[serde(default)]
    pub legacy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclassifyResponse {
    pub gate: GateKind,
    /// The component that classified: the one serving.
    pub digest: String,
    pub contract: String,
    pub applied: bool,
    /// Runs whose outcome changes (or changed, when applied).
    pub changed: Vec<Reclassified>,
    /// Runs looked at whose outcome stays the same.
    pub unchanged: u32,
    /// Runs that match but have no recorded output to replay.
    pub without_output: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reclassified {
    pub run_id: GateRunId,
    pub tier: TierId,
    pub version: Version,
    pub old: GateStatus,
    pub new: GateStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GateFailure, PassNote};

    fn change(old: GateStatus, new: GateStatus) -> VerdictChange {
        VerdictChange { case: "run 1".into(), old, new }
    }

    #[test]
    fn only_unclassified_becoming_a_typed_failure_needs_no_operator() {
        let unclassified = GateStatus::unclassified();
        let typed =
            GateStatus::failed(GateFailure::CargoTest { failed_count: 1, first_failed: None });
        let passed = GateStatus::Passed {
            note: PassNote::TestsPassed { count: 3, duration_s: 1, flaky: Vec::new() },
        };
        assert!(change(unclassified.clone(), typed.clone()).only_classifies_the_unclassified());
        assert!(!change(unclassified, passed.clone()).only_classifies_the_unclassified());
        assert!(!change(typed.clone(), passed.clone()).only_classifies_the_unclassified());
        assert!(!change(passed, typed.clone()).only_classifies_the_unclassified());
        assert!(!change(typed, GateStatus::unclassified()).only_classifies_the_unclassified());
    }
}
