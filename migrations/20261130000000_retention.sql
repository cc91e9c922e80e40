-- Retention: when a version's files and recorded outputs were removed
-- (its rows stay: the history), and when a backup's file was.
ALTER TABLE versions ADD COLUMN swept_at TEXT;
ALTER TABLE backups ADD COLUMN removed_at TEXT;
