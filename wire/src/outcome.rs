//! `GateStatus` and `GateOutcome`: what a gate concluded, typed from the component to the screen.
//!
//! The JSON form is BRIEF.md contract 1: two layers tagged by `kind`, snake_case.
//! `Display` gives the one-line summary operators read in the TUI and CLI.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{GateKind, ParseError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateStatus {
    Passed {
        note: PassNote,
    },
    Failed {
        failure: GateFailure,
    },
    /// The gate cannot run or decide yet: a precondition, not a defect.
    Blocked {
        blocker: GateBlocker,
    },
}

impl GateStatus {
    /// The denormalised `status` column and the API's `status` field.
    pub fn label(&self) -> &'static str {
        match self {
            GateStatus::Passed { .. } => "passed",
            GateStatus::Failed { .. } => "failed",
            GateStatus::Blocked { .. } => "blocked",
        }
    }

    pub fn failed(failure: GateFailure) -> Self {
        GateStatus::Failed { failure }
    }

    pub fn unclassified() -> Self {
        GateStatus::Failed { failure: GateFailure::Unclassified { legacy_detail: None } }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PassNote {
    StayedUp {
        duration_s: u32,
    },
    BurnInElapsed {
        seconds: u64,
    },
    /// `backup` is unknown (`null`) when only the migrate tool's output was classified.
    Migrated {
        backup: Option<i64>,
        count: u32,
    },
    TestsPassed {
        count: u32,
        duration_s: u32,
        /// Tests that failed and then passed on a retry, by full name.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flaky: Vec<String>,
    },
    OperatorConfirmed {
        at: DateTime<Utc>,
    },
    /// Imported from the old, stringly-typed daemon, which said only that
    /// the gate passed; `text` is its detail as it wrote it (often none).
    Legacy {
        text: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateBlocker {
    BurnInClockNotStarted,
    BurnInRemaining {
        seconds: u64,
        total_seconds: u64,
    },
    AwaitingOperatorConfirmation,
    /// The tier's approval policy wants `need` approvals on the evidence as
    /// it is now; `have` are given. Decided by the host, never by a guest.
    AwaitingApprovals {
        have: u32,
        need: u32,
    },
    NoBackupAvailable,
    ScratchDbUrlUnset,
    ScratchDbUnreachable,
    ArtifactMissing {
        version: String,
    },
    /// A dependency could not be fetched, or is not in the offline cache.
    DependencyUnavailable {
        name: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateFailure {
    CargoTest {
        failed_count: u32,
        first_failed: Option<String>,
    },
    /// Previously applied but missing from the version's migrations.
    MigrationDrift {
        migration: String,
    },
    /// Previously applied but its file has changed.
    MigrationModified {
        migration: String,
    },
    MigrationSqlError {
        migration: String,
        sqlstate: Option<String>,
    },
    /// Left partially applied by an earlier run.
    MigrationDirty {
        migration: String,
    },
    /// The design document calls this field `kind`, which the JSON tag
    /// already uses; on the wire it is `reason`.
    RestoreFailed {
        reason: RestoreFailureKind,
    },
    BootPanic {
        exit_code: Option<i32>,
    },
    BootExitedEarly {
        exit_code: Option<i32>,
    },
    BootKilled {
        signal: i32,
    },
    SpawnFailed {
        os_error: i32,
    },
    Timeout {
        gate: GateKind,
        after_s: u32,
    },
    /// No classifier recognised the output; the outcome's `log_ref` says where to read it.
    /// A run imported from the old daemon keeps its prose in `legacy_detail`.
    Unclassified {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        legacy_detail: Option<String>,
    },
    /// The gate component itself misbehaved; produced by the host, never by a guest.
    ComponentFault {
        fault: ComponentFault,
    },
    /// The daemon stopped while the run was in flight; the gate runs again.
    Interrupted,
    /// An operator (or a newer version superseding this one) stopped the run;
    /// produced by the host, never retried.
    Cancelled {
        by: String,
    },
    /// The host itself failed while running the gate (a worker panicked, a
    /// log could not be opened); produced by the host, retried by policy.
    HostFault {
        message: String,
    },
    /// An operator rejected the version at this tier; produced by the host,
    /// never retried: the version goes no further here.
    Rejected {
        by: String,
        reason: String,
    },
}

impl GateBlocker {
    /// The blocker's class: its `kind` tag.
    pub fn class(&self) -> &'static str {
        match self {
            GateBlocker::BurnInClockNotStarted => "burn_in_clock_not_started",
            GateBlocker::BurnInRemaining { .. } => "burn_in_remaining",
            GateBlocker::AwaitingOperatorConfirmation => "awaiting_operator_confirmation",
            GateBlocker::AwaitingApprovals { .. } => "awaiting_approvals",
            GateBlocker::NoBackupAvailable => "no_backup_available",
            GateBlocker::ScratchDbUrlUnset => "scratch_db_url_unset",
            GateBlocker::ScratchDbUnreachable => "scratch_db_unreachable",
            GateBlocker::ArtifactMissing { .. } => "artifact_missing",
            GateBlocker::DependencyUnavailable { .. } => "dependency_unavailable",
        }
    }
}

impl GateFailure {
    /// The failure's class: its `kind` tag, which retry policies name.
    pub fn class(&self) -> &'static str {
        match self {
            GateFailure::CargoTest { .. } => "cargo_test",
            GateFailure::MigrationDrift { .. } => "migration_drift",
            GateFailure::MigrationModified { .. } => "migration_modified",
            GateFailure::MigrationSqlError { .. } => "migration_sql_error",
            GateFailure::MigrationDirty { .. } => "migration_dirty",
            GateFailure::RestoreFailed { .. } => "restore_failed",
            GateFailure::BootPanic { .. } => "boot_panic",
            GateFailure::BootExitedEarly { .. } => "boot_exited_early",
            GateFailure::BootKilled { .. } => "boot_killed",
            GateFailure::SpawnFailed { .. } => "spawn_failed",
            GateFailure::Timeout { .. } => "timeout",
            GateFailure::Unclassified { .. } => "unclassified",
            GateFailure::ComponentFault { .. } => "component_fault",
            GateFailure::Interrupted => "interrupted",
            GateFailure::Cancelled { .. } => "cancelled",
            GateFailure::HostFault { .. } => "host_fault",
            GateFailure::Rejected { .. } => "rejected",
        }
    }

    /// Every class, for checking the names a config gives.
    pub const CLASSES: &'static [&'static str] = &[
        "cargo_test",
        "migration_drift",
        "migration_modified",
        "migration_sql_error",
        "migration_dirty",
        "restore_failed",
        "boot_panic",
        "boot_exited_early",
        "boot_killed",
        "spawn_failed",
        "timeout",
        "unclassified",
        "component_fault",
        "interrupted",
        "cancelled",
        "host_fault",
        "rejected",
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreFailureKind {
    BackupUnreadable,
    RestoreCommandFailed,
}

/// How a component failed the host's sandbox or contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ComponentFault {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access).
    Trap { message: String },
    /// The CPU budget for one call ran out (an endless loop, or far too much work).
    FuelExhausted { budget: u64 },
    /// The guest tried to grow its memory past the cap.
    MemoryExhausted { limit_bytes: u64 },
    /// The component was built against another contract version.
    ContractMismatch { expected: String, found: String },
    /// A classifier called a runner capability, or a runner one it is not allowed.
    CapabilityDenied { capability: String },
    /// The component serves another gate kind than the one asked of it.
    WrongGateKind { expected: GateKind, found: GateKind },
    /// The file is not a loadable gate component.
    Invalid { message: String },
}

/// A burn-in span as an operator reads it: seconds while short (`45s of
/// 60s`), minutes within two hours (`12m 30s`), hours and minutes beyond
/// (`47h 12m of 168h`).
struct Span(u64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s {
            0..120 => write!(f, "{s}s"),
            120..7200 if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            120..7200 => write!(f, "{}m {}s", s / 60, s % 60),
            _ if s % 3600 / 60 == 0 => write!(f, "{}h", s / 3600),
            _ => write!(f, "{}h {}m", s / 3600, s % 3600 / 60),
        }
    }
}

impl fmt::Display for GateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateStatus::Passed { note } => note.fmt(f),
            GateStatus::Failed { failure } => failure.fmt(f),
            GateStatus::Blocked { blocker } => blocker.fmt(f),
        }
    }
}

