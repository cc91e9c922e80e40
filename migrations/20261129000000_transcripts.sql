-- Each run's transcript: the runner's host calls in order and what the host
-- answered (environment values only as digests). A candidate runner is
-- replayed against the newest of its kind before it may serve.
CREATE TABLE run_transcripts (
    gate_run_id     INTEGER PRIMARY KEY REFERENCES gate_runs(id),
    gate_kind       TEXT NOT NULL,
    transcript_json TEXT NOT NULL
);
CREATE INDEX run_transcripts_kind ON run_transcripts (gate_kind, gate_run_id);

-- What each spawned program printed (each stream's kept tail), in the
-- order of the transcript's spawn calls.
CREATE TABLE transcript_outputs (
    gate_run_id INTEGER NOT NULL REFERENCES run_transcripts(gate_run_id),
    seq         INTEGER NOT NULL,
    stdout      BLOB NOT NULL,
    stderr      BLOB NOT NULL,
    process_end TEXT NOT NULL,
    duration_ms INTEGER,
    PRIMARY KEY (gate_run_id, seq)
);
