//! The store on PostgreSQL (`migrations/postgres/`), for several daemons on one database: the same values as on SQLite, in PostgreSQL's types.
//!
//! Being ported method by method from the SQLite store; until every method
//! is here, `[store] url` does not accept `postgres://` and nothing above
//! the store reaches this module but its tests.

mod components;
mod legacy;
mod lifecycle;
mod retention;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

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
}

impl PgStore {
    /// Connects to `url`, refuses a database that is not Sando's (another
    /// program's tables, a newer Sando's migrations) before writing to it,
    /// and applies pending migrations. Errors show the URL without its
    /// password.
    pub async fn open(url: &str) -> Result<PgStore> {
        let shown = crate::executor::redact(url);
        let open_error = |source| StoreError::Open { path: shown.clone(), source };
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(open_error)?;
        let found = identify_postgres(&pool).await.map_err(open_error)?;
        if let Some(refusal) = found.refusal(&shown) {
            pool.close().await;
            return Err(StoreError::NotOurs(refusal));
        }
        MIGRATOR.run(&pool).await.map_err(|source| StoreError::Migrate { path: shown, source })?;
        Ok(PgStore { pool })
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

/// What the database at `pool` holds, read before anything is written.
async fn identify_postgres(pool: &PgPool) -> std::result::Result<identify::Found, sqlx::Error> {
    let tables: BTreeSet<String> = sqlx::query_scalar!(
        r#"SELECT table_name::text AS "name!" FROM information_schema.tables
           WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"#
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
