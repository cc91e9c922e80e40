//! Leadership on PostgreSQL: the lead lock, the `leader` row and its epoch, the lease a leader renews, the campaign a standby runs, and the events a leader publishes to the standbys.
//!
//! The lock decides who leads: a session advisory lock on a connection of
//! the daemon's own, which the server releases the moment that session
//! ends (a killed process's socket closes at once). The lease covers what
//! a closed socket does not: a leader paused or cut off keeps its session
//! until TCP gives up, so a standby that sees the lease run out (the row's
//! `renewed_at`, by the server's clock only) ends that session itself.
//! The epoch makes the hand-over safe: every write checks it (`write`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use sqlx::{Connection as _, PgConnection};

use super::{PgStore, connect_options, shown};
use crate::store::leadership::{Leader, Standing, holder_name};
use crate::store::{Result, StoreError};

/// The advisory lock key the leading daemon holds: "sando" in ASCII.
const LEAD_LOCK: i64 = 0x73_61_6e_64_6f;

/// The channel a leader's events go out on.
const EVENTS: &str = "sando_events";

/// The largest event `pg_notify` carries (the server's limit is 8000
/// bytes); a larger one reaches a standby's clients as their next resync.
const MOST_EVENT_BYTES: usize = 7900;

/// `Standing` in an atomic: -1 a command, 0 a standby, else the epoch.
pub(super) struct StandingCell(AtomicI64);

impl StandingCell {
    pub(super) fn new(standing: Standing) -> Self {
        let cell = StandingCell(AtomicI64::new(0));
        cell.set(standing);
        cell
    }

    pub(super) fn get(&self) -> Standing {
        match self.0.load(Ordering::SeqCst) {
            -1 => Standing::Command,
            0 => Standing::Standby,
            epoch => Standing::Leads(epoch),
        }
    }

    fn set(&self, standing: Standing) {
        let value = match standing {
            Standing::Command | Standing::Alone => -1,
            Standing::Standby => 0,
            Standing::Leads(epoch) => epoch,
        };
        self.0.store(value, Ordering::SeqCst);
    }

