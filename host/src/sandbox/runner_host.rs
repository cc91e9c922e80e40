//! The `host` imports a runner may call, and the refusal a classifier gets.
//!
//! While classifying, the store carries no [`RunnerEnv`], so every import
//! traps with [`Denied`]: that is what makes the classifier pure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::State;
use super::params::GateParams;
use super::transcript::{Answer, Call, Replay, SpawnCall};
use crate::domain::{GateKind, RawOutput, TierId, Version};
use crate::executor::{self, CancellationToken, Ended, Executor, Isolation, LogSink, ProcessSpec};

/// The trap a denied capability raises; turned into `capability_denied`.
#[derive(Debug, thiserror::Error)]
#[error("capability denied: {0}")]
pub struct Denied(pub String);

#[derive(Debug, Clone)]
pub struct BurnInClock {
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Confirmation {
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub id: i64,
    pub path: String,
    pub fetched_at: DateTime<Utc>,
}

/// The trap that stops a runner whose process was ended by its timeout or a
/// cancel; the host then gives the run that typed outcome.
#[derive(Debug, thiserror::Error)]
#[error("the gate was stopped: {0:?}")]
pub struct Stopped(pub Ended);

/// Everything a runner may see or do for one gate run. What it spawned is
/// recorded in `spawned`, in order, for the run's provenance.
#[derive(Clone)]
pub struct RunnerEnv {
    pub tier: TierId,
    pub version: Version,
    pub params: GateParams,
    /// Programs `spawn` may start (exact strings as the runner passes them).
    pub allowed_programs: Vec<String>,
    pub burn_in_clock: Option<BurnInClock>,
    pub confirmation: Option<Confirmation>,
    pub latest_backup: Option<Backup>,
    /// Working directory of spawned programs (the version's work tree).
    pub cwd: Option<std::path::PathBuf>,
    /// Environment added for spawned programs (the project's `env`).
    pub env: Vec<(String, String)>,
    /// The operator's secrets: in spawned programs' environment, masked in
    /// what they print (and so in the transcript and the classifier's input).
    pub secrets: std::sync::Arc<crate::executor::Secrets>,
    /// Where spawned programs' output streams (the run's log).
    pub log: Option<std::sync::Arc<dyn LogSink>>,
    /// What the runner spawned, in order (each stream's kept tail).
    pub spawned: Vec<RawOutput>,
    /// Where its processes run: the daemon's `gates` executor, for they
    /// are code under test.
    pub executor: Arc<dyn Executor>,
    /// Cancels the run: its process tree is ended and the runner stopped.
    pub stop: CancellationToken,
    /// Every process ends by then; the run is then a timeout.
    pub deadline: Option<Instant>,
    /// Set when a process was ended by the deadline or a cancel.
    pub ended: Ended,
    /// The sandbox every process of the run starts in.
    pub isolation: Option<Isolation>,
    /// Every `host` call the runner made, in order (its transcript).
    pub calls: Vec<Call>,
    /// Set for a replay: calls are answered from a transcript, and no
    /// process starts.
    pub replay: Option<Replay>,
    /// Where the run keeps the handles of processes that outlive the
    /// daemon, and the one to follow again after a restart.
    pub jobs: Option<JobBook>,
}

/// Records, for a run, the handle of each process that can outlive the
/// daemon (a Slurm job), before it may start: which of the run's spawns it
/// is, and the handle. An error (one line) means it must not start.
pub type RecordSpawn =
    Arc<dyn Fn(usize, String) -> executor::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A run's book of jobs that outlive the daemon.
#[derive(Clone)]
pub struct JobBook {
    pub record: RecordSpawn,
    /// A job a previous daemon started for this run, to follow instead of
    /// starting it again. The spawns before it run again, unlogged (their
    /// output is in the log already); their processes end with the daemon,
    /// so they were over or are started again anyway.
    pub resume: Option<Resume>,
}

/// Which of the run's spawns a previous daemon's job was, and its handle.
#[derive(Debug, Clone)]
pub struct Resume {
    pub spawn: usize,
    pub handle: String,
}

impl RunnerEnv {
    /// The gate kind the run is for: its parameters' kind.
    pub fn gate(&self) -> GateKind {
        self.params.kind()
    }

    /// An environment that may do nothing but what its fields say, running
    /// processes through `executor`.
    pub fn new(
        tier: TierId,
        version: Version,
        params: GateParams,
        executor: Arc<dyn Executor>,
    ) -> RunnerEnv {
        RunnerEnv {
            tier,
            version,
            params,
            allowed_programs: Vec::new(),
            burn_in_clock: None,
            confirmation: None,
            latest_backup: None,
            cwd: None,
            env: Vec::new(),
            log: None,
            spawned: Vec::new(),
            executor,
            stop: CancellationToken::new(),
            deadline: None,
            ended: Ended::Normally,
            isolation: None,
            calls: Vec::new(),
            replay: None,
            secrets: Default::default(),
            jobs: None,
        }
    }
}

impl State {
    fn runner(&mut self, capability: &str) -> wasmtime::Result<&mut RunnerEnv> {
        self.runner.as_mut().ok_or_else(|| {
            wasmtime::Error::new(Denied(format!(
                "sando:gate/host.{capability} (from a classifier)"
            )))
        })
    }

