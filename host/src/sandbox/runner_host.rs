//! The `host` imports a runner may call, and the refusal a classifier gets.
//!
//! While classifying, the store carries no [`RunnerEnv`], so every import
//! traps with [`Denied`]: that is what makes the classifier pure.

use chrono::{DateTime, Utc};

use super::bindings::{host as wit, types as wit_types};
use super::{State, to_guest};
use crate::domain::{GateKind, RawOutput, TierId, Version};
use crate::process::{self, LogSink, Spawn};

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

/// Everything a runner may see or do for one gate run. What it spawned is
/// recorded in `spawned`, in order, for the run's provenance.
#[derive(Clone)]
pub struct RunnerEnv {
    pub tier: TierId,
    pub version: Version,
    pub gate: GateKind,
    pub params: Vec<(String, String)>,
    /// Programs `spawn` may start (exact strings as the runner passes them).
    pub allowed_programs: Vec<String>,
    pub burn_in_clock: Option<BurnInClock>,
    pub confirmation: Option<Confirmation>,
    pub latest_backup: Option<Backup>,
    /// Working directory of spawned programs (the version's work tree).
    pub cwd: Option<std::path::PathBuf>,
    /// Environment added for spawned programs (the project's `env`).
    pub env: Vec<(String, String)>,
    /// Where spawned programs' output streams (the run's log).
    pub log: Option<std::sync::Arc<dyn LogSink>>,
    /// What the runner spawned, in order (each stream's kept tail).
    pub spawned: Vec<RawOutput>,
}

impl State {
    fn runner(&mut self, capability: &str) -> wasmtime::Result<&mut RunnerEnv> {
        self.runner.as_mut().ok_or_else(|| {
            wasmtime::Error::new(Denied(format!(
                "sando:gate/host.{capability} (from a classifier)"
            )))
        })
    }
}

impl wit_types::Host for State {}

impl wit::Host for State {
    fn context(&mut self) -> wasmtime::Result<wit::GateContext> {
        let env = self.runner("context")?;
        Ok(wit::GateContext {
            tier: env.tier.to_string(),
            version: env.version.to_string(),
            gate: to_guest::gate_kind(env.gate),
            params: env
                .params
                .iter()
                .map(|(key, value)| wit::Param { key: key.clone(), value: value.clone() })
                .collect(),
        })
    }

    fn spawn(
        &mut self,
        request: wit::SpawnRequest,
    ) -> wasmtime::Result<wit_types::RawOutputResult> {
        let env = self.runner("spawn")?;
        if !env.allowed_programs.contains(&request.program) {
            return Err(wasmtime::Error::new(Denied(format!(
                "spawn of {:?} (not among the programs this gate's configuration allows)",
                request.program
            ))));
        }
        if let Some(log) = &env.log {
            let line = format!("sando: running {} {}\n", request.program, request.args.join(" "));
            log.chunk(process::Stream::Stderr, line.as_bytes());
        }
        let mut extra_env = env.env.clone();
        extra_env.extend(request.env.into_iter().map(|p| (p.key, p.value)));
        let output = process::run(
            &Spawn {
                program: request.program,
                args: request.args,
                env: extra_env,
                cwd: env.cwd.clone(),
                stop_after: request.stop_after_ms.map(std::time::Duration::from_millis),
            },
            env.log.as_deref(),
        );
        let wit_output = to_guest::spawned_output(&output);
        env.spawned.push(output);
        Ok(wit_output)
    }

    fn burn_in_clock(&mut self) -> wasmtime::Result<Option<wit::ClockReading>> {
        let env = self.runner("burn-in-clock")?;
        Ok(env.burn_in_clock.as_ref().map(|c| wit::ClockReading {
            started_at: to_guest::datetime(c.started_at),
            now: to_guest::datetime(c.now),
        }))
    }

    fn confirmation(&mut self) -> wasmtime::Result<Option<wit::OperatorConfirmation>> {
        let env = self.runner("confirmation")?;
        Ok(env
            .confirmation
            .as_ref()
            .map(|c| wit::OperatorConfirmation { by: c.by.clone(), at: to_guest::datetime(c.at) }))
    }

    fn latest_backup(&mut self) -> wasmtime::Result<Option<wit::Backup>> {
        let env = self.runner("latest-backup")?;
        Ok(env.latest_backup.as_ref().map(|b| wit::Backup {
            id: b.id,
            path: b.path.clone(),
            fetched_at: to_guest::datetime(b.fetched_at),
        }))
    }
}
