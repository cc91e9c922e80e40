-- Sando's schema. Every TEXT column holding a domain value stores its
-- Display form (host/src/domain/sql.rs); timestamps are RFC 3339 UTC.

-- One row per registered version: a commit that built.
CREATE TABLE versions (
    version       TEXT PRIMARY KEY NOT NULL,
    git_sha       TEXT NOT NULL UNIQUE,
    registered_at TEXT NOT NULL,
    artifact      TEXT NOT NULL  -- path of the kept build artifact, under the data directory
);
CREATE INDEX versions_by_time ON versions (registered_at);

-- One row per rebuild request, successful or not.
CREATE TABLE builds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    git_sha      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome_json TEXT,           -- BuildOutcome; NULL while building
    log_ref      TEXT NOT NULL
);

-- Tiers in promotion order, as last loaded from the topology.
CREATE TABLE tiers (
    name              TEXT PRIMARY KEY NOT NULL,
    position          INTEGER NOT NULL,
    current_version   TEXT REFERENCES versions(version),
    -- The newest version waiting to enter this tier (its gates run against it).
    candidate_version TEXT REFERENCES versions(version)
);

CREATE TABLE gate_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    version          TEXT NOT NULL REFERENCES versions(version),
    tier             TEXT NOT NULL REFERENCES tiers(name),
    gate_kind        TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL CHECK (status IN ('running', 'passed', 'failed', 'blocked')),
    outcome_json     TEXT,       -- GateStatus (contract 1); NULL while running
    log_ref          TEXT,
    component_digest TEXT NOT NULL,
    contract         TEXT NOT NULL,
    fuel             INTEGER,
    peak_memory      INTEGER
);
CREATE INDEX gate_runs_by_gate ON gate_runs (tier, version, gate_kind, id);

CREATE TABLE deploys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    version      TEXT NOT NULL REFERENCES versions(version),
    tier         TEXT NOT NULL REFERENCES tiers(name),
    node         TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome_json TEXT NOT NULL,  -- DeployOutcome: in_progress | ok | failed{kind}
    log_ref      TEXT NOT NULL
);

-- When a version finished deploying to a tier: the next tier's burn-in clock.
CREATE TABLE tier_arrivals (
    tier    TEXT NOT NULL REFERENCES tiers(name),
    version TEXT NOT NULL REFERENCES versions(version),
    at      TEXT NOT NULL,
    PRIMARY KEY (tier, version)
);

CREATE TABLE backups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source     TEXT NOT NULL,
    path       TEXT NOT NULL,
    fetched_at TEXT NOT NULL
);

-- The audit trail: who confirmed which gate run, when.
CREATE TABLE confirmations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    gate_run_id  INTEGER NOT NULL REFERENCES gate_runs(id),
    version      TEXT NOT NULL REFERENCES versions(version),
    tier         TEXT NOT NULL REFERENCES tiers(name),
    confirmed_by TEXT NOT NULL,
    confirmed_at TEXT NOT NULL
);
