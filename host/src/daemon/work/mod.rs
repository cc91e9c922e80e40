//! The workers: each does one thing the planner asked for (a build, a gate run, a wave of deploys) and reports what it touched, so a panic still ends as a typed outcome.
//!
//! Workers run processes only through the daemon's `Executor`; they never
//! decide what comes next.

pub(crate) mod build;
pub(crate) mod deploy;
pub(crate) mod gate;

use std::sync::{Arc, Mutex};

use crate::domain::{DeployId, GateRunId};

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
