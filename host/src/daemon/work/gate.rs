//! The gate worker: one run of a gate for a tier's candidate, or a blocked run evaluated again in place.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tracing::Instrument;

use super::{SharedProgress, note};
use crate::config::{Command, Gate, GateSpec, Tier};
use crate::daemon::events::Event;
use crate::daemon::logs::RunLog;
use crate::daemon::shared::{Daemon, Stop};
use crate::domain::{
    GateBlocker, GateFailure, GateKind, GateOutcome, GateRunId, GateStatus, LogRef, TierId, Version,
};
use crate::executor::{Ended, LogSink, Mounted};
use crate::sandbox::transcript::Transcript;
use crate::sandbox::{
    Backup, BurnInClock, Confirmation, Contract, GateParams, Invocation, JobBook, RecordSpawn,
    Resume, RunnerEnv,
};
use crate::store::{Attempt, RunComponents, RunCost, RunJob, StoreError, VersionRecord};

/// What the planner asked for.
#[derive(Debug, Clone)]
pub(crate) struct GateJob {
    pub tier: TierId,
    pub version: Version,
    pub gate: GateKind,
    pub attempt: Attempt,
    pub reevaluate: Option<GateRunId>,
    /// A run a previous daemon left running with a job that outlives it:
    /// followed again, not started again.
    pub adopt: Option<RunJob>,
}

impl GateJob {
    /// The job of following a run a previous daemon left running.
    pub(crate) fn adopting(run: RunJob) -> GateJob {
        let number = |n: i64| u32::try_from(n).unwrap_or(1);
        GateJob {
            tier: run.tier.clone(),
            version: run.version.clone(),
            gate: run.gate,
            attempt: Attempt { number: number(run.attempt), of: number(run.max_attempts) },
            reevaluate: None,
            adopt: Some(run),
        }
    }
}

/// Running runs whose jobs this daemon can follow again, oldest first. A
/// job it cannot follow (its gate is no longer configured, or the executor
/// is not the one that started it, or its files are gone) is let go of: its
/// run is then interrupted, and the job ended as an orphan.
pub(crate) async fn adoptable(daemon: &Daemon) -> Result<Vec<RunJob>, StoreError> {
    let mut adoptable = Vec::new();
    for run in daemon.store.run_jobs().await? {
        let configured = daemon
            .config
            .tier(&run.tier)
            .is_some_and(|t| t.gates.iter().any(|g| g.kind() == run.gate));
        if configured && daemon.executors.for_gate(run.gate).can_adopt(&run.handle) {
            adoptable.push(run);
        } else {
            tracing::warn!(run_id = %run.run_id, job = run.handle, "a job left running cannot be followed from here; its run is interrupted");
            daemon.store.forget_run_job(run.run_id).await?;
        }
    }
    Ok(adoptable)
}

pub(crate) async fn run(daemon: Arc<Daemon>, job: GateJob, progress: SharedProgress) {
    let span = tracing::info_span!("gate", tier = %job.tier, version = %job.version, gate = %job.gate, run_id = tracing::field::Empty);
    async {
        if let Err(e) = run_inner(&daemon, &job, &progress).await {
            tracing::error!(error = %e, "gate run could not be recorded");
        }
    }
    .instrument(span)
    .await
}

