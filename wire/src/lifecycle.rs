//! Typed outcomes of the steps around gates: building a commit and deploying a version to a node.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Version;

/// How a rebuild ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BuildOutcome {
    Ok { version: Version },
    Failed { failure: BuildFailure },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BuildFailure {
    /// The repository has no such commit.
    UnknownCommit,
    /// `git` could not check the commit out into its work tree.
    Checkout { exit_code: Option<i32> },
    /// A program could not be started (git, or the build command).
    Spawn { os_error: i32 },
    /// The build command failed.
    BuildCommand { exit_code: Option<i32> },
    /// `Cargo.toml` is missing or has no valid `package.version`.
    Manifest { message: String },
    /// The build succeeded but the configured artifact is not there.
    ArtifactMissing { path: String },
    /// Another commit already registered this version: bump the version.
    VersionTaken { version: Version, git_sha: String },
    /// The daemon stopped while building; the build runs again.
    Interrupted,
    /// A step ran past its timeout; its whole process tree was ended.
    Timeout { after_s: u64 },
    /// An operator stopped the build.
    Cancelled { by: String },
    /// The host failed while building (a worker panicked).
    HostFault { message: String },
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildFailure::UnknownCommit => f.write_str("no such commit in the repository"),
            BuildFailure::Checkout { exit_code } => {
                write!(f, "checkout failed (exit {exit_code:?})")
            }
            BuildFailure::Spawn { os_error } => {
                write!(f, "could not start a program (os error {os_error})")
            }
            BuildFailure::BuildCommand { exit_code } => {
                write!(f, "build command failed (exit {exit_code:?})")
            }
            BuildFailure::Manifest { message } => write!(f, "Cargo.toml: {message}"),
            BuildFailure::ArtifactMissing { path } => write!(f, "artifact {path} was not built"),
            BuildFailure::VersionTaken { version, git_sha } => {
                write!(f, "version {version} is already registered by commit {git_sha}")
            }
            BuildFailure::Interrupted => f.write_str("interrupted by a daemon restart"),
            BuildFailure::Timeout { after_s } => write!(f, "timed out after {after_s}s"),
            BuildFailure::Cancelled { by } => write!(f, "cancelled by {by}"),
            BuildFailure::HostFault { message } => write!(f, "host fault: {message}"),
        }
    }
}

/// How a deploy to one node went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeployOutcome {
    InProgress,
    Ok,
    Failed { failure: DeployFailure },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeployFailure {
    /// The deploy command could not be started.
    Spawn { os_error: i32 },
    /// The deploy command ran and failed (copying, connecting, installing).
    Transport { exit_code: Option<i32> },
    /// The version was installed but the node's health check failed.
    HealthCheck { exit_code: Option<i32> },
    /// The daemon stopped while deploying; deploy commands are idempotent,
    /// so the deploy runs again.
    Interrupted,
    /// The deploy or health command ran past its timeout.
    Timeout { after_s: u64 },
    /// The host failed while deploying (a worker panicked).
    HostFault { message: String },
    /// The kept artifact is not the one the build recorded (sha256, hex):
    /// it was changed after its gates ran. Never deployed, never retried.
    ArtifactChanged { expected: String, found: String },
    /// Imported from the old daemon with an error no rule recognised; the
    /// deploy's `legacy_error` keeps the text.
    Unclassified,
}

impl DeployOutcome {
    /// Its `kind` tag: `in_progress`, `ok` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            DeployOutcome::InProgress => "in_progress",
            DeployOutcome::Ok => "ok",
            DeployOutcome::Failed { .. } => "failed",
        }
    }
}

impl DeployFailure {
    /// The failure's class: its `kind` tag, which retry policies name.
    pub fn class(&self) -> &'static str {
        match self {
            DeployFailure::Spawn { .. } => "spawn",
            DeployFailure::Transport { .. } => "transport",
            DeployFailure::HealthCheck { .. } => "health_check",
            DeployFailure::Interrupted => "interrupted",
            DeployFailure::Timeout { .. } => "timeout",
            DeployFailure::HostFault { .. } => "host_fault",
            DeployFailure::ArtifactChanged { .. } => "artifact_changed",
            DeployFailure::Unclassified => "unclassified",
        }
    }

    /// Every class, for checking the names a config gives.
    pub const CLASSES: &'static [&'static str] = &[
        "spawn",
        "transport",
        "health_check",
        "interrupted",
        "timeout",
        "host_fault",
        "artifact_changed",
        "unclassified",
    ];
}

impl fmt::Display for DeployOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployOutcome::InProgress => f.write_str("deploying"),
            DeployOutcome::Ok => f.write_str("deployed"),
            DeployOutcome::Failed { failure: DeployFailure::Spawn { os_error } } => {
                write!(f, "deploy command could not start (os error {os_error})")
            }
            DeployOutcome::Failed { failure: DeployFailure::Transport { exit_code } } => {
                write!(f, "deploy command failed{}", exit(*exit_code))
            }
            DeployOutcome::Failed { failure: DeployFailure::HealthCheck { exit_code } } => {
                write!(f, "health check failed{}", exit(*exit_code))
            }
            DeployOutcome::Failed { failure: DeployFailure::Interrupted } => {
                f.write_str("interrupted by a daemon restart")
            }
            DeployOutcome::Failed { failure: DeployFailure::Timeout { after_s } } => {
                write!(f, "deploy timed out after {after_s}s")
            }
            DeployOutcome::Failed { failure: DeployFailure::HostFault { message } } => {
                write!(f, "host fault while deploying: {message}")
            }
            DeployOutcome::Failed {
                failure: DeployFailure::ArtifactChanged { expected, found },
            } => {
                write!(
                    f,
                    "artifact changed since its build (sha256 {found}, built {expected}): not deployed"
                )
            }
            DeployOutcome::Failed { failure: DeployFailure::Unclassified } => {
                f.write_str("deploy failed (legacy error, unclassified)")
            }
        }
    }
}

/// ` (exit 3)`, or ` (killed)` when there was no exit code.
fn exit(code: Option<i32>) -> String {
    code.map_or_else(|| " (killed)".to_owned(), |code| format!(" (exit {code})"))
}