    /// A write found `epoch` superseded: nothing more is written under it.
    pub(super) fn deposed(&self, epoch: i64) {
        let _ = self.0.compare_exchange(epoch, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl PgStore {
    pub fn standing(&self) -> Standing {
        self.standing.get()
    }

    /// Opens the lead connection, named for the daemon, and tries the lock
    /// once. Whether it was taken.
    pub(super) async fn try_lead(&self) -> Result<bool> {
        let mut held = self.lead.lock().await;
        if held.is_none() {
            let shown = shown(&self.url);
            let open_error = |source| StoreError::Open { path: shown.clone(), source };
            let options =
                connect_options(&self.url).map_err(open_error)?.application_name(&holder_name());
            *held = Some(PgConnection::connect_with(&options).await.map_err(open_error)?);
        }
        let conn = held.as_mut().expect("just opened");
        let taken: Result<bool> =
            sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "taken!""#, LEAD_LOCK)
                .fetch_one(&mut *conn)
                .await
                .map_err(Into::into);
        if taken.is_err() {
            // Made again on the next try (the server restarted, say).
            *held = None;
        }
        taken
    }

    /// With the lock held: the next epoch, this daemon's, in the leader
    /// row, written on the lock's connection (whose server process a
    /// standby ends once the lease runs out). Waits for writes still in
    /// flight under the epoch before, then none is accepted.
    pub(super) async fn take_office(&self) -> Result<i64> {
        let candidacy = self.candidacy.as_ref().expect("only a daemon leads");
        let mut held = self.lead.lock().await;
        let conn = held.as_mut().expect("the lead is held");
        let epoch = sqlx::query_scalar!(
            r#"INSERT INTO leader (id, epoch, holder, url, backend_pid, since, renewed_at)
               VALUES (1, 1, $1, $2, pg_backend_pid(), now(), now())
               ON CONFLICT (id) DO UPDATE SET epoch = leader.epoch + 1, holder = excluded.holder,
                   url = excluded.url, backend_pid = excluded.backend_pid,
                   since = excluded.since, renewed_at = excluded.renewed_at
               RETURNING epoch"#,
            holder_name(),
            candidacy.url
        )
        .fetch_one(&mut *conn)
        .await?;
        self.standing.set(Standing::Leads(epoch));
        tracing::info!(epoch, database = shown(&self.url), "this daemon leads");
        tokio::spawn(keep_the_lead(self.clone(), epoch, candidacy.lease));
        Ok(epoch)
    }

    /// Waits until this daemon leads, and returns its epoch: at once if
    /// it does; else it tries the lock every second, and ends the session
    /// of a leader whose lease ran out. Applies pending migrations first
    /// (this daemon may be newer than the one it follows).
    pub async fn lead(&self) -> Result<i64> {
        if let Standing::Leads(epoch) = self.standing() {
            return Ok(epoch);
        }
        let lease = self.candidacy.as_ref().expect("only a daemon leads").lease;
        let every = Duration::from_secs(1).min(lease / 4);
        loop {
            match self.try_lead().await {
                Ok(true) => break,
                Ok(false) => {
                    if let Err(e) = self.end_expired_lead(lease).await {
                        tracing::warn!("standing by: {e}");
                    }
                }
                Err(e) => tracing::warn!("standing by: {e}"),
            }
            tokio::time::sleep(every).await;
        }
        self.migrate().await?;
        self.take_office().await
    }

    /// Ends the session of a leader that has not renewed its lead for a
    /// lease: only the session recorded as the leader's, and only while it
    /// holds the lock (never a daemon that took the lock and is still
    /// writing its row).
    async fn end_expired_lead(&self, lease: Duration) -> Result<()> {
        let lease = lease.as_secs_f64();
        let mut held = self.lead.lock().await;
        let Some(conn) = held.as_mut() else { return Ok(()) };
        let ended = sqlx::query!(
            r#"SELECT l.holder AS "holder!", l.epoch AS "epoch!",
                      pg_terminate_backend(l.backend_pid) AS "ended!"
               FROM leader l
               WHERE l.id = 1 AND now() - l.renewed_at > make_interval(secs => $1)
                 AND EXISTS (SELECT 1 FROM pg_locks k
                             WHERE k.pid = l.backend_pid AND k.locktype = 'advisory' AND k.granted
                               AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                               AND ((k.classid::bigint << 32) | k.objid::bigint) = $2)"#,
            lease,
            LEAD_LOCK
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(ended) = ended {
            tracing::warn!(
                holder = ended.holder,
                epoch = ended.epoch,
                "the leader's lease ran out: its session was ended ({}), this daemon takes over",
                ended.ended
            );
        }
        Ok(())
    }

    /// Who leads this database, from its `leader` row.
    pub async fn leader(&self) -> Result<Option<Leader>> {
        Ok(sqlx::query_as!(
            Leader,
            r#"SELECT epoch, holder, url, since AS "since: DateTime<Utc>",
                      renewed_at AS "renewed_at: DateTime<Utc>"
               FROM leader WHERE id = 1"#
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Sends an event to every daemon listening on this database: only
    /// while this one leads.
    pub async fn publish(&self, event: &str) -> Result<()> {
        if !matches!(self.standing(), Standing::Leads(_)) {
            return Ok(());
        }
        if event.len() > MOST_EVENT_BYTES {
            tracing::debug!(bytes = event.len(), "an event too large to publish");
            return Ok(());
        }
        sqlx::query!("SELECT pg_notify($1, $2)", EVENTS, event).execute(&self.pool).await?;
        Ok(())
    }

    /// The events the leader publishes, as they come, until the returned
    /// receiver is dropped. A connection lost is made again (events sent
    /// meanwhile are lost: clients resync from `/api/state`).
    pub async fn listen(&self) -> Result<tokio::sync::mpsc::Receiver<String>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(EVENTS).await?;
        let (send, receive) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        if send.send(notification.payload().to_owned()).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => tracing::warn!("event listener reconnecting"),
                    Err(e) => {
                        tracing::warn!("event listener: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(receive)
    }
}

/// Renews the lead three times a lease, on the lock's connection. A
/// renewal that is slow is tried again while the lead is still sure (a
/// standby waits a whole lease from the last renewal before it ends this
/// daemon's session). Once the epoch is superseded, the connection is gone
/// (and the lock with it), or a lease passes without a renewal, another
/// daemon may lead: this one stops at once rather than act beside it, and
/// its processes end with it, as after a crash. Its writes meanwhile were
/// refused by their epoch.
async fn keep_the_lead(store: PgStore, epoch: i64, lease: Duration) {
    let every = lease / 3;
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let renewed = tokio::time::timeout(every, async {
            let mut held = store.lead.lock().await;
            let conn = held.as_mut().ok_or(sqlx::Error::PoolClosed)?;
            sqlx::query!("UPDATE leader SET renewed_at = now() WHERE id = 1 AND epoch = $1", epoch)
                .execute(&mut *conn)
                .await
        })
        .await;
        let why = match renewed {
            Ok(Ok(done)) if done.rows_affected() == 1 => {
                renewed_at = tokio::time::Instant::now();
                continue;
            }
            Err(_) if renewed_at.elapsed() < lease => {
                tracing::warn!(epoch, "renewing the lead is slow; trying again");
                continue;
            }
            Ok(Ok(_)) => "another daemon took the lead".to_owned(),
            Ok(Err(e)) => format!("the lead's connection failed: {e}"),
            Err(_) => "the lead was not renewed for a whole lease".to_owned(),
        };
        store.standing.deposed(epoch);
        let line = format!(
            "{}: this daemon no longer leads (epoch {epoch}): {why}; stopping",
            shown(&store.url)
        );
        tracing::error!("{line}");
        eprintln!("sando: {line}");
        std::process::exit(1);
    }
}
