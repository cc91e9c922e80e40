//! The scheduler: builds pushed commits, walks each version through the tiers gate by gate, deploys, and promotes.
//!
//! One task owns all decisions, so no two evaluations race. It wakes on a
//! trigger (a rebuild, a confirmation, a fetched backup) or when a burn-in
//! clock is due — never by polling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::events::Event;
use super::logs::RunLog;
use super::{Daemon, Trigger};
use crate::config::{Canary, Command, Config, Gate, Node, Tier};
use crate::domain::{
    BuildFailure, BuildOutcome, DeployFailure, DeployOutcome, GateBlocker, GateFailure,
    GateOutcome, GateStatus, GitSha, LogRef, ProcessEnd, Version,
};
use crate::process::{self, LogSink, Spawn};
use crate::sandbox::{Backup, BurnInClock, Confirmation, RunnerEnv};
use crate::store::{RunCost, StoreError, VersionRow};

pub(crate) async fn run(daemon: Arc<Daemon>, mut triggers: mpsc::UnboundedReceiver<Trigger>) {
    let mut wake: Option<DateTime<Utc>> = evaluate_all(&daemon).await;
    loop {
        let sleep = match wake {
            Some(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600 * 24 * 365),
        };
        tokio::select! {
            trigger = triggers.recv() => match trigger {
                Some(Trigger::Rebuild(sha)) => rebuild(&daemon, sha).await,
                Some(Trigger::Evaluate) => {}
                None => return,
            },
            () = tokio::time::sleep(sleep) => {}
        }
        wake = evaluate_all(&daemon).await;
    }
}

fn report(error: StoreError) {
    eprintln!("sando: scheduler: {error}");
}

// ---- builds ----------------------------------------------------------------

async fn rebuild(daemon: &Arc<Daemon>, sha: GitSha) {
    daemon.bus.send(Event::BuildStarted { sha: sha.clone() });
    let now = Utc::now();
    let log_ref: LogRef =
        format!("builds/{sha}-{}.log", now.timestamp_millis()).parse().expect("valid log ref");
    let log = match daemon.logs.create(&log_ref) {
        Ok(file) => Arc::new(RunLog::new(file, None)),
        Err(e) => return eprintln!("sando: build log {log_ref}: {e}"),
    };
    let build_id = match daemon.store.insert_build(&sha, &log_ref, now).await {
        Ok(id) => id,
        Err(e) => return report(e),
    };
    let outcome = match build(daemon, &sha, log).await {
        Ok(row) => BuildOutcome::Ok { version: row.version },
        Err(failure) => BuildOutcome::Failed { failure },
    };
    if let Err(e) = daemon.store.finish_build(build_id, &outcome, Utc::now()).await {
        report(e);
    }
    daemon.bus.send(Event::BuildDone { sha, outcome });
}

async fn build(
    daemon: &Arc<Daemon>,
    sha: &GitSha,
    log: Arc<RunLog>,
) -> Result<VersionRow, BuildFailure> {
    let config = daemon.config.clone();
    let worktrees = daemon.data_dir().join("worktrees");
    let requested = sha.clone();
    let (full, version) = tokio::task::spawn_blocking(move || {
        checkout_and_build(&config, &worktrees, &requested, &log)
    })
    .await
    .map_err(|e| BuildFailure::Manifest { message: format!("build task failed: {e}") })??;
    let store_err = |e: StoreError| BuildFailure::Manifest { message: e.to_string() };
    if let Some(existing) = daemon.store.version(&version).await.map_err(store_err)? {
        if existing.git_sha != full {
            return Err(BuildFailure::VersionTaken {
                version,
                git_sha: existing.git_sha.to_string(),
            });
        }
        return Ok(existing);
    }
    let source = daemon
        .data_dir()
        .join("worktrees")
        .join(full.as_str())
        .join(&daemon.config.project.artifact);
    let dir = daemon.data_dir().join("artifacts").join(version.to_string());
    let name = source.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("artifact"));
    let artifact = dir.join(name);
    let copied = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::copy(&source, &artifact).await
    };
    copied.await.map_err(|_| BuildFailure::ArtifactMissing {
        path: daemon.config.project.artifact.display().to_string(),
    })?;
    let row = VersionRow {
        version: version.clone(),
        git_sha: full.clone(),
        registered_at: Utc::now(),
        artifact: artifact.display().to_string(),
    };
    daemon.store.insert_version(&row).await.map_err(store_err)?;
    daemon.bus.send(Event::VersionRegistered { version: version.clone(), sha: full });
    if let Some(first) = daemon.config.tiers.first() {
        set_candidate(daemon, &first.name, &version).await;
    }
    Ok(row)
}

