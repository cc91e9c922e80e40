//! The store on PostgreSQL (`migrations/postgres/`), for several daemons on one database: the same values as on SQLite, in PostgreSQL's types.
//!
//! One daemon acts on a database at a time: it holds a session advisory
//! lock on a connection of its own (`Role::Lead`), taken before it reads or
//! migrates anything. Until standbys exist, a second `sando serve` on the
//! same database is refused, naming the daemon that holds it.

mod components;
mod legacy;
mod lifecycle;
mod retention;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool};

use super::{Result, StoreError, TierRow, identify};
use crate::domain::{
    BuildFailure, BuildOutcome, DeployFailure, DeployOutcome, GateFailure, GateStatus, TierId,
    Version,
};

/// The PostgreSQL schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The advisory lock key the acting daemon holds: "sando" in ASCII.
const LEAD_LOCK: i64 = 0x73_61_6e_64_6f;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    url: Arc<str>,
    /// The connection holding the lead lock, once taken: closed (and the
    /// lock with it) when the daemon ends, however it ends.
    lead: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
}

/// Whether the store is opened by the daemon that acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `sando serve`: takes the lead before anything is read or migrated.
    Lead,
    /// A command (`sando import-legacy`, `sando store copy`).
    Command,
}

impl PgStore {
    /// Connects to `url`, refuses a database that is not Sando's (another
    /// program's tables, a newer Sando's migrations) before writing to it,
    /// and applies pending migrations; as the daemon that acts on it, first
    /// takes its lead, so a second daemon (a newer one in a rollout, say)
    /// neither migrates nor acts while the first lives. Errors show the URL
    /// without its password.
    pub async fn open(url: &str, role: Role) -> Result<PgStore> {
        let shown = shown(url);
        let open_error = |source| StoreError::Open { path: shown.clone(), source };
        let options = connect_options(url).map_err(open_error)?;
        let store = PgStore {
            pool: PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(std::time::Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(open_error)?,
            url: url.into(),
            lead: Default::default(),
        };
        if role == Role::Lead {
            store.take_lead().await?;
        }
        let found = identify_postgres(&store.pool).await.map_err(open_error)?;
        if let Some(refusal) = found.refusal(&shown) {
            store.pool.close().await;
            return Err(StoreError::NotOurs(refusal));
        }
        MIGRATOR
            .run(&store.pool)
            .await
            .map_err(|source| StoreError::Migrate { path: shown, source })?;
        Ok(store)
    }

    /// The pool, for the copy that fills a new database.
    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Takes the lead of this database for the life of the process, on a
    /// connection of its own named for the daemon. Refused, naming the
    /// database and the daemon that holds it, while another does.
    async fn take_lead(&self) -> Result<()> {
        let shown = shown(&self.url);
        let open_error = |source| StoreError::Open { path: shown.clone(), source };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name = format!("sando serve on {} (pid {})", host.trim(), std::process::id());
        let options = connect_options(&self.url).map_err(open_error)?.application_name(&name);
        let mut conn = PgConnection::connect_with(&options).await.map_err(open_error)?;
        let taken: bool =
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "taken!""#, LEAD_LOCK)
                .fetch_one(&mut conn)
                .await?;
        if !taken {
            let holder = sqlx::query_scalar!(
                r#"SELECT format('%s from %s since %s', a.application_name,
                                 coalesce(host(a.client_addr), 'a local socket'),
                                 to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'))
                          AS "holder!"
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.granted
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND ((l.classid::bigint << 32) | l.objid::bigint) = $1"#,
                LEAD_LOCK
            )
            .fetch_optional(&mut conn)
            .await?
            .unwrap_or_else(|| "a daemon that is just ending".into());
            return Err(StoreError::NotOurs(format!(
                "{shown}: another Sando daemon is serving this database ({holder}); standby daemons are not supported yet: stop it first"
            )));
        }
        *self.lead.lock().await = Some(conn);
        tokio::spawn(keep_the_lead(self.lead.clone(), shown));
        Ok(())
    }

    /// Records the configured tiers (in order); tiers removed from the config
    /// keep their rows, so history is never lost.
    pub async fn sync_tiers(&self, tiers: &[TierId]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (position, tier) in tiers.iter().enumerate() {
            let position = position as i64;
            sqlx::query!(
                "INSERT INTO tiers (name, position) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                tier as &TierId,
                position
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn tiers(&self) -> Result<Vec<TierRow>> {
        Ok(sqlx::query_as!(
            TierRow,
            r#"SELECT name AS "name: TierId", current_version AS "current_version: Version",
                      candidate_version AS "candidate_version: Version"
               FROM tiers ORDER BY position, name"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Gives every run, build and deploy left in flight by a previous daemon
    /// a typed outcome. Returns how many gate runs were interrupted.
    pub async fn interrupt_unfinished(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let interrupted = GateStatus::failed(GateFailure::Interrupted);
        let runs = sqlx::query!(
            "UPDATE gate_runs SET status = 'failed', outcome_json = $1, finished_at = $2
             WHERE status = 'running'",
            interrupted as GateStatus,
            now
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let build = BuildOutcome::Failed { failure: BuildFailure::Interrupted };
        sqlx::query!(
            "UPDATE builds SET outcome_json = $1, finished_at = $2 WHERE outcome_json IS NULL",
            build as BuildOutcome,
            now
        )
        .execute(&mut *tx)
        .await?;
        let deploy = DeployOutcome::Failed { failure: DeployFailure::Interrupted };
        // jsonb compares as values: key order and spacing do not matter.
        sqlx::query!(
            "UPDATE deploys SET outcome_json = $1, finished_at = $2 WHERE outcome_json = $3",
            deploy as DeployOutcome,
            now,
            DeployOutcome::InProgress as DeployOutcome
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(runs)
    }
}

/// Looks at the lead connection every two seconds; once it is gone (the
/// server restarted, the network dropped it), the lock is too, and another
/// daemon may take it: this one stops at once rather than act beside it.
/// Its processes end with it, as after a crash, and a restart takes the
/// lead again if it is free.
async fn keep_the_lead(lead: Arc<tokio::sync::Mutex<Option<PgConnection>>>, shown: String) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let mut held = lead.lock().await;
        let Some(conn) = held.as_mut() else { return };
        let alive = tokio::time::timeout(std::time::Duration::from_secs(5), conn.ping()).await;
        if !matches!(alive, Ok(Ok(()))) {
            tracing::error!("{shown}: the connection holding the lead is gone; stopping");
            eprintln!("sando: {shown}: the connection holding the lead is gone; stopping");
            std::process::exit(1);
        }
    }
}

/// `url` as it may be shown: who, where and which database, never a
/// password (written in the URL or as a parameter).
pub(in crate::store) fn shown(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(o) => format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or_default()
        ),
        Err(_) => "a postgres:// URL that does not parse".into(),
    }
}

/// How every connection is made: the server keeps its notices below
/// warnings (a migration's "already exists, skipping") to itself.
fn connect_options(url: &str) -> std::result::Result<PgConnectOptions, sqlx::Error> {
    Ok(url.parse::<PgConnectOptions>()?.options([("client_min_messages", "warning")]))
}

/// What the database at `pool` holds, read before anything is written.
async fn identify_postgres(pool: &PgPool) -> std::result::Result<identify::Found, sqlx::Error> {
    // pg_class, not information_schema: the latter shows only the tables
    // this role may use, and another role's must count too.
    let tables: BTreeSet<String> = sqlx::query_scalar!(
        r#"SELECT c.relname::text AS "name!" FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let applied = if tables.contains("_sqlx_migrations") {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    // The old daemon kept its history in SQLite only.
    Ok(identify::classify(&tables, &applied, &MIGRATOR, false))
}
