//! The daemon (`sando serve`): shared state, start-up, and the wiring of scheduler, API and event stream.

pub mod api;
pub mod events;
pub mod logs;
mod scheduler;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::config::{Config, TokenSource};
use crate::domain::{GateKind, GitSha};
use crate::sandbox::{ComponentCache, GateComponent, Limits, Sandbox, shipped_component};
use crate::store::{Store, StoreError};
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
    #[error("gate component for {kind}: {message}")]
    Component { kind: GateKind, message: String },
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
    pub(crate) components: HashMap<GateKind, Arc<GateComponent>>,
    pub(crate) bus: EventBus,
    pub(crate) logs: LogsDir,
    pub(crate) token: String,
    pub(crate) triggers: mpsc::UnboundedSender<Trigger>,
}

impl Daemon {
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub(crate) fn trigger(&self, trigger: Trigger) {
        // The scheduler lives as long as the daemon.
        let _ = self.triggers.send(trigger);
    }
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

/// Opens the data directory and database, loads the gate components,
/// settles runs a previous daemon left in flight, binds the listener, and
/// serves until the process ends.
pub async fn serve(config: Config, token: String) -> Result<(), StartError> {
    let (listener, daemon, triggers) = start(config, token).await?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    eprintln!("sando: listening on http://{addr}");
    tokio::spawn(scheduler::run(daemon.clone(), triggers));
    axum::serve(listener, api::router(daemon))
        .await
        .map_err(|e| StartError::Listen { addr, message: e.to_string() })
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
    let mut components = HashMap::new();
    for kind in GateKind::ALL {
        let component = load_component(&sandbox, kind)?;
        components.insert(kind, Arc::new(component));
    }

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
        bus: EventBus::new(4096),
        token,
        triggers: sender,
    });
    Ok((listener, daemon, receiver))
}

fn load_component(sandbox: &Sandbox, kind: GateKind) -> Result<GateComponent, StartError> {
    let path: PathBuf = shipped_component(kind).map_err(|missing| StartError::Component {
        kind,
        message: format!(
            "no component at {} (build the gates with `./x build`)",
            missing.display()
        ),
    })?;
    let bytes = std::fs::read(&path).map_err(|e| StartError::Component {
        kind,
        message: format!("{}: {}", path.display(), crate::fixtures::io_message(&e)),
    })?;
    let component = sandbox
        .load(&bytes)
        .map_err(|e| StartError::Component { kind, message: format!("{}: {e}", path.display()) })?;
    if component.kind() != kind {
        return Err(StartError::Component {
            kind,
            message: format!("{} serves {}", path.display(), component.kind()),
        });
    }
    Ok(component)
}
