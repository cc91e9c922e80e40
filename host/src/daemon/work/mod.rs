//! The workers: each does one thing the planner asked for (a build, a gate run, a wave of deploys) and reports what it touched, so a panic still ends as a typed outcome.
//!
//! Workers run processes only through the daemon's executors, each by what
//! it runs: the daemon's own tools (git, deploy and health commands) through
//! `tools`, code under test (the build command, gate processes) through
//! `gates`. They never decide what comes next.

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod deploy;
pub(crate) mod gate;
pub(crate) mod reach;

pub(crate) use build::sha256_file;
pub(crate) use gate::run_log_ref;

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::daemon::shared::Daemon;
use crate::domain::{DeployId, GateRunId};
use crate::executor::{Isolation, Mount, Mounted};

/// The sandbox a version's code runs in: its work tree writable; the data
/// directory (other versions' trees, artifacts, backups, logs, the
/// database, the build cache's layers), the token file and the backup
/// source invisible. A build and a `cargo_test` gate add the version's
/// view of the build cache ([`cache::BuildCache::mount`]).
pub(crate) fn sandbox_for(daemon: &Daemon, tree: &Path, network: bool) -> Isolation {
    let hidden = reach::hidden(&daemon.config);
    let mounts = vec![Mount::new(Mounted::Tree, tree)];
    Isolation { hidden, mounts, network, run_as: daemon.config.run_as.clone() }
}

/// What a worker has started, for the coordinator to settle if it panics.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub run: Option<GateRunId>,
    pub deploys: Vec<DeployId>,
    pub build: Option<i64>,
}

pub(crate) type SharedProgress = Arc<Mutex<Progress>>;

pub(crate) fn note(progress: &SharedProgress, f: impl FnOnce(&mut Progress)) {
    // A worker that panicked while holding the lock left it poisoned; what
    // it recorded is still right.
    let mut guard = progress.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard);
}
