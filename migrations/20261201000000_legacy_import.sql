-- History imported from the old, stringly-typed daemon (`sando import-legacy`).

-- One row per import: the old file's digest makes a second import of the
-- same file a no-op, and the report says what it did.
CREATE TABLE legacy_imports (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source_path   TEXT NOT NULL,
    source_sha256 TEXT NOT NULL UNIQUE,
    imported_at   TEXT NOT NULL,
    report_json   TEXT NOT NULL
);

-- A version imported from the old daemon has no artifact here (`artifact`
-- is empty) until a build of its commit keeps one.
ALTER TABLE versions ADD COLUMN imported_from INTEGER REFERENCES legacy_imports(id);

-- The old daemon's prose, kept beside the typed outcome it became.
ALTER TABLE gate_runs ADD COLUMN legacy_detail TEXT;
ALTER TABLE deploys ADD COLUMN legacy_error TEXT;
