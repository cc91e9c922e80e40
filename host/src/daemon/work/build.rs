//! The build worker: a requested commit checked out into its own work tree, built, its version read and its artifact kept, then registered in one transaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tracing::Instrument;

use super::cache::BuildCache;
use super::{SharedProgress, note};
use crate::daemon::events::Event;
use crate::daemon::logs::RunLog;
use crate::daemon::shared::{Daemon, Stop};
use crate::domain::{BuildFailure, BuildOutcome, GitSha, LogRef, ProcessEnd, Version};
use crate::executor::{Ended, LogSink, ProcessSpec};
use crate::store::{StoreError, VersionRecord};

pub(crate) async fn run(
    daemon: Arc<Daemon>,
    request_id: i64,
    sha: GitSha,
    progress: SharedProgress,
) {
    let span = tracing::info_span!("build", %sha, request = request_id);
    async {
        if let Err(e) = run_inner(&daemon, request_id, &sha, &progress).await {
            tracing::error!(error = %e, "build could not be recorded");
        }
    }
    .instrument(span)
    .await
}

/// Whether a build that ended this way settles its request. Failures of the
/// machine (a program that could not start, a checkout, an interruption)
/// leave it open for the planner's retry; a defect of the commit does not.
pub(crate) fn settles(outcome: &BuildOutcome) -> bool {
    match outcome {
        BuildOutcome::Ok { .. } => true,
        BuildOutcome::Failed { failure } => !matches!(
            failure,
            BuildFailure::Spawn { .. }
                | BuildFailure::Checkout { .. }
                | BuildFailure::Interrupted
                | BuildFailure::HostFault { .. }
        ),
    }
}

async fn run_inner(
    daemon: &Arc<Daemon>,
    request_id: i64,
    sha: &GitSha,
    progress: &SharedProgress,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let log_ref: LogRef =
        format!("builds/{sha}-{}.log", now.timestamp_millis()).parse().expect("valid log ref");
    let build_id = daemon.store.insert_build_for(request_id, sha, &log_ref, now).await?;
    note(progress, |p| p.build = Some(build_id));
    daemon.bus.send(Event::BuildStarted { sha: sha.clone() });
    let stop = Stop::default();
    let began = std::time::Instant::now();
    daemon.work.track_build(sha.clone(), request_id, stop.clone());
    let mut used = None;
    let built = match daemon.logs.create(&log_ref) {
        Ok(file) => build(daemon, sha, Arc::new(RunLog::new(file, None)), &stop, &mut used).await,
        Err(e) => Err(BuildFailure::HostFault {
            message: format!("opening the build's log: {}", crate::fixtures::io_message(&e)),
        }),
    };
    daemon.work.untrack_build(sha);
    let built = match (stop.by(), built) {
        (Some(by), Err(_)) => Err(BuildFailure::Cancelled { by }),
        (_, built) => built,
    };
    let outcome = match &built {
        Ok((row, _)) => BuildOutcome::Ok { version: row.version.clone() },
        Err(failure) => BuildOutcome::Failed { failure: failure.clone() },
    };
    let first_tier = daemon.config.tiers.first().map(|t| t.name.clone());
    let registered = match (&built, &first_tier) {
        (Ok((row, sha256)), Some(tier)) => Some((row, sha256.as_deref(), tier)),
        _ => None,
    };
    let replaced = daemon
        .store
        .finish_build_and_register(
            build_id,
            request_id,
            &outcome,
            registered,
            settles(&outcome),
            Utc::now(),
        )
        .await?;
    tracing::info!(outcome = ?outcome, "build finished");
    if let Some(used) = &used {
        daemon.store.record_build_cache(build_id, used.warm, used.from.as_ref()).await?;
    }
    // A failed build's layer is never fed to the base, nor tested; unless
    // its commit is a registered version already (a rebuild that failed),
    // whose gates at later tiers still build on that layer.
    if built.is_err()
        && let (Some(cache), Some(used)) = (super::cache::BuildCache::of(daemon), &used)
        && daemon.store.version_by_sha(&used.sha).await?.is_none()
    {
        let _held = daemon.cache_lock.read().await;
        cache.forget(&used.sha);
    }
    crate::daemon::metrics::global().build(&outcome, began.elapsed());
    if let Ok((row, _)) = &built {
        daemon.bus.send(Event::VersionRegistered {
            version: row.version.clone(),
            sha: row.git_sha.clone(),
        });
        if let (Some(previous), Some(tier)) = (replaced, first_tier) {
            daemon.bus.send(Event::Superseded { tier, version: previous, by: row.version.clone() });
        }
    }
    daemon.bus.send(Event::BuildDone { sha: sha.clone(), outcome });
    Ok(())
}