/// Resolves the commit, checks it out into its own work tree, runs the build
/// command there and reads the version from `Cargo.toml`.
fn checkout_and_build(
    config: &Config,
    worktrees: &Path,
    sha: &GitSha,
    log: &RunLog,
) -> Result<(GitSha, Version), BuildFailure> {
    let repo = config.project.repo.display().to_string();
    let git = |args: &[&str]| Spawn {
        program: "git".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Spawn::default()
    };
    let resolved = process::run(
        &git(&["-C", &repo, "rev-parse", "--verify", "--quiet", &format!("{sha}^{{commit}}")]),
        None,
    );
    let full: GitSha = match resolved.end {
        ProcessEnd::SpawnError(os_error) => return Err(BuildFailure::Spawn { os_error }),
        ProcessEnd::Exited(0) => String::from_utf8_lossy(&resolved.stdout)
            .trim()
            .parse()
            .map_err(|_| BuildFailure::UnknownCommit)?,
        _ => return Err(BuildFailure::UnknownCommit),
    };
    let tree = worktrees.join(full.as_str());
    if !tree.join(".git").exists() {
        let _ = std::fs::remove_dir_all(&tree);
        let tree_arg = tree.display().to_string();
        log.note(&format!("checking out {full} into {tree_arg}"));
        for step in [
            git(&["clone", "--quiet", "--shared", "--no-checkout", &repo, &tree_arg]),
            git(&["-C", &tree_arg, "checkout", "--quiet", "--detach", full.as_str()]),
        ] {
            let out = process::run(&step, Some(log));
            match out.end {
                ProcessEnd::Exited(0) => {}
                ProcessEnd::SpawnError(os_error) => return Err(BuildFailure::Spawn { os_error }),
                ProcessEnd::Exited(code) => {
                    return Err(BuildFailure::Checkout { exit_code: Some(code) });
                }
                _ => return Err(BuildFailure::Checkout { exit_code: None }),
            }
        }
    }
    let build = &config.project.build;
    log.note(&format!("running {build}"));
    let out = process::run(
        &Spawn {
            program: build.program.clone(),
            args: build.args.clone(),
            env: config.project.env_pairs(),
            cwd: Some(tree.clone()),
            stop_after: None,
        },
        Some(log),
    );
    match out.end {
        ProcessEnd::Exited(0) => {}
        ProcessEnd::SpawnError(os_error) => return Err(BuildFailure::Spawn { os_error }),
        ProcessEnd::Exited(code) => {
            return Err(BuildFailure::BuildCommand { exit_code: Some(code) });
        }
        _ => return Err(BuildFailure::BuildCommand { exit_code: None }),
    }
    let version = manifest_version(&tree.join("Cargo.toml"))
        .map_err(|message| BuildFailure::Manifest { message })?;
    log.note(&format!("built version {version}"));
    Ok((full, version))
}

fn manifest_version(path: &Path) -> Result<Version, String> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::fixtures::io_message(&e))?;
    let manifest: toml::Table =
        text.parse().map_err(|e: toml::de::Error| e.message().to_owned())?;
    let version = manifest
        .get("package")
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .ok_or("no [package] version")?;
    version.parse().map_err(|e: crate::domain::ParseError| e.to_string())
}

async fn set_candidate(daemon: &Arc<Daemon>, tier: &crate::domain::TierId, version: &Version) {
    let rows = match daemon.store.tiers().await {
        Ok(rows) => rows,
        Err(e) => return report(e),
    };
    let previous = rows.iter().find(|r| &r.name == tier).and_then(|r| r.candidate_version.clone());
    if let Err(e) = daemon.store.set_candidate(tier, Some(version)).await {
        return report(e);
    }
    if let Some(previous) = previous.filter(|p| p != version) {
        daemon.bus.send(Event::Superseded {
            tier: tier.clone(),
            version: previous,
            by: version.clone(),
        });
    }
}

// ---- gates -----------------------------------------------------------------

