//! The event stream: every state change as a typed `EventEnvelope`, broadcast to WebSocket subscribers.
//!
//! Sending never waits: a subscriber that falls behind loses the oldest
//! events and is told how many (`lagged`), then resyncs from `/api/state`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::domain::{
    BuildOutcome, DeployId, DeployOutcome, GateKind, GateOutcome, GateRunId, GitSha, NodeId,
    TierId, Version,
};
use crate::process::Stream;

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
    BackupFetched {
        backup_id: i64,
        source: String,
    },
    /// Sent to one subscriber only: it fell behind and `missed` events were
    /// dropped for it. Resync from `/api/state`.
    Lagged {
        missed: u64,
    },
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<EventEnvelope>>,
    seq: Arc<AtomicU64>,
}

impl EventBus {
    /// `capacity` events are kept for slow subscribers before they lag.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender, seq: Arc::new(AtomicU64::new(1)) }
    }

    pub fn send(&self, event: Event) {
        let envelope =
            EventEnvelope { seq: self.seq.fetch_add(1, Ordering::Relaxed), at: Utc::now(), event };
        // No subscribers is fine: events are also reflected in /api/state.
        let _ = self.sender.send(Arc::new(envelope));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventEnvelope>> {
        self.sender.subscribe()
    }
}
