//! Holding and reversing a tier over HTTP: freezes (an operator's, or a config window's), an admin's override of one, and rollbacks; and how `/api/state` shows them.
//!
//! What decides is the planner (`plan::frozen`, the rollback before
//! anything else a tier does); these handlers only check a request against
//! the store, record it, audit it and wake the planner. The identity is
//! always the token's (`Extension<Identity>`), never a body's.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use super::api::{ApiError, audit, audit_as, reason_line};
use super::events::Event;
use super::plan::{self, FreezeSnap, Frozen, RollbackCause};
use super::{Daemon, Trigger};
use crate::config::Tier;
use crate::domain::{
    FreezeRequest, FreezeSource, FreezeState, FreezesResponse, OverrideRequest, PromotionBlocker,
    RollbackProgress, RollbackRequest, RollbackState, TierId, Version,
};
use crate::identity::Identity;
use crate::store::{FreezeRecord, NewRollback, OverrideRecord, RollbackRecord};

/// Who asks for a rollback when a health check fails on a tier with
/// `auto_rollback`: the policy, named as such in the audit trail.
pub(crate) const AUTO_ROLLBACK: &str = "auto_rollback";

pub(crate) fn freeze_snap(record: &FreezeRecord) -> FreezeSnap {
    FreezeSnap {
        id: record.id,
        tier: record.tier.clone(),
        by: record.by.clone(),
        reason: record.reason.clone(),
        since: record.at,
        until: record.until,
    }
}

fn freeze_state(frozen: Frozen) -> FreezeState {
    FreezeState {
        source: match frozen.manual {
            Some(id) => FreezeSource::Manual { id },
            None => FreezeSource::Window,
        },
        tier: frozen.tier,
        by: frozen.by,
        reason: frozen.reason,
        since: frozen.since,
        until: frozen.until,
    }
}

/// A freeze made from the API, as the API shows it.
fn manual_state(record: &FreezeRecord) -> FreezeState {
    FreezeState {
        source: FreezeSource::Manual { id: record.id },
        tier: record.tier.clone(),
        by: record.by.clone(),
        reason: record.reason.clone(),
        since: record.at,
        until: record.until,
    }
}

fn rollback_state(record: RollbackRecord) -> RollbackState {
    RollbackState {
        id: record.id,
        tier: record.tier,
        from: record.from,
        to: record.to,
        by: record.by,
        reason: record.reason,
        requested_at: record.requested_at,
        progress: record.progress,
    }
}

fn tier_named<'a>(daemon: &'a Daemon, name: &str) -> Result<&'a Tier, ApiError> {
    let known = || daemon.config.tiers.iter().map(|t| t.name.to_string()).collect::<Vec<_>>();
    name.parse::<TierId>().ok().and_then(|id| daemon.config.tier(&id)).ok_or_else(|| {
        ApiError::NotFound(format!("no tier named {name:?} (tiers: {})", known().join(", ")))
    })
}

/// The freezes in force and every rollback, read from the store once for
/// a request (`/api/state` asks for every tier).
pub(crate) struct Controls {
    now: DateTime<Utc>,
    freezes: Vec<FreezeRecord>,
    rollbacks: Vec<RollbackRecord>,
}

impl Controls {
    pub(crate) async fn load(daemon: &Daemon) -> Result<Controls, ApiError> {
        let now = Utc::now();
        Ok(Controls {
            now,
            freezes: daemon.store.freezes_in_force(now).await?,
            rollbacks: daemon.store.rollbacks().await?,
        })
    }

    /// The freeze in force on `tier`, if any, for a version overridden at
    /// `overridden_at` (`plan::frozen`).
    fn frozen(&self, tier: &Tier, overridden_at: Option<DateTime<Utc>>) -> Option<Frozen> {
        let freezes: Vec<FreezeSnap> = self
            .freezes
            .iter()
            .filter(|f| f.tier.as_ref().is_none_or(|t| *t == tier.name))
            .map(freeze_snap)
            .collect();
        plan::frozen(&freezes, &tier.freeze, self.now, overridden_at)
    }

