//! The event stream's backlog on PostgreSQL, as on SQLite: written by the leader only (through `write()`), read by every daemon.

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::{BacklogBound, BackloggedEvent, EventMarks, Result};

impl PgStore {
    /// Appends `events`, moves `top` up to `top`, and lets go of what
    /// `bound` does not keep, in one transaction.
    pub async fn append_events(
        &self,
        events: &[BackloggedEvent],
        top: i64,
        bound: BacklogBound,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let ats: Vec<DateTime<Utc>> = events.iter().map(|e| e.at).collect();
        let envelopes: Vec<String> = events.iter().map(|e| e.envelope.clone()).collect();
        sqlx::query!(
            "INSERT INTO event_backlog (seq, at, envelope)
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[])
             ON CONFLICT (seq) DO NOTHING",
            &seqs,
            &ats,
            &envelopes
        )
        .execute(&mut *tx)
        .await?;
        // By count, not by `seq`: the sequence has gaps (log chunks, restarts).
        let gone = sqlx::query_scalar!(
            "SELECT MAX(seq) FROM event_backlog
             WHERE seq <= (SELECT seq FROM event_backlog ORDER BY seq DESC LIMIT 1 OFFSET $1)
                OR at < $2",
            bound.events,
            bound.since
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(gone) = gone {
            sqlx::query!("DELETE FROM event_backlog WHERE seq <= $1", gone)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query!(
            "INSERT INTO event_marks (id, top, floor) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE
             SET top = GREATEST(event_marks.top, excluded.top),
                 floor = GREATEST(event_marks.floor, excluded.floor)",
            top,
            gone.unwrap_or(0)
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events after `since`, oldest first, at most `limit`.
    pub async fn events_since(&self, since: i64, limit: i64) -> Result<Vec<BackloggedEvent>> {
        Ok(sqlx::query_as!(
            BackloggedEvent,
            "SELECT seq, at, envelope FROM event_backlog WHERE seq > $1 ORDER BY seq LIMIT $2",
            since,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn event_marks(&self) -> Result<EventMarks> {
        let row = sqlx::query!(
            r#"SELECT (SELECT top FROM event_marks WHERE id = 1) AS top,
                      (SELECT floor FROM event_marks WHERE id = 1) AS floor,
                      (SELECT MAX(seq) FROM event_backlog) AS newest"#
        )
        .fetch_one(&self.pool)
        .await?;
        let top = row.top.unwrap_or(0).max(row.newest.unwrap_or(0));
        Ok(EventMarks { top, floor: row.floor.unwrap_or(0) })
    }
}
