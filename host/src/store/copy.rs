//! `sando store copy`: a whole SQLite history into an empty PostgreSQL database, ids kept, in one transaction, verified table by table (row count and a digest of every value) before it commits. The SQLite file is only read.
//!
//! This is the one place that reads rows without knowing their tables in
//! advance: each column is read and written by its PostgreSQL type, so a
//! value is converted once (RFC 3339 text to `timestamptz`, JSON text to
//! `jsonb`) and the digest compares what each side holds as values, not as
//! text (PostgreSQL keeps microseconds and orders a `jsonb`'s keys its own way).

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{PgPool, Row as _, SqlitePool};

use super::{Result, StoreError, identify};

/// The tables, parents before the rows that refer to them.
const TABLES: &[&str] = &[
    "legacy_imports",
    "versions",
    "rebuild_requests",
    "builds",
    "tiers",
    "gate_runs",
    "rollbacks",
    "deploys",
    "tier_arrivals",
    "backups",
    "confirmations",
    "rerun_requests",
    "components",
    "raw_outputs",
    "reclassifications",
    "run_transcripts",
    "transcript_outputs",
    "notifications",
    "audit",
    "freezes",
    "freeze_overrides",
    "event_backlog",
    "event_marks",
];

/// What a copy did, table by table.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    /// sha256 over every row's values, in key order, the same on both sides.
    pub sha256: String,
}

/// One value, as PostgreSQL's column type says to take it.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Time,
    Json,
    Bytes,
}

struct Column {
    name: String,
    kind: Kind,
}

/// Copies the SQLite history at `from` into the PostgreSQL store `to`,
/// which must be empty (its schema is made if it has none).
pub async fn sqlite_to_postgres(from: &Path, to: &str) -> Result<CopyReport> {
    let shown_from = from.display().to_string();
    let shown_to = super::postgres::shown(to);
    let source = open_source(from).await?;
    // Opened as the daemon opens it: refused unless Sando's, schema made.
    let target = super::PgStore::open(to, super::Role::Command).await?;
    let pool = target.pool().clone();
    let mut tx = pool.begin().await?;
    let mut tables = Vec::new();
    for &table in TABLES {
        let held: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        if held > 0 {
            return Err(StoreError::NotOurs(format!(
                "{shown_to} is not empty ({table} has {held} rows): copy into a new database"
            )));
        }
        let columns = columns(&pool, table).await?;
        let order = order_by(&key_columns(&pool, table).await?, &columns);
        // Recorded outputs are up to 16 MiB a row: a few at a time.
        let page = if columns.iter().any(|c| c.kind == Kind::Bytes) { 8 } else { 500 };
        let (mut read, mut written) = (TableDigest::default(), TableDigest::default());
        for offset in (0..).step_by(page) {
            let rows = read_sqlite(&source, table, &columns, &order, page, offset).await?;
            insert(&mut tx, table, &columns, &rows).await?;
            rows.iter().for_each(|row| read.add(row));
            if rows.len() < page {
                break;
            }
        }
        if columns.iter().any(|c| c.name == "id") {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               GREATEST((SELECT max(id) FROM {table}), 1),
                               (SELECT max(id) FROM {table}) IS NOT NULL)"
            ))
            .execute(&mut *tx)
            .await?;
        }
        for offset in (0..).step_by(page) {
            let rows = read_postgres(&mut tx, table, &columns, &order, page, offset).await?;
            rows.iter().for_each(|row| written.add(row));
            if rows.len() < page {
                break;
            }
        }
        let (expected, got) = (read.finish(), written.finish());
        if expected != got {
            return Err(StoreError::NotOurs(format!(
                "{table}: {} rows read (sha256 {}), {} in the target (sha256 {}): nothing was copied",
                expected.0, expected.1, got.0, got.1
            )));
        }
        tables.push(TableReport { table: table.to_owned(), rows: got.0, sha256: got.1 });
    }
    tx.commit().await?;
    source.close().await;
    Ok(CopyReport { from: shown_from, to: shown_to, tables })
}