    /// The runner's environment, with `call` recorded (and checked against
    /// the transcript in a replay).
    fn call(&mut self, capability: &str, call: Call) -> wasmtime::Result<&mut RunnerEnv> {
        let env = self.runner(capability)?;
        if let Some(replay) = env.replay.as_mut() {
            // A divergence is noted by the replay; the answer stays the
            // transcript's, so the verdict shows what the runner does with it.
            let _ = replay.answer(&call);
        }
        env.calls.push(call);
        Ok(env)
    }
}

impl State {
    /// The runner's environment for `context`, with the call recorded.
    pub(super) fn host_context(&mut self) -> wasmtime::Result<&RunnerEnv> {
        Ok(self.call("context", Call::Context)?)
    }

    /// Runs an allowed program for the runner (or answers from the
    /// transcript in a replay); what it printed is kept in `spawned`.
    pub(super) fn host_spawn(
        &mut self,
        program: String,
        args: Vec<String>,
        request_env: Vec<(String, String)>,
        stop_after_ms: Option<u64>,
    ) -> wasmtime::Result<RawOutput> {
        let env = self.runner("spawn")?;
        let call = Call::Spawn(SpawnCall::new(&program, &args, &request_env, stop_after_ms));
        env.calls.push(call.clone());
        if let Some(replay) = env.replay.as_mut() {
            return match replay.answer(&call) {
                Answer::Recorded(Some(output)) => {
                    env.spawned.push(output.clone());
                    Ok(output)
                }
                _ => Err(wasmtime::Error::new(Denied(format!(
                    "{call} (not what the recorded run asked for)"
                )))),
            };
        }
        if !env.allowed_programs.contains(&program) {
            return Err(wasmtime::Error::new(Denied(format!(
                "spawn of {program:?} (not among the programs this gate's configuration allows)"
            ))));
        }
        let timeout = match env.deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    env.ended = Ended::TimedOut(Duration::ZERO);
                    return Err(wasmtime::Error::new(Stopped(env.ended.clone())));
                }
            },
            None => None,
        };
        // Where this spawn stands to a job a previous daemon started: it is
        // that job (followed again), or one before it (run again unlogged).
        let index = env.spawned.len();
        let (resume, muted) = match env.jobs.as_ref().and_then(|b| b.resume.as_ref()) {
            Some(r) if r.spawn == index => (Some(r.handle.clone()), false),
            Some(r) => (None, r.spawn > index),
            None => (None, false),
        };
        if resume.is_some()
            && let Some(book) = env.jobs.as_mut()
        {
            book.resume = None;
        }
        let sink = if muted { None } else { env.log.clone() };
        if let Some(log) = sink.as_ref().filter(|_| resume.is_none()) {
            // Quoted as a shell would need them, so an argument with a
            // space reads as one.
            let line = format!(
                "sando: running {}\n",
                shlex::try_join(
                    std::iter::once(program.as_str()).chain(args.iter().map(String::as_str)),
                )
                .unwrap_or_else(|_| format!("{program} {}", args.join(" ")))
            );
            let line = executor::redact(&line);
            log.chunk(executor::Stream::Stderr, line.into());
        }
        let mut extra_env = env.env.clone();
        extra_env.extend(request_env);
        let spec = ProcessSpec {
            program,
            args,
            env: extra_env,
            cwd: env.cwd.clone(),
            stop_after: stop_after_ms.map(Duration::from_millis),
            timeout,
            isolation: env.isolation.clone(),
            secrets: env.secrets.clone(),
            // A spawn run again unlogged is not recorded: the book keeps
            // pointing at the job still to be followed.
            job: env.jobs.as_ref().filter(|_| !muted).map(|book| {
                let record = book.record.clone();
                executor::JobHook { record: Arc::new(move |handle| record(index, handle)), resume }
            }),
        };
        let (executor, stop) = (env.executor.clone(), env.stop.clone());
        let finished = executor::block_on(executor.run(spec, sink, stop));
        env.spawned.push(finished.output.clone());
        if finished.ended != Ended::Normally {
            env.ended = finished.ended.clone();
            return Err(wasmtime::Error::new(Stopped(finished.ended)));
        }
        Ok(finished.output)
    }

    pub(super) fn host_burn_in_clock(&mut self) -> wasmtime::Result<Option<BurnInClock>> {
        Ok(self.call("burn-in-clock", Call::BurnInClock)?.burn_in_clock.clone())
    }

    pub(super) fn host_confirmation(&mut self) -> wasmtime::Result<Option<Confirmation>> {
        Ok(self.call("confirmation", Call::Confirmation)?.confirmation.clone())
    }

    pub(super) fn host_latest_backup(&mut self) -> wasmtime::Result<Option<Backup>> {
        Ok(self.call("latest-backup", Call::LatestBackup)?.latest_backup.clone())
    }
}
