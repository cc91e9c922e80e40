//! Domain → contract 0.1 WIT conversions: what the host hands a 0.1 component.

use super::types as wit;
use crate::domain::{GateKind, ProcessEnd, RawOutput};

pub fn gate_kind(kind: GateKind) -> wit::GateKind {
    match kind {
        GateKind::CargoTest => wit::GateKind::CargoTest,
        GateKind::MigrationDryRun => wit::GateKind::MigrationDryRun,
        GateKind::BootSmoke => wit::GateKind::BootSmoke,
        GateKind::BurnIn => wit::GateKind::BurnIn,
        GateKind::ManualConfirm => wit::GateKind::ManualConfirm,
    }
}

pub fn process_end(end: ProcessEnd) -> wit::ProcessEnd {
    match end {
        ProcessEnd::Exited(code) => wit::ProcessEnd::Exited(code),
        ProcessEnd::Signaled(signal) => wit::ProcessEnd::Signaled(signal),
        ProcessEnd::SpawnError(errno) => wit::ProcessEnd::SpawnError(errno),
        ProcessEnd::StillRunning => wit::ProcessEnd::StillRunning,
    }
}

/// Borrowed: `classify` copies the bytes straight into the guest.
pub fn raw_output(output: &RawOutput) -> wit::RawOutputParam<'_> {
    wit::RawOutputParam {
        stdout: &output.stdout,
        stderr: &output.stderr,
        end: process_end(output.end),
        duration_ms: output.duration_ms,
    }
}

/// Owned: what `spawn` returns to a runner.
pub fn spawned_output(output: RawOutput) -> wit::RawOutputResult {
    wit::RawOutputResult {
        stdout: output.stdout,
        stderr: output.stderr,
        end: process_end(output.end),
        duration_ms: output.duration_ms,
    }
}

pub fn datetime(at: chrono::DateTime<chrono::Utc>) -> wit::Datetime {
    wit::Datetime { seconds: at.timestamp(), nanoseconds: at.timestamp_subsec_nanos() }
}
