//! The deploy worker: a wave of nodes of one tier, each a durable intent, then the node's deploy command and health check, bounded by their timeouts.
//!
//! Deploy commands must be idempotent: a deploy interrupted by a crash is
//! run again from the start after a restart.

use std::sync::Arc;

use chrono::Utc;
use tracing::Instrument;

use super::{SharedProgress, note};
use crate::config::{Command, Node, Tier};
use crate::daemon::events::Event;
use crate::daemon::logs::RunLog;
use crate::daemon::shared::Daemon;
use crate::domain::{DeployFailure, DeployOutcome, LogRef, NodeId, ProcessEnd, TierId, Version};
use crate::executor::{CancellationToken, Ended, LogSink, ProcessSpec};
use crate::store::{StoreError, VersionRecord};

pub(crate) async fn run(
    daemon: Arc<Daemon>,
    tier: TierId,
    version: Version,
    nodes: Vec<NodeId>,
    rollback: Option<i64>,
    progress: SharedProgress,
) {
    let span = tracing::info_span!("deploy", tier = %tier, version = %version);
    async {
        let (Some(tier), Ok(Some(row))) =
            (daemon.config.tier(&tier), daemon.store.version(&version).await)
        else {
            tracing::warn!("the tier or version is gone; nothing to deploy");
            return;
        };
        let wave = tier.nodes.iter().filter(|n| nodes.contains(&n.name));
        let results = futures_util::future::join_all(
            wave.map(|node| deploy_node(&daemon, tier, node, &row, rollback, &progress)),
        )
        .await;
        for result in results {
            if let Err(e) = result {
                tracing::error!(error = %e, "deploy could not be recorded");
            }
        }
    }
    .instrument(span)
    .await
}

async fn deploy_node(
    daemon: &Arc<Daemon>,
    tier: &Tier,
    node: &Node,
    version: &VersionRecord,
    rollback: Option<i64>,
    progress: &SharedProgress,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let log_ref: LogRef = format!(
        "deploys/{}/{}-{}-{}.log",
        version.version,
        tier.name,
        node.name,
        now.timestamp_millis()
    )
    .parse()
    .expect("versions, tiers and nodes are log-safe");
    let deploy_id = daemon
        .store
        .insert_deploy_durably(&tier.name, &version.version, &node.name, &log_ref, rollback, now)
        .await?;
    note(progress, |p| p.deploys.push(deploy_id));
    daemon.bus.send(Event::DeployStart {
        deploy_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        node: node.name.clone(),
    });
    let outcome = match daemon.logs.create(&log_ref) {
        Ok(file) => deploy(daemon, tier, node, version, RunLog::new(file, None)).await,
        Err(e) => DeployOutcome::Failed {
            failure: DeployFailure::HostFault {
                message: format!("opening the deploy's log: {}", crate::fixtures::io_message(&e)),
            },
        },
    };
    tracing::info!(node = %node.name, outcome = %outcome, "deploy finished");
    daemon.store.finish_deploy(deploy_id, &outcome, Utc::now()).await?;
    crate::daemon::metrics::global().deploy(&tier.name, &outcome);
    daemon.bus.send(Event::DeployDone {
        deploy_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        node: node.name.clone(),
        outcome,
    });
    Ok(())
}

async fn deploy(
    daemon: &Daemon,
    tier: &Tier,
    node: &Node,
    version: &VersionRecord,
    log: RunLog,
) -> DeployOutcome {
    let defaults = &daemon.config.defaults;
    let substitute = |command: &Command, timeout| ProcessSpec {
        program: command.program.clone(),
        args: command
            .args
            .iter()
            .map(|a| {
                a.replace("{artifact}", &version.artifact)
                    .replace("{version}", &version.version.to_string())
                    .replace("{node}", node.name.as_str())
                    .replace("{tier}", tier.name.as_str())
            })
            .collect(),
        env: daemon.config.project.env_pairs(),
        cwd: Some(daemon.data_dir().to_path_buf()),
        stop_after: None,
        timeout: Some(timeout),
        // The operator's own commands, not the version's code.
        isolation: None,
        secrets: daemon.secrets.clone(),
        job: None,
    };
    let log: Arc<dyn LogSink> = Arc::new(log);
    // The artifact deployed is the one whose gates ran: its hash was
    // recorded when it was kept.
    match daemon.store.artifact_sha256(&version.version).await {
        Ok(Some(expected)) => {
            let found = super::build::sha256_file(version.artifact.clone().into())
                .await
                .unwrap_or_else(|e| format!("unreadable ({})", crate::fixtures::io_message(&e)));
            if found != expected {
                note_line(
                    &log,
                    &format!("artifact sha256 {found}, built {expected}: not deploying"),
                );
                return failed(DeployFailure::ArtifactChanged { expected, found });
            }
            note_line(&log, &format!("artifact sha256 {found} as built"));
        }
        Ok(None) => note_line(&log, "no artifact hash recorded (a version from before hashes)"),
        Err(e) => return failed(DeployFailure::HostFault { message: e.to_string() }),
    }
    let install = substitute(&node.deploy, defaults.deploy_timeout);
    note_line(&log, &format!("deploying: {} {}", install.program, install.args.join(" ")));
    // A deploy is never cut short by a cancel: a half-installed node is worse
    // than a finished one.
    let never = CancellationToken::new();
    let done = daemon.executors.tools.run(install, Some(log.clone()), never.clone()).await;
    if let Ended::TimedOut(after) = done.ended {
        return failed(DeployFailure::Timeout { after_s: after.as_secs() });
    }
    match done.output.end {
        ProcessEnd::Exited(0) => {}
        ProcessEnd::SpawnError(os_error) => return failed(DeployFailure::Spawn { os_error }),
        ProcessEnd::Exited(code) => {
            return failed(DeployFailure::Transport { exit_code: Some(code) });
        }
        _ => return failed(DeployFailure::Transport { exit_code: None }),
    }
    let Some(health) = &node.health else { return DeployOutcome::Ok };
    let health = substitute(health, defaults.health_timeout);
    note_line(&log, &format!("health check: {} {}", health.program, health.args.join(" ")));
    let done = daemon.executors.tools.run(health, Some(log), never).await;
    if let Ended::TimedOut(after) = done.ended {
        return failed(DeployFailure::Timeout { after_s: after.as_secs() });
    }
    match done.output.end {
        ProcessEnd::Exited(0) => DeployOutcome::Ok,
        ProcessEnd::Exited(code) => failed(DeployFailure::HealthCheck { exit_code: Some(code) }),
        _ => failed(DeployFailure::HealthCheck { exit_code: None }),
    }
}

fn failed(failure: DeployFailure) -> DeployOutcome {
    DeployOutcome::Failed { failure }
}

fn note_line(log: &Arc<dyn LogSink>, text: &str) {
    let line = crate::executor::redact(&format!("sando: {text}\n"));
    log.chunk(crate::executor::Stream::Stderr, line.into());
}
