//! The `migration_dry_run` gate: restores the newest backup into a scratch database and applies the version's migrations with sqlx-cli.

use sando_gate_sdk::host::{self, EnvVar, GateParams, SpawnRequest};
use sando_gate_sdk::outcome::{common_end, unclassified};
use sando_gate_sdk::text::plain;
use sando_gate_sdk::types::{
    Migrated, MigrationRef, MigrationSqlError, RestoreFailureKind, SpawnFailed,
};
use sando_gate_sdk::{
    GateBlocker, GateFailure, GateKind, GateStatus, JudgeRequest, PassNote, ProcessEnd, RawOutput,
    Verdict,
};

/// Restores the newest backup into the scratch database (when a restore
/// command is configured), then applies the version's migrations to it;
/// the classifier in service judges the migrate tool's output.
pub fn run() -> Verdict {
    let decided = sando_gate_sdk::decided;
    let GateParams::MigrationDryRun(params) = host::context().params else {
        return decided(unclassified());
    };
    let Some(url) = params.scratch_db_url.filter(|u| !u.is_empty()) else {
        return decided(GateStatus::Blocked(GateBlocker::ScratchDbUrlUnset));
    };
    let Some(backup) = host::latest_backup() else {
        return decided(GateStatus::Blocked(GateBlocker::NoBackupAvailable));
    };
    if let Some(restore) = params.restore {
        let args = restore
            .args
            .iter()
            .map(|a| a.replace("{backup}", &backup.path).replace("{scratch_db_url}", &url))
            .collect();
        let restore = host::spawn(&SpawnRequest {
            program: restore.program,
            args,
            env: Vec::new(),
            stop_after_ms: None,
        });
        match restore.end {
            ProcessEnd::Exited(0) => {}
            ProcessEnd::SpawnError(os_error) => {
                return decided(GateStatus::Failed(GateFailure::SpawnFailed(SpawnFailed {
                    os_error,
                })));
            }
            _ => {
                return decided(GateStatus::Failed(GateFailure::RestoreFailed(
                    RestoreFailureKind::RestoreCommandFailed,
                )));
            }
        }
    }
    let mut args = params.migrate.args;
    args.extend(["migrate", "run"].map(str::to_owned));
    args.extend(["--source".to_owned(), params.migrations]);
    // The URL may hold a password: in the environment (sqlx-cli's and
    // `sando migrate`'s `DATABASE_URL`), never on the command line.
    host::spawn(&SpawnRequest {
        program: params.migrate.program,
        args,
        env: vec![EnvVar { key: "DATABASE_URL".to_owned(), value: url }],
        stop_after_ms: None,
    });
    Verdict::Judge(JudgeRequest { restored_backup: Some(backup.id) })
}

sando_gate_sdk::gate!(kind: GateKind::MigrationDryRun, classify: classify, run: run);

/// Reads what `sqlx migrate run` printed (it prints its errors on stdout).
pub fn classify(output: &RawOutput) -> GateStatus {
    if let Some(status) = common_end(GateKind::MigrationDryRun, output) {
        return status;
    }
    let stdout = plain(&output.stdout);
    let stderr = plain(&output.stderr);
    let mut applied = 0u32;
    for line in stdout.lines().chain(stderr.lines()) {
        let line = line.trim();
        if line.starts_with("Applied ") {
            applied += 1;
            continue;
        }
        if let Some(status) = error_line(line) {
            return status;
        }
    }
    match output.end {
        ProcessEnd::Exited(0) if stderr.trim().is_empty() => {
            GateStatus::Passed(PassNote::Migrated(Migrated { backup: None, count: applied }))
        }
        _ => unclassified(),
    }
}

fn failed(failure: GateFailure) -> Option<GateStatus> {
    Some(GateStatus::Failed(failure))
}

/// One line of sqlx-cli's error output, if it is one we know.
fn error_line(line: &str) -> Option<GateStatus> {
    let migration = || {
        let rest = &line[line.find("migration ")? + "migration ".len()..];
        let id: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        (!id.is_empty()).then_some(id)
    };
    if line.contains("was previously applied but is missing") {
        return failed(GateFailure::MigrationDrift(MigrationRef { migration: migration()? }));
    }
    if line.contains("was previously applied but has been modified") {
        return failed(GateFailure::MigrationModified(MigrationRef { migration: migration()? }));
    }
    if line.contains("is partially applied") {
        return failed(GateFailure::MigrationDirty(MigrationRef { migration: migration()? }));
    }
    if line.contains("while executing migration") {
        return failed(GateFailure::MigrationSqlError(MigrationSqlError {
            migration: migration()?,
            sqlstate: sqlstate(line),
        }));
    }
    if line.contains("error communicating with database")
        || line.contains("unable to open database file")
        || line.contains("Connection refused")
        || (line.contains("error returned from database: database \"")
            && line.contains("\" does not exist"))
    {
        return Some(GateStatus::Blocked(GateBlocker::ScratchDbUnreachable));
    }
    if line.contains("--database-url <DATABASE_URL>")
        || line.contains("`--database-url` or `DATABASE_URL` must be set")
    {
        return Some(GateStatus::Blocked(GateBlocker::ScratchDbUrlUnset));
    }
    None
}

/// A SQLSTATE, only where the line literally shows one (`SQLSTATE 42P01`
/// or `(code: 42P01)` with five characters, as PostgreSQL's codes are).
fn sqlstate(line: &str) -> Option<String> {
    for marker in ["SQLSTATE ", "SQLSTATE: ", "(code: "] {
        if let Some(at) = line.find(marker) {
            let code: String = line[at + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if code.len() == 5 {
                return Some(code);
            }
        }
    }
    None
}
