-- Holding and reversing a tier.
--
-- A freeze made from the API. Config windows are not stored: the config is
-- their record, and the planner reads them with the clock.
CREATE TABLE freezes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tier      TEXT REFERENCES tiers(name),  -- NULL: every tier
    reason    TEXT NOT NULL,
    frozen_by TEXT NOT NULL,
    frozen_at TEXT NOT NULL,
    until     TEXT,                         -- NULL: until lifted
    lifted_by TEXT,
    lifted_at TEXT
);
CREATE INDEX freezes_in_force ON freezes (id) WHERE lifted_at IS NULL;

-- An admin's leave for one version to enter a frozen tier.
CREATE TABLE freeze_overrides (
    tier        TEXT NOT NULL REFERENCES tiers(name),
    version     TEXT NOT NULL REFERENCES versions(version),
    granted_by  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    granted_at  TEXT NOT NULL,
    PRIMARY KEY (tier, version)
);

-- A tier taken back to a version it ran before. `from_version` never
-- enters this tier, or any after it, again.
CREATE TABLE rollbacks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tier         TEXT NOT NULL REFERENCES tiers(name),
    from_version TEXT NOT NULL REFERENCES versions(version),
    to_version   TEXT NOT NULL REFERENCES versions(version),
    requested_by TEXT NOT NULL,
    reason       TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    progress     TEXT NOT NULL CHECK (progress IN ('pending', 'done', 'failed')),
    finished_at  TEXT
);
-- One rollback at a time per tier.
CREATE UNIQUE INDEX rollbacks_pending ON rollbacks (tier) WHERE progress = 'pending';

-- A deploy made for a rollback (NULL: a promotion's).
ALTER TABLE deploys ADD COLUMN rollback_id INTEGER REFERENCES rollbacks(id);