async fn run_inner(
    daemon: &Arc<Daemon>,
    job: &GateJob,
    progress: &SharedProgress,
) -> Result<(), StoreError> {
    let (Some(tier), Some(version)) =
        (daemon.config.tier(&job.tier), daemon.store.version(&job.version).await?)
    else {
        tracing::warn!("the tier or version is gone; nothing to run");
        return Ok(());
    };
    let Some(spec) = tier.gates.iter().find(|g| g.kind() == job.gate) else {
        tracing::warn!("the gate is no longer configured; nothing to run");
        return Ok(());
    };
    // Held for the whole run: a component swapped in meanwhile serves the
    // next one. A 0.1 runner is a whole gate that judges with its own
    // classifier, so that is the run's classifier.
    let (component, classifier) = daemon.components.for_run(job.gate);
    let classifier = match component.speaks() {
        Contract::V0_1 => component.clone(),
        Contract::V0_2 => classifier,
    };
    let (run_id, log_ref, file) = match (&job.adopt, job.reevaluate) {
        // The log cut back to where the job's output began: it is followed
        // again from its first byte.
        (Some(adopt), _) => {
            let file = adopt.log_ref.as_ref().map(|l| {
                let file = daemon.logs.append(l)?;
                file.set_len(u64::try_from(adopt.log_at).unwrap_or(0))?;
                Ok(file)
            });
            (adopt.run_id, adopt.log_ref.clone(), file)
        }
        (None, Some(run_id)) => {
            let log_ref = daemon.store.gate_run(run_id).await?.and_then(|r| r.log_ref);
            let file = log_ref.as_ref().map(|l| daemon.logs.append(l));
            (run_id, log_ref, file)
        }
        (None, None) => {
            // The log file exists before the run is visible, so `/logs`
            // never finds a run whose log is missing.
            let mut file = None;
            let (run_id, log_ref) = daemon
                .store
                .insert_gate_run(
                    &job.tier,
                    &job.version,
                    job.gate,
                    RunComponents {
                        runner_digest: &component.digest().to_string(),
                        runner_contract: component.contract(),
                        classifier_digest: &classifier.digest().to_string(),
                        classifier_contract: classifier.contract(),
                    },
                    job.attempt,
                    Utc::now(),
                    |run_id| {
                        let log_ref = run_log_ref(&job.version, job.gate, run_id);
                        file = Some(daemon.logs.create(&log_ref));
                        log_ref
                    },
                )
                .await?;
            (run_id, Some(log_ref), file)
        }
    };
    note(progress, |p| p.run = Some(run_id));
    tracing::Span::current().record("run_id", run_id.to_string());
    let file = match file {
        Some(Ok(file)) => file,
        Some(Err(e)) => {
            let status = GateStatus::failed(GateFailure::HostFault {
                message: format!("opening the run's log: {}", crate::fixtures::io_message(&e)),
            });
            return finish(daemon, job, run_id, log_ref, status, RunCost::ZERO, None).await;
        }
        None => {
            let status =
                GateStatus::failed(GateFailure::HostFault { message: "the run has no log".into() });
            return finish(daemon, job, run_id, log_ref, status, RunCost::ZERO, None).await;
        }
    };
    let log = Arc::new(RunLog::new(file, Some((daemon.bus.clone(), run_id))));
    if job.adopt.is_some() {
        tracing::info!("following the run's job again after a restart");
    } else if job.reevaluate.is_none() {
        let summary = daemon.store.gate_run(run_id).await?.map(|r| Box::new(r.into()));
        daemon.bus.send(Event::GateStart {
            run_id,
            tier: job.tier.clone(),
            version: job.version.clone(),
            gate: job.gate,
            summary,
        });
    } else {
        log.note(&format!("evaluating again at {}", Utc::now().to_rfc3339()));
    }
    tracing::info!(attempt = job.attempt.number, of = job.attempt.of, "gate run started");

    let stop = Stop::default();
    daemon.work.track_run(run_id, stop.clone());
    // What a blocked outcome was decided on is read from here on: anything
    // that changes after (an approval given meanwhile) evaluates it again.
    let inputs_at = Utc::now();
    // A tier's approval policy decides its confirmation: the runner is
    // told of one only once the policy is met (so a 0.1 or 0.2 runner
    // needs no change), and the host types what is still missing.
    let approvals = match spec.gate {
        Gate::ManualConfirm => {
            crate::daemon::approvals::standing(daemon, tier, &version.version, true).await?
        }
        _ => None,
    };
    let env =
        runner_env(daemon, tier, spec, &version, log.clone(), &stop, approvals.as_ref()).await;
    let env = match env {
        Ok(mut env) => {
            env.jobs = Some(job_book(daemon, run_id, &log, job.adopt.as_ref()));
            env
        }
        Err(e) => {
            daemon.work.untrack_run(run_id);
            return Err(e);
        }
    };
    // Tests run on the version's view of the build cache: the base stays
    // as it is while the view is mounted (a feed waits).
    let uses_cache = matches!(spec.gate, Gate::CargoTest { .. })
        && super::cache::BuildCache::of(daemon).is_some();
    let _cache_held = if uses_cache { Some(daemon.cache_lock.read().await) } else { None };
    let shared = daemon.clone();
    let classification =
        tokio::task::spawn_blocking(move || component.run(&shared.sandbox, env, &classifier)).await;
    daemon.work.untrack_run(run_id);
    let (status, cost) = match classification {
        Ok((c, env)) => {
            // What the classifier judged, for shadow tests and reclassify.
            if let Some(output) = env.spawned.last()
                && let Err(e) = daemon.store.record_raw_output(run_id, job.gate, output).await
            {
                // The run's outcome still counts; only its replay is lost.
                log.note(&format!("recording the classifier's input failed: {e}"));
            }
            // What the runner asked and was answered, to replay a candidate
            // runner against. A stopped run's answers are the host's, not
            // the world's, so it is not kept.
            if env.ended == Ended::Normally
                && stop.by().is_none()
                && let Err(e) = daemon
                    .store
                    .record_transcript(run_id, job.gate, &Transcript::of(&env), &env.spawned)
                    .await
            {
                log.note(&format!("recording the runner's transcript failed: {e}"));
            }
            let cost = RunCost {
                fuel: i64::try_from(c.usage.fuel).unwrap_or(i64::MAX),
                peak_memory: i64::try_from(c.usage.peak_memory_bytes).unwrap_or(i64::MAX),
            };
            // The host, not the component, says why a stopped run stopped.
            let status = match (stop.by(), &env.ended) {
                (Some(by), _) => GateStatus::failed(GateFailure::Cancelled { by }),
                (None, Ended::TimedOut(_)) => GateStatus::failed(GateFailure::Timeout {
                    gate: job.gate,
                    after_s: u32::try_from(spec.timeout.as_secs()).unwrap_or(u32::MAX),
                }),
                // An infrastructure failure (a node, the scheduler): the
                // host's fault, retried by its class, whatever was printed.
                (None, Ended::Lost(why)) => {
                    GateStatus::failed(GateFailure::HostFault { message: why.clone() })
                }
                (None, _) => match (c.status, &approvals) {
                    (
                        GateStatus::Blocked { blocker: GateBlocker::AwaitingOperatorConfirmation },
                        Some(standing),
                    ) => GateStatus::Blocked {
                        blocker: GateBlocker::AwaitingApprovals {
                            have: standing.tally.have(),
                            need: standing.tally.need,
                        },
                    },
                    (status, _) => status,
                },
            };
            (status, cost)
        }
        Err(e) => {
            log.note(&format!("the gate's task failed: {e}"));
            let status =
                GateStatus::failed(GateFailure::HostFault { message: format!("gate task: {e}") });
            (status, RunCost::ZERO)
        }
    };
    log.note(&format!("outcome: {status}"));
    finish(daemon, job, run_id, log_ref, status, cost, Some(inputs_at)).await
}

