-- The event stream's backlog (`/api/events?since=`): every event but log
-- chunks, as its envelope's JSON, by its `seq`. Bounded: the writer keeps
-- the newest events only (see ARCHITECTURE.md, "The event backlog").
CREATE TABLE event_backlog (
    seq      INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    envelope TEXT NOT NULL
);

-- One row (id 1), written with the backlog: `top` is the highest `seq`
-- handed out (log chunks' included), where a restarted daemon goes on
-- from; `floor` the highest `seq` let go of, so a client asking for
-- events since before it is told it missed some.
CREATE TABLE event_marks (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    top   INTEGER NOT NULL,
    floor INTEGER NOT NULL
);
