//! The daemon (`sando serve`): shared state, start-up, and the wiring of scheduler, API and event stream.

pub mod api;
pub mod components;
pub mod events;
pub mod logs;
mod scheduler;
mod watch;

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::config::{Config, TokenSource};
use crate::domain::GitSha;
use crate::sandbox::{ComponentCache, Limits, Sandbox};
use crate::store::{BackupRow, Store, StoreError};
use events::EventBus;
use logs::LogsDir;

/// Why the daemon could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("token: environment variable {0} is not set (or empty)")]
    TokenEnvMissing(String),
    #[error("token file {path}: {message}")]
    TokenFile { path: String, message: String },
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
}

/// What the scheduler is asked to do.
#[derive(Debug)]
pub(crate) enum Trigger {
    Rebuild(GitSha),
    /// Something a blocked gate may wait for changed.
    Evaluate,
}

/// Everything the API handlers and the scheduler share.
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) sandbox: Sandbox,
    pub(crate) components: components::Components,
    pub(crate) bus: EventBus,
    pub(crate) logs: LogsDir,
    pub(crate) token: String,
    pub(crate) triggers: mpsc::UnboundedSender<Trigger>,
}

impl Daemon {
    /// Every event from now on, as `/api/events` sends them.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::domain::EventEnvelope>> {
        self.bus.subscribe()
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub(crate) fn trigger(&self, trigger: Trigger) {
        // The scheduler lives as long as the daemon.
        let _ = self.triggers.send(trigger);
    }

    /// Asks the scheduler to build a commit (what `POST /api/rebuild` does).
    pub fn rebuild(&self, sha: GitSha) {
        self.bus.send(events::Event::RebuildRequested { sha: sha.clone() });
        self.trigger(Trigger::Rebuild(sha));
    }

    /// Copies the configured backup source into the data directory, records
    /// it, and wakes gates waiting for a backup.
    pub async fn fetch_backup(&self) -> Result<BackupRow, FetchError> {
        let source = self.config.backup_source.clone().ok_or(FetchError::NotConfigured)?;
        let fetched_at = Utc::now();
        let target = self
            .data_dir()
            .join("backups")
            .join(format!("{}.backup", fetched_at.timestamp_millis()));
        tokio::fs::copy(&source, &target).await.map_err(|e| FetchError::Source {
            path: source.display().to_string(),
            message: crate::fixtures::io_message(&e),
        })?;
        let (source, path) = (source.display().to_string(), target.display().to_string());
        let id = self.store.insert_backup(&source, &path, fetched_at).await?;
        self.bus.send(events::Event::BackupFetched { backup_id: id, source: source.clone() });
        self.trigger(Trigger::Evaluate);
        Ok(BackupRow { id, source, path, fetched_at })
    }
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

/// Serves until the process ends.
pub async fn serve(config: Config, token: String) -> Result<(), StartError> {
    Started::start(config, token).await?.run(std::future::pending()).await
}

/// A daemon ready to serve: listener bound, state settled, scheduler not yet running.
pub struct Started {
    listener: tokio::net::TcpListener,
    pub daemon: Arc<Daemon>,
    triggers: mpsc::UnboundedReceiver<Trigger>,
}

impl Started {
    /// Opens the data directory and database, loads the gate components,
    /// settles runs a previous daemon left in flight, and binds the listener.
    pub async fn start(config: Config, token: String) -> Result<Started, StartError> {
        let (listener, daemon, triggers) = start(config, token).await?;
        Ok(Started { listener, daemon, triggers })
    }

    pub fn url(&self) -> String {
        self.listener.local_addr().map(|a| format!("http://{a}")).unwrap_or_default()
    }

    /// Runs the scheduler and serves the API until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let url = self.url();
        eprintln!("sando: listening on {url}");
        tokio::spawn(scheduler::run(self.daemon.clone(), self.triggers));
        if let Some(dir) = self.daemon.config.gates_dir.clone() {
            tokio::spawn(watch::run(self.daemon.clone(), dir));
        }
        axum::serve(self.listener, api::router(self.daemon))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| StartError::Listen { addr: url, message: e.to_string() })
    }
}

async fn start(
    config: Config,
    token: String,
) -> Result<(tokio::net::TcpListener, Arc<Daemon>, mpsc::UnboundedReceiver<Trigger>), StartError> {
    let data_dir = config.data_dir.clone();
    let data_err = |e: std::io::Error| StartError::DataDir {
        path: data_dir.display().to_string(),
        message: crate::fixtures::io_message(&e),
    };
    std::fs::create_dir_all(&data_dir).map_err(data_err)?;
    for sub in ["logs", "worktrees", "artifacts", "backups"] {
        std::fs::create_dir_all(data_dir.join(sub)).map_err(data_err)?;
    }
    let store = Store::open(&data_dir.join("sando.sqlite")).await?;
    let tiers: Vec<_> = config.tiers.iter().map(|t| t.name.clone()).collect();
    store.sync_tiers(&tiers).await?;
    let interrupted = store.interrupt_unfinished(Utc::now()).await?;
    if interrupted > 0 {
        eprintln!(
            "sando: {interrupted} gate runs were interrupted by the last shutdown; they will run again"
        );
    }

    let sandbox = Sandbox::new(
        Limits::default(),
        Some(ComponentCache::new(data_dir.join("component-cache"))),
    )
    .map_err(|e| StartError::Sandbox(e.to_string()))?;
    let components_dir = data_dir.join("components");
    std::fs::create_dir_all(&components_dir).map_err(data_err)?;
    let components = components::Components::load(&sandbox, &store, components_dir).await?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        StartError::Listen { addr: config.listen.to_string(), message: e.to_string() }
    })?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        logs: LogsDir::new(data_dir.join("logs")),
        config,
        store,
        sandbox,
        components,
        // Log chunks are at most 16 KiB, so a subscriber that stops reading
        // holds at most 16 MiB of them before it is told it lagged.
        bus: EventBus::new(1024),
        token,
        triggers: sender,
    });
    Ok((listener, daemon, receiver))
}
