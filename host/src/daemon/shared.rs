//! What the daemon's parts share: configuration, store, sandbox, components, event bus, logs, the executors (by role), and the registry of work in flight. It sits below every module that uses it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::components::Components;
use super::events::{Event, EventBus};
use super::logs::LogsDir;
use crate::config::Config;
use crate::domain::{BackupRow, BackupSource, GateRunId, GitSha, SchedulerState, WorkerState};
use crate::executor::{CancellationToken, Executor};
use crate::sandbox::Sandbox;
use crate::store::{Store, StoreError};

/// What the decision loop is asked to notice.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trigger {
    /// Something a decision may depend on changed (a rebuild request, a
    /// confirmation, a backup, a rerun, a component swap).
    Evaluate,
}

/// Everything the API handlers, the coordinator and the workers share.
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) sandbox: Sandbox,
    pub(crate) components: Components,
    pub(crate) bus: EventBus,
    pub(crate) logs: LogsDir,
    /// Who may call the API, by token digest.
    pub(crate) operators: crate::identity::Operators,
    pub(crate) executors: Executors,
    /// Wakes the coordinator. Many notifications before it looks are one.
    pub(crate) wake: Notify,
    pub(crate) work: Work,
    /// What an operator must know about how this daemon runs (shown in
    /// `/api/state` and the TUI's header).
    pub(crate) warnings: Vec<String>,
    /// Places for `/api/events` clients (`max_event_clients`).
    pub(crate) event_clients: Arc<tokio::sync::Semaphore>,
    /// `project.secret_env`, read at start: given to the build, gate
    /// processes and deploys, masked in what they print.
    pub(crate) secrets: Arc<crate::executor::Secrets>,
    /// The build cache's base: read-held by whatever has a version's view
    /// of it mounted (a build, a `cargo_test` gate), write-held by what
    /// changes it (a feed, the size trim).
    pub(crate) cache_lock: Arc<tokio::sync::RwLock<()>>,
    /// `[[notify]]` targets, their secrets read at start.
    pub(crate) notify: Vec<Arc<super::notify::Target>>,
    /// Where this daemon is reached (`[store] advertise`, else its listen
    /// address): the links notifications carry.
    pub(crate) public_url: String,
}

impl Daemon {
    /// Every event from now on, as `/api/events` sends them.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<super::events::Published>> {
        self.bus.subscribe()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Where the files of builds and gates are: work trees, artifacts,
    /// backups, the build cache ([`crate::config::Config::work_dir`]).
    pub fn work_dir(&self) -> PathBuf {
        self.config.work_dir()
    }

    /// Asks for a build of a commit (what `POST /api/rebuild` does). The
    /// request is a row before this returns, so a restart resumes it.
    pub async fn rebuild(&self, sha: GitSha) -> Result<i64, StoreError> {
        let id = self.store.insert_rebuild_request(&sha, Utc::now()).await?;
        tracing::info!(%sha, request = id, "rebuild requested");
        self.bus.send(Event::RebuildRequested { sha });
        self.trigger(Trigger::Evaluate);
        Ok(id)
    }

    pub(crate) fn trigger(&self, _trigger: Trigger) {
        self.wake.notify_one();
    }

    /// Copies the configured backup source into the data directory, records
    /// it, and wakes gates waiting for a backup.
    pub async fn fetch_backup(&self) -> Result<BackupRow, FetchError> {
        let source = self.config.backup_source.clone().ok_or(FetchError::NotConfigured)?;
        let fetched_at = Utc::now();
        let source_error = |e: std::io::Error| FetchError::Source {
            path: source.display().to_string(),
            message: crate::fixtures::io_message(&e),
        };
        let backups = self.work_dir().join("backups");
        let target_error = |e: std::io::Error| FetchError::Source {
            path: backups.display().to_string(),
            message: crate::fixtures::io_message(&e),
        };
        let mut from = tokio::fs::File::open(&source).await.map_err(source_error)?;
        let (target, mut to) = new_backup_file(&backups, fetched_at).await.map_err(target_error)?;
        tokio::io::copy(&mut from, &mut to).await.map_err(source_error)?;
        to.sync_all().await.map_err(target_error)?;
        let source = BackupSource::Local { path: source.display().to_string() };
        let path = target.display().to_string();
        let id = self.store.insert_backup(&source, &path, fetched_at).await?;
        self.bus.send(Event::BackupFetched { backup_id: id, source: source.clone() });
        self.trigger(Trigger::Evaluate);
        Ok(BackupRow { id, source, path, fetched_at })
    }
}

