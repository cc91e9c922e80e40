-- What `/api/state` compares each gate with (`previous_runs`): the newest
-- finished run of a kind at a tier, found by walking this index back from
-- the newest run instead of reading every run the tier ever had.
CREATE INDEX gate_runs_by_tier_kind ON gate_runs (tier, gate_kind, id);
