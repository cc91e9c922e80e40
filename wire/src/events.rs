//! `/api/events` frames: every state change as a typed `EventEnvelope`, one JSON text message each.
//!
//! A subscriber that falls behind is skipped ahead and sent `lagged`; it
//! then resyncs from `/api/state`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    BuildOutcome, DeployId, DeployOutcome, GateKind, GateOutcome, GateRunId, GitSha, NodeId,
    TierId, VerdictChange, Version,
};

/// Which stream of a process a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One frame on `/api/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    RebuildRequested {
        sha: GitSha,
    },
    BuildStarted {
        sha: GitSha,
    },
    BuildDone {
        sha: GitSha,
        outcome: BuildOutcome,
    },
    VersionRegistered {
        version: Version,
        sha: GitSha,
    },
    GateStart {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
    },
    /// Part of a running gate's log, as the process wrote it. `data` is text;
    /// chunks are cut on UTF-8 boundaries, invalid bytes become U+FFFD.
    GateLogChunk {
        run_id: GateRunId,
        seq: u64,
        stream: Stream,
        data: String,
    },
    GateDone {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        outcome: GateOutcome,
    },
    /// A blocked run was evaluated again in place (same run, same log): its
    /// outcome now. A blocked gate never starts a new run.
    GateUpdated {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        outcome: GateOutcome,
    },
    /// An operator asked to stop a running gate or build.
    CancelRequested {
        target: String,
        by: String,
    },
    Confirmed {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        by: String,
    },
    DeployStart {
        deploy_id: DeployId,
        tier: TierId,
        version: Version,
        node: NodeId,
    },
    DeployDone {
        deploy_id: DeployId,
        tier: TierId,
        version: Version,
        node: NodeId,
        outcome: DeployOutcome,
    },
    Promoted {
        tier: TierId,
        version: Version,
    },
    Superseded {
        tier: TierId,
        version: Version,
        by: Version,
    },
    /// An operator asked for a failed gate to run again.
    RerunRequested {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        by: String,
    },
    BackupFetched {
        backup_id: i64,
        source: String,
    },
    /// An updated component now serves new runs of its kind.
    ComponentLoaded {
        gate: GateKind,
        digest: String,
        contract: String,
        source: String,
    },
    /// An updated component changes verdicts and waits for an operator.
    ComponentPending {
        gate: GateKind,
        digest: String,
        diff: Vec<VerdictChange>,
    },
    ComponentRejected {
        gate: GateKind,
        digest: String,
        reason: String,
        diff: Vec<VerdictChange>,
    },
    /// Runs of `gate` were classified again by the serving component.
    Reclassified {
        gate: GateKind,
        runs: Vec<GateRunId>,
    },
    /// Sent to one subscriber only: it fell behind and `missed` events were
    /// dropped for it. Resync from `/api/state`.
    Lagged {
        missed: u64,
    },
}
