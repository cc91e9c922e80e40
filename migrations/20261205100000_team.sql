-- Operating Sando as a team.
--
-- A confirmation is an approval bound to the evidence it was given on: the
-- digest of the tier's other gates' outcomes then (NULL before policies,
-- and where a tier has none). An approval whose digest is not the current
-- one no longer counts (it is shown as voided); nothing is rewritten.
ALTER TABLE confirmations ADD COLUMN evidence TEXT;

-- The audit trail: every act of a person, who, what, on what, when, and
-- the state before and after (JSON). Append-only: the triggers refuse any
-- change to a row once written.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT
);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