async fn finish(
    daemon: &Arc<Daemon>,
    job: &GateJob,
    run_id: GateRunId,
    log_ref: Option<LogRef>,
    status: GateStatus,
    cost: RunCost,
    inputs_at: Option<chrono::DateTime<Utc>>,
) -> Result<(), StoreError> {
    // An operator may have rejected the run while it was evaluated again:
    // the rejection stands.
    if job.reevaluate.is_some()
        && let Some(run) = daemon.store.gate_run(run_id).await?
        && matches!(run.outcome, Some(GateStatus::Failed { failure: GateFailure::Rejected { .. } }))
    {
        tracing::info!("rejected while evaluated again; the rejection stands");
        return Ok(());
    }
    let now = Utc::now();
    // A blocked run counts as evaluated when its inputs were read, so an
    // input that changed while it ran is not taken as seen; any other
    // outcome dates from its end (retry backoffs count from there).
    let evaluated_at = match (&status, inputs_at) {
        (GateStatus::Blocked { .. }, Some(at)) => at,
        _ => now,
    };
    daemon.store.finish_gate_run(run_id, &status, cost, now, evaluated_at).await?;
    let record = daemon.store.gate_run(run_id).await?;
    if let Some(record) = &record {
        crate::daemon::metrics::global().gate_run(record);
    }
    let summary = record.map(|r| Box::new(r.into()));
    tracing::info!(outcome = %status, status = status.label(), "gate run finished");
    let still_blocked = matches!(status, GateStatus::Blocked { .. });
    let outcome = GateOutcome { status, log_ref };
    let (tier, version, gate) = (job.tier.clone(), job.version.clone(), job.gate);
    daemon.bus.send(if job.reevaluate.is_some() && still_blocked {
        Event::GateUpdated { run_id, tier, version, gate, outcome, summary }
    } else {
        Event::GateDone { run_id, tier, version, gate, outcome, summary }
    });
    Ok(())
}

