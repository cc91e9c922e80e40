//! The daemon (`sando serve`): shared state, start-up, and the wiring of scheduler, API and event stream.

pub mod api;
mod approvals;
mod bodies;
pub mod components;
mod coordinator;
pub mod events;
pub mod logs;
pub mod metrics;
mod notify;
mod page;
pub mod plan;
pub mod reload;
pub mod retention;
mod shared;
mod tier_control;
mod watch;
pub mod websocket;
pub(crate) mod work;

pub use work::reach::unreachable as unreachable_paths;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;

use crate::config::{Config, ExecutorKind, IsolationMode, TokenSource};
use crate::domain::{GateKind, GateRunId};
use crate::executor::{Executor, LocalExecutor, Secrets, SlurmExecutor};
use crate::sandbox::{ComponentCache, Limits, Sandbox};
use crate::store::{Candidacy, Standing, Store, StoreError};
use events::EventBus;
use logs::LogsDir;
use shared::Executors;
pub(crate) use shared::Trigger;
pub use shared::{Daemon, FetchError};

/// Why the daemon could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("token: environment variable {0} is not set (or empty)")]
    TokenEnvMissing(String),
    #[error("token file {path}: {message}")]
    TokenFile { path: String, message: String },
    #[error(transparent)]
    OperatorToken(#[from] crate::identity::TokenFileError),
    #[error("data directory {path}: {message}")]
    DataDir { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Component(#[from] components::ComponentError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("listen on {addr}: {message}")]
    Listen { addr: String, message: String },
    #[error("{0}")]
    Isolation(String),
    #[error("project.secret_env: {0}")]
    Secret(String),
    #[error("{0}")]
    Notify(String),
}

/// Reads the API token once, from the environment or a file.
pub fn read_token(source: &TokenSource) -> Result<String, StartError> {
    let token = match source {
        TokenSource::Env(var) => {
            std::env::var(var).map_err(|_| StartError::TokenEnvMissing(var.clone()))?
        }
        TokenSource::File(path) => {
            std::fs::read_to_string(path).map_err(|e| StartError::TokenFile {
                path: path.display().to_string(),
                message: crate::fixtures::io_message(&e),
            })?
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return match source {
            TokenSource::Env(var) => Err(StartError::TokenEnvMissing(var.clone())),
            TokenSource::File(path) => Err(StartError::TokenFile {
                path: path.display().to_string(),
                message: "is empty".into(),
            }),
        };
    }
    Ok(token)
}

/// The local executor the config asks for (the one place that makes one).
/// Code under test is sandboxed unless the operator turned it off in so
/// many words; without bubblewrap the daemon refuses to start rather than
/// run it unsandboxed.
pub fn executor_for(config: &Config) -> Result<LocalExecutor, StartError> {
    let mut executor = LocalExecutor::detect(config.defaults.kill_grace);
    if let Some(shim) = crate::executor::exec_shim::available() {
        executor = executor.with_exec_shim(shim);
    }
    if let Some(user) = &config.run_as
        && !executor.can_change_user()
    {
        return Err(StartError::Isolation(format!(
            "run_as = {:?}: setpriv (util-linux) is not on PATH, so code under test cannot change to that user; install util-linux or remove run_as",
            user.name()
        )));
    }
    match config.isolation {
        IsolationMode::None => Ok(executor.without_isolation()),
        IsolationMode::Sandbox if executor.isolates() => Ok(executor),
        IsolationMode::Sandbox => Err(StartError::Isolation(format!(
            "isolation: bubblewrap (bwrap) is not available here, so code under test cannot be sandboxed ({}); install it (Debian: apt-get install bubblewrap) or set isolation = \"none\" to run builds and gates with the daemon's authority",
            executor.describe()
        ))),
    }
}

/// The daemon's two executors: its tools always here, code under test here
/// or on Slurm (`[executor]`).
pub(crate) fn executors_for(config: &Config) -> Result<Executors, StartError> {
    let local = executor_for(config)?;
    let tools: Arc<dyn Executor> = Arc::new(local.clone().owned_by(&config.data_dir));
    let ExecutorKind::Slurm(slurm) = &config.executor else {
        return Ok(Executors { tools: tools.clone(), gates: tools, per_gate: HashMap::new() });
    };
    let on_slurm = |gate: Option<GateKind>| -> Arc<dyn Executor> {
        Arc::new(SlurmExecutor::new(
            local.clone(),
            slurm.resources_for(gate),
            &slurm.shared_dir,
            // Jobs are named after the shared directory, which every daemon
            // of one store shares: one that takes over from another (or
            // starts after a crash) ends what the last one left.
            &slurm.shared_dir,
        ))
    };
    let per_gate = slurm.per_gate.keys().map(|&kind| (kind, on_slurm(Some(kind)))).collect();
    Ok(Executors { tools, gates: on_slurm(None), per_gate })
}

/// What `sando check` can know of where code under test runs before
/// anything does: with Slurm, a controller that does not answer, a
/// partition it does not have, a shared directory the daemon cannot write.
/// One line each.
pub async fn executor_problems(config: &Config) -> Vec<String> {
    let ExecutorKind::Slurm(slurm) = &config.executor else { return Vec::new() };
    let Ok(local) = executor_for(config) else { return Vec::new() };
    let mut problems = Vec::new();
    let gates = std::iter::once(None).chain(slurm.per_gate.keys().copied().map(Some));
    for gate in gates {
        let executor = SlurmExecutor::new(
            local.clone(),
            slurm.resources_for(gate),
            &slurm.shared_dir,
            // Jobs are named after the shared directory, which every daemon
            // of one store shares: one that takes over from another (or
            // starts after a crash) ends what the last one left.
            &slurm.shared_dir,
        );
        for problem in executor.check().await {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// Serves until the process ends.
pub async fn serve(config: Config, token: Option<String>) -> Result<(), StartError> {
    Started::start(config, token).await?.run(std::future::pending()).await
}

/// A daemon ready to serve: listener bound, state settled, decision loop not yet running.
pub struct Started {
    listener: tokio::net::TcpListener,
    pub daemon: Arc<Daemon>,
}

impl Started {
    /// Opens the data directory and database, loads the gate components,
    /// settles runs a previous daemon left in flight, and binds the listener.
    pub async fn start(config: Config, token: Option<String>) -> Result<Started, StartError> {
        let (listener, daemon) = start(config, token).await?;
        Ok(Started { listener, daemon })
    }

    pub fn url(&self) -> String {
        self.listener.local_addr().map(|a| format!("http://{a}")).unwrap_or_default()
    }

    /// Runs the decision loop and serves the API until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let url = self.url();
        // Tests and scripts wait for exactly this line on stderr.
        eprintln!("sando: listening on {url}");
        tracing::info!(url, executor = self.daemon.executors.describe(), "listening");
        if self.daemon.store.standing().acts() {
            act(self.daemon.clone());
        } else {
            tokio::spawn(stand_by(self.daemon.clone()));
        }
        axum::serve(
            self.listener,
            // The event stream sends log bytes from their files to the socket.
            api::router(self.daemon).into_make_service_with_connect_info::<websocket::Connection>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| StartError::Listen { addr: url, message: e.to_string() })
    }
}

async fn start(
    config: Config,
    token: Option<String>,
) -> Result<(tokio::net::TcpListener, Arc<Daemon>), StartError> {
    // Tokens only as digests from here on; each operator's file read once.
    let operators = crate::identity::Operators::new(&config.operators, token.as_deref())?;
    // First: a missing secret is the operator's to fix before anything runs.
    let secrets =
        Arc::new(Secrets::from_env(&config.project.secret_env).map_err(StartError::Secret)?);
    let notify = notify::targets(&config.notify)?;
    let data_dir = config.data_dir.clone();
    let data_err = |e: std::io::Error| StartError::DataDir {
        path: data_dir.display().to_string(),
        message: crate::fixtures::io_message(&e),
    };
    std::fs::create_dir_all(&data_dir).map_err(data_err)?;
    std::fs::create_dir_all(data_dir.join("logs")).map_err(data_err)?;
    // The gates' files: in the data directory, or where the nodes see them.
    let work_dir = config.work_dir();
    for sub in ["worktrees", "artifacts", "backups"] {
        std::fs::create_dir_all(work_dir.join(sub)).map_err(|e| StartError::DataDir {
            path: work_dir.display().to_string(),
            message: crate::fixtures::io_message(&e),
        })?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        StartError::Listen { addr: config.listen.to_string(), message: e.to_string() }
    })?;
    let candidacy = Candidacy {
        url: match &config.leadership.advertise {
            Some(url) => url.clone(),
            None => listener.local_addr().map(|a| format!("http://{a}")).unwrap_or_default(),
        },
        lease: config.leadership.lease,
    };
    let public_url = candidacy.url.clone();
    let store = Store::serve(&config.store, candidacy).await?;
    let sandbox = Sandbox::new(
        Limits::default(),
        Some(ComponentCache::new(data_dir.join("component-cache"))),
    )
    .map_err(|e| StartError::Sandbox(e.to_string()))?;
    let components_dir = data_dir.join("components");
    std::fs::create_dir_all(&components_dir).map_err(data_err)?;
    let components = components::Components::load(&sandbox, &store, components_dir).await?;

    let executors = executors_for(&config)?;
    let max_event_clients = config.max_event_clients;
    let mut warnings = Vec::new();
    if !executors.gates.isolates() {
        warnings.push(format!(
            "not sandboxed (isolation = \"none\"): builds and gates run with the daemon's authority; {}",
            executors.gates.describe()
        ));
    }
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let daemon = Arc::new(Daemon {
        logs: LogsDir::new(data_dir.join("logs")),
        config,
        store,
        sandbox,
        components,
        // Log chunks are reads of at most 64 KiB, so the ring holds up to
        // 64 MiB of them (and their JSON) before a slow subscriber is told it
        // lagged; it then resumes each log by offset.
        bus: EventBus::new(1024),
        operators,
        executors,
        wake: tokio::sync::Notify::new(),
        work: shared::Work::default(),
        warnings,
        event_clients: Arc::new(tokio::sync::Semaphore::new(max_event_clients)),
        secrets,
        cache_lock: Arc::new(tokio::sync::RwLock::new(())),
        notify,
        public_url,
    });
    if daemon.store.standing().acts() {
        take_office(&daemon).await?;
    } else {
        // A standby's clients may resume from what the store has; what
        // the leader sends next comes with its own `seq`.
        daemon.bus.follow(daemon.store.event_marks().await?.top.max(0) as u64);
    }
    Ok((listener, daemon))
}

/// What a daemon does when it comes to act on its store (at start, or
/// when a standby takes over), before it plans anything: the crash
/// recovery a restart runs. Whatever the last daemon left in flight gets a
/// typed outcome (a gate run `interrupted`, retried by its policy; a
/// deploy again), half-made work trees go, and so does what it left
/// running here.
async fn take_office(daemon: &Daemon) -> Result<(), StartError> {
    let store = &daemon.store;
    // After a takeover: past every event the last leader recorded.
    daemon.bus.continue_after(store.event_marks().await?.top.max(0) as u64);
    let tiers: Vec<_> = daemon.config.tiers.iter().map(|t| t.name.clone()).collect();
    store.sync_tiers(&tiers).await?;
    // Jobs that outlive a daemon are followed again (the coordinator starts
    // their workers), not interrupted and ended.
    let adopt = work::gate::adoptable(daemon).await?;
    let interrupted = store.interrupt_unfinished(Utc::now()).await?;
    if interrupted > 0 {
        tracing::warn!(
            "{interrupted} gate runs were interrupted by the last shutdown; their retry policy runs them again"
        );
    }
    // The build cache of the old layout, or a base whose feed was cut short.
    work::cache::recover(&daemon.work_dir());
    if let Some(why) = work::cache::unavailable(daemon) {
        tracing::warn!("{why}");
    }
    // Work trees a killed build left half-made are made again.
    if let Ok(entries) = std::fs::read_dir(daemon.work_dir().join("worktrees")) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if !adopt.is_empty() {
        tracing::warn!(
            "{} gate runs' jobs outlived the last daemon; following them again",
            adopt.len()
        );
    }
    let keep: Vec<String> = adopt.into_iter().map(|run| run.handle).collect();
    let orphans = daemon.executors.end_orphans(&keep);
    if orphans > 0 {
        tracing::warn!("{orphans} sandboxes left by the previous daemon were ended");
    }
    Ok(())
}

/// Starts the decision loop, the retention sweep, the component watch and,
/// on a shared store, the events going out to the standbys.
fn act(daemon: Arc<Daemon>) {
    if let Standing::Leads(_) = daemon.store.standing() {
        tokio::spawn(publish(daemon.clone()));
    }
    let backlog = daemon.bus.keep();
    tokio::spawn(events::keep_backlog(daemon.bus.clone(), daemon.store.clone(), backlog));
    tokio::spawn(coordinator::supervise(daemon.clone()));
    tokio::spawn(retention::run(daemon.clone()));
    notify::start(daemon.clone());
    if let Some(dir) = daemon.config.gates_dir.clone() {
        tokio::spawn(watch::run(daemon.clone(), dir));
    }
}

/// A standby: serves reads, passes the leader's events to its own clients,
/// and takes over when the lead comes free (or its lease runs out).
async fn stand_by(daemon: Arc<Daemon>) {
    match daemon.store.leader().await {
        Ok(Some(leader)) => eprintln!(
            "sando: standing by: {} leads (epoch {}, at {})",
            leader.holder, leader.epoch, leader.url
        ),
        _ => eprintln!("sando: standing by"),
    }
    let relay = match daemon.store.listen().await {
        Ok(Some(events)) => Some(tokio::spawn(relay(daemon.clone(), events))),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("the leader's events will not reach this daemon's clients: {e}");
            None
        }
    };
    let taken = match daemon.store.lead().await {
        Ok(()) => {
            if let Some(relay) = relay {
                relay.abort();
            }
            // Its components are what served when it started; the leader
            // may have changed them since.
            match take_office(&daemon).await {
                Ok(()) => daemon
                    .components
                    .refresh(&daemon.sandbox, &daemon.store)
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = taken {
        eprintln!("sando: taking the lead: {}", crate::text::error_line(&e));
        std::process::exit(1);
    }
    if let Standing::Leads(epoch) = daemon.store.standing() {
        eprintln!("sando: this daemon leads (epoch {epoch})");
    }
    daemon.trigger(Trigger::Evaluate);
    act(daemon);
}

/// The leader's events, to this standby's clients; a log chunk's bytes
/// read from its run's log file in the shared data directory.
async fn relay(daemon: Arc<Daemon>, mut events: tokio::sync::mpsc::Receiver<String>) {
    use std::collections::hash_map::Entry;
    use std::os::unix::fs::FileExt;
    let mut logs: std::collections::HashMap<GateRunId, Option<std::fs::File>> = Default::default();
    while let Some(json) = events.recv().await {
        match serde_json::from_str::<events::Forwarded>(&json) {
            Ok(events::Forwarded::Event(envelope)) => {
                if let events::Event::GateDone { run_id, .. } = &envelope.event {
                    logs.remove(run_id);
                }
                daemon.bus.relay(envelope);
            }
            Ok(events::Forwarded::Chunk { run_id, seq, stream, offset, len, event_seq }) => {
                let file = match logs.entry(run_id) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => new.insert(open_log(&daemon, run_id).await),
                };
                let Some(file) = file else { continue };
                let mut bytes = vec![0; len.min(logs::LIVE_CHUNK as u64) as usize];
                if file.read_exact_at(&mut bytes, offset).is_ok() {
                    let bytes = bytes.into();
                    daemon.bus.relay(events::EventEnvelope {
                        seq: event_seq,
                        at: Utc::now(),
                        event: events::Event::GateLogChunk { run_id, seq, stream, offset, bytes },
                    });
                }
            }
            Err(e) => tracing::debug!("an event this daemon does not know: {e}"),
        }
    }
}

/// A running gate's log, as the leader writes it in the shared data directory.
async fn open_log(daemon: &Daemon, run_id: GateRunId) -> Option<std::fs::File> {
    let log = daemon.store.gate_run(run_id).await.ok()??.log_ref?;
    std::fs::File::open(daemon.logs.path(&log))
        .inspect_err(|e| {
            tracing::warn!(%run_id, "a running gate's log is not in the shared data directory: {e}")
        })
        .ok()
}

/// This leader's events, to the standbys' clients.
async fn publish(daemon: Arc<Daemon>) {
    let mut events = daemon.bus.forward();
    while let Some(forwarded) = events.recv().await {
        let json = serde_json::to_string(&forwarded).expect("events serialize");
        if let Err(e) = daemon.store.publish(&json).await {
            tracing::warn!("an event did not reach the standbys: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::domain::GateKind;

    #[test]
    fn slurm_takes_the_gates_role_with_an_executor_per_gate_kind_that_has_its_own() {
        let config = Config::parse(
            Path::new("/etc/sando/sando.toml"),
            "data_dir = \"data\"\n[project]\nrepo = \"repo\"\nbuild = \"true\"\nartifact = \"a\"\n\
             [[tiers]]\nname = \"staging\"\n\
             [executor]\nkind = \"slurm\"\npartition = \"gates\"\nshared_dir = \"/shared\"\n\
             [executor.gates.cargo_test]\ncpus = 8\n",
        )
        .unwrap();
        let executors = super::executors_for(&config).unwrap();
        assert!(executors.tools.describe().starts_with("local"), "{}", executors.tools.describe());
        assert!(
            executors
                .gates
                .describe()
                .starts_with("slurm, partition gates, jobs under /shared/jobs/sando-")
        );
        let tests = executors.for_gate(GateKind::CargoTest);
        assert!(!std::sync::Arc::ptr_eq(&tests, &executors.gates), "cargo_test has its own");
        let smoke = executors.for_gate(GateKind::BootSmoke);
        assert!(std::sync::Arc::ptr_eq(&smoke, &executors.gates), "boot_smoke shares the role's");
        assert_eq!(config.work_dir(), Path::new("/shared/files"));
        // The sandbox hides the whole shared directory but what it binds.
        assert!(super::work::reach::hidden(&config).contains(&Path::new("/shared").to_owned()));
    }
}
