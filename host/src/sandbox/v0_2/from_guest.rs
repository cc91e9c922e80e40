//! Contract 0.2 WIT → domain conversions: what a 0.2 component hands back.
//!
//! Every match here is exhaustive on purpose: a new case in `wit/` is a
//! compile error in this file until the host decides what it means.

use super::runner as wit_runner;
use super::types as wit;
use crate::domain::{
    ComponentFault, GateBlocker, GateFailure, GateKind, GateStatus, PassNote, RestoreFailureKind,
};

pub fn gate_kind(kind: wit::GateKind) -> GateKind {
    match kind {
        wit::GateKind::CargoTest => GateKind::CargoTest,
        wit::GateKind::MigrationDryRun => GateKind::MigrationDryRun,
        wit::GateKind::BootSmoke => GateKind::BootSmoke,
        wit::GateKind::BurnIn => GateKind::BurnIn,
        wit::GateKind::ManualConfirm => GateKind::ManualConfirm,
    }
}

/// What a 0.2 runner concluded.
pub enum Verdict {
    /// Judge the last spawned process; `restored_backup` goes in a `migrated` pass.
    Judge {
        restored_backup: Option<i64>,
    },
    Decided(GateStatus),
}

pub fn verdict(verdict: wit_runner::Verdict) -> Verdict {
    match verdict {
        wit_runner::Verdict::Judge(request) => {
            Verdict::Judge { restored_backup: request.restored_backup }
        }
        wit_runner::Verdict::Decided(status) => Verdict::Decided(gate_status(status)),
    }
}

pub fn gate_status(status: wit::GateStatus) -> GateStatus {
    match status {
        wit::GateStatus::Passed(note) => pass_note(note),
        wit::GateStatus::Failed(failure) => GateStatus::failed(gate_failure(failure)),
        wit::GateStatus::Blocked(blocker) => GateStatus::Blocked { blocker: gate_blocker(blocker) },
    }
}

fn pass_note(note: wit::PassNote) -> GateStatus {
    let note = match note {
        wit::PassNote::StayedUp(n) => PassNote::StayedUp { duration_s: n.duration_s },
        wit::PassNote::BurnInElapsed(n) => PassNote::BurnInElapsed { seconds: n.seconds },
        wit::PassNote::Migrated(n) => PassNote::Migrated { backup: n.backup, count: n.count },
        wit::PassNote::TestsPassed(n) => {
            PassNote::TestsPassed { count: n.count, duration_s: n.duration_s, flaky: n.flaky }
        }
        wit::PassNote::OperatorConfirmed(n) => match datetime(n.at) {
            Some(at) => PassNote::OperatorConfirmed { at },
            // A pass must be provably right; an impossible timestamp is not.
            None => {
                return GateStatus::failed(GateFailure::ComponentFault {
                    fault: ComponentFault::Trap {
                        message: "operator-confirmed carries an out-of-range timestamp".into(),
                    },
                });
            }
        },
    };
    GateStatus::Passed { note }
}

fn gate_blocker(blocker: wit::GateBlocker) -> GateBlocker {
    match blocker {
        wit::GateBlocker::BurnInClockNotStarted => GateBlocker::BurnInClockNotStarted,
        wit::GateBlocker::BurnInRemaining(b) => {
            GateBlocker::BurnInRemaining { seconds: b.seconds, total_seconds: b.total_seconds }
        }
        wit::GateBlocker::AwaitingOperatorConfirmation => GateBlocker::AwaitingOperatorConfirmation,
        wit::GateBlocker::NoBackupAvailable => GateBlocker::NoBackupAvailable,
        wit::GateBlocker::ScratchDbUrlUnset => GateBlocker::ScratchDbUrlUnset,
        wit::GateBlocker::ScratchDbUnreachable => GateBlocker::ScratchDbUnreachable,
        wit::GateBlocker::ArtifactMissing(b) => GateBlocker::ArtifactMissing { version: b.version },
        wit::GateBlocker::DependencyUnavailable(b) => {
            GateBlocker::DependencyUnavailable { name: b.name }
        }
    }
}

fn gate_failure(failure: wit::GateFailure) -> GateFailure {
    match failure {
        wit::GateFailure::CargoTest(f) => {
            GateFailure::CargoTest { failed_count: f.failed_count, first_failed: f.first_failed }
        }
        wit::GateFailure::MigrationDrift(m) => {
            GateFailure::MigrationDrift { migration: m.migration }
        }
        wit::GateFailure::MigrationModified(m) => {
            GateFailure::MigrationModified { migration: m.migration }
        }
        wit::GateFailure::MigrationSqlError(m) => {
            GateFailure::MigrationSqlError { migration: m.migration, sqlstate: m.sqlstate }
        }
        wit::GateFailure::MigrationDirty(m) => {
            GateFailure::MigrationDirty { migration: m.migration }
        }
        wit::GateFailure::RestoreFailed(kind) => GateFailure::RestoreFailed {
            reason: match kind {
                wit::RestoreFailureKind::BackupUnreadable => RestoreFailureKind::BackupUnreadable,
                wit::RestoreFailureKind::RestoreCommandFailed => {
                    RestoreFailureKind::RestoreCommandFailed
                }
            },
        },
        wit::GateFailure::BootPanic(c) => GateFailure::BootPanic { exit_code: c.exit_code },
        wit::GateFailure::BootExitedEarly(c) => {
            GateFailure::BootExitedEarly { exit_code: c.exit_code }
        }
        wit::GateFailure::BootKilled(s) => GateFailure::BootKilled { signal: s.signal },
        wit::GateFailure::SpawnFailed(s) => GateFailure::SpawnFailed { os_error: s.os_error },
        wit::GateFailure::Timeout(t) => {
            GateFailure::Timeout { gate: gate_kind(t.gate), after_s: t.after_s }
        }
        wit::GateFailure::Unclassified => GateFailure::Unclassified { legacy_detail: None },
    }
}

pub fn datetime(at: wit::Datetime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(at.seconds, at.nanoseconds)
}
