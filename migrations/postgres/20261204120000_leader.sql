-- Who leads the daemons that share this database. One row: the daemon
-- holding the lead lock writes it when it takes the lead, with the next
-- epoch, and renews `renewed_at` while it lives. Every write a leader makes
-- checks, in its own transaction, that the epoch is still its own (and
-- holds the row against a takeover until it commits): a deposed leader
-- writes nothing. `backend_pid` is the lead lock's connection, which a
-- standby ends when the lease has run out.
CREATE TABLE leader (
    id          smallint PRIMARY KEY CHECK (id = 1),
    epoch       bigint NOT NULL,
    holder      text NOT NULL,
    url         text NOT NULL,
    backend_pid integer NOT NULL,
    since       timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL
);
