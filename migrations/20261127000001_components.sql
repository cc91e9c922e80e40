-- Every gate component the daemon has been given, with what became of it.
-- `state`: serving (at most one per kind), retired (served before), pending
-- (held for an operator's acceptance), rejected (with `reason`).
CREATE TABLE components (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    contract  TEXT NOT NULL,
    source    TEXT NOT NULL,
    state     TEXT NOT NULL,
    reason    TEXT,
    diff_json TEXT NOT NULL DEFAULT '[]',
    loaded_at TEXT NOT NULL
);
CREATE INDEX components_kind ON components (kind, id);
CREATE UNIQUE INDEX components_one_serving ON components (kind) WHERE state = 'serving';
CREATE UNIQUE INDEX components_one_pending ON components (kind) WHERE state = 'pending';

-- What a run's classifier was given: the last process its runner spawned
-- (each stream's kept tail). Replayed by shadow tests and `reclassify`.
CREATE TABLE raw_outputs (
    gate_run_id INTEGER PRIMARY KEY REFERENCES gate_runs(id),
    gate_kind   TEXT NOT NULL,
    stdout      BLOB NOT NULL,
    stderr      BLOB NOT NULL,
    process_end TEXT NOT NULL,
    duration_ms INTEGER
);
CREATE INDEX raw_outputs_kind ON raw_outputs (gate_kind, gate_run_id);

-- A run classified again by a newer component (`sando reclassify --apply`):
-- the outcome it had and who decided it, kept next to the new ones.
CREATE TABLE reclassifications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_run_id      INTEGER NOT NULL REFERENCES gate_runs(id),
    old_outcome_json TEXT NOT NULL,
    old_digest       TEXT NOT NULL,
    old_contract     TEXT NOT NULL,
    new_outcome_json TEXT NOT NULL,
    new_digest       TEXT NOT NULL,
    new_contract     TEXT NOT NULL,
    at               TEXT NOT NULL
);
