//! The event stream's backlog on SQLite: the newest events' envelopes by `seq`, and the marks a resumed stream needs (`top`, `floor`).

use chrono::{DateTime, Utc};

use super::{Result, SqliteStore};

/// One event as the backlog keeps it: its envelope's JSON, as it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackloggedEvent {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub envelope: String,
}

/// Where the event sequence stands in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventMarks {
    /// The highest `seq` handed out (log chunks' included), as far as the
    /// writer saw; the next daemon goes on after it.
    pub top: i64,
    /// The highest `seq` let go of: events at or below it are gone.
    pub floor: i64,
}

/// How much of the backlog a write keeps: at most `events`, none older than `since`.
#[derive(Debug, Clone, Copy)]
pub struct BacklogBound {
    pub events: i64,
    pub since: DateTime<Utc>,
}

impl SqliteStore {
    /// Appends `events` (any order), moves `top` up to `top`, and lets go
    /// of what `bound` does not keep, in one transaction.
    pub async fn append_events(
        &self,
        events: &[BackloggedEvent],
        top: i64,
        bound: BacklogBound,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for event in events {
            sqlx::query!(
                "INSERT OR IGNORE INTO event_backlog (seq, at, envelope) VALUES (?1, ?2, ?3)",
                event.seq,
                event.at,
                event.envelope
            )
            .execute(&mut *tx)
            .await?;
        }
        // By count, not by `seq`: the sequence has gaps (log chunks, restarts).
        let gone = sqlx::query_scalar!(
            r#"SELECT MAX(seq) AS "seq: i64" FROM event_backlog
               WHERE seq <= (SELECT seq FROM event_backlog ORDER BY seq DESC LIMIT 1 OFFSET ?1)
                  OR at < ?2"#,
            bound.events,
            bound.since
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(gone) = gone {
            sqlx::query!("DELETE FROM event_backlog WHERE seq <= ?1", gone)
                .execute(&mut *tx)
                .await?;
        }
        let floor = gone.unwrap_or(0);
        sqlx::query!(
            "INSERT INTO event_marks (id, top, floor) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET top = MAX(top, excluded.top), floor = MAX(floor, excluded.floor)",
            top,
            floor
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
            r#"SELECT seq AS "seq!", at AS "at: DateTime<Utc>", envelope
               FROM event_backlog WHERE seq > ?1 ORDER BY seq LIMIT ?2"#,
            since,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn event_marks(&self) -> Result<EventMarks> {
        let marks = sqlx::query!(r#"SELECT top AS "top!", floor AS "floor!" FROM event_marks"#)
            .fetch_optional(&self.pool)
            .await?;
        let newest = sqlx::query_scalar!(r#"SELECT MAX(seq) AS "seq: i64" FROM event_backlog"#)
            .fetch_one(&self.pool)
            .await?
            .unwrap_or(0);
        let (top, floor) = marks.map_or((0, 0), |m| (m.top, m.floor));
        Ok(EventMarks { top: top.max(newest), floor })
    }
}
