-- An operator's request to run a failed gate again. The scheduler treats a
-- failed run with a request as unsettled; the new run supersedes it.
CREATE TABLE rerun_requests (
    gate_run_id  INTEGER PRIMARY KEY REFERENCES gate_runs(id),
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);