/// How a build used the build cache: whether its base had been fed, and by
/// which version.
#[derive(Debug, Clone)]
pub(crate) struct CacheUse {
    pub warm: bool,
    pub from: Option<Version>,
    /// The commit built: its layer is `cache/versions/<sha>`.
    pub sha: GitSha,
}

async fn build(
    daemon: &Daemon,
    sha: &GitSha,
    log: Arc<RunLog>,
    stop: &Stop,
    used: &mut Option<CacheUse>,
) -> Result<(VersionRecord, Option<String>), BuildFailure> {
    let config = &daemon.config;
    let defaults = &config.defaults;
    let repo = config.project.repo.display().to_string();
    let sink: Arc<dyn LogSink> = log.clone();
    let cache = BuildCache::of(daemon);
    // git is the daemon's own tool: it runs on the `tools` executor,
    // unsandboxed, without the project's environment or secrets. The build
    // command runs the version's code (build scripts, proc macros), so it
    // runs on the `gates` executor, in the version's sandbox. With the
    // shared cache, the build is offline: `cargo fetch` got its
    // dependencies first, in the same sandbox with the network.
    let git = |args: Vec<String>| {
        let spec = ProcessSpec {
            program: "git".into(),
            args,
            timeout: Some(defaults.git_timeout),
            ..ProcessSpec::default()
        };
        daemon.executors.tools.run(spec, Some(sink.clone()), stop.token.clone())
    };
    let words = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let commit = format!("{sha}^{{commit}}");
    let resolved = git(words(&["-C", &repo, "rev-parse", "--verify", "--quiet", &commit])).await;
    stopped(resolved.ended)?;
    let full: GitSha = match resolved.output.end {
        ProcessEnd::SpawnError(os_error) => return Err(BuildFailure::Spawn { os_error }),
        ProcessEnd::Exited(0) => String::from_utf8_lossy(&resolved.output.stdout)
            .trim()
            .parse()
            .map_err(|_| BuildFailure::UnknownCommit)?,
        _ => return Err(BuildFailure::UnknownCommit),
    };

    // A work tree is made under a temporary name and renamed into place when
    // complete, so a tree a kill left half-made is never mistaken for one.
    let worktrees = daemon.work_dir().join("worktrees");
    let tree = worktrees.join(full.as_str());
    if !tree.exists() {
        let partial = worktrees.join(format!("{full}.partial"));
        let _ = tokio::fs::remove_dir_all(&partial).await;
        let partial_arg = partial.display().to_string();
        log.note(&format!("checking out {full} into {}", tree.display()));
        for args in [
            words(&["clone", "--quiet", "--shared", "--no-checkout", &repo, &partial_arg]),
            words(&["-C", &partial_arg, "checkout", "--quiet", "--detach", full.as_str()]),
        ] {
            let out = git(args).await;
            stopped(out.ended)?;
            succeeded(out.output.end, |exit_code| BuildFailure::Checkout { exit_code })?;
        }
        tokio::fs::rename(&partial, &tree).await.map_err(|e| BuildFailure::HostFault {
            message: format!("placing the work tree: {}", crate::fixtures::io_message(&e)),
        })?;
    }

    // The user code under test runs as must own what it builds in. A tree
    // made before `run_as` was set is handed over too.
    if let Some(user) = config.run_as.clone() {
        let owned = tree.clone();
        tokio::task::spawn_blocking(move || user.own(&owned))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| BuildFailure::HostFault {
                message: format!(
                    "handing the work tree to the run_as user: {}",
                    crate::fixtures::io_message(&e)
                ),
            })?;
    }

    // A tree without a Cargo.toml builds as it is: no cargo, no cache.
    let cache = cache.filter(|_| tree.join("Cargo.toml").is_file());
    // The version's code runs in its sandbox, with its own view of the build
    // cache when there is one: the base, read-only beneath, and its own
    // layer on top, where all it writes lands.
    let isolation = |tree: &Path, network: bool| {
        let mut isolation = super::sandbox_for(daemon, tree, network);
        isolation.mounts.extend(cache.as_ref().map(|c| c.mount(&full)));
        isolation
    };
    let build_on = |program: &str, args: Vec<String>, tree: &Path, network: bool| {
        let mut env = config.project.env_pairs();
        env.extend(cache.iter().flat_map(|c| c.env(!network)));
        let spec = ProcessSpec {
            program: program.to_owned(),
            args,
            env,
            cwd: Some(tree.to_path_buf()),
            stop_after: None,
            timeout: Some(defaults.build_timeout),
            isolation: Some(isolation(tree, network)),
            secrets: daemon.secrets.clone(),
            // A build is not adopted after a restart: its request survives,
            // and the build runs again from it.
            job: None,
        };
        daemon.executors.gates.run(spec, Some(sink.clone()), stop.token.clone())
    };

    // From here to the artifact's copy, the base stays as it is: a feed
    // waits until the view is unmounted and the artifact copied out.
    let _cache_held = if cache.is_some() { Some(daemon.cache_lock.read().await) } else { None };
    if let Some(cache) = &cache {
        cache.prepare(&full, config.run_as.clone()).await.map_err(|e| BuildFailure::HostFault {
            message: format!("preparing the build cache: {}", crate::fixtures::io_message(&e)),
        })?;
        let from = cache.fed_by();
        *used = Some(CacheUse { warm: from.is_some(), from: from.clone(), sha: full.clone() });
        log.note(&match from {
            Some(from) => format!(
                "building on the build cache's base, last fed by {from} (what this build writes stays its own)"
            ),
            None => "building on an empty build cache (no version has fed it yet)".to_owned(),
        });
        log.note("fetching dependencies into this version's view of the build cache");
        let out = build_on("cargo", words(&["fetch"]), &tree, true).await;
        stopped(out.ended)?;
        succeeded(out.output.end, |exit_code| BuildFailure::BuildCommand { exit_code })?;
    }

    let build = &config.project.build;
    log.note(&crate::executor::redact(&format!("running {build}")));
    let out = build_on(&build.program, build.args.clone(), &tree, config.project.network).await;
    stopped(out.ended)?;
    succeeded(out.output.end, |exit_code| BuildFailure::BuildCommand { exit_code })?;
    let version = manifest_version(&tree.join("Cargo.toml"))
        .map_err(|message| BuildFailure::Manifest { message })?;
    log.note(&format!("built version {version}"));

    let store_err = |e: StoreError| BuildFailure::HostFault { message: e.to_string() };
    let existing = daemon.store.version(&version).await.map_err(store_err)?;
    // An imported version (no artifact yet) whose commit this is, its sha
    // perhaps kept short, is built here like a new one.
    let imported = existing
        .as_ref()
        .is_some_and(|e| e.artifact.is_empty() && full.as_str().starts_with(e.git_sha.as_str()));
    if let Some(existing) = existing.filter(|_| !imported) {
        if existing.git_sha != full {
            return Err(BuildFailure::VersionTaken {
                version,
                git_sha: existing.git_sha.to_string(),
            });
        }
        return Ok((existing, None));
    }
    // The build's code could have made the artifact a link to anything the
    // daemon can read; only a regular file inside the tree is kept. Nothing
    // of the build runs any more, so what is checked is what is copied.
    // An artifact under `target/` is in the version's view of the cache:
    // its own layer, else the base.
    let in_cache = cache
        .as_ref()
        .filter(|_| config.project.artifact.starts_with("target"))
        .map(|c| c.artifact(&full, &config.project.artifact));
    // A build command that wrote it into the tree itself (not cargo) is
    // found there.
    let source = match in_cache {
        Some(Some(found)) => Some(found),
        _ => inside_tree(&tree, &config.project.artifact),
    };
    let source = source.ok_or_else(|| BuildFailure::ArtifactMissing {
        path: config.project.artifact.display().to_string(),
    })?;
    let dir = daemon.work_dir().join("artifacts").join(version.to_string());
    let name = config
        .project
        .artifact
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("artifact"));
    let artifact = dir.join(name);
    let copied = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::copy(&source, &artifact).await
    };
    copied.await.map_err(|_| BuildFailure::ArtifactMissing {
        path: config.project.artifact.display().to_string(),
    })?;
    let sha256 = sha256_file(artifact.clone()).await.map_err(|e| BuildFailure::HostFault {
        message: format!("hashing the artifact: {}", crate::fixtures::io_message(&e)),
    })?;
    log.note(&format!("kept the artifact, sha256 {sha256}"));
    let row = VersionRecord {
        version,
        git_sha: full,
        registered_at: Utc::now(),
        artifact: artifact.display().to_string(),
    };
    Ok((row, Some(sha256)))
}