impl fmt::Display for PassNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassNote::StayedUp { duration_s } => write!(f, "stayed up for {duration_s}s"),
            PassNote::BurnInElapsed { seconds } => {
                write!(f, "burn-in done: {} elapsed", Span(*seconds))
            }
            PassNote::Migrated { backup: Some(id), count } => {
                write!(f, "{count} migrations applied to backup {id}")
            }
            PassNote::Migrated { backup: None, count } => write!(f, "{count} migrations applied"),
            PassNote::TestsPassed { count, duration_s, flaky } => {
                write!(f, "{count} tests passed in {duration_s}s")?;
                match flaky.as_slice() {
                    [] => Ok(()),
                    [one] => write!(f, " (flaky: {one})"),
                    [first, rest @ ..] => write!(f, " (flaky: {first} and {} more)", rest.len()),
                }
            }
            PassNote::OperatorConfirmed { at } => {
                write!(f, "confirmed at {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
            }
            PassNote::Legacy { text: Some(text) } => {
                write!(f, "passed (legacy: {})", first_line(text))
            }
            PassNote::Legacy { text: None } => f.write_str("passed (legacy, no detail)"),
        }
    }
}

impl fmt::Display for GateBlocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateBlocker::BurnInClockNotStarted => {
                f.write_str("burn-in: clock not started (not yet running on the previous tier)")
            }
            GateBlocker::BurnInRemaining { seconds, total_seconds } => {
                write!(f, "burn-in: {} of {} left", Span(*seconds), Span(*total_seconds))
            }
            GateBlocker::AwaitingOperatorConfirmation => {
                f.write_str("awaiting operator confirmation")
            }
            GateBlocker::AwaitingApprovals { have, need } => {
                write!(f, "awaiting approvals: {have} of {need}")
            }
            GateBlocker::NoBackupAvailable => f.write_str("no backup fetched yet"),
            GateBlocker::ScratchDbUrlUnset => f.write_str("scratch database URL not configured"),
            GateBlocker::ScratchDbUnreachable => f.write_str("scratch database unreachable"),
            GateBlocker::ArtifactMissing { version } => {
                write!(f, "no build artifact for version {version}")
            }
            GateBlocker::DependencyUnavailable { name: Some(name) } => {
                write!(f, "dependency {name} could not be fetched (network or offline cache)")
            }
            GateBlocker::DependencyUnavailable { name: None } => {
                f.write_str("a dependency could not be fetched (network or offline cache)")
            }
        }
    }
}