/// The source, read-only, after checking it is a Sando history at the
/// schema this binary writes (an older one: start this Sando on it once).
async fn open_source(from: &Path) -> Result<SqlitePool> {
    let shown = from.display().to_string();
    if !from.is_file() {
        return Err(StoreError::NotOurs(format!("{shown}: no such file")));
    }
    let found = identify::identify(from, &super::MIGRATOR)
        .await
        .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
    if let Some(refusal) = found.refusal(&shown) {
        return Err(StoreError::NotOurs(refusal));
    }
    let options = SqliteConnectOptions::new().filename(from).read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
    let applied: BTreeSet<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&pool)
        .await?
        .into_iter()
        .collect();
    if let Some(missing) = super::MIGRATOR.iter().map(|m| m.version).find(|v| !applied.contains(v))
    {
        pool.close().await;
        return Err(StoreError::NotOurs(format!(
            "{shown} lacks migration {missing}: start this Sando's `sando serve` on it once, then copy"
        )));
    }
    Ok(pool)
}

/// `table`'s columns on PostgreSQL, in order, each with how to take it.
async fn columns(pool: &PgPool, table: &str) -> Result<Vec<Column>> {
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.get("name");
            let kind = match row.get::<String, _>("type").as_str() {
                "bigint" | "integer" => Kind::Int,
                "text" => Kind::Text,
                "timestamp with time zone" => Kind::Time,
                "jsonb" => Kind::Json,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(StoreError::NotOurs(format!(
                        "{table}.{name}: a column of type {other} this copy does not know"
                    )));
                }
            };
            Ok(Column { name, kind })
        })
        .collect()
}

/// `table`'s primary key columns: the order rows are read and compared in.
async fn key_columns(pool: &PgPool, table: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
    )
    .bind(table)
    .fetch_all(pool)
    .await?)
}

fn order_by(key: &[String], columns: &[Column]) -> String {
    if key.is_empty() {
        // No key: every column, so both sides list rows the same way.
        columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    } else {
        key.join(", ")
    }
}

/// One page of `table`, in `order`.
fn select(table: &str, columns: &[Column], order: &str, page: usize, offset: usize) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    format!(
        "SELECT {} FROM {table} ORDER BY {order} LIMIT {page} OFFSET {offset}",
        names.join(", ")
    )
}

async fn read_sqlite(
    pool: &SqlitePool,
    table: &str,
    columns: &[Column],
    order: &str,
    page: usize,
    offset: usize,
) -> Result<Vec<Vec<Cell>>> {
    let sql = select(table, columns, order, page, offset);
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    cells(&rows, columns, |row, i, column| sqlite_cell(row, i, column, table))
}

/// Each row's cells, column by column, as `cell` reads them.
fn cells<R>(
    rows: &[R],
    columns: &[Column],
    cell: impl Fn(&R, usize, &Column) -> Result<Cell>,
) -> Result<Vec<Vec<Cell>>> {
    rows.iter()
        .map(|row| columns.iter().enumerate().map(|(i, column)| cell(row, i, column)).collect())
        .collect()
}

fn sqlite_cell(row: &SqliteRow, i: usize, column: &Column, table: &str) -> Result<Cell> {
    use sqlx::ValueRef as _;
    if row.try_get_raw(i)?.is_null() {
        return Ok(Cell::Null);
    }
    let bad = |why: String| {
        StoreError::NotOurs(format!("{table}.{}: {why}; nothing was copied", column.name))
    };
    Ok(match column.kind {
        Kind::Int => Cell::Int(row.try_get(i)?),
        Kind::Bytes => Cell::Bytes(row.try_get(i)?),
        Kind::Text => Cell::Text(row.try_get(i)?),
        Kind::Time => {
            let text: String = row.try_get(i)?;
            let time = DateTime::parse_from_rfc3339(&text)
                .map_err(|e| bad(format!("{text:?} is not an RFC 3339 time ({e})")))?;
            Cell::Time(time.with_timezone(&Utc).trunc_subsecs(6))
        }
        Kind::Json => {
            let text: String = row.try_get(i)?;
            Cell::Json(serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?)
        }
    })
}

async fn read_postgres(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[Column],
    order: &str,
    page: usize,
    offset: usize,
) -> Result<Vec<Vec<Cell>>> {
    let sql = select(table, columns, order, page, offset);
    let rows = sqlx::query(&sql).fetch_all(&mut *conn).await?;
    cells(&rows, columns, |row, i, column| postgres_cell(row, i, column.kind))
}

