-- A gate run's process that outlives the daemon (a Slurm job): the
-- executor's handle for it, which of the run's spawns it is, and where its
-- output starts in the run's log. Written before the job may start, so a
-- daemon after a crash (or a standby taking over) adopts it.
ALTER TABLE gate_runs ADD COLUMN job TEXT;
ALTER TABLE gate_runs ADD COLUMN job_spawn INTEGER;
ALTER TABLE gate_runs ADD COLUMN job_log_at INTEGER;
