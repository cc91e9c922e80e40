//! `sando migrate run`: applies sqlx-format migrations to a SQLite database and reports like `sqlx migrate run` does, so a machine without sqlx-cli can still run the `migration_dry_run` gate (the demo does) and its classifier reads the same lines.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use sqlx::Connection;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::sqlite::SqliteConnection;

/// What went wrong, displayed as sqlx-cli displays it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Not reachable: sqlx-cli shows the connection error itself.
    #[error("{0}")]
    Connect(sqlx::Error),
    #[error("{0}")]
    Migrate(#[from] MigrateError),
}

/// Applies every pending migration in `source` to `database_url`, writing
/// one `Applied <version>/migrate <description> (<elapsed>)` line per
/// migration. Errors display exactly as sqlx-cli prints them after `error: `.
pub async fn run(database_url: &str, source: &Path, out: &mut impl Write) -> Result<(), RunError> {
    let migrator = Migrator::new(source).await?;
    let mut conn = SqliteConnection::connect(database_url).await.map_err(RunError::Connect)?;
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version).into());
    }
    let applied: HashMap<i64, Vec<u8>> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect();
    let ups: Vec<_> = migrator.iter().filter(|m| m.migration_type.is_up_migration()).collect();
    let mut versions: Vec<&i64> = applied.keys().collect();
    versions.sort();
    for version in versions {
        match ups.iter().find(|m| m.version == *version) {
            None => return Err(MigrateError::VersionMissing(*version).into()),
            Some(m) if *m.checksum != applied[version][..] => {
                return Err(MigrateError::VersionMismatch(*version).into());
            }
            Some(_) => {}
        }
    }
    for migration in ups.into_iter().filter(|m| !applied.contains_key(&m.version)) {
        let elapsed = conn.apply(migration).await?;
        let _ = writeln!(
            out,
            "Applied {}/{} {} ({elapsed:?})",
            migration.version,
            migration.migration_type.label(),
            migration.description
        );
    }
    Ok(())
}
