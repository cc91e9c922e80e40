//! The PostgreSQL schema against the SQLite one, on a real PostgreSQL (`./x test` starts it): the same tables, the same columns, the same ones required.

mod util;

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Row as _;

/// Each table's columns, and whether each may be NULL.
type Schema = BTreeMap<String, BTreeMap<String, bool>>;

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sando.sqlite");
    // The store's own migrations, as `sando serve` applies them.
    drop(sando::store::Store::open(&path).await.unwrap());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let columns = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|c| {
                let required = c.get::<i64, _>("notnull") == 1 || c.get::<i64, _>("pk") > 0;
                (c.get::<String, _>("name"), !required)
            })
            .collect();
        schema.insert(table, columns);
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    sqlx::migrate::Migrator::new(migrations).await.unwrap().run(&pool).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for row in rows {
        schema
            .entry(row.get("t"))
            .or_default()
            .insert(row.get("c"), row.get::<String, _>("n") == "YES");
    }
    pool.close().await;
    schema
}

#[tokio::test]
async fn the_postgres_schema_has_the_sqlite_schemas_tables_and_columns() {
    let url = util::postgres::fresh_database().await;
    let (sqlite, postgres) = (sqlite_schema().await, postgres_schema(&url).await);
    assert!(sqlite.len() > 10, "{sqlite:?}");
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &sqlite {
        assert_eq!(columns, &postgres[table], "table {table}: columns and which may be NULL");
    }
}

/// Every `expected.json` of the shipped fixtures: the outcomes a gate can
/// give, as the contract writes them.
fn fixture_outcomes() -> Vec<sando::domain::GateStatus> {
    let mut outcomes = Vec::new();
    let mut stack = vec![util::fixtures_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "expected.json") {
                let text = std::fs::read_to_string(&path).unwrap();
                outcomes.push(serde_json::from_str(&text).unwrap());
            }
        }
    }
    outcomes
}

#[tokio::test]
async fn an_outcome_written_by_one_backend_reads_back_equal_on_the_other() {
    use sando::domain::{DeployFailure, DeployOutcome, GateRunId, GitSha, TierId, Version};
    let outcomes = fixture_outcomes();
    assert!(outcomes.len() > 50, "{} outcomes", outcomes.len());
    let pg = sqlx::PgPool::connect(&util::postgres::fresh_database().await).await.unwrap();
    let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    for outcome in &outcomes {
        // SQLite's TEXT form, read back into PostgreSQL's jsonb and out again.
        let text: String =
            sqlx::query_scalar("SELECT ?1").bind(outcome).fetch_one(&sqlite).await.unwrap();
        let from_sqlite: sando::domain::GateStatus = serde_json::from_str(&text).unwrap();
        let through_pg: sando::domain::GateStatus =
            sqlx::query_scalar("SELECT $1::jsonb").bind(&from_sqlite).fetch_one(&pg).await.unwrap();
        assert_eq!(&through_pg, outcome);
        let back: sando::domain::GateStatus =
            sqlx::query_scalar("SELECT ?1").bind(&through_pg).fetch_one(&sqlite).await.unwrap();
        assert_eq!(&back, outcome);
    }
    let deploy =
        DeployOutcome::Failed { failure: DeployFailure::Transport { exit_code: Some(12) } };
    let read: DeployOutcome =
        sqlx::query_scalar("SELECT $1::jsonb").bind(&deploy).fetch_one(&pg).await.unwrap();
    assert_eq!(read, deploy);
    let (tier, version): (TierId, Version) =
        ("prod".parse().unwrap(), "1.2.3-rc.1".parse().unwrap());
    let sha: GitSha = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let run = GateRunId::try_from(4_000_000_000i64).unwrap();
    let row: (TierId, Version, GitSha, GateRunId) = sqlx::query_as("SELECT $1, $2, $3, $4")
        .bind(&tier)
        .bind(&version)
        .bind(&sha)
        .bind(run)
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(row, (tier, version, sha, run));
    // A value PostgreSQL holds that is not a domain value is refused, not guessed.
    let bad = sqlx::query_scalar::<_, Version>("SELECT 'not-semver'::text").fetch_one(&pg).await;
    assert!(bad.is_err());
    pg.close().await;
}
