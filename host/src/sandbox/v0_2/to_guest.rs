//! Domain → contract 0.2 WIT conversions: what the host hands a 0.2 component.

use super::types as wit;
use super::wit_host;
use crate::domain::{GateKind, ProcessEnd, RawOutput};
use crate::sandbox::params::{GateParams, Invocation};

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

fn command(invocation: &Invocation) -> wit_host::Command {
    wit_host::Command { program: invocation.program.clone(), args: invocation.args.clone() }
}

pub fn gate_params(params: &GateParams) -> wit_host::GateParams {
    match params {
        GateParams::CargoTest { command: c } => {
            wit_host::GateParams::CargoTest(wit_host::CargoTestParams { command: command(c) })
        }
        GateParams::MigrationDryRun { scratch_db_url, migrations, migrate, restore } => {
            wit_host::GateParams::MigrationDryRun(wit_host::MigrationDryRunParams {
                scratch_db_url: scratch_db_url.clone(),
                migrations: migrations.clone(),
                migrate: command(migrate),
                restore: restore.as_ref().map(command),
            })
        }
        GateParams::BootSmoke { command: c, stay_up_ms } => {
            wit_host::GateParams::BootSmoke(wit_host::BootSmokeParams {
                command: command(c),
                stay_up_ms: *stay_up_ms,
            })
        }
        GateParams::BurnIn { duration_ms } => {
            wit_host::GateParams::BurnIn(wit_host::BurnInParams { duration_ms: *duration_ms })
        }
        GateParams::ManualConfirm => wit_host::GateParams::ManualConfirm,
    }
}
