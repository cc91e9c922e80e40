//! The store on PostgreSQL (`migrations/postgres/`), for several daemons on one database: the same values as on SQLite, in PostgreSQL's types.
//!
//! One daemon leads a database at a time (`leader.rs`): it holds a session
//! advisory lock on a connection of its own and the `leader` row's newest
//! epoch, and every write it makes goes through [`PgStore::write`], which
//! checks that epoch in the same transaction. The others are standbys:
//! they read, and write nothing.

mod audit;
mod backlog;
mod components;
mod leader;
mod legacy;
mod lifecycle;
mod retention;
mod tier_control;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::leadership::{Candidacy, Standing};
use super::{Result, StoreError, TierRow, identify};
use crate::domain::{
    BuildFailure, BuildOutcome, DeployFailure, DeployOutcome, GateFailure, GateStatus, TierId,
    Version,
};

/// The PostgreSQL schema, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    url: Arc<str>,
    /// The connection that holds (or stands for) the lead lock: closed, and
    /// the lock with it, when the daemon ends, however it ends.
    lead: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    standing: Arc<leader::StandingCell>,
    candidacy: Option<Arc<Candidacy>>,
}

/// Why the store is opened.
#[derive(Debug, Clone)]
pub enum Role {
    /// `sando serve`: leads if the lead is free (before anything is read or
    /// migrated), else stands by.
    Serve(Candidacy),
    /// A command (`sando import-legacy`, `sando store copy`).
    Command,
}

impl PgStore {
    /// Connects to `url` and refuses a database that is not Sando's
    /// (another program's tables, a newer Sando's migrations) before writing
    /// to it. A command, or a daemon that takes the lead, then applies
    /// pending migrations: the lead is taken first, so a second daemon (a
    /// newer one in a rollout, say) neither migrates nor acts while the
    /// first lives; it stands by. Errors show the URL without its password.
    pub async fn open(url: &str, role: Role) -> Result<PgStore> {
        let shown = shown(url);
        let open_error = |source| StoreError::Open { path: shown.clone(), source };
        let mut options = connect_options(url).map_err(open_error)?;
        let candidacy = match role {
            Role::Serve(candidacy) => {
                // A leader paused inside a transaction holds the leader row
                // against the takeover: the server ends such a session
                // after a lease, so the takeover waits at most that long.
                let idle = format!("{}ms", candidacy.lease.as_millis());
                options = options.options([("idle_in_transaction_session_timeout", idle)]);
                Some(Arc::new(candidacy))
            }
            Role::Command => None,
        };
        let store = PgStore {
            pool: PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(std::time::Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(open_error)?,
            url: url.into(),
            lead: Default::default(),
            standing: Arc::new(leader::StandingCell::new(if candidacy.is_some() {
                Standing::Standby
            } else {
                Standing::Command
            })),
            candidacy,
        };
        let leads = match &store.candidacy {
            Some(_) => store.try_lead().await?,
            None => true,
        };
        let found = identify_postgres(&store.pool).await.map_err(open_error)?;
        if let Some(refusal) = found.refusal(&shown) {
            store.pool.close().await;
            return Err(StoreError::NotOurs(refusal));
        }
        if leads {
            store.migrate().await?;
        }
        if store.candidacy.is_some() && leads {
            store.take_office().await?;
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate { path: shown(&self.url), source })
    }

    /// The pool, for the copy that fills a new database.
    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction for a write. A leader's first checks that its epoch
    /// is still the leader row's, and holds the row (`FOR SHARE`) until it
    /// commits, so a takeover waits for it and every write after the
    /// takeover is refused: a deposed leader writes nothing. A standby's
    /// is refused outright.
    pub(super) async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        let standing = self.standing.get();
        if standing == Standing::Standby {
            return Err(StoreError::Standby);
        }
        let mut tx = self.pool.begin().await?;
        if let Standing::Leads(epoch) = standing {
            let held = sqlx::query_scalar!(
                r#"SELECT epoch AS "epoch!" FROM leader WHERE id = 1 AND epoch = $1 FOR SHARE"#,
                epoch
            )
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_none() {
                self.standing.deposed(epoch);
                return Err(StoreError::Deposed { epoch });
            }
        }
        Ok(tx)
    }

    /// Records the configured tiers (in order); tiers removed from the config
    /// keep their rows, so history is never lost.
    pub async fn sync_tiers(&self, tiers: &[TierId]) -> Result<()> {
        let mut tx = self.write().await?;
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
    /// a typed outcome, but for runs whose process outlives the daemon (those
    /// are adopted, or let go of first). Returns how many gate runs were
    /// interrupted.
    pub async fn interrupt_unfinished(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.write().await?;
        let interrupted = GateStatus::failed(GateFailure::Interrupted);
        let runs = sqlx::query!(
            "UPDATE gate_runs SET status = 'failed', outcome_json = $1, finished_at = $2
             WHERE status = 'running' AND job IS NULL",
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