/// `relative` under `tree`, if it resolves (links followed) to a regular
/// file that is still inside the tree.
fn inside_tree(tree: &Path, relative: &Path) -> Option<PathBuf> {
    let tree = tree.canonicalize().ok()?;
    let resolved = tree.join(relative).canonicalize().ok()?;
    let regular = std::fs::metadata(&resolved).is_ok_and(|m| m.is_file());
    (regular && resolved.starts_with(&tree)).then_some(resolved)
}

/// The sha256 of a file, hex, read off the runtime's threads.
pub(crate) async fn sha256_file(path: PathBuf) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        use sha2::Digest as _;
        use std::io::Read as _;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// A step that exited 0 goes on; one that could not start, or failed,
/// ends the build as `failed` says (with its exit code, if it had one).
fn succeeded(
    end: ProcessEnd,
    failed: impl FnOnce(Option<i32>) -> BuildFailure,
) -> Result<(), BuildFailure> {
    match end {
        ProcessEnd::Exited(0) => Ok(()),
        ProcessEnd::SpawnError(os_error) => Err(BuildFailure::Spawn { os_error }),
        ProcessEnd::Exited(code) => Err(failed(Some(code))),
        _ => Err(failed(None)),
    }
}

/// A step ended by its timeout or a cancel ends the build.
fn stopped(ended: Ended) -> Result<(), BuildFailure> {
    match ended {
        Ended::Normally => Ok(()),
        Ended::TimedOut(after) => Err(BuildFailure::Timeout { after_s: after.as_secs() }),
        // The caller names who cancelled.
        Ended::Cancelled => Err(BuildFailure::Cancelled { by: String::new() }),
        // The cluster failed the build, not the build itself.
        Ended::Lost(why) => Err(BuildFailure::HostFault { message: why }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_is_kept_only_as_a_regular_file_inside_its_tree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("target/debug/deps")).unwrap();
        std::fs::write(tree.join("target/debug/deps/app-1f2e"), "built").unwrap();
        std::fs::write(dir.path().join("token"), "secret").unwrap();
        let link = |name: &str, to: &Path| std::os::unix::fs::symlink(to, tree.join(name)).unwrap();
        link("target/debug/app", Path::new("deps/app-1f2e"));
        link("target/debug/leak", &dir.path().join("token"));
        link("target/escape", dir.path());

        let kept = inside_tree(&tree, Path::new("target/debug/app")).unwrap();
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "built");
        for outside in ["target/debug/leak", "target/escape/token", "target/debug", "../token"] {
            assert_eq!(inside_tree(&tree, Path::new(outside)), None, "{outside}");
        }
    }
}
