//! The planner: what the decision loop should do next, as a pure function of a snapshot of the store and the workers, and the time.
//!
//! No I/O here: the coordinator loads a [`Snapshot`], calls [`plan`], and
//! hands the [`Action`]s to workers. Every rule of promotion lives in this
//! file, so it is tested table-style without processes or a database.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{ApprovalPolicy, FreezeWindow, OnSupersede, Retry};
use crate::domain::{
    Canary, DeployFailure, DeployOutcome, GateBlocker, GateFailure, GateKind, GateRunId,
    GateStatus, GitSha, NodeId, TierId, Version,
};

/// How often a blocked burn-in is evaluated again before it is due, so the
/// time left it shows stays right.
pub const BURN_IN_REFRESH: Duration = Duration::from_secs(3600);

/// What the store and the workers say, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// In promotion order.
    pub tiers: Vec<TierSnap>,
    /// Rebuild requests not yet settled, oldest first.
    pub rebuilds: Vec<RebuildSnap>,
    /// The build worker is busy.
    pub building: bool,
    pub build_retry: Retry,
    pub on_supersede: OnSupersede,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 1, backoff: Duration::ZERO, on: Vec::new() }
    }
}

#[derive(Debug, Clone)]
pub struct RebuildSnap {
    pub request_id: i64,
    pub sha: GitSha,
    /// Builds made for this request so far.
    pub builds: u32,
    /// When the last of them ended.
    pub last_ended: Option<DateTime<Utc>>,
    /// The last was interrupted by a restart: no fault of the build's, so
    /// it is tried again at once.
    pub interrupted: bool,
}

#[derive(Debug, Clone)]
pub struct TierSnap {
    pub name: TierId,
    pub canary: Canary,
    pub nodes: Vec<NodeId>,
    pub deploy_retry: Retry,
    pub current: Option<Version>,
    pub candidate: Option<CandidateSnap>,
    /// What the tier's worker is doing, if anything.
    pub busy: Option<Busy>,
    /// Freezes made from the API that hold on this tier (its own and
    /// every-tier ones).
    pub freezes: Vec<FreezeSnap>,
    /// The tier's configured freeze windows.
    pub windows: Vec<FreezeWindow>,
    pub auto_rollback: bool,
    /// The tier's rollback under way, if any.
    pub rollback: Option<RollbackSnap>,
    /// Versions this tier was rolled back from: none of them enters this
    /// tier, or any after it, again.
    pub rolled_back: Vec<Version>,
}

/// A freeze made from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeSnap {
    pub id: i64,
    /// `None`: every tier.
    pub tier: Option<TierId>,
    pub by: String,
    pub reason: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// A rollback under way.
#[derive(Debug, Clone)]
pub struct RollbackSnap {
    pub id: i64,
    pub from: Version,
    pub to: Version,
    /// The latest deploy of `to` for this rollback, per node of the tier.
    pub deploys: Vec<NodeDeploy>,
}

/// Why a promotion into a tier waits: the freeze in force at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// The freeze made from the API; `None`: a config window.
    pub manual: Option<i64>,
    /// `None`: every tier (or a window, which is the tier's own).
    pub tier: Option<TierId>,
    pub by: String,
    pub reason: String,
    pub since: DateTime<Utc>,
    /// `None`: until an operator lifts it.
    pub until: Option<DateTime<Utc>>,
}

