//! The coordinator: loads a snapshot, asks the planner what to do, hands each action to a worker, and waits for a trigger, a worker's end or the next clock deadline. It never runs a process itself.
//!
//! One build worker and one worker per tier: gates within a tier run in
//! order, tiers run in parallel. A worker that panics is settled with a
//! typed `host_fault` for what it was doing, and the loop goes on. The
//! coordinator itself is supervised: if it panics it is started again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::events::Event;
use super::plan::{
    self, Action, Busy, CandidateSnap, GateSnap, NodeDeploy, RebuildSnap, RollbackSnap, RunSnap,
    Snapshot, TierSnap,
};
use super::shared::Daemon;
use super::work::{self, Progress, SharedProgress};
use crate::config::Gate;
use crate::domain::{
    BuildFailure, BuildOutcome, DeployFailure, DeployOutcome, GateFailure, GateKind, GateStatus,
    RollbackProgress, TierId, Version, WorkerState,
};
use crate::store::{Attempt, PlanDeploy, RunCost, StoreError};

/// Restarts the coordinator whenever it stops, so a bug in it costs a
/// moment, not every later deploy. `/api/state` shows whether it is alive.
pub(crate) async fn supervise(daemon: Arc<Daemon>) {
    let mut restarts = 0u32;
    loop {
        daemon.work.set_alive(true);
        let ended = tokio::spawn(coordinate(daemon.clone())).await;
        daemon.work.set_alive(false);
        match ended {
            Ok(()) => return,
            Err(e) => {
                restarts = restarts.saturating_add(1);
                tracing::error!(error = %e, restarts, "the decision loop stopped; starting it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Who does a piece of work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Build,
    Tier(TierId),
}

impl Slot {
    fn name(&self) -> String {
        match self {
            Slot::Build => "build".into(),
            Slot::Tier(tier) => format!("tier:{tier}"),
        }
    }
}

/// A worker at work.
struct Running {
    task: tokio::task::Id,
    doing: String,
    since: DateTime<Utc>,
    version: Option<Version>,
    progress: SharedProgress,
}

struct Workers {
    slots: HashMap<Slot, Running>,
    tasks: JoinSet<()>,
}

impl Workers {
    fn start<F>(&mut self, slot: Slot, doing: String, version: Option<Version>, work: F)
    where
        F: FnOnce(SharedProgress) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    {
        if self.slots.contains_key(&slot) {
            return;
        }
        let progress: SharedProgress = Arc::default();
        let handle = self.tasks.spawn(work(progress.clone()));
        tracing::debug!(worker = slot.name(), doing, "worker started");
        self.slots.insert(
            slot,
            Running { task: handle.id(), doing, since: Utc::now(), version, progress },
        );
    }

    fn states(&self, daemon: &Daemon) -> Vec<WorkerState> {
        let mut names = vec![Slot::Build];
        names.extend(daemon.config.tiers.iter().map(|t| Slot::Tier(t.name.clone())));
        names
            .into_iter()
            .map(|slot| {
                let running = self.slots.get(&slot);
                WorkerState {
                    name: slot.name(),
                    doing: running.map(|r| r.doing.clone()),
                    since: running.map(|r| r.since),
                }
            })
            .collect()
    }
}

async fn coordinate(daemon: Arc<Daemon>) {
    // Whatever a previous coordinator (or daemon) left in flight died with
    // it, but jobs that outlive a daemon: those are followed again.
    let adopt = match work::gate::adoptable(&daemon).await {
        Ok(adopt) => adopt,
        Err(e) => {
            tracing::error!(error = %e, "reading the jobs left running");
            Vec::new()
        }
    };
    if let Err(e) = daemon.store.interrupt_unfinished(Utc::now()).await {
        tracing::error!(error = %e, "settling work left in flight");
    }
    let mut workers = Workers { slots: HashMap::new(), tasks: JoinSet::new() };
    for run in adopt {
        let d = daemon.clone();
        let doing = format!(
            "{} for {} (run {}, its job followed again)",
            run.gate, run.version, run.run_id
        );
        let (slot, version) = (Slot::Tier(run.tier.clone()), Some(run.version.clone()));
        let job = work::gate::GateJob::adopting(run);
        workers.start(slot, doing, version, move |p| Box::pin(work::gate::run(d, job, p)));
    }
    loop {
        let mut wake: Option<DateTime<Utc>> = None;
        let mut again = false;
        let pass = std::time::Instant::now();
        match load(&daemon, &workers).await {
            Ok(snapshot) => {
                let now = Utc::now();
                for action in plan::plan(&snapshot, now) {
                    match dispatch(&daemon, &mut workers, action).await {
                        Ok(Next::Wait) => {}
                        Ok(Next::PlanAgain) => again = true,
                        Ok(Next::WakeAt(at)) => wake = Some(at),
                        Err(e) => {
                            tracing::error!(error = %e, "the decision loop's store failed");
                            wake = Some(now + chrono::Duration::seconds(1));
                        }
                    }
                }
                daemon.work.set_status(true, Some(now), workers.states(&daemon));
                super::metrics::global().planner_pass(pass.elapsed());
            }
            Err(e) => {
                tracing::error!(error = %e, "loading the decision loop's snapshot");
                wake = Some(Utc::now() + chrono::Duration::seconds(1));
            }
        }
        if again {
            continue;
        }
        let sleep = wake
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or(if wake.is_some() { Duration::ZERO } else { Duration::from_secs(3600) });
        tokio::select! {
            () = daemon.wake.notified() => {}
            Some(ended) = workers.tasks.join_next_with_id(), if !workers.tasks.is_empty() => {
                settle(&daemon, &mut workers, ended).await;
            }
            () = tokio::time::sleep(sleep) => {}
        }
        // Everything else that ended meanwhile, in the same pass.
        while let Some(ended) = workers.tasks.try_join_next_with_id() {
            settle(&daemon, &mut workers, ended).await;
        }
        daemon.work.set_status(true, None, workers.states(&daemon));
    }
}

enum Next {
    Wait,
    PlanAgain,
    WakeAt(DateTime<Utc>),
}

async fn dispatch(
    daemon: &Arc<Daemon>,
    workers: &mut Workers,
    action: Action,
) -> Result<Next, StoreError> {
    match action {
        Action::Build { request_id, sha, attempt } => {
            let d = daemon.clone();
            let doing = format!("building {} (attempt {attempt})", sha.short());
            workers.start(Slot::Build, doing, None, move |p| {
                Box::pin(work::build::run(d, request_id, sha, p))
            });
        }
        Action::GiveUpRebuild { request_id } => {
            tracing::warn!(request = request_id, "a rebuild request ran out of attempts");
            daemon.store.settle_rebuild(request_id, None, Utc::now()).await?;
            return Ok(Next::PlanAgain);
        }
        Action::RunGate { tier, version, gate, attempt, max_attempts, reevaluate } => {
            let d = daemon.clone();
            let doing = match reevaluate {
                Some(run) => format!("{gate} for {version} (run {run}, evaluated again)"),
                None => format!("{gate} for {version} (attempt {attempt} of {max_attempts})"),
            };
            let job = work::gate::GateJob {
                tier: tier.clone(),
                version: version.clone(),
                gate,
                attempt: Attempt { number: attempt, of: max_attempts },
                reevaluate,
                adopt: None,
            };
            workers.start(Slot::Tier(tier), doing, Some(version), move |p| {
                Box::pin(work::gate::run(d, job, p))
            });
        }
        Action::Deploy { tier, version, nodes, rollback } => {
            let d = daemon.clone();
            let names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
            let doing = match rollback {
                Some(_) => format!("rolling back to {version} on {}", names.join(", ")),
                None => format!("deploying {version} to {}", names.join(", ")),
            };
            let slot = Slot::Tier(tier.clone());
            workers.start(slot, doing, Some(version.clone()), move |p| {
                Box::pin(work::deploy::run(d, tier, version, nodes, rollback, p))
            });
        }
        Action::FinishRollback { tier, id, done } => {
            let progress = if done { RollbackProgress::Done } else { RollbackProgress::Failed };
            daemon.store.finish_rollback(id, progress, Utc::now()).await?;
            tracing::info!(%tier, rollback = id, done, "rollback settled");
            if let Some(r) = daemon.store.rollbacks().await?.into_iter().find(|r| r.id == id) {
                daemon.bus.send(Event::RolledBack { tier, from: r.from, to: r.to, by: r.by, done });
            }
            return Ok(Next::PlanAgain);
        }
        Action::AutoRollback { tier, from, to, cause } => {
            super::tier_control::auto_rollback(daemon, &tier, &from, &to, &cause).await?;
            return Ok(Next::PlanAgain);
        }
        Action::Promote { tier, version, next } => {
            let replaced =
                daemon.store.promote_to(&tier, &version, next.as_ref(), Utc::now()).await?;
            tracing::info!(%tier, %version, "promoted");
            // Promoted out of the first tier: the version earned a place in
            // the build cache's base. Its feed queues for the cache's write
            // lock before anyone hears of the promotion, so a build asked for
            // after it builds on what it fed.
            if daemon.config.tiers.first().is_some_and(|t| t.name == tier) {
                work::cache::start_feed(daemon, &version);
            }
            daemon.bus.send(Event::Promoted { tier, version: version.clone() });
            if let (Some(next), Some(previous)) = (next, replaced) {
                daemon.bus.send(Event::Superseded { tier: next, version: previous, by: version });
            }
            return Ok(Next::PlanAgain);
        }
        Action::DropCandidate { tier, version } => {
            tracing::info!(%tier, %version, "candidate dropped: the tier runs something as new");
            daemon.store.drop_candidate(&tier, &version).await?;
            return Ok(Next::PlanAgain);
        }
        Action::Cancel { run, by } => {
            if daemon.work.cancel_run(run, &by) {
                tracing::info!(run_id = %run, by, "cancelling");
            }
        }
        Action::WakeAt(at) => return Ok(Next::WakeAt(at)),
    }
    Ok(Next::Wait)
}

/// A worker ended: free its slot, and give whatever it left unfinished (it
/// panicked, or its store write failed) a typed `host_fault`.
async fn settle(
    daemon: &Daemon,
    workers: &mut Workers,
    ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    let (id, panic) = match ended {
        Ok((id, ())) => (id, None),
        Err(e) => (e.id(), Some(panic_message(e))),
    };
    let Some(slot) = workers.slots.iter().find(|(_, r)| r.task == id).map(|(s, _)| s.clone())
    else {
        return;
    };
    let running = workers.slots.remove(&slot).expect("found above");
    let message = match &panic {
        Some(panic) => {
            tracing::error!(worker = slot.name(), doing = running.doing, panic, "worker panicked");
            format!("worker panicked: {panic}")
        }
        None => "the worker ended without recording an outcome".to_owned(),
    };
    let progress = std::mem::take(&mut *running.progress.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(e) = settle_leftovers(daemon, progress, &message).await {
        tracing::error!(error = %e, "settling what a worker left unfinished");
    }
}

async fn settle_leftovers(
    daemon: &Daemon,
    progress: Progress,
    message: &str,
) -> Result<(), StoreError> {
    let now = Utc::now();
    if let Some(run) = progress.run {
        daemon.work.untrack_run(run);
        if let Some(summary) = daemon.store.gate_run(run).await?
            && summary.outcome.is_none()
        {
            let status = GateStatus::failed(GateFailure::HostFault { message: message.to_owned() });
            daemon.store.finish_gate_run(run, &status, RunCost::ZERO, now, now).await?;
            let record = daemon.store.gate_run(run).await?;
            if let Some(record) = &record {
                super::metrics::global().gate_run(record);
            }
            daemon.bus.send(Event::GateDone {
                run_id: run,
                tier: summary.tier,
                version: summary.version,
                gate: summary.gate,
                outcome: crate::domain::GateOutcome { status, log_ref: summary.log_ref },
                summary: record.map(|r| Box::new(r.into())),
            });
        }
    }
    for deploy in progress.deploys {
        let outcome = DeployOutcome::Failed {
            failure: DeployFailure::HostFault { message: message.to_owned() },
        };
        daemon.store.finish_deploy_if_in_progress(deploy, &outcome, now).await?;
    }
    if let Some(build) = progress.build {
        let outcome = BuildOutcome::Failed {
            failure: BuildFailure::HostFault { message: message.to_owned() },
        };
        daemon.store.finish_build_if_running(build, &outcome, now).await?;
    }
    Ok(())
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "cancelled".into();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// What the store and the workers say now, as the planner reads it.
async fn load(daemon: &Daemon, workers: &Workers) -> Result<Snapshot, StoreError> {
    let rows = daemon.store.tiers().await?;
    let freezes = daemon.store.freezes_in_force(Utc::now()).await?;
    let rollbacks = daemon.store.rollbacks().await?;
    let mut tiers = Vec::new();
    for tier in &daemon.config.tiers {
        let row = rows.iter().find(|r| r.name == tier.name);
        let current = row.and_then(|r| r.current_version.clone());
        let busy = workers.slots.get(&Slot::Tier(tier.name.clone())).and_then(|running| {
            let version = running.version.clone()?;
            let run = running.progress.lock().unwrap_or_else(|p| p.into_inner()).run;
            Some(Busy { version, run })
        });
        let candidate = match row.and_then(|r| r.candidate_version.clone()) {
            Some(version) => Some(load_candidate(daemon, tier, version).await?),
            None => None,
        };
        let pending = rollbacks
            .iter()
            .find(|r| r.tier == tier.name && r.progress == RollbackProgress::Pending);
        let rollback = match pending {
            Some(r) => {
                let deploys = daemon.store.rollback_deploys(r.id).await?;
                Some(RollbackSnap {
                    id: r.id,
                    from: r.from.clone(),
                    to: r.to.clone(),
                    deploys: node_deploys(tier, &deploys),
                })
            }
            None => None,
        };
        tiers.push(TierSnap {
            name: tier.name.clone(),
            canary: tier.canary,
            nodes: tier.nodes.iter().map(|n| n.name.clone()).collect(),
            deploy_retry: tier.deploy_retry.clone(),
            current,
            candidate,
            busy,
            freezes: freezes
                .iter()
                .filter(|f| f.tier.as_ref().is_none_or(|t| *t == tier.name))
                .map(super::tier_control::freeze_snap)
                .collect(),
            windows: tier.freeze.clone(),
            auto_rollback: tier.auto_rollback,
            rollback,
            rolled_back: rollbacks
                .iter()
                .filter(|r| r.tier == tier.name)
                .map(|r| r.from.clone())
                .collect(),
        });
    }
    let rebuilds = daemon
        .store
        .open_rebuilds()
        .await?
        .into_iter()
        .map(|r| RebuildSnap {
            request_id: r.id,
            sha: r.git_sha,
            builds: u32::try_from(r.builds).unwrap_or(u32::MAX),
            last_ended: r.last_ended,
            interrupted: r.last_outcome
                == Some(BuildOutcome::Failed { failure: BuildFailure::Interrupted }),
        })
        .collect();
    Ok(Snapshot {
        tiers,
        rebuilds,
        building: workers.slots.contains_key(&Slot::Build),
        build_retry: daemon.config.defaults.retry.clone(),
        on_supersede: daemon.config.defaults.on_supersede,
    })
}

async fn load_candidate(
    daemon: &Daemon,
    tier: &crate::config::Tier,
    version: Version,
) -> Result<CandidateSnap, StoreError> {
    let runs = daemon.store.plan_runs(&tier.name, &version).await?;
    let inputs_changed = daemon.store.inputs_changed(&tier.name, &version).await?;
    // Under an approval policy the confirmation also waits on the evidence
    // its approvals were given on: a gate's new outcome re-evaluates it (an
    // approval it voids no longer counts).
    let evidence_changed = tier.approvals.as_ref().and_then(|_| {
        runs.iter().filter(|r| r.gate != GateKind::ManualConfirm).map(|r| r.evaluated_at).max()
    });
    let mut gates = Vec::new();
    for spec in &tier.gates {
        let latest = runs.iter().find(|r| r.gate == spec.kind()).map(|r| RunSnap {
            id: r.run_id,
            status: r.outcome.clone(),
            attempt: u32::try_from(r.attempt).unwrap_or(1),
            evaluated_at: r.evaluated_at,
            rerun_requested: r.rerun_requested,
        });
        let burn_in = match &spec.gate {
            Gate::BurnIn { duration, .. } => {
                let started =
                    work::gate::burn_in_started(daemon, tier, &spec.gate, &version).await?;
                Some((started, *duration))
            }
            _ => None,
        };
        gates.push(GateSnap {
            kind: spec.kind(),
            retry: spec.retry.clone(),
            latest,
            burn_in,
            inputs_changed: match spec.kind() {
                GateKind::ManualConfirm => inputs_changed.max(evidence_changed),
                _ => inputs_changed,
            },
        });
    }
    let deploys = daemon.store.plan_deploys(&tier.name, &version).await?;
    let deploys = node_deploys(tier, &deploys);
    let overridden_at = daemon.store.freeze_override(&tier.name, &version).await?.map(|o| o.at);
    Ok(CandidateSnap { version, gates, deploys, overridden_at })
}

/// Each node of `tier` with its latest deploy among `deploys`.
fn node_deploys(tier: &crate::config::Tier, deploys: &[PlanDeploy]) -> Vec<NodeDeploy> {
    tier.nodes
        .iter()
        .map(|node| {
            let latest = deploys.iter().find(|d| d.node == node.name);
            NodeDeploy {
                node: node.name.clone(),
                latest: latest.map(|d| d.outcome.clone()),
                ended_at: latest.and_then(|d| d.finished_at),
                attempts: latest.map_or(0, |d| u32::try_from(d.attempts).unwrap_or(u32::MAX)),
            }
        })
        .collect()
}
