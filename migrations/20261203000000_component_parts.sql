-- Gate contract 0.2: a kind's classifier can serve apart from its runner.
-- `part`: `gate` (a whole component: the kind's runner, and its classifier
-- unless a `classifier` part serves) or `classifier` (a classifier-only
-- component). One serving component per kind and part; one pending per kind.
ALTER TABLE components ADD COLUMN part TEXT NOT NULL DEFAULT 'gate';
DROP INDEX components_one_serving;
CREATE UNIQUE INDEX components_one_serving ON components (kind, part) WHERE state = 'serving';

-- The classifier in service for each run, beside its runner
-- (`component_digest`). NULL for runs before 0.2, whose component was both.
ALTER TABLE gate_runs ADD COLUMN classifier_digest TEXT;
ALTER TABLE gate_runs ADD COLUMN classifier_contract TEXT;