    /// The versions that may never enter `tier` again (`plan::barred`).
    fn barred(&self, tiers: &[Tier], tier: &TierId) -> Vec<Version> {
        let rolled_back: Vec<Vec<Version>> = tiers
            .iter()
            .map(|t| {
                let at_t = self.rollbacks.iter().filter(|r| r.tier == t.name);
                at_t.map(|r| r.from.clone()).collect()
            })
            .collect();
        match tiers.iter().position(|t| &t.name == tier) {
            Some(index) => plan::barred(&rolled_back, index).cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// `POST /api/freezes`: freezes one tier, or every tier.
pub(super) async fn freeze(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<FreezeRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<FreezeState>), ApiError> {
    let Json(request) = body?;
    let tier = match &request.tier {
        Some(name) => Some(tier_named(&daemon, name.as_str())?.name.clone()),
        None => None,
    };
    let reason = reason_line(&request.reason, "say why the tier is frozen")?;
    let now = Utc::now();
    if let Some(until) = request.until {
        if until <= now {
            return Err(ApiError::BadRequest(format!("until: {until} is not in the future")));
        }
        if until > now + chrono::Duration::days(366) {
            return Err(ApiError::BadRequest(format!(
                "until: {until} is more than a year away (leave it out to freeze until lifted)"
            )));
        }
    }
    let by = who.name.to_string();
    let record =
        daemon.store.insert_freeze(tier.as_ref(), &reason, &by, request.until, now).await?;
    tracing::info!(tier = ?tier, by, "frozen");
    daemon.bus.send(Event::FreezeChanged { tier: tier.clone(), frozen: true, by, reason });
    daemon.trigger(Trigger::Evaluate);
    let state = manual_state(&record);
    let after = serde_json::to_value(&state).ok();
    audit(&daemon, &who, "freeze", scope(tier.as_ref()), None, after).await;
    Ok((StatusCode::CREATED, Json(state)))
}

fn scope(tier: Option<&TierId>) -> String {
    tier.map_or("every tier".to_owned(), |t| format!("tier {t}"))
}

/// `POST /api/freezes/{id}/lift`.
pub(super) async fn lift(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<FreezeState>, ApiError> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("{id:?} is not a freeze id")))?;
    let by = who.name.to_string();
    let now = Utc::now();
    let in_force = daemon.store.freezes_in_force(now).await?.into_iter().find(|f| f.id == id);
    let Some(freeze) = in_force else {
        return Err(ApiError::NotFound(format!("freeze {id} is not in force")));
    };
    // Else an operator could undo an admin's freeze, which only an admin's
    // override may get past.
    if freeze.by != by && who.role < crate::identity::Role::Admin {
        return Err(ApiError::Forbidden(format!(
            "freeze {id} is {}'s: only they or an admin may lift it",
            freeze.by
        )));
    }
    let Some(record) = daemon.store.lift_freeze(id, &by, now).await? else {
        return Err(ApiError::NotFound(format!("freeze {id} is not in force")));
    };
    tracing::info!(freeze = id, by, "freeze lifted");
    daemon.bus.send(Event::FreezeChanged {
        tier: record.tier.clone(),
        frozen: false,
        by,
        reason: record.reason.clone(),
    });
    daemon.trigger(Trigger::Evaluate);
    let state = manual_state(&record);
    let before = serde_json::to_value(&state).ok();
    audit(&daemon, &who, "lift_freeze", scope(record.tier.as_ref()), before, None).await;
    Ok(Json(state))
}

/// `GET /api/freezes`: every freeze in force, from the API and from windows.
pub(super) async fn freezes(
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<FreezesResponse>, ApiError> {
    let now = Utc::now();
    let mut freezes: Vec<FreezeState> =
        daemon.store.freezes_in_force(now).await?.iter().map(manual_state).collect();
    for tier in &daemon.config.tiers {
        if let Some(frozen) = plan::frozen(&[], &tier.freeze, now, None) {
            freezes.push(FreezeState { tier: Some(tier.name.clone()), ..freeze_state(frozen) });
        }
    }
    Ok(Json(FreezesResponse { freezes }))
}

/// `POST /api/tiers/{tier}/override` (admins): lets the tier's candidate
/// into the frozen tier, this once.
pub(super) async fn override_freeze(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(tier): Path<String>,
    body: Result<Json<OverrideRequest>, JsonRejection>,
) -> Result<Json<FreezeState>, ApiError> {
    let Json(request) = body?;
    let tier = tier_named(&daemon, &tier)?;
    let reason = reason_line(&request.reason, "say why the freeze is overridden")?;
    let controls = Controls::load(&daemon).await?;
    let Some(frozen) = controls.frozen(tier, None) else {
        return Err(ApiError::Conflict(format!(
            "{} is not frozen: nothing to override",
            tier.name
        )));
    };
    let candidate = daemon
        .store
        .tiers()
        .await?
        .into_iter()
        .find(|r| r.name == tier.name)
        .and_then(|r| r.candidate_version);
    if candidate.as_ref() != Some(&request.version) {
        return Err(ApiError::Conflict(match candidate {
            Some(c) => format!("{} is not {}'s candidate ({c} is)", request.version, tier.name),
            None => format!("{} has no candidate waiting", tier.name),
        }));
    }
    // One override per version and tier: renewed only when a freeze
    // begun since the last one holds it.
    let given = daemon.store.freeze_override(&tier.name, &request.version).await?;
    if let Some(given) = given
        && controls.frozen(tier, Some(given.at)).is_none()
    {
        return Err(ApiError::Conflict(format!(
            "{} already has an override at {} (by {}), which every freeze in force began before",
            request.version, tier.name, given.by
        )));
    }
    let entry = OverrideRecord {
        tier: tier.name.clone(),
        version: request.version.clone(),
        by: who.name.to_string(),
        reason: reason.clone(),
        at: Utc::now(),
    };
    daemon.store.put_override(&entry).await?;
    tracing::info!(tier = %tier.name, version = %request.version, by = %who.name, "freeze overridden");
    daemon.trigger(Trigger::Evaluate);
    let state = freeze_state(frozen);
    let target = format!("tier {} version {}", tier.name, request.version);
    let before = serde_json::to_value(&state).ok();
    let after = serde_json::json!({ "override": request.version, "reason": reason });
    audit(&daemon, &who, "override_freeze", target, before, Some(after)).await;
    Ok(Json(state))
}

/// `POST /api/tiers/{tier}/rollback`.
pub(super) async fn rollback(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(tier): Path<String>,
    body: Result<Json<RollbackRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<RollbackState>), ApiError> {
    let Json(request) = body?;
    let tier = tier_named(&daemon, &tier)?;
    let reason = reason_line(&request.reason, "say why the tier is rolled back")?;
    let (from, to) = rollback_target(&daemon, &tier.name, request.to.as_ref()).await?;
    check_kept_artifact(&daemon, &to).await?;
    let by = who.name.to_string();
    let new = NewRollback {
        tier: &tier.name,
        from: &from,
        to: &to,
        by: &by,
        reason: &reason,
        at: Utc::now(),
    };
    let Some(record) = daemon.store.insert_rollback(&new).await? else {
        let pending = daemon
            .store
            .rollbacks()
            .await?
            .into_iter()
            .any(|r| r.tier == tier.name && r.progress == RollbackProgress::Pending);
        return Err(ApiError::Conflict(match pending {
            true => format!("a rollback of {} is under way", tier.name),
            false => format!("{} no longer runs {from}: nothing was rolled back", tier.name),
        }));
    };
    started(&daemon, &record);
    let state = rollback_state(record);
    let target = format!("tier {}", tier.name);
    let before = serde_json::json!({ "current": from });
    let after = serde_json::to_value(&state).ok();
    audit(&daemon, &who, "rollback", target, Some(before), after).await;
    Ok((StatusCode::ACCEPTED, Json(state)))
}

fn started(daemon: &Daemon, record: &RollbackRecord) {
    tracing::info!(tier = %record.tier, from = %record.from, to = %record.to, by = record.by, "rollback asked for");
    daemon.bus.send(Event::RollbackStarted {
        tier: record.tier.clone(),
        from: record.from.clone(),
        to: record.to.clone(),
        by: record.by.clone(),
    });
    daemon.trigger(Trigger::Evaluate);
}

/// The planner's ask: take `tier` back from `from` for `cause` (a health
/// check that failed for good with `auto_rollback`, or a version rolled
/// back at an earlier tier). Recorded as the policy's act.
pub(crate) async fn auto_rollback(
    daemon: &Daemon,
    tier: &TierId,
    from: &Version,
    to: &Version,
    cause: &RollbackCause,
) -> Result<(), crate::store::StoreError> {
    let (reason, before) = match cause {
        RollbackCause::HealthCheck { node } => (
            format!("the health check failed on {node} (auto_rollback)"),
            serde_json::json!({ "current": to, "failed": from }),
        ),
        RollbackCause::Barred => (
            format!("{from} was rolled back at this tier or an earlier one"),
            serde_json::json!({ "current": to, "barred": from }),
        ),
    };
    let new = NewRollback { tier, from, to, by: AUTO_ROLLBACK, reason: &reason, at: Utc::now() };
    if let Some(record) = daemon.store.insert_rollback(&new).await? {
        started(daemon, &record);
        let after = serde_json::to_value(rollback_state(record)).ok();
        let target = format!("tier {tier}");
        audit_as(daemon, AUTO_ROLLBACK, "auto_rollback", target, Some(before), after).await;
    }
    Ok(())
}

/// Where a rollback of `tier` goes (from, to): `to` if it ran there, else
/// the version current before the current one, never a version rolled
/// back from there; or the tier's last rollback again, if it failed.
async fn rollback_target(
    daemon: &Daemon,
    tier: &TierId,
    to: Option<&Version>,
) -> Result<(Version, Version), ApiError> {
    let current = daemon
        .store
        .tiers()
        .await?
        .into_iter()
        .find(|r| &r.name == tier)
        .and_then(|r| r.current_version)
        .ok_or_else(|| {
            ApiError::Conflict(format!("{tier} runs no version yet: nothing to roll back"))
        })?;
    let controls = Controls::load(daemon).await?;
    // The tier's last rollback failed on a node, and nothing moved since:
    // asking again (for its version, or for none) tries it again, also
    // when it went to the current version (the policy's, from a candidate
    // some nodes kept).
    if let Some(failed) = controls.rollbacks.iter().rfind(|r| &r.tier == tier)
        && failed.progress == RollbackProgress::Failed
        && to.is_none_or(|to| *to == failed.to)
        && (current == failed.from || current == failed.to)
    {
        return Ok((failed.from.clone(), failed.to.clone()));
    }
    let arrivals = daemon.store.arrivals(tier).await?;
    let rolled_back = controls.barred(&daemon.config.tiers, tier);
    let to = match to {
        Some(to) if *to == current => {
            return Err(ApiError::Conflict(format!("{tier} already runs {to}")));
        }
        Some(to) if !arrivals.iter().any(|(v, _)| v == to) => {
            return Err(ApiError::Conflict(format!(
                "{to} was never promoted to {tier}: a rollback goes only to a version that ran there"
            )));
        }
        Some(to) if rolled_back.contains(to) => {
            return Err(ApiError::Conflict(format!("{tier} was rolled back from {to} before")));
        }
        Some(to) => to.clone(),
        None => previous(&arrivals, &current, &rolled_back).ok_or_else(|| {
            ApiError::Conflict(format!("{tier} has no earlier version to roll back to"))
        })?,
    };
    Ok((current, to))
}

/// The version that arrived before `current`, skipping those rolled back from.
fn previous(
    arrivals: &[(Version, DateTime<Utc>)],
    current: &Version,
    rolled_back: &[Version],
) -> Option<Version> {
    let arrived = arrivals.iter().find(|(v, _)| v == current).map(|(_, at)| *at);
    arrivals
        .iter()
        .filter(|(v, at)| v != current && arrived.is_none_or(|a| *at <= a))
        .find(|(v, _)| !rolled_back.contains(v))
        .map(|(v, _)| v.clone())
}

/// The version's artifact is still kept and is the one that was built.
async fn check_kept_artifact(daemon: &Daemon, version: &Version) -> Result<(), ApiError> {
    let row = daemon
        .store
        .version(version)
        .await?
        .ok_or_else(|| ApiError::Conflict(format!("{version} is not a registered version")))?;
    let Some(expected) = daemon.store.artifact_sha256(version).await? else {
        return Err(ApiError::Conflict(format!(
            "{version} has no recorded artifact sha256, so its artifact cannot be checked: not rolling back"
        )));
    };
    let found = match super::work::build::sha256_file(row.artifact.clone().into()).await {
        Ok(found) => found,
        Err(e) => {
            return Err(ApiError::Conflict(format!(
                "the kept artifact of {version} ({}) cannot be read: {}",
                row.artifact,
                crate::fixtures::io_message(&e)
            )));
        }
    };
    if found != expected {
        return Err(ApiError::Conflict(format!(
            "the kept artifact of {version} has sha256 {found}, but {expected} was built: not rolling back"
        )));
    }
    Ok(())
}

/// What `/api/state` says of a tier's freezes and rollbacks.
#[derive(Debug, Default)]
pub(crate) struct TierControlView {
    pub frozen: Option<FreezeState>,
    pub promotion_blocked: Option<PromotionBlocker>,
    pub override_version: Option<Version>,
    pub rollback_to: Option<Version>,
    pub rollback: Option<RollbackState>,
}

/// The view of `tier`, whose candidate's gates have all passed when
/// `gates_passed`.
pub(crate) async fn view(
    daemon: &Daemon,
    controls: &Controls,
    tier: &Tier,
    current: Option<&Version>,
    candidate: Option<&Version>,
    gates_passed: bool,
) -> Result<TierControlView, ApiError> {
    let frozen = controls.frozen(tier, None);
    let given = match candidate {
        Some(c) => daemon.store.freeze_override(&tier.name, c).await?,
        None => None,
    };
    let holding = controls.frozen(tier, given.as_ref().map(|o| o.at));
    let override_version = given.map(|o| o.version);
    let promotion_blocked = match (&holding, candidate) {
        (Some(f), Some(_)) if gates_passed => Some(PromotionBlocker::TierFrozen {
            by: f.by.clone(),
            reason: f.reason.clone(),
            until: f.until,
        }),
        _ => None,
    };
    let rollback_to = match current {
        Some(current) => {
            let rolled_back = controls.barred(&daemon.config.tiers, &tier.name);
            previous(&daemon.store.arrivals(&tier.name).await?, current, &rolled_back)
        }
        None => None,
    };
    let latest = controls.rollbacks.iter().rfind(|r| r.tier == tier.name);
    Ok(TierControlView {
        frozen: frozen.map(|f| FreezeState {
            tier: f.tier.clone().or(Some(tier.name.clone())),
            ..freeze_state(f)
        }),
        promotion_blocked,
        override_version,
        rollback_to,
        rollback: latest.cloned().map(rollback_state),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn the_previous_version_is_the_one_before_the_current_skipping_those_rolled_back_from() {
        let arrivals = vec![(v("0.3.0"), t(30)), (v("0.2.0"), t(20)), (v("0.1.0"), t(10))];
        assert_eq!(previous(&arrivals, &v("0.3.0"), &[]), Some(v("0.2.0")));
        assert_eq!(previous(&arrivals, &v("0.3.0"), &[v("0.2.0")]), Some(v("0.1.0")));
        // Back on 0.2.0 after rolling back from 0.3.0: the next step back is 0.1.0.
        assert_eq!(previous(&arrivals, &v("0.2.0"), &[v("0.3.0")]), Some(v("0.1.0")));
        assert_eq!(previous(&arrivals, &v("0.1.0"), &[v("0.3.0")]), None);
    }
}