/// The freeze that holds at `now` among a tier's `freezes` and `windows`,
/// if any: one made from the API before a window (an operator's words say
/// more than a calendar). An admin's override given at `overridden_at`
/// lets the version through the freezes that had begun by then, not
/// through one that begins later (a new freeze is a new decision).
pub fn frozen(
    freezes: &[FreezeSnap],
    windows: &[FreezeWindow],
    now: DateTime<Utc>,
    overridden_at: Option<DateTime<Utc>>,
) -> Option<Frozen> {
    let holds = |since: DateTime<Utc>| overridden_at.is_none_or(|at| since > at);
    let manual = freezes
        .iter()
        .find(|f| f.since <= now && f.until.is_none_or(|until| until > now) && holds(f.since));
    if let Some(freeze) = manual {
        return Some(Frozen {
            manual: Some(freeze.id),
            tier: freeze.tier.clone(),
            by: freeze.by.clone(),
            reason: freeze.reason.clone(),
            since: freeze.since,
            until: freeze.until,
        });
    }
    windows.iter().find_map(|window| {
        window.span_at(now).filter(|(since, _)| holds(*since)).map(|(since, until)| Frozen {
            manual: None,
            tier: None,
            by: "window".into(),
            reason: format!("freeze window {window}"),
            since,
            until: Some(until),
        })
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub version: Version,
    /// The gate run in flight, when it is a gate (not a deploy).
    pub run: Option<GateRunId>,
}

#[derive(Debug, Clone)]
pub struct CandidateSnap {
    pub version: Version,
    /// The tier's gates, in the order they run.
    pub gates: Vec<GateSnap>,
    /// One per node of the tier, in order.
    pub deploys: Vec<NodeDeploy>,
    /// When an admin let this version into the tier while it was frozen:
    /// the freezes begun by then do not hold it.
    pub overridden_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct GateSnap {
    pub kind: GateKind,
    pub retry: Retry,
    /// The latest run of this gate for the candidate.
    pub latest: Option<RunSnap>,
    /// For a burn-in: when its clock started (the version's arrival on the
    /// tier it watches), and how long it lasts.
    pub burn_in: Option<(Option<DateTime<Utc>>, Duration)>,
    /// When something a blocked gate may wait for last changed (a
    /// confirmation, a backup, a component swap).
    pub inputs_changed: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct RunSnap {
    pub id: GateRunId,
    /// `None` while running.
    pub status: Option<GateStatus>,
    pub attempt: u32,
    /// When it finished, or was last evaluated in place.
    pub evaluated_at: DateTime<Utc>,
    pub rerun_requested: bool,
}

#[derive(Debug, Clone)]
pub struct NodeDeploy {
    pub node: NodeId,
    /// The latest deploy of the candidate to this node.
    pub latest: Option<DeployOutcome>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Deploys of the candidate to this node so far.
    pub attempts: u32,
}

/// Why the policy rolls a tier back (no operator asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackCause {
    /// The candidate's health check failed for good on `node`, on a tier
    /// with `auto_rollback`.
    HealthCheck { node: NodeId },
    /// The candidate was rolled back from an earlier tier (or this one)
    /// while some nodes here already ran it: they go back too, whatever
    /// `auto_rollback` says, for a version an operator took back is not
    /// left running anywhere it can be taken back from.
    Barred,
}

/// One thing to do. The coordinator hands each to the worker it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Build a requested commit (the build worker).
    Build { request_id: i64, sha: GitSha, attempt: u32 },
    /// A request's builds are used up without a final outcome: settle it.
    GiveUpRebuild { request_id: i64 },
    /// Run a gate for the tier's candidate (the tier's worker). `reevaluate`
    /// names a blocked run to evaluate again in place.
    RunGate {
        tier: TierId,
        version: Version,
        gate: GateKind,
        attempt: u32,
        max_attempts: u32,
        reevaluate: Option<GateRunId>,
    },
    /// Deploy the candidate to these nodes, all at once (the tier's worker);
    /// or, for `rollback`, the version the tier goes back to.
    Deploy { tier: TierId, version: Version, nodes: Vec<NodeId>, rollback: Option<i64> },
    /// Every node of the tier runs the rollback's version (`done`), or a
    /// node's deploy failed for good.
    FinishRollback { tier: TierId, id: i64, done: bool },
    /// Take the tier back to the version it runs, from a candidate already
    /// on some of its nodes: the policy's act, for `cause`.
    AutoRollback { tier: TierId, from: Version, to: Version, cause: RollbackCause },
    /// Every node runs the candidate: it becomes current, and the next
    /// tier's candidate unless that tier already has something newer.
    Promote { tier: TierId, version: Version, next: Option<TierId> },
    /// The candidate is not newer than what the tier runs: drop it.
    DropCandidate { tier: TierId, version: Version },
    /// Stop a run in flight.
    Cancel { run: GateRunId, by: String },
    /// Plan again at this time even if nothing else happens.
    WakeAt(DateTime<Utc>),
}

/// Everything to do now, given `snapshot`. Idempotent: planning the same
/// snapshot twice gives the same actions, and the coordinator starts
/// nothing on a busy worker.
pub fn plan(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    plan_builds(snapshot, now, &mut actions);
    let rolled_back: Vec<&[Version]> =
        snapshot.tiers.iter().map(|t| t.rolled_back.as_slice()).collect();
    for (index, tier) in snapshot.tiers.iter().enumerate() {
        let next = snapshot.tiers.get(index + 1).map(|t| t.name.clone());
        if plan_rollback(tier, now, &mut actions) {
            continue;
        }
        if let Some(candidate) = &tier.candidate
            && barred(&rolled_back, index).any(|v| *v == candidate.version)
        {
            if tier.busy.is_none() {
                actions.push(drop_barred(tier, candidate));
            }
            continue;
        }
        plan_tier(tier, next, snapshot.on_supersede, now, &mut actions);
    }
    // One wake-up: the earliest.
    let earliest = actions
        .iter()
        .filter_map(|a| if let Action::WakeAt(at) = a { Some(*at) } else { None })
        .min();
    actions.retain(|a| !matches!(a, Action::WakeAt(_)));
    actions.extend(earliest.map(Action::WakeAt));
    actions
}

/// The versions barred from the tier at `index`, given the versions each
/// tier was rolled back from, in tier order: a version rolled back at a
/// tier enters neither it nor any tier after it.
pub fn barred<T: AsRef<[Version]>>(
    rolled_back: &[T],
    index: usize,
) -> impl Iterator<Item = &Version> {
    rolled_back.iter().take(index + 1).flat_map(|t| t.as_ref().iter())
}

/// A barred candidate goes; if it reached any node, the tier is first
/// rolled back to what it runs (that rollback resets the candidate's
/// deploys, so the drop follows). With nothing current there is nowhere
/// to go back to, and the nodes keep what they have.
fn drop_barred(tier: &TierSnap, candidate: &CandidateSnap) -> Action {
    let reached = candidate.deploys.iter().any(|d| d.latest.is_some());
    match &tier.current {
        Some(current) if reached && *current != candidate.version => Action::AutoRollback {
            tier: tier.name.clone(),
            from: candidate.version.clone(),
            to: current.clone(),
            cause: RollbackCause::Barred,
        },
        _ => Action::DropCandidate { tier: tier.name.clone(), version: candidate.version.clone() },
    }
}

fn plan_builds(snapshot: &Snapshot, now: DateTime<Utc>, actions: &mut Vec<Action>) {
    for request in &snapshot.rebuilds {
        if request.builds >= snapshot.build_retry.attempts.max(1) {
            actions.push(Action::GiveUpRebuild { request_id: request.request_id });
            continue;
        }
        if snapshot.building {
            continue;
        }
        if request.builds > 0
            && !request.interrupted
            && let Some(ended) = request.last_ended
        {
            let due = ended + chrono_duration(snapshot.build_retry.backoff);
            if now < due {
                actions.push(Action::WakeAt(due));
                return;
            }
        }
        actions.push(Action::Build {
            request_id: request.request_id,
            sha: request.sha.clone(),
            attempt: request.builds + 1,
        });
        // One build at a time: builds share the machine and, later, a cache.
        return;
    }
}

fn plan_tier(
    tier: &TierSnap,
    next: Option<TierId>,
    on_supersede: OnSupersede,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    let Some(candidate) = &tier.candidate else { return };
    // Newest ready first: never deploy an older version over a newer one.
    if tier.current.as_ref().is_some_and(|current| current >= &candidate.version) {
        if tier.busy.is_none() {
            actions.push(Action::DropCandidate {
                tier: tier.name.clone(),
                version: candidate.version.clone(),
            });
        }
        return;
    }
    if let Some(busy) = &tier.busy {
        if busy.version != candidate.version
            && on_supersede == OnSupersede::Cancel
            && let Some(run) = busy.run
        {
            actions
                .push(Action::Cancel { run, by: format!("superseded by {}", candidate.version) });
        }
        return;
    }
    let run_gate = |gate: &GateSnap, attempt: u32, reevaluate: Option<GateRunId>| Action::RunGate {
        tier: tier.name.clone(),
        version: candidate.version.clone(),
        gate: gate.kind,
        attempt,
        max_attempts: gate.retry.attempts.max(1),
        reevaluate,
    };
    for gate in &candidate.gates {
        let Some(run) = &gate.latest else {
            actions.push(run_gate(gate, 1, None));
            return;
        };
        match &run.status {
            // Running with no worker on it: the coordinator gives it an
            // outcome when its worker ends, so wait for that.
            None => return,
            // A rejection is final for the version at this tier.
            Some(GateStatus::Failed { failure: GateFailure::Rejected { .. } }) => return,
            Some(GateStatus::Passed { .. }) if run.rerun_requested => {
                // Fresh evidence asked for before an approval: it runs
                // again, and approvals given on the old run no longer count.
                actions.push(run_gate(gate, 1, None));
                return;
            }
            Some(GateStatus::Passed { .. }) => continue,
            Some(GateStatus::Failed { failure }) => {
                if run.rerun_requested {
                    actions.push(run_gate(gate, 1, None));
                } else if gate.retry.retries(failure.class(), run.attempt) {
                    let due = retry_due(failure, run.evaluated_at, gate.retry.backoff);
                    if now >= due {
                        actions.push(run_gate(gate, run.attempt + 1, None));
                    } else {
                        actions.push(Action::WakeAt(due));
                    }
                }
                return;
            }
            Some(GateStatus::Blocked { blocker }) => {
                let inputs_changed = gate.inputs_changed.is_some_and(|at| at > run.evaluated_at);
                let wake = blocked_wake(gate, blocker, run.evaluated_at);
                if inputs_changed || wake.is_some_and(|at| now >= at) {
                    actions.push(run_gate(gate, run.attempt, Some(run.id)));
                } else if let Some(at) = wake {
                    actions.push(Action::WakeAt(at));
                }
                return;
            }
        }
    }
    plan_deploys(tier, candidate, next, now, actions);
}

/// When a blocked gate should be evaluated again on its own: a burn-in when
/// it falls due (and hourly before that); anything else only when its
/// inputs change.
fn blocked_wake(
    gate: &GateSnap,
    blocker: &GateBlocker,
    evaluated_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match (blocker, gate.burn_in) {
        (GateBlocker::BurnInRemaining { .. }, Some((Some(started), duration))) => {
            let later = |at: DateTime<Utc>, by: Duration| {
                at.checked_add_signed(chrono_duration(by)).unwrap_or(DateTime::<Utc>::MAX_UTC)
            };
            Some(later(started, duration).min(later(evaluated_at, BURN_IN_REFRESH)))
        }
        // The clock starts when the version arrives on the watched tier:
        // that arrival is an input change.
        (GateBlocker::BurnInClockNotStarted, Some((Some(_started), _))) => Some(evaluated_at),
        _ => None,
    }
}

/// An interruption was no fault of the run's: try again at once.
fn retry_due(failure: &GateFailure, ended: DateTime<Utc>, backoff: Duration) -> DateTime<Utc> {
    match failure {
        GateFailure::Interrupted => ended,
        _ => ended.checked_add_signed(chrono_duration(backoff)).unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

/// What a wave of deploys needs next.
enum WaveStep {
    Deploy(Vec<NodeId>),
    WakeAt(DateTime<Utc>),
    /// A node's deploy failed for good (a failed health check named first).
    Failed {
        node: NodeId,
        health: bool,
    },
    /// A node's deploy is in progress with no worker on it: its worker's
    /// end gives it an outcome.
    InFlight,
    Done,
}

fn wave_step(wave: &[NodeDeploy], retry: &Retry, now: DateTime<Utc>) -> WaveStep {
    let mut to_deploy = Vec::new();
    let mut waiting: Option<DateTime<Utc>> = None;
    let mut failed: Option<(NodeId, bool)> = None;
    let mut in_flight = false;
    for node in wave {
        match &node.latest {
            Some(DeployOutcome::Ok) => {}
            None => to_deploy.push(node.node.clone()),
            Some(DeployOutcome::InProgress) => in_flight = true,
            Some(DeployOutcome::Failed { failure }) => {
                if !retry.retries(failure.class(), node.attempts) {
                    let health = matches!(failure, DeployFailure::HealthCheck { .. });
                    if failed.as_ref().is_none_or(|(_, named)| health && !named) {
                        failed = Some((node.node.clone(), health));
                    }
                    continue;
                }
                let ended = node.ended_at.unwrap_or(now);
                let due = match failure {
                    DeployFailure::Interrupted => ended,
                    _ => ended
                        .checked_add_signed(chrono_duration(retry.backoff))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                };
                if now >= due {
                    to_deploy.push(node.node.clone());
                } else {
                    waiting = Some(waiting.map_or(due, |w| w.min(due)));
                }
            }
        }
    }
    if !to_deploy.is_empty() {
        WaveStep::Deploy(to_deploy)
    } else if let Some(at) = waiting {
        WaveStep::WakeAt(at)
    } else if let Some((node, health)) = failed {
        WaveStep::Failed { node, health }
    } else if in_flight {
        WaveStep::InFlight
    } else {
        WaveStep::Done
    }
}

/// A rollback under way comes before anything else the tier would do, and
/// no freeze holds it. True when the tier has one.
fn plan_rollback(tier: &TierSnap, now: DateTime<Utc>, actions: &mut Vec<Action>) -> bool {
    let Some(rollback) = &tier.rollback else { return false };
    if tier.busy.is_some() {
        // Whatever the tier's worker does ends first: a deploy in flight is
        // finished, and a gate of the candidate is not cancelled (a
        // cancelled run is never retried, which would strand the candidate).
        return true;
    }
    match wave_step(&rollback.deploys, &tier.deploy_retry, now) {
        WaveStep::Deploy(nodes) => actions.push(Action::Deploy {
            tier: tier.name.clone(),
            version: rollback.to.clone(),
            nodes,
            rollback: Some(rollback.id),
        }),
        WaveStep::WakeAt(at) => actions.push(Action::WakeAt(at)),
        WaveStep::InFlight => {}
        WaveStep::Failed { .. } => actions.push(Action::FinishRollback {
            tier: tier.name.clone(),
            id: rollback.id,
            done: false,
        }),
        WaveStep::Done => actions.push(Action::FinishRollback {
            tier: tier.name.clone(),
            id: rollback.id,
            done: true,
        }),
    }
    true
}

fn plan_deploys(
    tier: &TierSnap,
    candidate: &CandidateSnap,
    next: Option<TierId>,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) {
    let waves: Vec<&[NodeDeploy]> = match tier.canary {
        Canary::OneThenRest if candidate.deploys.len() > 1 => {
            let (first, rest) = candidate.deploys.split_at(1);
            vec![first, rest]
        }
        _ => vec![&candidate.deploys[..]],
    };
    for wave in waves {
        match wave_step(wave, &tier.deploy_retry, now) {
            WaveStep::Done => continue,
            WaveStep::Deploy(nodes) => {
                // A freeze holds each new wave; a wave under way (a retry, a
                // node interrupted mid-deploy) finishes.
                let new_wave = wave.iter().all(|n| n.latest.is_none());
                if new_wave
                    && let Some(frozen) =
                        frozen(&tier.freezes, &tier.windows, now, candidate.overridden_at)
                {
                    actions.extend(frozen.until.map(Action::WakeAt));
                    return;
                }
                actions.push(Action::Deploy {
                    tier: tier.name.clone(),
                    version: candidate.version.clone(),
                    nodes,
                    rollback: None,
                });
            }
            WaveStep::WakeAt(at) => actions.push(Action::WakeAt(at)),
            WaveStep::Failed { node, health: true } if tier.auto_rollback => {
                // The version runs on some nodes and is unhealthy on one:
                // back to what the tier ran, when it ran something.
                if let Some(current) = &tier.current {
                    actions.push(Action::AutoRollback {
                        tier: tier.name.clone(),
                        from: candidate.version.clone(),
                        to: current.clone(),
                        cause: RollbackCause::HealthCheck { node },
                    });
                }
            }
            // A node failed for good: the version stays a candidate until
            // an operator or a newer version moves things on.
            WaveStep::Failed { .. } | WaveStep::InFlight => {}
        }
        return;
    }
    actions.push(Action::Promote {
        tier: tier.name.clone(),
        version: candidate.version.clone(),
        next,
    });
}

// ---- approvals -----------------------------------------------------------

/// One approval (a confirmation) as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSnap {
    pub by: String,
    pub at: DateTime<Utc>,
    /// The evidence digest it was given on (`None`: given before policies).
    pub evidence: Option<String>,
}

/// Where a version stands against a tier's approval policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Distinct operators whose approval counts, in the order given.
    pub counted: Vec<String>,
    pub need: u32,
    /// For each approval given (in order): whether it was voided by a
    /// change of the evidence.
    pub voided: Vec<bool>,
}

impl Tally {
    pub fn have(&self) -> u32 {
        u32::try_from(self.counted.len()).unwrap_or(u32::MAX)
    }

    pub fn met(&self) -> bool {
        self.have() >= self.need
    }
}

/// The digest of the evidence an approval is given on: each other gate's
/// latest run of the version at the tier (kind, run, outcome), in kind
/// order. A rerun (a new run) or a reclassification (a new outcome)
/// changes it.
pub fn evidence_digest(runs: &[(GateKind, GateRunId, Option<&GateStatus>)]) -> String {
    use sha2::{Digest, Sha256};
    let mut runs: Vec<_> =
        runs.iter().filter(|(kind, ..)| *kind != GateKind::ManualConfirm).collect();
    runs.sort_by_key(|(kind, id, _)| (kind.to_string(), id.get()));
    let mut hasher = Sha256::new();
    for (kind, id, status) in runs {
        let outcome = status.map(|s| serde_json::to_string(s).unwrap_or_default());
        hasher.update(format!("{kind}\t{id}\t{}\n", outcome.unwrap_or_default()).as_bytes());
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Which approvals count under `policy` on the evidence as it is now: one
/// per operator, given on `evidence`, by someone `from` allows, and not by
/// the commit's `author` when the policy forbids it.
pub fn tally(
    policy: &ApprovalPolicy,
    approvals: &[ApprovalSnap],
    evidence: &str,
    author: Option<&str>,
) -> Tally {
    let mut counted: Vec<String> = Vec::new();
    let mut voided = Vec::new();
    for approval in approvals {
        let current = approval.evidence.as_deref() == Some(evidence);
        voided.push(!current);
        let allowed =
            policy.from.is_empty() || policy.from.iter().any(|f| f.as_str() == approval.by);
        let authored = policy.forbid_author && author == Some(approval.by.as_str());
        if current && allowed && !authored && !counted.contains(&approval.by) {
            counted.push(approval.by.clone());
        }
    }
    Tally { counted, need: policy.required, voided }
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{by} may not approve at {tier}: only {from} may")]
    NotListed { by: String, tier: TierId, from: String },
    #[error("{by} wrote {version} (git author) and may not approve it (forbid_author)")]
    Author { by: String, version: Version },
    #[error("{by} has already approved {version} at {tier} on this evidence")]
    Already { by: String, tier: TierId, version: Version },
}

/// Whether `by` may approve `version` at `tier` now.
pub fn may_approve(
    policy: &ApprovalPolicy,
    by: &str,
    tier: &TierId,
    version: &Version,
    approvals: &[ApprovalSnap],
    evidence: &str,
    author: Option<&str>,
) -> Result<(), Refusal> {
    if !policy.from.is_empty() && !policy.from.iter().any(|f| f.as_str() == by) {
        let from = policy.from.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ");
        return Err(Refusal::NotListed { by: by.into(), tier: tier.clone(), from });
    }
    if policy.forbid_author && author == Some(by) {
        return Err(Refusal::Author { by: by.into(), version: version.clone() });
    }
    if approvals.iter().any(|a| a.by == by && a.evidence.as_deref() == Some(evidence)) {
        return Err(Refusal::Already {
            by: by.into(),
            tier: tier.clone(),
            version: version.clone(),
        });
    }
    Ok(())
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PassNote, RestoreFailureKind};

    fn policy(required: u32, from: &[&str], forbid_author: bool) -> ApprovalPolicy {
        ApprovalPolicy {
            required,
            from: from.iter().map(|f| f.parse().unwrap()).collect(),
            forbid_author,
        }
    }

    fn approval(by: &str, evidence: &str) -> ApprovalSnap {
        ApprovalSnap { by: by.into(), at: t(0), evidence: Some(evidence.into()) }
    }

    #[test]
    fn one_approval_of_two_keeps_the_gate_waiting_and_a_second_operator_meets_it() {
        let p = policy(2, &["alice", "bob", "carol"], true);
        let one = tally(&p, &[approval("alice", "e1")], "e1", Some("carol"));
        assert_eq!((one.have(), one.need, one.met()), (1, 2, false));
        let twice = tally(&p, &[approval("alice", "e1"), approval("alice", "e1")], "e1", None);
        assert_eq!(twice.have(), 1, "one operator counts once");
        let two = tally(&p, &[approval("alice", "e1"), approval("bob", "e1")], "e1", Some("carol"));
        assert_eq!((two.counted.clone(), two.met()), (vec!["alice".into(), "bob".into()], true));
    }

    #[test]
    fn a_change_of_evidence_voids_earlier_approvals() {
        let p = policy(2, &[], false);
        let given = [approval("alice", "e1"), approval("bob", "e2")];
        let now = tally(&p, &given, "e2", None);
        assert_eq!((now.have(), now.voided.clone()), (1, vec![true, false]));
        let old = ApprovalSnap { by: "carol".into(), at: t(0), evidence: None };
        assert_eq!(tally(&p, &[old], "e2", None).voided, vec![true]);
    }

    #[test]
    fn the_author_and_the_unlisted_are_refused_and_nobody_approves_twice() {
        let p = policy(2, &["alice", "bob", "carol"], true);
        let (tier, version) = (tier_id("prod"), v("0.2.0"));
        let ok = may_approve(&p, "alice", &tier, &version, &[], "e1", Some("carol"));
        assert_eq!(ok, Ok(()));
        let author = may_approve(&p, "carol", &tier, &version, &[], "e1", Some("carol"));
        assert_eq!(
            author.unwrap_err().to_string(),
            "carol wrote 0.2.0 (git author) and may not approve it (forbid_author)"
        );
        let unlisted = may_approve(&p, "dave", &tier, &version, &[], "e1", None);
        assert!(matches!(unlisted, Err(Refusal::NotListed { .. })), "{unlisted:?}");
        let given = [approval("alice", "e1")];
        let again = may_approve(&p, "alice", &tier, &version, &given, "e1", None);
        assert!(matches!(again, Err(Refusal::Already { .. })), "{again:?}");
        // On new evidence, the same operator approves afresh.
        assert_eq!(may_approve(&p, "alice", &tier, &version, &given, "e2", None), Ok(()));
        // Without forbid_author the author may approve.
        let lax = policy(1, &[], false);
        assert_eq!(may_approve(&lax, "carol", &tier, &version, &[], "e1", Some("carol")), Ok(()));
        // The author's approval never counts under forbid_author, even if stored.
        assert_eq!(tally(&p, &[approval("carol", "e1")], "e1", Some("carol")).have(), 0);
    }

    #[test]
    fn the_evidence_digest_follows_runs_and_outcomes_not_the_confirmation() {
        let pass = passed();
        let fail = tests_failed();
        let a = evidence_digest(&[(GateKind::CargoTest, run_id(1), Some(&pass))]);
        let rerun = evidence_digest(&[(GateKind::CargoTest, run_id(2), Some(&pass))]);
        let reclassified = evidence_digest(&[(GateKind::CargoTest, run_id(1), Some(&fail))]);
        let with_confirm = evidence_digest(&[
            (GateKind::ManualConfirm, run_id(9), None),
            (GateKind::CargoTest, run_id(1), Some(&pass)),
        ]);
        assert_ne!(a, rerun);
        assert_ne!(a, reclassified);
        assert_eq!(a, with_confirm);
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn tier_id(s: &str) -> TierId {
        s.parse().unwrap()
    }

    fn node(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn run_id(n: i64) -> GateRunId {
        GateRunId::try_from(n).unwrap()
    }

    fn retry(attempts: u32) -> Retry {
        Retry {
            attempts,
            backoff: Duration::from_secs(30),
            on: ["spawn_failed", "interrupted", "component_fault", "host_fault"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn deploy_retry(attempts: u32) -> Retry {
        Retry {
            attempts,
            backoff: Duration::from_secs(30),
            on: ["spawn", "transport", "interrupted"].map(String::from).to_vec(),
        }
    }

    fn passed() -> GateStatus {
        GateStatus::Passed {
            note: PassNote::TestsPassed { count: 1, duration_s: 1, flaky: Vec::new() },
        }
    }

    fn tests_failed() -> GateStatus {
        GateStatus::failed(GateFailure::CargoTest { failed_count: 1, first_failed: None })
    }

    fn gate(kind: GateKind) -> GateSnap {
        GateSnap { kind, retry: retry(3), latest: None, burn_in: None, inputs_changed: None }
    }

    fn with_run(mut gate: GateSnap, id: i64, status: Option<GateStatus>, attempt: u32) -> GateSnap {
        gate.latest = Some(RunSnap {
            id: run_id(id),
            status,
            attempt,
            evaluated_at: t(0),
            rerun_requested: false,
        });
        gate
    }

    fn nodes(names: &[&str]) -> Vec<NodeDeploy> {
        names
            .iter()
            .map(|n| NodeDeploy { node: node(n), latest: None, ended_at: None, attempts: 0 })
            .collect()
    }

    fn tier(name: &str, candidate: Option<CandidateSnap>) -> TierSnap {
        TierSnap {
            name: tier_id(name),
            canary: Canary::AllAtOnce,
            nodes: Vec::new(),
            deploy_retry: deploy_retry(3),
            current: None,
            candidate,
            busy: None,
            freezes: Vec::new(),
            windows: Vec::new(),
            auto_rollback: false,
            rollback: None,
            rolled_back: Vec::new(),
        }
    }

    fn candidate(version: &str, gates: Vec<GateSnap>, node_names: &[&str]) -> CandidateSnap {
        CandidateSnap {
            version: v(version),
            gates,
            deploys: nodes(node_names),
            overridden_at: None,
        }
    }

    fn snapshot(tiers: Vec<TierSnap>) -> Snapshot {
        Snapshot { tiers, build_retry: retry(3), ..Snapshot::default() }
    }

    fn run_gate(tier: &str, version: &str, gate: GateKind, attempt: u32) -> Action {
        Action::RunGate {
            tier: tier_id(tier),
            version: v(version),
            gate,
            attempt,
            max_attempts: 3,
            reevaluate: None,
        }
    }

    fn deploy(tier: &str, version: &str, names: &[&str]) -> Action {
        Action::Deploy {
            tier: tier_id(tier),
            version: v(version),
            nodes: names.iter().map(|n| node(n)).collect(),
            rollback: None,
        }
    }

    fn ok_deploys(mut c: CandidateSnap) -> CandidateSnap {
        for d in &mut c.deploys {
            d.latest = Some(DeployOutcome::Ok);
            d.attempts = 1;
            d.ended_at = Some(t(0));
        }
        c
    }

    /// One scenario: a name, a snapshot, the time, and the actions expected.
    struct Case {
        name: &'static str,
        snapshot: Snapshot,
        now: DateTime<Utc>,
        expected: Vec<Action>,
    }

    fn cases() -> Vec<Case> {
        use GateKind::*;
        let sha: GitSha = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let burn_in = |started: Option<i64>, blocked_at_attempt: Option<GateBlocker>| {
            let mut g = gate(BurnIn);
            g.burn_in = Some((started.map(t), Duration::from_secs(3600 * 2)));
            if let Some(blocker) = blocked_at_attempt {
                g = with_run(g, 7, Some(GateStatus::Blocked { blocker }), 1);
            }
            g
        };
        let remaining = || GateBlocker::BurnInRemaining { seconds: 7200, total_seconds: 7200 };
        vec![
            Case {
                name: "nothing to do",
                snapshot: snapshot(vec![tier("staging", None)]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "a rebuild request builds",
                snapshot: Snapshot {
                    rebuilds: vec![RebuildSnap {
                        request_id: 4,
                        sha: sha.clone(),
                        builds: 0,
                        last_ended: None,
                        interrupted: false,
                    }],
                    ..snapshot(vec![])
                },
                now: t(0),
                expected: vec![Action::Build { request_id: 4, sha: sha.clone(), attempt: 1 }],
            },
            Case {
                name: "one build at a time",
                snapshot: Snapshot {
                    building: true,
                    rebuilds: vec![RebuildSnap {
                        request_id: 5,
                        sha: sha.clone(),
                        builds: 0,
                        last_ended: None,
                        interrupted: false,
                    }],
                    ..snapshot(vec![])
                },
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "a build whose program could not start is built again after its backoff",
                snapshot: Snapshot {
                    rebuilds: vec![RebuildSnap {
                        request_id: 4,
                        sha: sha.clone(),
                        builds: 1,
                        last_ended: Some(t(0)),
                        interrupted: false,
                    }],
                    ..snapshot(vec![])
                },
                now: t(10),
                expected: vec![Action::WakeAt(t(30))],
            },
            Case {
                name: "an interrupted build is built again at once",
                snapshot: Snapshot {
                    rebuilds: vec![RebuildSnap {
                        request_id: 4,
                        sha: sha.clone(),
                        builds: 1,
                        last_ended: Some(t(0)),
                        interrupted: true,
                    }],
                    ..snapshot(vec![])
                },
                now: t(1),
                expected: vec![Action::Build { request_id: 4, sha: sha.clone(), attempt: 2 }],
            },
            Case {
                name: "a build out of attempts is given up",
                snapshot: Snapshot {
                    rebuilds: vec![RebuildSnap {
                        request_id: 4,
                        sha: sha.clone(),
                        builds: 3,
                        last_ended: Some(t(0)),
                        interrupted: false,
                    }],
                    ..snapshot(vec![])
                },
                now: t(100),
                expected: vec![Action::GiveUpRebuild { request_id: 4 }],
            },
            Case {
                name: "normal walk: the first gate runs",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate("0.1.0", vec![gate(CargoTest), gate(BootSmoke)], &["s1"])),
                )]),
                now: t(0),
                expected: vec![run_gate("staging", "0.1.0", CargoTest, 1)],
            },
            Case {
                name: "normal walk: after a pass, the next gate",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(passed()), 1), gate(BootSmoke)],
                        &["s1"],
                    )),
                )]),
                now: t(0),
                expected: vec![run_gate("staging", "0.1.0", BootSmoke, 1)],
            },
            Case {
                name: "normal walk: all passed, deploy",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(passed()), 1)],
                        &["s1", "s2"],
                    )),
                )]),
                now: t(0),
                expected: vec![deploy("staging", "0.1.0", &["s1", "s2"])],
            },
            Case {
                name: "normal walk: deployed everywhere, promote into the next tier",
                snapshot: snapshot(vec![
                    tier(
                        "staging",
                        Some(ok_deploys(candidate(
                            "0.1.0",
                            vec![with_run(gate(CargoTest), 1, Some(passed()), 1)],
                            &["s1"],
                        ))),
                    ),
                    tier("prod", None),
                ]),
                now: t(0),
                expected: vec![Action::Promote {
                    tier: tier_id("staging"),
                    version: v("0.1.0"),
                    next: Some(tier_id("prod")),
                }],
            },
            Case {
                name: "a tier without gates or nodes promotes at once",
                snapshot: snapshot(vec![tier("qa", Some(candidate("0.1.0", vec![], &[])))]),
                now: t(0),
                expected: vec![Action::Promote {
                    tier: tier_id("qa"),
                    version: v("0.1.0"),
                    next: None,
                }],
            },
            Case {
                name: "canary: the first node alone",
                snapshot: snapshot(vec![TierSnap {
                    canary: Canary::OneThenRest,
                    ..tier(
                        "prod",
                        Some(candidate(
                            "0.1.0",
                            vec![with_run(gate(ManualConfirm), 1, Some(passed()), 1)],
                            &["p1", "p2", "p3"],
                        )),
                    )
                }]),
                now: t(0),
                expected: vec![deploy("prod", "0.1.0", &["p1"])],
            },
            Case {
                name: "canary: healthy first node, then the rest",
                snapshot: snapshot(vec![TierSnap {
                    canary: Canary::OneThenRest,
                    ..tier("prod", {
                        let mut c = candidate(
                            "0.1.0",
                            vec![with_run(gate(ManualConfirm), 1, Some(passed()), 1)],
                            &["p1", "p2", "p3"],
                        );
                        c.deploys[0].latest = Some(DeployOutcome::Ok);
                        Some(c)
                    })
                }]),
                now: t(0),
                expected: vec![deploy("prod", "0.1.0", &["p2", "p3"])],
            },
            Case {
                name: "canary: an unhealthy first node stops the rollout",
                snapshot: snapshot(vec![TierSnap {
                    canary: Canary::OneThenRest,
                    ..tier("prod", {
                        let mut c = candidate(
                            "0.1.0",
                            vec![with_run(gate(ManualConfirm), 1, Some(passed()), 1)],
                            &["p1", "p2"],
                        );
                        c.deploys[0].latest = Some(DeployOutcome::Failed {
                            failure: DeployFailure::HealthCheck { exit_code: Some(1) },
                        });
                        c.deploys[0].attempts = 1;
                        Some(c)
                    })
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "interrupted deploy runs again at once",
                snapshot: snapshot(vec![tier("staging", {
                    let mut c = candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(passed()), 1)],
                        &["s1"],
                    );
                    c.deploys[0].latest =
                        Some(DeployOutcome::Failed { failure: DeployFailure::Interrupted });
                    c.deploys[0].attempts = 1;
                    c.deploys[0].ended_at = Some(t(0));
                    Some(c)
                })]),
                now: t(1),
                expected: vec![deploy("staging", "0.1.0", &["s1"])],
            },
            Case {
                name: "a transport failure is retried after its backoff",
                snapshot: snapshot(vec![tier("staging", {
                    let mut c = candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(passed()), 1)],
                        &["s1"],
                    );
                    c.deploys[0].latest = Some(DeployOutcome::Failed {
                        failure: DeployFailure::Transport { exit_code: Some(255) },
                    });
                    c.deploys[0].attempts = 1;
                    c.deploys[0].ended_at = Some(t(0));
                    Some(c)
                })]),
                now: t(5),
                expected: vec![Action::WakeAt(t(30))],
            },
            Case {
                name: "a deploy out of attempts stays failed",
                snapshot: snapshot(vec![tier("staging", {
                    let mut c = candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(passed()), 1)],
                        &["s1"],
                    );
                    c.deploys[0].latest = Some(DeployOutcome::Failed {
                        failure: DeployFailure::Transport { exit_code: Some(255) },
                    });
                    c.deploys[0].attempts = 3;
                    c.deploys[0].ended_at = Some(t(0));
                    Some(c)
                })]),
                now: t(500),
                expected: vec![],
            },
            Case {
                name: "a test failure is a defect: never retried",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(gate(CargoTest), 1, Some(tests_failed()), 1)],
                        &["s1"],
                    )),
                )]),
                now: t(3600),
                expected: vec![],
            },
            Case {
                name: "a migration failure is a defect: never retried",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(MigrationDryRun),
                            1,
                            Some(GateStatus::failed(GateFailure::RestoreFailed {
                                reason: RestoreFailureKind::RestoreCommandFailed,
                            })),
                            1,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(3600),
                expected: vec![],
            },
            Case {
                name: "retry: a spawn failure waits for its backoff",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(CargoTest),
                            1,
                            Some(GateStatus::failed(GateFailure::SpawnFailed { os_error: 2 })),
                            1,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(10),
                expected: vec![Action::WakeAt(t(30))],
            },
            Case {
                name: "retry: a spawn failure runs attempt 2 after its backoff",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(CargoTest),
                            1,
                            Some(GateStatus::failed(GateFailure::SpawnFailed { os_error: 2 })),
                            1,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(30),
                expected: vec![run_gate("staging", "0.1.0", CargoTest, 2)],
            },
            Case {
                name: "retry: the last attempt's infrastructure failure stays",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(CargoTest),
                            1,
                            Some(GateStatus::failed(GateFailure::HostFault {
                                message: "x".into(),
                            })),
                            3,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(3600),
                expected: vec![],
            },
            Case {
                name: "interrupted run runs again at once, as the next attempt",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(CargoTest),
                            1,
                            Some(GateStatus::failed(GateFailure::Interrupted)),
                            1,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(0),
                expected: vec![run_gate("staging", "0.1.0", CargoTest, 2)],
            },
            Case {
                name: "cancelled is never retried",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(CargoTest),
                            1,
                            Some(GateStatus::failed(GateFailure::Cancelled { by: "ops".into() })),
                            1,
                        )],
                        &["s1"],
                    )),
                )]),
                now: t(3600),
                expected: vec![],
            },
            Case {
                name: "rerun: an operator's request starts a fresh first attempt",
                snapshot: snapshot(vec![tier("staging", {
                    let mut g = with_run(gate(CargoTest), 1, Some(tests_failed()), 1);
                    g.latest.as_mut().unwrap().rerun_requested = true;
                    Some(candidate("0.1.0", vec![g], &["s1"]))
                })]),
                now: t(0),
                expected: vec![run_gate("staging", "0.1.0", CargoTest, 1)],
            },
            Case {
                name: "rerun: a passed gate asked to run again (fresh evidence) runs before the confirmation",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = with_run(gate(CargoTest), 1, Some(passed()), 1);
                    g.latest.as_mut().unwrap().rerun_requested = true;
                    let confirm = with_run(
                        gate(ManualConfirm),
                        2,
                        Some(GateStatus::Blocked {
                            blocker: GateBlocker::AwaitingApprovals { have: 1, need: 2 },
                        }),
                        1,
                    );
                    Some(candidate("0.1.0", vec![g, confirm], &["p1"]))
                })]),
                now: t(0),
                expected: vec![run_gate("prod", "0.1.0", CargoTest, 1)],
            },
            Case {
                name: "reject: a rejected version goes no further at the tier, whatever its retry policy",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = gate(ManualConfirm);
                    g.retry.on.push("rejected".into());
                    let rejected = GateStatus::failed(GateFailure::Rejected {
                        by: "alice".into(),
                        reason: "not on a Friday".into(),
                    });
                    Some(candidate("0.1.0", vec![with_run(g, 3, Some(rejected), 1)], &["p1"]))
                })]),
                now: t(3600),
                expected: vec![],
            },
            Case {
                name: "a running gate is left alone",
                snapshot: snapshot(vec![TierSnap {
                    busy: Some(Busy { version: v("0.1.0"), run: Some(run_id(1)) }),
                    ..tier(
                        "staging",
                        Some(candidate(
                            "0.1.0",
                            vec![with_run(gate(CargoTest), 1, None, 1)],
                            &["s1"],
                        )),
                    )
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "newer version arriving mid-gate: the older run is cancelled",
                snapshot: snapshot(vec![TierSnap {
                    busy: Some(Busy { version: v("0.1.0"), run: Some(run_id(1)) }),
                    ..tier("staging", Some(candidate("0.2.0", vec![gate(CargoTest)], &["s1"])))
                }]),
                now: t(0),
                expected: vec![Action::Cancel { run: run_id(1), by: "superseded by 0.2.0".into() }],
            },
            Case {
                name: "newer version arriving mid-gate: finish policy waits",
                snapshot: Snapshot {
                    on_supersede: OnSupersede::Finish,
                    ..snapshot(vec![TierSnap {
                        busy: Some(Busy { version: v("0.1.0"), run: Some(run_id(1)) }),
                        ..tier("staging", Some(candidate("0.2.0", vec![gate(CargoTest)], &["s1"])))
                    }])
                },
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "supersede mid-deploy: a deploy is never cut short",
                snapshot: snapshot(vec![TierSnap {
                    busy: Some(Busy { version: v("0.1.0"), run: None }),
                    ..tier("staging", Some(candidate("0.2.0", vec![gate(CargoTest)], &["s1"])))
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "an older candidate than the current version is dropped",
                snapshot: snapshot(vec![TierSnap {
                    current: Some(v("0.3.0")),
                    ..tier("prod", Some(candidate("0.2.0", vec![gate(ManualConfirm)], &["p1"])))
                }]),
                now: t(0),
                expected: vec![Action::DropCandidate {
                    tier: tier_id("prod"),
                    version: v("0.2.0"),
                }],
            },
            Case {
                name: "blocked by clock: wait until the refresh, no new run",
                snapshot: snapshot(vec![tier(
                    "prod",
                    Some(candidate("0.1.0", vec![burn_in(Some(0), Some(remaining()))], &["p1"])),
                )]),
                now: t(60),
                expected: vec![Action::WakeAt(t(3600))],
            },
            Case {
                name: "blocked by clock: due, evaluated again in place",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = burn_in(Some(0), Some(remaining()));
                    g.latest.as_mut().unwrap().evaluated_at = t(3600);
                    Some(candidate("0.1.0", vec![g], &["p1"]))
                })]),
                now: t(7200),
                expected: vec![Action::RunGate {
                    tier: tier_id("prod"),
                    version: v("0.1.0"),
                    gate: BurnIn,
                    attempt: 1,
                    max_attempts: 3,
                    reevaluate: Some(run_id(7)),
                }],
            },
            Case {
                name: "blocked by clock: a short burn-in wakes at its due time",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = burn_in(Some(0), Some(remaining()));
                    g.burn_in = Some((Some(t(0)), Duration::from_secs(60)));
                    Some(candidate("0.1.0", vec![g], &["p1"]))
                })]),
                now: t(10),
                expected: vec![Action::WakeAt(t(60))],
            },
            Case {
                name: "confirm: awaiting an operator, nothing changed, nothing runs",
                snapshot: snapshot(vec![tier(
                    "prod",
                    Some(candidate(
                        "0.1.0",
                        vec![with_run(
                            gate(ManualConfirm),
                            3,
                            Some(GateStatus::Blocked {
                                blocker: GateBlocker::AwaitingOperatorConfirmation,
                            }),
                            1,
                        )],
                        &["p1"],
                    )),
                )]),
                now: t(999),
                expected: vec![],
            },
            Case {
                name: "confirm: a confirmation re-evaluates the same run",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = with_run(
                        gate(ManualConfirm),
                        3,
                        Some(GateStatus::Blocked {
                            blocker: GateBlocker::AwaitingOperatorConfirmation,
                        }),
                        1,
                    );
                    g.inputs_changed = Some(t(5));
                    Some(candidate("0.1.0", vec![g], &["p1"]))
                })]),
                now: t(6),
                expected: vec![Action::RunGate {
                    tier: tier_id("prod"),
                    version: v("0.1.0"),
                    gate: ManualConfirm,
                    attempt: 1,
                    max_attempts: 3,
                    reevaluate: Some(run_id(3)),
                }],
            },
            Case {
                name: "tiers in parallel: staging runs a gate while prod deploys",
                snapshot: snapshot(vec![
                    TierSnap {
                        busy: Some(Busy { version: v("0.2.0"), run: Some(run_id(9)) }),
                        ..tier(
                            "staging",
                            Some(candidate(
                                "0.2.0",
                                vec![with_run(gate(CargoTest), 9, None, 1)],
                                &["s1"],
                            )),
                        )
                    },
                    tier(
                        "prod",
                        Some(candidate(
                            "0.1.0",
                            vec![with_run(gate(ManualConfirm), 8, Some(passed()), 1)],
                            &["p1"],
                        )),
                    ),
                ]),
                now: t(0),
                expected: vec![deploy("prod", "0.1.0", &["p1"])],
            },
            Case {
                name: "a failed gate stops the tier before later gates",
                snapshot: snapshot(vec![tier(
                    "staging",
                    Some(candidate(
                        "0.1.0",
                        vec![
                            with_run(gate(CargoTest), 1, Some(tests_failed()), 1),
                            gate(BootSmoke),
                        ],
                        &["s1"],
                    )),
                )]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "the earliest of several wake-ups is kept",
                snapshot: snapshot(vec![
                    tier(
                        "a",
                        Some(candidate("0.1.0", vec![burn_in(Some(0), Some(remaining()))], &[])),
                    ),
                    tier("b", {
                        let mut g = burn_in(Some(0), Some(remaining()));
                        g.burn_in = Some((Some(t(0)), Duration::from_secs(90)));
                        Some(candidate("0.1.0", vec![g], &[]))
                    }),
                ]),
                now: t(10),
                expected: vec![Action::WakeAt(t(90))],
            },
            Case {
                name: "a ten-year burn-in does not overflow",
                snapshot: snapshot(vec![tier("prod", {
                    let mut g = burn_in(Some(0), Some(remaining()));
                    g.burn_in = Some((Some(DateTime::<Utc>::MAX_UTC), crate::config::MAX_DURATION));
                    Some(candidate("0.1.0", vec![g], &[]))
                })]),
                now: t(10),
                expected: vec![Action::WakeAt(t(3600))],
            },
        ]
    }

    fn freeze(until: Option<i64>) -> FreezeSnap {
        FreezeSnap {
            id: 1,
            tier: None,
            by: "alice".into(),
            reason: "release weekend".into(),
            since: t(-60),
            until: until.map(t),
        }
    }

    /// A tier whose candidate passed its gates and waits to deploy to p1, p2.
    fn ready(name: &str, version: &str) -> TierSnap {
        use GateKind::*;
        tier(
            name,
            Some(candidate(
                version,
                vec![with_run(gate(ManualConfirm), 1, Some(passed()), 1)],
                &["p1", "p2"],
            )),
        )
    }

    fn rollback_snap(deploys: Vec<NodeDeploy>) -> RollbackSnap {
        RollbackSnap { id: 4, from: v("0.2.0"), to: v("0.1.0"), deploys }
    }

    fn deployed(name: &str, outcome: Option<DeployOutcome>, attempts: u32) -> NodeDeploy {
        NodeDeploy { node: node(name), latest: outcome, ended_at: Some(t(0)), attempts }
    }

    fn health_failed() -> DeployOutcome {
        DeployOutcome::Failed { failure: DeployFailure::HealthCheck { exit_code: Some(1) } }
    }

    /// Freezes, windows and rollbacks (issue 29), with the clock injected.
    fn tier_control_cases() -> Vec<Case> {
        // t(0) is 2027-01-15 08:00 UTC, a Friday.
        let window = |from: &str, to: &str| {
            FreezeWindow::new(from.parse().unwrap(), to.parse().unwrap(), chrono_tz::Tz::UTC)
                .unwrap()
        };
        let rollback_deploy = |names: &[&str]| Action::Deploy {
            tier: tier_id("prod"),
            version: v("0.1.0"),
            nodes: names.iter().map(|n| node(n)).collect(),
            rollback: Some(4),
        };
        vec![
            Case {
                name: "a freeze until lifted holds the deploy, and nothing wakes it but a change",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(None)],
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "a freeze with an end wakes the planner then",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(Some(600))],
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![Action::WakeAt(t(600))],
            },
            Case {
                name: "a freeze past its end holds nothing",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(Some(600))],
                    ..ready("prod", "0.2.0")
                }]),
                now: t(600),
                expected: vec![deploy("prod", "0.2.0", &["p1", "p2"])],
            },
            Case {
                name: "an admin's override lets one version through a freeze",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(None)],
                    candidate: ready("prod", "0.2.0")
                        .candidate
                        .map(|c| CandidateSnap { overridden_at: Some(t(-30)), ..c }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![deploy("prod", "0.2.0", &["p1", "p2"])],
            },
            Case {
                name: "an override does not let the version through a freeze begun after it",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![
                        freeze(None),
                        FreezeSnap { id: 2, since: t(-10), ..freeze(None) },
                    ],
                    candidate: ready("prod", "0.2.0")
                        .candidate
                        .map(|c| CandidateSnap { overridden_at: Some(t(-30)), ..c }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "nor through a freeze window that opens after it",
                snapshot: snapshot(vec![TierSnap {
                    windows: vec![window("Fri 07:59", "Fri 09:00")],
                    candidate: ready("prod", "0.2.0")
                        .candidate
                        .map(|c| CandidateSnap { overridden_at: Some(t(-3600)), ..c }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![Action::WakeAt(t(3600))],
            },
            Case {
                name: "a config window freezes by the clock and says when it thaws",
                snapshot: snapshot(vec![TierSnap {
                    windows: vec![window("Fri 07:00", "Fri 09:00")],
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![Action::WakeAt(t(3600))],
            },
            Case {
                name: "the same window thaws at its end",
                snapshot: snapshot(vec![TierSnap {
                    windows: vec![window("Fri 07:00", "Fri 09:00")],
                    ..ready("prod", "0.2.0")
                }]),
                now: t(3600),
                expected: vec![deploy("prod", "0.2.0", &["p1", "p2"])],
            },
            Case {
                name: "a weekend window wrapping past Sunday holds on a Monday morning",
                snapshot: snapshot(vec![TierSnap {
                    windows: vec![window("Fri 16:00", "Mon 09:00")],
                    ..ready("prod", "0.2.0")
                }]),
                // Monday 2027-01-18 08:00 UTC.
                now: t(3 * 86_400),
                expected: vec![Action::WakeAt(t(3 * 86_400 + 3600))],
            },
            Case {
                name: "gates still run in a frozen tier",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(None)],
                    ..tier(
                        "prod",
                        Some(candidate("0.2.0", vec![gate(GateKind::CargoTest)], &["p1"])),
                    )
                }]),
                now: t(0),
                expected: vec![run_gate("prod", "0.2.0", GateKind::CargoTest, 1)],
            },
            Case {
                name: "a canary deployed before the freeze stays; the rest waits",
                snapshot: snapshot(vec![TierSnap {
                    canary: Canary::OneThenRest,
                    freezes: vec![freeze(None)],
                    candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                        c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                        c
                    }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "a freeze never stops a rollback, which comes before the candidate",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(None)],
                    current: Some(v("0.2.0")),
                    rollback: Some(rollback_snap(nodes(&["p1", "p2"]))),
                    ..ready("prod", "0.3.0")
                }]),
                now: t(0),
                expected: vec![rollback_deploy(&["p1", "p2"])],
            },
            Case {
                name: "a rollback waits for the candidate's gate in flight, and nothing else starts",
                snapshot: snapshot(vec![TierSnap {
                    busy: Some(Busy { version: v("0.3.0"), run: Some(run_id(9)) }),
                    rollback: Some(rollback_snap(nodes(&["p1"]))),
                    ..ready("prod", "0.3.0")
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "a freeze does not stop a wave under way: an interrupted node is deployed again",
                snapshot: snapshot(vec![TierSnap {
                    freezes: vec![freeze(None)],
                    candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                        c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                        c.deploys[1] = deployed(
                            "p2",
                            Some(DeployOutcome::Failed { failure: DeployFailure::Interrupted }),
                            1,
                        );
                        c
                    }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![deploy("prod", "0.2.0", &["p2"])],
            },
            Case {
                name: "every node back on the old version settles the rollback as done",
                snapshot: snapshot(vec![TierSnap {
                    rollback: Some(rollback_snap(vec![
                        deployed("p1", Some(DeployOutcome::Ok), 1),
                        deployed("p2", Some(DeployOutcome::Ok), 1),
                    ])),
                    ..tier("prod", None)
                }]),
                now: t(0),
                expected: vec![Action::FinishRollback { tier: tier_id("prod"), id: 4, done: true }],
            },
            Case {
                name: "a rollback deploy that failed for good settles it as failed",
                snapshot: snapshot(vec![TierSnap {
                    rollback: Some(rollback_snap(vec![
                        deployed("p1", Some(DeployOutcome::Ok), 1),
                        deployed("p2", Some(health_failed()), 1),
                    ])),
                    ..tier("prod", None)
                }]),
                now: t(0),
                expected: vec![Action::FinishRollback {
                    tier: tier_id("prod"),
                    id: 4,
                    done: false,
                }],
            },
            Case {
                name: "a version rolled back from a tier is dropped there and at every later tier",
                snapshot: snapshot(vec![
                    TierSnap {
                        rolled_back: vec![v("0.2.0")],
                        current: Some(v("0.1.0")),
                        ..ready("staging", "0.2.0")
                    },
                    ready("prod", "0.2.0"),
                ]),
                now: t(0),
                expected: vec![
                    Action::DropCandidate { tier: tier_id("staging"), version: v("0.2.0") },
                    Action::DropCandidate { tier: tier_id("prod"), version: v("0.2.0") },
                ],
            },
            Case {
                name: "a barred candidate already on a node takes the tier back first, without auto_rollback",
                snapshot: snapshot(vec![
                    TierSnap {
                        rolled_back: vec![v("0.2.0")],
                        current: Some(v("0.1.0")),
                        ..tier("staging", None)
                    },
                    TierSnap {
                        current: Some(v("0.1.0")),
                        candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                            c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                            c
                        }),
                        ..ready("prod", "0.2.0")
                    },
                ]),
                now: t(0),
                expected: vec![Action::AutoRollback {
                    tier: tier_id("prod"),
                    from: v("0.2.0"),
                    to: v("0.1.0"),
                    cause: RollbackCause::Barred,
                }],
            },
            Case {
                name: "a barred candidate on a node of a tier that ran nothing before is only dropped",
                snapshot: snapshot(vec![
                    TierSnap {
                        rolled_back: vec![v("0.2.0")],
                        current: Some(v("0.1.0")),
                        ..tier("staging", None)
                    },
                    TierSnap {
                        candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                            c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                            c
                        }),
                        ..ready("prod", "0.2.0")
                    },
                ]),
                now: t(0),
                expected: vec![Action::DropCandidate {
                    tier: tier_id("prod"),
                    version: v("0.2.0"),
                }],
            },
            Case {
                name: "a failed health check with auto_rollback takes the tier back",
                snapshot: snapshot(vec![TierSnap {
                    auto_rollback: true,
                    current: Some(v("0.1.0")),
                    candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                        c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                        c.deploys[1] = deployed("p2", Some(health_failed()), 1);
                        c
                    }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![Action::AutoRollback {
                    tier: tier_id("prod"),
                    from: v("0.2.0"),
                    to: v("0.1.0"),
                    cause: RollbackCause::HealthCheck { node: node("p2") },
                }],
            },
            Case {
                name: "without auto_rollback a failed health check leaves the candidate stuck",
                snapshot: snapshot(vec![TierSnap {
                    current: Some(v("0.1.0")),
                    candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                        c.deploys[1] = deployed("p2", Some(health_failed()), 1);
                        c.deploys[0] = deployed("p1", Some(DeployOutcome::Ok), 1);
                        c
                    }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![],
            },
            Case {
                name: "auto_rollback with nothing current before has nowhere to go",
                snapshot: snapshot(vec![TierSnap {
                    auto_rollback: true,
                    candidate: ready("prod", "0.2.0").candidate.map(|mut c| {
                        c.deploys[0] = deployed("p1", Some(health_failed()), 1);
                        c.deploys[1] = deployed("p2", Some(DeployOutcome::Ok), 1);
                        c
                    }),
                    ..ready("prod", "0.2.0")
                }]),
                now: t(0),
                expected: vec![],
            },
        ]
    }

    #[test]
    fn freezes_windows_and_rollbacks_plan_as_expected() {
        let mut failures = Vec::new();
        for case in tier_control_cases() {
            let actual = plan(&case.snapshot, case.now);
            if actual != case.expected {
                failures.push(format!(
                    "{}:\n  expected {:?}\n  actual   {:?}",
                    case.name, case.expected, actual
                ));
            }
            assert_eq!(actual, plan(&case.snapshot, case.now), "{}: idempotent", case.name);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn an_operators_freeze_is_shown_before_a_window_and_a_future_one_holds_nothing_yet() {
        let w = FreezeWindow::new(
            "Fri 07:00".parse().unwrap(),
            "Fri 09:00".parse().unwrap(),
            chrono_tz::Tz::UTC,
        )
        .unwrap();
        let both = frozen(&[freeze(None)], std::slice::from_ref(&w), t(0), None).unwrap();
        assert_eq!((both.manual, both.by.as_str()), (Some(1), "alice"));
        let window_only = frozen(&[], std::slice::from_ref(&w), t(0), None).unwrap();
        assert_eq!(
            (window_only.manual, window_only.since, window_only.until),
            (None, t(-3600), Some(t(3600)))
        );
        let later = FreezeSnap { since: t(60), ..freeze(None) };
        assert_eq!(frozen(&[later], &[], t(0), None), None);
    }

    #[test]
    fn every_scenario_plans_as_expected() {
        let cases = cases();
        assert!(cases.len() >= 20, "at least 20 scenarios, have {}", cases.len());
        let mut failures = Vec::new();
        for case in cases {
            let actual = plan(&case.snapshot, case.now);
            if actual != case.expected {
                failures.push(format!(
                    "{}:\n  expected {:?}\n  actual   {:?}",
                    case.name, case.expected, actual
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn planning_is_idempotent() {
        for case in cases() {
            assert_eq!(
                plan(&case.snapshot, case.now),
                plan(&case.snapshot, case.now),
                "{}",
                case.name
            );
        }
    }
}