/// A new file for a backup fetched at `at`, named by the time, never one
/// that exists: two fetches in one millisecond (or two daemons sharing the
/// data directory) each get their own, so sweeping one never takes the
/// other's bytes.
async fn new_backup_file(
    dir: &Path,
    at: DateTime<Utc>,
) -> std::io::Result<(std::path::PathBuf, tokio::fs::File)> {
    let millis = at.timestamp_millis();
    for n in 0u32.. {
        let name = if n == 0 { format!("{millis}.backup") } else { format!("{millis}-{n}.backup") };
        let path = dir.join(name);
        match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("some name is free")
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no backup_source is configured")]
    NotConfigured,
    #[error("backup source {path}: {message}")]
    Source { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The daemon's executors, by what they run: every process it starts goes
/// through one of them. Both are the same `LocalExecutor` unless
/// `[executor] kind = "slurm"` makes `gates` a `SlurmExecutor`.
pub(crate) struct Executors {
    /// The daemon's own processes: git, deploy and health commands. Always
    /// local: they act for the daemon, with its authority, never sandboxed.
    pub tools: Arc<dyn Executor>,
    /// Code under test: the build command and gate processes, each started
    /// with an `Isolation`.
    pub gates: Arc<dyn Executor>,
    /// A gate kind's own, where its resources differ (Slurm's per-gate
    /// overrides); else `gates`.
    pub per_gate: std::collections::HashMap<crate::domain::GateKind, Arc<dyn Executor>>,
}

impl Executors {
    /// How processes are contained: one line, or one per role when the
    /// roles have executors of their own.
    pub fn describe(&self) -> String {
        if self.same() {
            self.gates.describe()
        } else {
            format!("tools: {}; gates: {}", self.tools.describe(), self.gates.describe())
        }
    }

    /// Ends what a previous daemon left running, through each executor
    /// once, but for the gates' jobs in `keep` (to be adopted); returns how
    /// many were ended.
    pub fn end_orphans(&self, keep: &[String]) -> usize {
        let gates = if self.same() { 0 } else { self.gates.end_orphans(keep) };
        self.tools.end_orphans(&[]) + gates
    }

    /// The executor a gate of `kind` runs on.
    pub fn for_gate(&self, kind: crate::domain::GateKind) -> Arc<dyn Executor> {
        self.per_gate.get(&kind).unwrap_or(&self.gates).clone()
    }

    fn same(&self) -> bool {
        Arc::ptr_eq(&self.tools, &self.gates)
    }
}

/// A way to stop one piece of work, and who asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    pub token: CancellationToken,
    by: Arc<OnceLock<String>>,
}

impl Stop {
    /// The first reason given is kept.
    pub fn cancel(&self, by: &str) {
        let _ = self.by.set(by.to_owned());
        self.token.cancel();
    }

    /// Who stopped it, once stopped.
    pub fn by(&self) -> Option<String> {
        self.token.is_cancelled().then(|| self.by.get().cloned().unwrap_or_else(|| "sando".into()))
    }
}

/// Work in flight, for cancellation from the API and for `/api/state`.
#[derive(Default)]
pub(crate) struct Work {
    runs: Mutex<HashMap<GateRunId, Stop>>,
    builds: Mutex<HashMap<GitSha, (i64, Stop)>>,
    status: Mutex<LoopStatus>,
}

#[derive(Default)]
struct LoopStatus {
    alive: bool,
    planned_at: Option<DateTime<Utc>>,
    workers: Vec<WorkerState>,
}

impl Work {
    pub fn track_run(&self, run: GateRunId, stop: Stop) {
        self.runs.lock().expect("work lock").insert(run, stop);
    }

    pub fn untrack_run(&self, run: GateRunId) {
        self.runs.lock().expect("work lock").remove(&run);
    }

    /// Cancels a run in flight. False when no such run is running.
    pub fn cancel_run(&self, run: GateRunId, by: &str) -> bool {
        match self.runs.lock().expect("work lock").get(&run) {
            Some(stop) => {
                stop.cancel(by);
                true
            }
            None => false,
        }
    }

    pub fn track_build(&self, sha: GitSha, request_id: i64, stop: Stop) {
        self.builds.lock().expect("work lock").insert(sha, (request_id, stop));
    }

    pub fn untrack_build(&self, sha: &GitSha) {
        self.builds.lock().expect("work lock").remove(sha);
    }

    /// Cancels the build of `sha` (full or a 7-character prefix) in flight.
    /// Returns its request, or `None` when it is not building.
    pub fn cancel_build(&self, sha: &GitSha, by: &str) -> Option<i64> {
        let builds = self.builds.lock().expect("work lock");
        let (request, stop) = builds
            .iter()
            .find(|(building, _)| {
                building.as_str() == sha.as_str() || building.as_str().starts_with(sha.as_str())
            })
            .map(|(_, entry)| entry.clone())?;
        stop.cancel(by);
        Some(request)
    }

    pub fn set_status(
        &self,
        alive: bool,
        planned_at: Option<DateTime<Utc>>,
        workers: Vec<WorkerState>,
    ) {
        let mut status = self.status.lock().expect("status lock");
        status.alive = alive;
        if planned_at.is_some() {
            status.planned_at = planned_at;
        }
        status.workers = workers;
    }

    pub fn set_alive(&self, alive: bool) {
        self.status.lock().expect("status lock").alive = alive;
    }

    pub fn status(&self) -> SchedulerState {
        let status = self.status.lock().expect("status lock");
        SchedulerState {
            alive: status.alive,
            planned_at: status.planned_at,
            workers: status.workers.clone(),
        }
    }
}
