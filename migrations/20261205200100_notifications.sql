-- The notification outbox: what is to be posted to each `[[notify]]`
-- target, in order, until it is taken (2xx). A row is written when the
-- event is seen and never blocks the decision loop; each target's rows go
-- out oldest first, one at a time, retried with backoff across restarts.
CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    target       TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT NOT NULL,
    delivered_at TEXT,
    last_error   TEXT
);
CREATE INDEX notifications_pending ON notifications (target, delivered_at, id);
