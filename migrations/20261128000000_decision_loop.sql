-- The decision loop: durable rebuild requests, attempts, blocked runs
-- evaluated in place.

-- A rebuild request is a row from the moment it arrives, so a daemon killed
-- before (or while) building resumes it. `settled_at` is set once it needs
-- no more builds: built, failed as a defect, out of attempts, or cancelled.
CREATE TABLE rebuild_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    git_sha      TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    settled_at   TEXT,
    cancelled_by TEXT
);
CREATE INDEX rebuild_requests_open ON rebuild_requests (id) WHERE settled_at IS NULL;

ALTER TABLE builds ADD COLUMN request_id INTEGER REFERENCES rebuild_requests(id);

-- Which attempt a run is (1 for the first), of how many its policy allows.
ALTER TABLE gate_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE gate_runs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
-- When the run was last evaluated: a blocked run is evaluated again in
-- place (same row, same log) rather than run anew.
ALTER TABLE gate_runs ADD COLUMN evaluated_at TEXT;

CREATE INDEX deploys_by_node ON deploys (tier, version, node, id);
CREATE INDEX gate_runs_by_version ON gate_runs (version, gate_kind, id);

-- The artifact's sha256 (hex) when it was kept; a deploy checks it.
ALTER TABLE versions ADD COLUMN artifact_sha256 TEXT;