/// Where the run's jobs that outlive the daemon are recorded (with where
/// their output starts in the log), and the one to follow again.
fn job_book(
    daemon: &Daemon,
    run_id: GateRunId,
    log: &Arc<RunLog>,
    adopt: Option<&RunJob>,
) -> JobBook {
    let (store, log) = (daemon.store.clone(), log.clone());
    let record: RecordSpawn = Arc::new(move |spawn, handle| {
        let (store, at) = (store.clone(), log.written());
        Box::pin(async move {
            let spawn = i64::try_from(spawn).unwrap_or(i64::MAX);
            let at = i64::try_from(at).unwrap_or(i64::MAX);
            match store.record_run_job(run_id, spawn, &handle, at).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("the run is no longer running".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
    });
    let resume = adopt.map(|a| Resume {
        spawn: usize::try_from(a.spawn).unwrap_or(usize::MAX),
        handle: a.handle.clone(),
    });
    JobBook { record, resume }
}

pub(crate) fn run_log_ref(version: &Version, gate: GateKind, run_id: GateRunId) -> LogRef {
    format!("{version}/{gate}/{run_id}.log").parse().expect("versions and kinds are log-safe")
}

/// What the gate's runner may see and do, from its configuration.
async fn runner_env(
    daemon: &Arc<Daemon>,
    tier: &Tier,
    spec: &GateSpec,
    version: &VersionRecord,
    log: Arc<RunLog>,
    stop: &Stop,
    approvals: Option<&crate::daemon::approvals::Standing>,
) -> Result<RunnerEnv, StoreError> {
    let tree = daemon.work_dir().join("worktrees").join(version.git_sha.as_str());
    let mut env = RunnerEnv::new(
        tier.name.clone(),
        version.version.clone(),
        GateParams::ManualConfirm,
        daemon.executors.for_gate(spec.kind()),
    );
    env.cwd = Some(tree.clone());
    env.env = daemon.config.project.env_pairs();
    let cache = match &spec.gate {
        Gate::CargoTest { .. } => super::cache::BuildCache::of(daemon),
        _ => None,
    };
    if let Some(cache) = &cache {
        env.env.extend(cache.env(true));
    }
    env.secrets = daemon.secrets.clone();
    env.log = Some(log.clone() as Arc<dyn LogSink>);
    env.stop = stop.token.clone();
    env.deadline = Instant::now().checked_add(spec.timeout);
    let mut isolation = super::sandbox_for(daemon, &tree, spec.network);
    if let Some(cache) = &cache {
        // Its layer may be gone (the version fed the base, or the daemon
        // was restarted after a sweep): made again, empty, over the base.
        if let Err(e) = cache.prepare(&version.git_sha, daemon.config.run_as.clone()).await {
            log.note(&format!("preparing the build cache: {}", crate::fixtures::io_message(&e)));
        }
        isolation.mounts.push(cache.mount(&version.git_sha));
    }
    let invocation = |command: &Command| Invocation {
        program: command.program.clone(),
        args: command.args.clone(),
    };
    env.params = match &spec.gate {
        Gate::CargoTest { args } => {
            env.allowed_programs.push("cargo".into());
            GateParams::CargoTest {
                command: Invocation { program: "cargo".into(), args: args.clone() },
            }
        }
        Gate::MigrationDryRun { scratch_db_url, migrations, migrate, restore } => {
            env.allowed_programs.push(migrate.program.clone());
            env.allowed_programs.extend(restore.iter().map(|r| r.program.clone()));
            env.latest_backup = daemon.store.latest_backup().await?.map(|b| Backup {
                id: b.id,
                path: b.path,
                fetched_at: b.fetched_at,
            });
            // The copy of production the gate is given, read-only; a SQLite
            // scratch database's directory, writable.
            if let Some(backup) = &env.latest_backup {
                isolation.mount(Mounted::Backup, &backup.path);
            }
            if let Some(dir) = scratch_dir(scratch_db_url.as_deref()) {
                let _ = std::fs::create_dir_all(&dir);
                isolation.mount(Mounted::Scratch, dir);
            }
            GateParams::MigrationDryRun {
                scratch_db_url: scratch_db_url.clone(),
                migrations: tree.join(migrations).display().to_string(),
                migrate: invocation(migrate),
                restore: restore.as_ref().map(invocation),
            }
        }
        Gate::BootSmoke { args, stay_up } => {
            env.allowed_programs.push(version.artifact.clone());
            isolation.mount(Mounted::Artifact, &version.artifact);
            GateParams::BootSmoke {
                command: Invocation { program: version.artifact.clone(), args: args.clone() },
                stay_up_ms: u64::try_from(stay_up.as_millis()).unwrap_or(u64::MAX),
            }
        }
        Gate::BurnIn { duration, .. } => {
            let started = burn_in_started(daemon, tier, &spec.gate, &version.version).await?;
            env.burn_in_clock =
                started.map(|started_at| BurnInClock { started_at, now: Utc::now() });
            GateParams::BurnIn {
                duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            }
        }
        Gate::ManualConfirm => {
            env.confirmation = match approvals {
                Some(standing) => standing.tally.met().then(|| {
                    let at = standing
                        .approvals
                        .iter()
                        .filter(|a| standing.tally.counted.contains(&a.by))
                        .map(|a| a.at)
                        .max()
                        .unwrap_or_else(Utc::now);
                    Confirmation { by: standing.tally.counted.join(", "), at }
                }),
                None => daemon
                    .store
                    .confirmation(&tier.name, &version.version)
                    .await?
                    .map(|c| Confirmation { by: c.confirmed_by, at: c.confirmed_at }),
            };
            GateParams::ManualConfirm
        }
    };
    if let Some(user) = &isolation.run_as {
        // What the gate is given must be open to the user it runs as.
        for path in isolation.readable() {
            if let Err(e) = user.let_read(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot open to the run_as user");
            }
        }
        for dir in isolation.writable().filter(|dir| *dir != tree) {
            if let Err(e) = user.let_write(dir) {
                tracing::warn!(path = %dir.display(), error = %e, "cannot open to the run_as user");
            }
        }
    }
    env.isolation = Some(isolation);
    Ok(env)
}

/// The directory of a SQLite scratch database (`sqlite:///path/db.sqlite`),
/// which its migrate tool must be able to write (journals sit beside it).
fn scratch_dir(url: Option<&str>) -> Option<std::path::PathBuf> {
    let path = url?.strip_prefix("sqlite://").or_else(|| url?.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    let path = std::path::Path::new(path);
    path.is_absolute().then(|| path.parent().map(std::path::Path::to_path_buf)).flatten()
}

/// When the version's burn-in clock started: its arrival on the tier the
/// gate watches (`on_tier`, else the tier before this one).
pub(crate) async fn burn_in_started(
    daemon: &Daemon,
    tier: &Tier,
    gate: &Gate,
    version: &Version,
) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
    let Gate::BurnIn { on_tier, .. } = gate else { return Ok(None) };
    let index = daemon.config.tiers.iter().position(|t| t.name == tier.name);
    let watched = on_tier.clone().or_else(|| {
        index.and_then(|i| i.checked_sub(1)).map(|i| daemon.config.tiers[i].name.clone())
    });
    match watched {
        Some(watched) => daemon.store.arrival(&watched, version).await,
        None => Ok(None),
    }
}