/// Walks every tier's candidate through its gates. Returns when the
/// scheduler should wake on its own (a burn-in clock falling due).
async fn evaluate_all(daemon: &Arc<Daemon>) -> Option<DateTime<Utc>> {
    let mut wake: Option<DateTime<Utc>> = None;
    for (index, tier) in daemon.config.tiers.iter().enumerate() {
        let rows = match daemon.store.tiers().await {
            Ok(rows) => rows,
            Err(e) => {
                report(e);
                return wake;
            }
        };
        let Some(candidate) =
            rows.iter().find(|r| r.name == tier.name).and_then(|r| r.candidate_version.clone())
        else {
            continue;
        };
        let version = match daemon.store.version(&candidate).await {
            Ok(Some(version)) => version,
            Ok(None) => continue,
            Err(e) => {
                report(e);
                continue;
            }
        };
        match evaluate_tier(daemon, index, tier, &version, &mut wake).await {
            Ok(true) => {
                if let Some(next) = daemon.config.tiers.get(index + 1) {
                    set_candidate(daemon, &next.name, &version.version).await;
                }
            }
            Ok(false) => {}
            Err(e) => report(e),
        }
    }
    wake
}

/// Runs the tier's gates in order for `version`; if all pass, deploys.
/// Returns whether the version was promoted to the tier.
async fn evaluate_tier(
    daemon: &Arc<Daemon>,
    index: usize,
    tier: &Tier,
    version: &VersionRow,
    wake: &mut Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let latest = daemon.store.latest_runs(&tier.name, &version.version).await?;
    for gate in &tier.gates {
        let previous = latest.iter().find(|r| r.gate == gate.kind());
        let mut settled =
            previous.and_then(|run| run.outcome.as_ref()).filter(|status| match status {
                GateStatus::Passed { .. } => true,
                GateStatus::Failed { failure } => *failure != GateFailure::Interrupted,
                GateStatus::Blocked { .. } => false,
            });
        if let (Some(run), Some(GateStatus::Failed { .. })) = (previous, settled)
            && daemon.store.rerun_requested(run.run_id).await?
        {
            settled = None;
        }
        let status = match settled {
            Some(status) => status.clone(),
            None => run_gate(daemon, index, tier, gate, version).await?,
        };
        match status {
            GateStatus::Passed { .. } => continue,
            GateStatus::Blocked { blocker: GateBlocker::BurnInRemaining { .. } } => {
                if let Some(due) = burn_in_due(daemon, index, gate, version).await? {
                    // Wake when it is due, and hourly before that so the
                    // remaining time shown stays right.
                    let next = due.min(Utc::now() + chrono::Duration::hours(1));
                    *wake = Some(wake.map_or(next, |w| w.min(next)));
                }
                return Ok(false);
            }
            GateStatus::Blocked { .. } | GateStatus::Failed { .. } => return Ok(false),
        }
    }
    if !deploy(daemon, tier, version).await? {
        return Ok(false);
    }
    daemon.store.promote(&tier.name, &version.version, Utc::now()).await?;
    daemon.bus.send(Event::Promoted { tier: tier.name.clone(), version: version.version.clone() });
    Ok(true)
}

/// When the version's burn-in for this gate ends, if its clock has started.
async fn burn_in_due(
    daemon: &Arc<Daemon>,
    index: usize,
    gate: &Gate,
    version: &VersionRow,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let Gate::BurnIn { duration, on_tier } = gate else { return Ok(None) };
    let Some(clock_tier) = on_tier
        .clone()
        .or_else(|| index.checked_sub(1).map(|i| daemon.config.tiers[i].name.clone()))
    else {
        return Ok(None);
    };
    let started = daemon.store.arrival(&clock_tier, &version.version).await?;
    Ok(started
        .map(|at| at + chrono::Duration::from_std(*duration).unwrap_or(chrono::Duration::MAX)))
}