impl fmt::Display for GateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateFailure::CargoTest { failed_count, first_failed: Some(first) } => {
                write!(f, "tests failed: {failed_count} (first: {first})")
            }
            GateFailure::CargoTest { failed_count: 0, first_failed: None } => {
                f.write_str("tests failed: did not compile")
            }
            GateFailure::CargoTest { failed_count, first_failed: None } => {
                write!(f, "tests failed: {failed_count}")
            }
            GateFailure::MigrationDrift { migration } => {
                write!(f, "migration {migration} was applied before but is missing")
            }
            GateFailure::MigrationModified { migration } => {
                write!(f, "migration {migration} modified")
            }
            GateFailure::MigrationSqlError { migration, sqlstate: Some(state) } => {
                write!(f, "migration {migration} failed: SQL error {state}")
            }
            GateFailure::MigrationSqlError { migration, sqlstate: None } => {
                write!(f, "migration {migration} failed: SQL error")
            }
            GateFailure::MigrationDirty { migration } => {
                write!(f, "migration {migration} left partially applied")
            }
            GateFailure::RestoreFailed { reason } => write!(f, "backup restore failed: {reason}"),
            GateFailure::BootPanic { exit_code: Some(code) } => {
                write!(f, "panicked at boot (exit {code})")
            }
            GateFailure::BootPanic { exit_code: None } => f.write_str("panicked at boot (aborted)"),
            GateFailure::BootExitedEarly { exit_code: Some(code) } => {
                write!(f, "exited early (exit {code})")
            }
            GateFailure::BootExitedEarly { exit_code: None } => f.write_str("exited early"),
            GateFailure::BootKilled { signal } => write!(f, "killed by signal {signal}"),
            GateFailure::SpawnFailed { os_error } => {
                write!(f, "could not start the process (os error {os_error})")
            }
            GateFailure::Timeout { gate, after_s } => {
                write!(f, "{gate} timed out after {after_s}s")
            }
            GateFailure::Unclassified { legacy_detail: Some(detail) } => {
                write!(f, "unclassified (legacy): {}", first_line(detail))
            }
            GateFailure::Unclassified { legacy_detail: None } => {
                f.write_str("unclassified failure: read the log")
            }
            GateFailure::ComponentFault { fault } => write!(f, "gate component fault: {fault}"),
            GateFailure::Interrupted => f.write_str("interrupted by a daemon restart"),
            GateFailure::Cancelled { by } => write!(f, "cancelled by {by}"),
            GateFailure::HostFault { message } => write!(f, "host fault: {message}"),
            GateFailure::Rejected { by, reason } => write!(f, "rejected by {by}: {reason}"),
        }
    }
}

