//! The `migration_dry_run` gate: restores the newest backup into a scratch database and applies the version's migrations with sqlx-cli.

use sando_gate_sdk::host::{self, SpawnRequest};
use sando_gate_sdk::outcome::{common_end, unclassified};
use sando_gate_sdk::text::plain;
use sando_gate_sdk::types::{
    Migrated, MigrationRef, MigrationSqlError, RestoreFailureKind, SpawnFailed,
};
use sando_gate_sdk::{
    GateBlocker, GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput,
};

/// Parameters: `scratch_db_url`, `migrations` (source directory),
/// `migrate_program` (default `sqlx`) with `migrate_args` before `migrate run`, and `restore_program` +
/// `restore_args` (space-separated; `{backup}` and `{scratch_db_url}`
/// are substituted) to restore the backup first.
fn run() -> GateStatus {
    let context = host::context();
    let param = |key| sando_gate_sdk::param(&context, key);
    let Some(url) = param("scratch_db_url").filter(|u| !u.is_empty()) else {
        return GateStatus::Blocked(GateBlocker::ScratchDbUrlUnset);
    };
    let Some(backup) = host::latest_backup() else {
        return GateStatus::Blocked(GateBlocker::NoBackupAvailable);
    };
    if let Some(program) = param("restore_program") {
        let args = param("restore_args")
            .unwrap_or("")
            .split_whitespace()
            .map(|a| a.replace("{backup}", &backup.path).replace("{scratch_db_url}", url))
            .collect();
        let restore = host::spawn(&SpawnRequest {
            program: program.to_owned(),
            args,
            env: Vec::new(),
            stop_after_ms: None,
        });
        match restore.end {
            ProcessEnd::Exited(0) => {}
            ProcessEnd::SpawnError(os_error) => {
                return GateStatus::Failed(GateFailure::SpawnFailed(SpawnFailed { os_error }));
            }
            _ => {
                return GateStatus::Failed(GateFailure::RestoreFailed(
                    RestoreFailureKind::RestoreCommandFailed,
                ));
            }
        }
    }
    let mut args: Vec<String> =
        param("migrate_args").unwrap_or("").split_whitespace().map(str::to_owned).collect();
    args.extend(["migrate", "run"].map(str::to_owned));
    if let Some(source) = param("migrations") {
        args.extend(["--source".to_owned(), source.to_owned()]);
    }
    // The URL may hold a password: in the environment (sqlx-cli's and
    // `sando migrate`'s `DATABASE_URL`), never on the command line.
    let output = host::spawn(&SpawnRequest {
        program: param("migrate_program").unwrap_or("sqlx").to_owned(),
        args,
        env: vec![sando_gate_sdk::host::Param {
            key: "DATABASE_URL".to_owned(),
            value: url.to_owned(),
        }],
        stop_after_ms: None,
    });
    match classify(&output) {
        GateStatus::Passed(PassNote::Migrated(m)) => {
            GateStatus::Passed(PassNote::Migrated(Migrated {
                backup: Some(backup.id),
                count: m.count,
            }))
        }
        other => other,
    }
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