async fn run_gate(
    daemon: &Arc<Daemon>,
    index: usize,
    tier: &Tier,
    gate: &Gate,
    version: &VersionRow,
) -> Result<GateStatus, StoreError> {
    let kind = gate.kind();
    // Held for the whole run: a component swapped in meanwhile serves the next one.
    let component = daemon.components.get(kind);
    // The log file exists before the run is visible, so `/logs` never finds
    // a run whose log is missing.
    let mut file = None;
    let (run_id, log_ref) = daemon
        .store
        .insert_gate_run(
            &tier.name,
            &version.version,
            kind,
            &component.digest().to_string(),
            component.contract(),
            Utc::now(),
            |run_id| {
                let log_ref: LogRef = format!("{}/{}/{}.log", version.version, kind, run_id)
                    .parse()
                    .expect("versions and kinds are log-safe");
                file = Some(daemon.logs.create(&log_ref));
                log_ref
            },
        )
        .await?;
    let file = match file.expect("the log path was made") {
        Ok(file) => file,
        Err(e) => {
            eprintln!("sando: log {log_ref}: {e}");
            std::fs::File::create("/dev/null").expect("/dev/null")
        }
    };
    let log = Arc::new(RunLog::new(file, Some((daemon.bus.clone(), run_id))));
    daemon.bus.send(Event::GateStart {
        run_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        gate: kind,
    });

    let env = runner_env(daemon, index, tier, gate, version, log.clone()).await?;
    let shared = daemon.clone();
    let classification =
        tokio::task::spawn_blocking(move || component.run(&shared.sandbox, env)).await;
    let (status, cost) = match classification {
        Ok((c, env)) => {
            // What the classifier judged, for shadow tests and reclassify.
            if let Some(output) = env.spawned.last()
                && let Err(e) = daemon.store.record_raw_output(run_id, kind, output).await
            {
                // The run's outcome still counts; only its replay is lost.
                log.note(&format!("recording the classifier's input failed: {e}"));
            }
            (
                c.status,
                RunCost {
                    fuel: c.usage.fuel as i64,
                    peak_memory: c.usage.peak_memory_bytes as i64,
                },
            )
        }
        Err(e) => {
            log.note(&format!("the gate's task failed: {e}"));
            (GateStatus::unclassified(), RunCost { fuel: 0, peak_memory: 0 })
        }
    };
    daemon.store.finish_gate_run(run_id, &status, cost, Utc::now()).await?;
    daemon.bus.send(Event::GateDone {
        run_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        gate: kind,
        outcome: GateOutcome { status: status.clone(), log_ref: Some(log_ref) },
    });
    Ok(status)
}

/// What the gate's runner may see and do, from its configuration.
async fn runner_env(
    daemon: &Arc<Daemon>,
    index: usize,
    tier: &Tier,
    gate: &Gate,
    version: &VersionRow,
    log: Arc<RunLog>,
) -> Result<RunnerEnv, StoreError> {
    let tree = daemon.data_dir().join("worktrees").join(version.git_sha.as_str());
    let mut env = RunnerEnv {
        tier: tier.name.clone(),
        version: version.version.clone(),
        gate: gate.kind(),
        params: Vec::new(),
        allowed_programs: Vec::new(),
        burn_in_clock: None,
        confirmation: None,
        latest_backup: None,
        cwd: Some(tree.clone()),
        env: daemon.config.project.env_pairs(),
        log: Some(log as Arc<dyn LogSink>),
        spawned: Vec::new(),
    };
    let mut param = |key: &str, value: String| env.params.push((key.to_owned(), value));
    match gate {
        Gate::CargoTest { args, timeout } => {
            param("program", "cargo".into());
            param("args", args.join(" "));
            if let Some(timeout) = timeout {
                param("timeout_s", timeout.as_secs().max(1).to_string());
            }
            env.allowed_programs.push("cargo".into());
        }
        Gate::MigrationDryRun { scratch_db_url, migrations, migrate, restore } => {
            if let Some(url) = scratch_db_url {
                param("scratch_db_url", url.clone());
            }
            param("migrations", tree.join(migrations).display().to_string());
            param("migrate_program", migrate.program.clone());
            param("migrate_args", migrate.args.join(" "));
            env.allowed_programs.push(migrate.program.clone());
            if let Some(Command { program, args }) = restore {
                param("restore_program", program.clone());
                param("restore_args", args.join(" "));
                env.allowed_programs.push(program.clone());
            }
            env.latest_backup = daemon.store.latest_backup().await?.map(|b| Backup {
                id: b.id,
                path: b.path,
                fetched_at: b.fetched_at,
            });
        }
        Gate::BootSmoke { args, stay_up } => {
            param("binary", version.artifact.clone());
            param("args", args.join(" "));
            param("seconds", stay_up.as_secs().max(1).to_string());
            env.allowed_programs.push(version.artifact.clone());
        }
        Gate::BurnIn { duration, .. } => {
            param("duration_s", duration.as_secs().to_string());
            let due = burn_in_due(daemon, index, gate, version).await?;
            env.burn_in_clock = due.map(|due| BurnInClock {
                started_at: due
                    - chrono::Duration::from_std(*duration).unwrap_or(chrono::Duration::MAX),
                now: Utc::now(),
            });
        }
        Gate::ManualConfirm => {
            env.confirmation = daemon
                .store
                .confirmation(&tier.name, &version.version)
                .await?
                .map(|c| Confirmation { by: c.confirmed_by, at: c.confirmed_at });
        }
    }
    Ok(env)
}

