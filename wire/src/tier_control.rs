//! HTTP bodies for holding and reversing a tier: freezes, an admin's override of one, and rollbacks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{TierId, Version};

/// What holds a promotion into a tier; `/api/state` shows it as
/// `"promotion_blocked": {"tier_frozen": {...}}` on the tier whose
/// candidate waits. Yellow: a precondition, not a defect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromotionBlocker {
    TierFrozen {
        /// The operator who froze it, or `window` for a config window.
        by: String,
        reason: String,
        /// When it thaws on its own; `None`: when lifted.
        until: Option<DateTime<Utc>>,
    },
}

/// Where a freeze comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreezeSource {
    /// `POST /api/freezes`; lifted with `POST /api/freezes/{id}/lift`.
    Manual { id: i64 },
    /// One of the tier's `freeze = [...]` windows in the config.
    Window,
}

/// A freeze in force on a tier (or, with `tier: None`, on every tier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeState {
    pub source: FreezeSource,
    /// `None`: every tier.
    pub tier: Option<TierId>,
    pub by: String,
    pub reason: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// `POST /api/freezes`: freeze one tier, or every tier when `tier` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeRequest {
    #[serde(default)]
    pub tier: Option<TierId>,
    /// One line, at most 1 KiB.
    pub reason: String,
    /// Thaws on its own then; absent: until lifted.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

/// `GET /api/freezes`: the freezes in force now, manual and from windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezesResponse {
    pub freezes: Vec<FreezeState>,
}

/// `POST /api/tiers/{tier}/override` (admins only): let one version into a
/// frozen tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    pub version: Version,
    pub reason: String,
}

/// `POST /api/tiers/{tier}/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// A version once promoted to the tier; absent: the one current before
    /// the current one.
    #[serde(default)]
    pub to: Option<Version>,
    pub reason: String,
}

/// How far a rollback got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackProgress {
    /// Asked for; its deploys run next (a freeze never holds them).
    Pending,
    /// Every node runs `to`; it is the tier's current version.
    Done,
    /// A node's deploy failed: the tier's current version is unchanged.
    Failed,
}

/// A rollback of a tier; also the answer to `POST /api/tiers/{tier}/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackState {
    pub id: i64,
    pub tier: TierId,
    pub from: Version,
    pub to: Version,
    /// The operator, or `auto_rollback` when a failed health check asked.
    pub by: String,
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub progress: RollbackProgress,
}

/// On a deploy that was part of a rollback: `rollback { from, to, by }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOf {
    pub from: Version,
    pub to: Version,
    pub by: String,
}
