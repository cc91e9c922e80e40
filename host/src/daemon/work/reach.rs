//! What code under test can reach of what the config names: the paths its sandbox hides, and the configured programs and files it would hide and cannot bind (what `sando check` warns of).

use std::path::{Path, PathBuf};

use crate::config::{Command, Config, Gate, StoreLocation, TokenSource};

/// What every sandbox hides: the data directory (other versions' trees,
/// artifacts, backups, logs, the database), the token file, the backup
/// source, the config file (it may hold the store's password), the store's
/// SQLite file wherever it is, and PostgreSQL's password file.
pub(crate) fn hidden(config: &Config) -> Vec<PathBuf> {
    let mut hidden = vec![config.data_dir.clone(), config.source.clone()];
    if let Some(TokenSource::File(path)) = &config.token {
        hidden.push(path.clone());
    }
    for operator in &config.operators {
        if let crate::identity::OperatorToken::File(path) = &operator.token {
            hidden.push(path.clone());
        }
    }
    hidden.extend(config.backup_source.clone());
    // Other versions' trees and other jobs' files, when they are there.
    if let crate::config::ExecutorKind::Slurm(slurm) = &config.executor {
        hidden.push(slurm.shared_dir.clone());
    }
    if let StoreLocation::Sqlite(db) = &config.store {
        for side in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(side);
            hidden.push(name.into());
        }
    }
    match std::env::var_os("PGPASSFILE") {
        Some(file) => hidden.push(file.into()),
        None => hidden.extend(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))),
    }
    // Relative to the daemon's directory when the config was given that way:
    // compared with resolved programs, and mounted, as absolute paths.
    hidden.into_iter().map(|p| std::path::absolute(&p).unwrap_or(p)).collect()
}

/// One line per program or file a build or gate is configured to use that
/// its sandbox would hide and cannot bind (it lies in what [`hidden`]
/// keeps from code under test), or that is not there to bind at all. A
/// program or file anywhere else, `/tmp` included, is bound read-only at
/// its own path when the process starts.
pub fn unreachable(config: &Config) -> Vec<String> {
    let hidden = hidden(config);
    let mut used: Vec<(String, &Command)> = vec![("project.build".into(), &config.project.build)];
    for tier in &config.tiers {
        for spec in &tier.gates {
            if let Gate::MigrationDryRun { migrate, restore, .. } = &spec.gate {
                let key = format!("tiers.{}.gates.migration_dry_run", tier.name);
                used.push((format!("{key}.migrate"), migrate));
                used.extend(restore.iter().map(|r| (format!("{key}.restore"), r)));
            }
        }
    }
    let mut lines = Vec::new();
    for (key, command) in used {
        // A relative program with a slash is the version's own, in its tree.
        let program = if command.program.starts_with('/') || !command.program.contains('/') {
            match crate::executor::resolve(&command.program, None) {
                Ok(path) => Some(path),
                Err(_) => {
                    lines.push(format!(
                        "{key}: program `{}` is not found (on PATH or at that path), so the sandbox cannot start it",
                        command.program
                    ));
                    None
                }
            }
        } else {
            None
        };
        let files = command.args.iter().map(PathBuf::from).filter(|p| p.is_absolute());
        for path in program.into_iter().chain(files) {
            if let Some(dir) = hidden.iter().find(|h| path.starts_with(h)) {
                lines.push(format!(
                    "{key}: {} lies in {}, which the sandbox hides from code under test, so it cannot be bound; move it elsewhere",
                    path.display(),
                    what(config, dir)
                ));
            }
        }
    }
    lines
}

fn what(config: &Config, dir: &Path) -> String {
    let is = |configured: &Path| std::path::absolute(configured).is_ok_and(|p| p == dir);
    if is(&config.source) {
        format!("the config file {}", dir.display())
    } else if is(&config.data_dir) {
        format!("the data directory {}", dir.display())
    } else if config.backup_source.as_deref().is_some_and(is) {
        format!("the backup source {}", dir.display())
    } else if matches!(&config.token, Some(TokenSource::File(token)) if is(token)) {
        format!("the token file {}", dir.display())
    } else {
        format!("{} (the store's files and PostgreSQL's password file stay hidden)", dir.display())
    }
}