// ---- deploys ---------------------------------------------------------------

/// Deploys `version` to the tier's nodes following its canary policy.
/// Returns whether every node is running it. A failed deploy is not retried
/// on its own: it needs a new version (or an operator).
async fn deploy(
    daemon: &Arc<Daemon>,
    tier: &Tier,
    version: &VersionRow,
) -> Result<bool, StoreError> {
    let (first, rest) = match tier.canary {
        Canary::OneThenRest => tier.nodes.split_at(tier.nodes.len().min(1)),
        Canary::AllAtOnce => tier.nodes.split_at(0),
    };
    for wave in [first, rest] {
        let results = futures_util::future::join_all(
            wave.iter().map(|node| deploy_node(daemon, tier, node, version)),
        )
        .await;
        for result in results {
            if !result? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

async fn deploy_node(
    daemon: &Arc<Daemon>,
    tier: &Tier,
    node: &Node,
    version: &VersionRow,
) -> Result<bool, StoreError> {
    if let Some(previous) =
        daemon.store.latest_deploy(&tier.name, &version.version, &node.name).await?
    {
        return Ok(previous.outcome == DeployOutcome::Ok);
    }
    let now = Utc::now();
    let log_ref: LogRef = format!(
        "deploys/{}/{}-{}-{}.log",
        version.version,
        tier.name,
        node.name,
        now.timestamp_millis()
    )
    .parse()
    .expect("valid log ref");
    let deploy_id =
        daemon.store.insert_deploy(&tier.name, &version.version, &node.name, &log_ref, now).await?;
    daemon.bus.send(Event::DeployStart {
        deploy_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        node: node.name.clone(),
    });
    let file = daemon
        .logs
        .create(&log_ref)
        .or_else(|_| std::fs::File::create("/dev/null"))
        .expect("a log file");
    let log = RunLog::new(file, None);
    let substitute = |command: &Command| Spawn {
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
    };
    let install = substitute(&node.deploy);
    let health = node.health.as_ref().map(substitute);
    let outcome = tokio::task::spawn_blocking(move || {
        log.note(&format!("deploying: {} {}", install.program, install.args.join(" ")));
        let out = process::run(&install, Some(&log));
        match out.end {
            ProcessEnd::Exited(0) => {}
            ProcessEnd::SpawnError(os_error) => {
                return DeployOutcome::Failed { failure: DeployFailure::Spawn { os_error } };
            }
            ProcessEnd::Exited(code) => {
                return DeployOutcome::Failed {
                    failure: DeployFailure::Transport { exit_code: Some(code) },
                };
            }
            _ => {
                return DeployOutcome::Failed {
                    failure: DeployFailure::Transport { exit_code: None },
                };
            }
        }
        let Some(health) = health else { return DeployOutcome::Ok };
        log.note(&format!("health check: {} {}", health.program, health.args.join(" ")));
        match process::run(&health, Some(&log)).end {
            ProcessEnd::Exited(0) => DeployOutcome::Ok,
            ProcessEnd::Exited(code) => DeployOutcome::Failed {
                failure: DeployFailure::HealthCheck { exit_code: Some(code) },
            },
            _ => DeployOutcome::Failed { failure: DeployFailure::HealthCheck { exit_code: None } },
        }
    })
    .await
    .unwrap_or(DeployOutcome::Failed { failure: DeployFailure::Transport { exit_code: None } });
    daemon.store.finish_deploy(deploy_id, &outcome, Utc::now()).await?;
    daemon.bus.send(Event::DeployDone {
        deploy_id,
        tier: tier.name.clone(),
        version: version.version.clone(),
        node: node.name.clone(),
        outcome: outcome.clone(),
    });
    Ok(outcome == DeployOutcome::Ok)
}
