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
    /// Part of a running gate's log: exactly the bytes the process wrote,
    /// which sit at `offset` in the run's log (`GET
    /// /api/gate-runs/{run_id}/log?from=` resumes there). `data` is those
    /// bytes as text when they are valid UTF-8 (`encoding` `utf8`), else
    /// their base64 (`encoding` `base64`).
    GateLogChunk {
        run_id: GateRunId,
        seq: u64,
        stream: Stream,
        offset: u64,
        #[serde(default)]
        encoding: ChunkEncoding,
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
        source: crate::BackupSource,
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

/// How a `gate_log_chunk`'s `data` holds its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkEncoding {
    /// The bytes are valid UTF-8 and `data` is them.
    #[default]
    Utf8,
    /// `data` is the standard base64 of the bytes.
    Base64,
}

impl ChunkEncoding {
    /// `bytes` as a chunk's `encoding` and `data`.
    pub fn encode(bytes: &[u8]) -> (ChunkEncoding, String) {
        use base64::Engine as _;
        match std::str::from_utf8(bytes) {
            Ok(text) => (ChunkEncoding::Utf8, text.to_owned()),
            Err(_) => {
                (ChunkEncoding::Base64, base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }

    /// The bytes a chunk's `data` holds; `None` for base64 that is not.
    pub fn decode(self, data: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match self {
            ChunkEncoding::Utf8 => Some(data.as_bytes().to_vec()),
            ChunkEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(data).ok(),
        }
    }
}
