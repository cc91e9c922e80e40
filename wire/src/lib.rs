//! The vocabulary the daemon and its clients share: newtypes minted once, by parsing, typed gate outcomes, and the HTTP/WebSocket bodies of BRIEF.md contract 6.
//!
//! This crate knows nothing of sandboxes or storage. With the `sqlx` feature
//! it also maps its types to SQLite columns for the daemon's store (and with
//! `postgres`, to PostgreSQL's); the TUI leaves both off.

mod backup_source;
mod events;
mod gate_kind;
mod git_sha;
mod ids;
mod lifecycle;
mod outcome;
mod role;
#[cfg(feature = "sqlx")]
mod sql;
#[cfg(feature = "postgres")]
mod sql_postgres;
mod state;
mod tier_control;
mod version;

pub use backup_source::BackupSource;
pub use events::{Event, EventEnvelope, Frame, FrameError, Stream, Unframed};
pub use gate_kind::GateKind;
pub use git_sha::GitSha;
pub use ids::{DeployId, GateRunId, NodeId, TierId};
pub use lifecycle::{BuildFailure, BuildOutcome, DeployFailure, DeployOutcome};
pub use outcome::{
    ComponentFault, GateBlocker, GateFailure, GateOutcome, GateStatus, LogRef, PassNote,
    RestoreFailureKind,
};
pub use role::{Role, WhoAmI};
pub use state::{
    Approval, ApprovalState, AuditEntry, AuditPage, BackupRow, BuildSummary, Canary, CancelRequest,
    ComponentPart, ComponentRecord, ComponentState, ComponentVerdict, ConfirmRequest, Confirmation,
    Decision, DeploySummary, ErrorBody, GateComponents, GateRunSummary, GateRunsPage,
    GatesResponse, IMPORTED_RUN, LeaderState, PreviousRun, RebuildRequest, Reclassified,
    ReclassifyRequest, ReclassifyResponse, RecordedCase, RejectRequest, RerunRequest,
    RerunResponse, RunState, SchedulerState, StateResponse, SweepResponse, TierState,
    VerdictChange, VersionRow, WorkerState,
};
pub use tier_control::{
    FreezeRequest, FreezeSource, FreezeState, FreezesResponse, OverrideRequest, PromotionBlocker,
    RollbackOf, RollbackProgress, RollbackRequest, RollbackState,
};
pub use version::Version;

/// Why a string (or number) did not parse into a domain type. The message
/// names the type and the offending input so one line says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    reason: String,
}

impl ParseError {
    pub(crate) fn new(
        what: &'static str,
        input: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { what, input: input.into(), reason: reason.into() }
    }
}