/// A legacy text's first line, for a one-line summary.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

impl fmt::Display for RestoreFailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoreFailureKind::BackupUnreadable => "backup unreadable",
            RestoreFailureKind::RestoreCommandFailed => "restore command failed",
        })
    }
}

impl fmt::Display for ComponentFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentFault::Trap { message } => write!(f, "trapped: {message}"),
            ComponentFault::FuelExhausted { budget } => {
                write!(f, "ran out of its CPU budget ({budget} fuel)")
            }
            ComponentFault::MemoryExhausted { limit_bytes } => {
                write!(f, "exceeded its memory cap ({} MiB)", limit_bytes / (1024 * 1024))
            }
            ComponentFault::ContractMismatch { expected, found } => {
                write!(f, "built against contract {found}, host speaks {expected}")
            }
            ComponentFault::CapabilityDenied { capability } => {
                write!(f, "called {capability}, which is not allowed here")
            }
            ComponentFault::WrongGateKind { expected, found } => {
                write!(f, "serves {found}, not {expected}")
            }
            ComponentFault::Invalid { message } => write!(f, "invalid component: {message}"),
        }
    }
}

/// Where a run's full log lives: a relative path under the daemon's logs
/// directory. Parsing refuses anything that could point outside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogRef(String);

impl LogRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |reason: &str| ParseError::new("log ref", s, reason);
        if s.is_empty() {
            return Err(err("must not be empty"));
        }
        for part in s.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(err("must be a relative path without empty, `.` or `..` parts"));
            }
            if let Some(bad) = part
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')))
            {
                return Err(err(&format!("{bad:?} is not allowed in a log path")));
            }
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for LogRef {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<LogRef> for String {
    fn from(v: LogRef) -> String {
        v.0
    }
}

impl fmt::Display for LogRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A finished gate's result: the typed status and a pointer to its full log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOutcome {
    pub status: GateStatus,
    pub log_ref: Option<LogRef>,
}
