//! Whose database a file is, read before the store writes a byte to it: Sando's own (any version this binary knows), nothing yet, or something it must refuse (the old daemon's, another program's, a newer Sando's).

use std::collections::BTreeSet;
use std::path::Path;

use sqlx::Row as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// The tables and columns the old, stringly-typed daemon's `001_init.sql`
/// made: what `sando import-legacy` reads, and what marks its file here.
pub const LEGACY_SCHEMA: &[(&str, &[&str])] = &[
    ("versions", &["version", "git_sha", "built_at"]),
    ("tiers", &["name", "position", "canary"]),
    ("tier_state", &["tier", "current_version", "candidate_version", "arrived_at"]),
    (
        "gate_runs",
        &["id", "version", "tier", "gate_kind", "started_at", "finished_at", "passed", "detail"],
    ),
    (
        "deploys",
        &["id", "version", "tier", "node", "started_at", "finished_at", "outcome", "error"],
    ),
    ("backups", &["id", "source", "path", "fetched_at"]),
];

/// What a database file holds, as far as the store is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file, an empty file, or a database without tables: the store may
    /// create its schema there.
    Empty,
    /// Sando's own, at a migration this binary knows (pending ones are
    /// applied on open).
    Sando,
    /// Sando's, migrated by a newer binary: `unknown` is its first migration
    /// this binary does not have.
    NewerSando { unknown: i64 },
    /// The old, stringly-typed daemon's database.
    Legacy,
    /// A SQLite database of another program: some of its tables.
    Other { tables: Vec<String> },
    /// Not a SQLite database at all.
    NotSqlite,
}

/// Reads what `path` holds without writing to it: a read-only connection
/// (so no journal mode is changed and no table created), closed before the
/// store opens it for real.
pub(super) async fn identify(path: &Path, ours: &Migrator) -> Result<Found, sqlx::Error> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(Found::Empty) };
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read as _;
        f.read(&mut header)
    });
    if !matches!(read, Ok(20)) || &header[..16] != b"SQLite format 3\0" {
        return Ok(Found::NotSqlite);
    }
    // A WAL-mode file (format versions 2) with nothing beside it: nothing is
    // pending in a log, and a read-only open would still make -wal and -shm
    // files next to it; read it as immutable instead.
    let side = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name).exists()
    };
    let wal = header[18] == 2 || header[19] == 2;
    let immutable = wal && !side("-wal") && !side("-shm");
    let options = SqliteConnectOptions::new().filename(path).read_only(true).immutable(immutable);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    let found = read_found(&pool, ours).await;
    pool.close().await;
    found
}

async fn read_found(pool: &sqlx::SqlitePool, ours: &Migrator) -> Result<Found, sqlx::Error> {
    let tables: BTreeSet<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    let applied: Vec<i64> = if tables.contains("_sqlx_migrations") {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let mut legacy = !tables.contains("_sqlx_migrations");
    for (table, columns) in LEGACY_SCHEMA {
        if !legacy {
            break;
        }
        let have: BTreeSet<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.get::<String, _>("name"))
            .collect();
        legacy = columns.iter().all(|c| have.contains(*c));
    }
    Ok(classify(&tables, &applied, ours, legacy))
}

/// What a database holds, from its tables, the migrations its
/// `_sqlx_migrations` lists (oldest first) and whether its tables are the
/// old daemon's: the same decision for either backend.
pub(super) fn classify(
    tables: &BTreeSet<String>,
    applied: &[i64],
    ours: &Migrator,
    legacy: bool,
) -> Found {
    let other = || Found::Other { tables: tables.iter().cloned().collect() };
    if tables.is_empty() {
        return Found::Empty;
    }
    if !tables.contains("_sqlx_migrations") {
        return if legacy { Found::Legacy } else { other() };
    }
    // sqlx made its table, and then nothing of ours was applied: whatever
    // else is there is not ours.
    if applied.is_empty() && tables.len() > 1 {
        return other();
    }
    let known: BTreeSet<i64> = ours.iter().map(|m| m.version).collect();
    let latest = known.iter().next_back().copied().unwrap_or(0);
    // Another program's sqlx migrations share nothing with ours; a newer
    // Sando's begin with ours and go on past the last one we have.
    if !applied.is_empty() && applied.first() != known.iter().next() {
        return other();
    }
    match applied.iter().find(|v| !known.contains(v)) {
        Some(&unknown) if unknown > latest => Found::NewerSando { unknown },
        Some(_) => other(),
        None => Found::Sando,
    }
}

impl Found {
    /// Why the store refuses this database (`path`: a file, or a URL with
    /// its password hidden), or `None` when it may open it.
    pub fn refusal(&self, path: &str) -> Option<String> {
        match self {
            Found::Empty | Found::Sando => None,
            Found::NewerSando { unknown } => Some(format!(
                "{path} was written by a newer Sando (its migration {unknown} is unknown to this one); run that version, or a newer one than this"
            )),
            Found::Legacy => {
                let aside = Path::new(path).with_file_name("sando-legacy.sqlite");
                let aside = aside.display();
                Some(format!(
                    "{path} is the old Sando daemon's database; move it aside (`mv {path} {aside}`) and upgrade it with `sando import-legacy --from {aside} --config <your sando.toml>`"
                ))
            }
            Found::Other { tables } => {
                let mut shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
                if tables.len() > shown.len() {
                    shown.push("…");
                }
                Some(format!(
                    "{path} is another program's database (tables: {}); point Sando elsewhere",
                    shown.join(", ")
                ))
            }
            Found::NotSqlite => {
                Some(format!("{path} is not a SQLite database; point data_dir elsewhere"))
            }
        }
    }
}