fn postgres_cell(row: &PgRow, i: usize, kind: Kind) -> Result<Cell> {
    use sqlx::ValueRef as _;
    if row.try_get_raw(i)?.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match kind {
        Kind::Int => Cell::Int(row.try_get(i)?),
        Kind::Bytes => Cell::Bytes(row.try_get(i)?),
        Kind::Text => Cell::Text(row.try_get(i)?),
        Kind::Time => Cell::Time(row.try_get(i)?),
        Kind::Json => Cell::Json(row.try_get(i)?),
    })
}

async fn insert(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Cell>],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    let mut n = 0;
    for (r, _) in rows.iter().enumerate() {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns.len() {
            n += 1;
            sql.push_str(&format!("{}${n}", if c == 0 { "" } else { ", " }));
        }
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        for (cell, column) in row.iter().zip(columns) {
            query = match (cell, column.kind) {
                (Cell::Null, Kind::Int) => query.bind(None::<i64>),
                (Cell::Null, Kind::Text) => query.bind(None::<String>),
                (Cell::Null, Kind::Time) => query.bind(None::<DateTime<Utc>>),
                (Cell::Null, Kind::Json) => query.bind(None::<serde_json::Value>),
                (Cell::Null, Kind::Bytes) => query.bind(None::<Vec<u8>>),
                (Cell::Int(v), _) => query.bind(*v),
                (Cell::Text(v), _) => query.bind(v.clone()),
                (Cell::Time(v), _) => query.bind(*v),
                (Cell::Json(v), _) => query.bind(v.clone()),
                (Cell::Bytes(v), _) => query.bind(v.clone()),
            };
        }
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// sha256 over a table's rows, value by value, each in one canonical form
/// whichever side it was read from: JSON with its keys in order, times as
/// RFC 3339 with microseconds, bytes as hex; and how many rows.
#[derive(Default)]
struct TableDigest {
    hash: Sha256,
    rows: u64,
}

impl TableDigest {
    fn add(&mut self, row: &[Cell]) {
        for cell in row {
            let text = match cell {
                Cell::Null => "\u{0}null".to_owned(),
                Cell::Int(v) => format!("i{v}"),
                Cell::Text(v) => format!("t{}:{v}", v.len()),
                Cell::Time(v) => {
                    format!("d{}", v.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                }
                // serde_json's maps keep their keys in order.
                Cell::Json(v) => format!("j{v}"),
                Cell::Bytes(v) => {
                    format!("b{}", v.iter().map(|b| format!("{b:02x}")).collect::<String>())
                }
            };
            self.hash.update(text.as_bytes());
            self.hash.update([0x1f]);
        }
        self.hash.update([0x1e]);
        self.rows += 1;
    }

    fn finish(self) -> (u64, String) {
        (self.rows, self.hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{Cell, TableDigest};

    fn digest(rows: &[Vec<Cell>]) -> (u64, String) {
        let mut digest = TableDigest::default();
        rows.iter().for_each(|row| digest.add(row));
        digest.finish()
    }

    #[test]
    fn the_digest_sees_each_value_and_its_place() {
        let row = |a: i64, b: &str| vec![Cell::Int(a), Cell::Text(b.into())];
        let one = digest(&[row(1, "x"), row(2, "y")]);
        assert_eq!(one, digest(&[row(1, "x"), row(2, "y")]));
        assert_ne!(one, digest(&[row(2, "y"), row(1, "x")]), "order");
        assert_ne!(one, digest(&[row(1, "x"), row(2, "z")]), "a value");
        assert_ne!(
            digest(&[vec![Cell::Text("ab".into()), Cell::Text("c".into())]]),
            digest(&[vec![Cell::Text("a".into()), Cell::Text("bc".into())]]),
            "where one value ends"
        );
        assert_ne!(digest(&[vec![Cell::Null]]), digest(&[vec![Cell::Text(String::new())]]));
        let json = |t: &str| Cell::Json(serde_json::from_str(t).unwrap());
        assert_eq!(
            digest(&[vec![json(r#"{"b":1,"a":[2]}"#)]]),
            digest(&[vec![json(r#"{ "a": [2], "b": 1 }"#)]]),
            "JSON as values"
        );
    }
}
