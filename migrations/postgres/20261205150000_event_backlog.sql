-- The event stream's backlog (`/api/events?since=`): every event but log
-- chunks, as its envelope's JSON, by its `seq`. Bounded: the leader's
-- writer keeps the newest events only (see ARCHITECTURE.md, "The event
-- backlog"). Text, not jsonb: replayed byte for byte as it was sent.
CREATE TABLE event_backlog (
    seq      bigint PRIMARY KEY,
    at       timestamptz NOT NULL,
    envelope text NOT NULL
);

-- One row (id 1), written with the backlog: `top` is the highest `seq`
-- handed out (log chunks' included), where the next leader goes on from;
-- `floor` the highest `seq` let go of, so a client asking for events
-- since before it is told it missed some.
CREATE TABLE event_marks (
    id    bigint PRIMARY KEY CHECK (id = 1),
    top   bigint NOT NULL,
    floor bigint NOT NULL
);
