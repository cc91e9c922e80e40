-- How a build used the build cache: `warm` 1 when its base had been fed by
-- a promoted version (0 when empty), NULL when it ran without the cache;
-- `cache_from` the version that last fed that base.
ALTER TABLE builds ADD COLUMN warm INTEGER;
ALTER TABLE builds ADD COLUMN cache_from TEXT;
