//! The PostgreSQL store's part of a version's life: versions, gate runs, builds, deploys, backups, confirmations, and the decision loop's rows (as `store/mod.rs` is for SQLite).

use crate::store::{NotificationRecord, RunJob, RunRecord, VersionRecord};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};

use super::PgStore;
use crate::domain::{
    BackupRow, BackupSource, BuildOutcome, BuildSummary, Confirmation, DeployId, DeployOutcome,
    DeploySummary, GateKind, GateRunId, GateStatus, GitSha, LogRef, NodeId, PreviousRun,
    RollbackOf, RunState, TierId, Version,
};
use crate::store::{Attempt, OpenRebuild, PlanDeploy, PlanRun, Result, RunComponents, RunCost};

impl PgStore {
    pub async fn version(&self, version: &Version) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE version = $1"#,
            version as &Version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn version_by_sha(&self, sha: &GitSha) -> Result<Option<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions WHERE git_sha = $1 OR substr(git_sha, 1, 7) = $1"#,
            sha as &GitSha
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_version(&self, row: &VersionRecord) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO versions (version, git_sha, registered_at, artifact) VALUES ($1, $2, $3, $4)",
            &row.version as &Version,
            &row.git_sha as &GitSha,
            row.registered_at,
            row.artifact
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `limit` most recently registered versions, newest first.
    pub async fn recent_versions(&self, limit: i64) -> Result<Vec<VersionRecord>> {
        Ok(sqlx::query_as!(
            VersionRecord,
            r#"SELECT version AS "version: Version", git_sha AS "git_sha: GitSha",
                      registered_at AS "registered_at: DateTime<Utc>", artifact
               FROM versions ORDER BY registered_at DESC LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn arrival(&self, tier: &TierId, version: &Version) -> Result<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT at AS "at: DateTime<Utc>" FROM tier_arrivals WHERE tier = $1 AND version = $2"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Inserts the run before it starts, so its id exists for every event,
    /// with the log path made from that id, in one transaction: nobody sees
    /// the run without its log.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_gate_run(
        &self,
        tier: &TierId,
        version: &Version,
        gate: GateKind,
        component: RunComponents<'_>,
        attempt: Attempt,
        now: DateTime<Utc>,
        log_ref: impl FnOnce(GateRunId) -> LogRef,
    ) -> Result<(GateRunId, LogRef)> {
        let mut tx = self.write().await?;
        let (number, of) = (i64::from(attempt.number), i64::from(attempt.of));
        let id = sqlx::query_scalar!(
            "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract,
                                    classifier_digest, classifier_contract, attempt, max_attempts)
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10) RETURNING id",
            version as &Version,
            tier as &TierId,
            gate as GateKind,
            now,
            component.runner_digest,
            component.runner_contract,
            component.classifier_digest,
            component.classifier_contract,
            number,
            of
        )
        .fetch_one(&mut *tx)
        .await?;
        let id = GateRunId::try_from(id).expect("identity ids are positive");
        let log_ref = log_ref(id);
        sqlx::query!(
            "UPDATE gate_runs SET log_ref = $1 WHERE id = $2",
            &log_ref as &LogRef,
            id as GateRunId
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, log_ref))
    }

    /// Records the process a running run started that outlives the daemon,
    /// before it may start. False when the run is no longer running.
    pub async fn record_run_job(
        &self,
        id: GateRunId,
        spawn: i64,
        handle: &str,
        log_at: i64,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let updated = sqlx::query!(
            "UPDATE gate_runs SET job = $1, job_spawn = $2, job_log_at = $3
             WHERE id = $4 AND status = 'running'",
            handle,
            spawn,
            log_at,
            id as GateRunId
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }

    /// Running runs whose process outlives the daemon, oldest first.
    pub async fn run_jobs(&self) -> Result<Vec<RunJob>> {
        Ok(sqlx::query_as!(
            RunJob,
            r#"SELECT id AS "run_id: GateRunId", tier AS "tier: TierId", version AS "version: Version",
                      gate_kind AS "gate: GateKind", attempt, max_attempts, log_ref AS "log_ref: LogRef",
                      job AS "handle!", job_spawn AS "spawn!", job_log_at AS "log_at!"
               FROM gate_runs WHERE job IS NOT NULL AND status = 'running' ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Lets go of a run's process (no executor here can follow it): the
    /// run is then interrupted like any other.
    pub async fn forget_run_job(&self, id: GateRunId) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE gate_runs SET job = NULL WHERE id = $1 AND status = 'running'",
            id as GateRunId
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a delivery in the outbox; its id.
    pub async fn enqueue_notification(
        &self,
        target: &str,
        event: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO notifications (target, event, body, created_at, next_at)
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
            target,
            event,
            body,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The oldest delivery `target` has not taken yet.
    pub async fn next_notification(&self, target: &str) -> Result<Option<NotificationRecord>> {
        Ok(sqlx::query_as!(
            NotificationRecord,
            r#"SELECT id, target, event, body, created_at, attempts, next_at, delivered_at, last_error
               FROM notifications WHERE target = $1 AND delivered_at IS NULL ORDER BY id LIMIT 1"#,
            target
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a delivery's attempt: taken (`error` is `None`), or not,
    /// and when to try again.
    pub async fn notification_tried(
        &self,
        id: i64,
        error: Option<&str>,
        next_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let delivered = error.is_none().then_some(now);
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $1, next_at = $2,
                                      delivered_at = $3
             WHERE id = $4",
            error,
            next_at,
            delivered,
            id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries not taken yet, oldest first (at most `limit`).
    pub async fn pending_notifications(&self, limit: i64) -> Result<Vec<NotificationRecord>> {
        Ok(sqlx::query_as!(
            NotificationRecord,
            r#"SELECT id, target, event, body, created_at, attempts, next_at, delivered_at, last_error
               FROM notifications WHERE delivered_at IS NULL ORDER BY id LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets deliveries taken before `before`; how many.
    pub async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.write().await?;
        let pruned = sqlx::query!("DELETE FROM notifications WHERE delivered_at < $1", before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(pruned)
    }

    pub async fn finish_gate_run(
        &self,
        id: GateRunId,
        status: &GateStatus,
        cost: RunCost,
        now: DateTime<Utc>,
        evaluated_at: DateTime<Utc>,
    ) -> Result<()> {
        let label = status.label();
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE gate_runs SET status = $1, outcome_json = $2, finished_at = $3, evaluated_at = $7,
                                  fuel = $4, peak_memory = $5
             WHERE id = $6",
            label,
            status as &GateStatus,
            now,
            cost.fuel,
            cost.peak_memory,
            id as GateRunId,
            evaluated_at
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn gate_run(&self, id: GateRunId) -> Result<Option<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs WHERE id = $1"#,
            id as GateRunId
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Runs matching every filter given, newest first, with ids below
    /// `before`, at most `limit`.
    pub async fn gate_runs_page(
        &self,
        filter: &crate::store::RunFilter,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let (tier, gate, version) = filter.texts();
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs
               WHERE ($1::text IS NULL OR tier = $1) AND ($2::text IS NULL OR gate_kind = $2)
                 AND ($3::text IS NULL OR version = $3) AND ($4::bigint IS NULL OR id < $4)
               ORDER BY id DESC LIMIT $5"#,
            tier,
            gate,
            version,
            filter.before,
            limit
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The latest run of each gate kind of `version` at `tier`.
    pub async fn latest_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs
               WHERE id IN (SELECT MAX(id) FROM gate_runs WHERE tier = $1 AND version = $2 GROUP BY gate_kind)
               ORDER BY id"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// For each gate kind, its latest finished run at `tier` for a version
    /// other than `version`: what the shown runs are compared with.
    pub async fn previous_runs(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Vec<PreviousRun>> {
        // One walk back per kind along `gate_runs_by_tier_kind`, from the
        // newest: a tier's whole history is never read.
        let mut runs = Vec::new();
        for gate in GateKind::ALL {
            let row = sqlx::query!(
                r#"SELECT id AS "id!: GateRunId", version AS "version!: Version",
                          started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at!: DateTime<Utc>"
                   FROM gate_runs
                   WHERE tier = $1 AND gate_kind = $2 AND version != $3
                     AND status IN ('passed', 'failed') AND finished_at IS NOT NULL
                   ORDER BY id DESC LIMIT 1"#,
                tier as &TierId,
                gate as GateKind,
                version as &Version
            )
            .fetch_optional(&self.pool)
            .await?;
            runs.extend(row.map(|r| PreviousRun {
                gate,
                version: r.version,
                run_id: r.id,
                duration_ms: (r.finished_at - r.started_at).num_milliseconds(),
            }));
        }
        runs.sort_by_key(|r| r.run_id);
        Ok(runs)
    }

    /// The newest `limit` builds, each with the duration of the finished
    /// build before it.
    pub async fn recent_builds(&self, limit: i64) -> Result<Vec<BuildSummary>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id!", git_sha AS "git_sha!: GitSha", outcome_json AS "outcome: BuildOutcome",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      warm, cache_from AS "cache_from: Version"
               FROM builds ORDER BY id DESC LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        let builds = rows
            .into_iter()
            .map(|r| BuildSummary {
                build_id: r.id,
                git_sha: r.git_sha,
                outcome: r.outcome,
                started_at: r.started_at,
                finished_at: r.finished_at,
                duration_ms: r.finished_at.map(|f| (f - r.started_at).num_milliseconds()),
                previous_duration_ms: None,
                warm: r.warm.map(|w| w != 0),
                cache_from: r.cache_from,
            })
            .collect();
        Ok(crate::store::with_previous_durations(builds))
    }

    /// The latest run of a gate kind for a version, at any tier (for `/logs`).
    pub async fn latest_run_of(
        &self,
        version: &Version,
        gate: GateKind,
    ) -> Result<Option<RunRecord>> {
        Ok(sqlx::query_as!(
            RunRecord,
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      gate_kind AS "gate!: GateKind", status AS "status!: RunState", outcome_json AS "outcome: GateStatus",
                      started_at AS "started_at!: DateTime<Utc>", finished_at AS "finished_at: DateTime<Utc>",
                      log_ref AS "log_ref: LogRef", component_digest AS "component_digest!",
                      contract AS "contract!", classifier_digest, classifier_contract, fuel, peak_memory,
                      attempt AS "attempt!", max_attempts AS "max_attempts!"
               FROM gate_runs WHERE version = $1 AND gate_kind = $2 ORDER BY id DESC LIMIT 1"#,
            version as &Version,
            gate as GateKind
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_deploy(
        &self,
        tier: &TierId,
        version: &Version,
        node: &NodeId,
        log_ref: &LogRef,
        now: DateTime<Utc>,
    ) -> Result<DeployId> {
        let mut tx = self.write().await?;
        let id = insert_deploy_on(&mut tx, tier, version, node, log_ref, None, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn finish_deploy(
        &self,
        id: DeployId,
        outcome: &DeployOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE deploys SET outcome_json = $1, finished_at = $2 WHERE id = $3",
            outcome as &DeployOutcome,
            now,
            id as DeployId
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn recent_deploys(&self, limit: i64) -> Result<Vec<DeploySummary>> {
        let rows = sqlx::query!(
            r#"SELECT d.id AS "deploy_id!: DeployId", d.tier AS "tier!: TierId", d.version AS "version!: Version",
                      d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.started_at AS "started_at!: DateTime<Utc>", d.finished_at AS "finished_at: DateTime<Utc>",
                      d.log_ref AS "log_ref!: LogRef", r.from_version AS "rollback_from?: Version",
                      r.to_version AS "rollback_to?: Version", r.requested_by AS "rollback_by?: String"
               FROM deploys d LEFT JOIN rollbacks r ON r.id = d.rollback_id
               ORDER BY d.id DESC LIMIT $1"#,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeploySummary {
                deploy_id: row.deploy_id,
                tier: row.tier,
                version: row.version,
                node: row.node,
                outcome: row.outcome,
                started_at: row.started_at,
                finished_at: row.finished_at,
                log_ref: row.log_ref,
                rollback: match (row.rollback_from, row.rollback_to, row.rollback_by) {
                    (Some(from), Some(to), Some(by)) => Some(RollbackOf { from, to, by }),
                    _ => None,
                },
            })
            .collect())
    }

    pub async fn insert_backup(
        &self,
        source: &BackupSource,
        path: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let value = sqlx::query_scalar!(
            "INSERT INTO backups (source, path, fetched_at) VALUES ($1, $2, $3) RETURNING id",
            source as &BackupSource,
            path,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(value)
    }

    pub async fn latest_backup(&self) -> Result<Option<BackupRow>> {
        Ok(sqlx::query_as!(
            BackupRow,
            r#"SELECT id AS "id!", source AS "source: BackupSource", path,
                      fetched_at AS "fetched_at: DateTime<Utc>"
               FROM backups WHERE removed_at IS NULL ORDER BY id DESC LIMIT 1 -- newest"#
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that `run` should run again. Asking twice is one request.
    pub async fn request_rerun(&self, run: GateRunId, by: &str, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO rerun_requests (gate_run_id, requested_by, requested_at)
             VALUES ($1, $2, $3) ON CONFLICT (gate_run_id) DO NOTHING",
            run as GateRunId,
            by,
            now
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The first confirmation given for `version` at `tier`, if any.
    pub async fn confirmation(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<Confirmation>> {
        Ok(sqlx::query_as!(
            Confirmation,
            r#"SELECT gate_run_id AS "run_id: GateRunId", confirmed_by,
                      confirmed_at AS "confirmed_at: DateTime<Utc>"
               FROM confirmations WHERE tier = $1 AND version = $2 ORDER BY id LIMIT 1"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    // ---- the decision loop ---------------------------------------------------

    pub async fn insert_rebuild_request(&self, sha: &GitSha, now: DateTime<Utc>) -> Result<i64> {
        let mut tx = self.write().await?;
        let value = sqlx::query_scalar!(
            "INSERT INTO rebuild_requests (git_sha, requested_at) VALUES ($1, $2) RETURNING id",
            sha as &GitSha,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Requests still needing a build, oldest first, with how many builds
    /// each has had.
    pub async fn open_rebuilds(&self) -> Result<Vec<OpenRebuild>> {
        Ok(sqlx::query_as!(
            OpenRebuild,
            r#"SELECT r.id AS "id!", r.git_sha AS "git_sha: GitSha",
                      (SELECT COUNT(*) FROM builds b WHERE b.request_id = r.id) AS "builds!: i64",
                      (SELECT MAX(b.finished_at) FROM builds b WHERE b.request_id = r.id)
                          AS "last_ended: DateTime<Utc>",
                      (SELECT b.outcome_json FROM builds b WHERE b.request_id = r.id ORDER BY b.id DESC LIMIT 1)
                          AS "last_outcome: BuildOutcome"
               FROM rebuild_requests r WHERE r.settled_at IS NULL ORDER BY r.id -- oldest first"#
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks a request as needing no more builds.
    pub async fn settle_rebuild(
        &self,
        id: i64,
        cancelled_by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let value = sqlx::query!(
            "UPDATE rebuild_requests SET settled_at = $1, cancelled_by = $2
             WHERE id = $3 AND settled_at IS NULL",
            now,
            cancelled_by,
            id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(value)
    }

    /// The open request for `sha` (full, or a 7-character prefix), if any.
    pub async fn open_rebuild_for(&self, sha: &GitSha) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT id AS "id!" FROM rebuild_requests
               WHERE settled_at IS NULL AND (git_sha = $1 OR substr(git_sha, 1, 7) = $1)
               ORDER BY id LIMIT 1"#,
            sha as &GitSha
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn insert_build_for(
        &self,
        request_id: i64,
        sha: &GitSha,
        log_ref: &LogRef,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut tx = self.write().await?;
        let value = sqlx::query_scalar!(
            "INSERT INTO builds (git_sha, started_at, log_ref, request_id) VALUES ($1, $2, $3, $4)
             RETURNING id",
            sha as &GitSha,
            now,
            log_ref as &LogRef,
            request_id
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(value)
    }

    /// How build `build_id` used the build cache: whether its base had been
    /// fed, and by which version.
    pub async fn record_build_cache(
        &self,
        build_id: i64,
        warm: bool,
        from: Option<&Version>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE builds SET warm = $1, cache_from = $2 WHERE builds.id = $3",
            i64::from(warm),
            from as Option<&Version>,
            build_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a build in one transaction: its outcome; the version it made and
    /// that version as the first tier's candidate (unless the tier already
    /// runs or waits for something newer); the request settled unless the
    /// outcome asks for another build. Returns the candidate it replaced.
    pub async fn finish_build_and_register(
        &self,
        build_id: i64,
        request_id: i64,
        outcome: &BuildOutcome,
        registered: Option<(&VersionRecord, Option<&str>, &TierId)>,
        settle: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Version>> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE builds SET outcome_json = $1, finished_at = $2 WHERE id = $3",
            outcome as &BuildOutcome,
            now,
            build_id
        )
        .execute(&mut *tx)
        .await?;
        let mut replaced = None;
        if let Some((row, artifact_sha256, first_tier)) = registered {
            sqlx::query!(
                // A version imported from the old daemon has no artifact
                // until this build of its commit keeps one.
                "INSERT INTO versions (version, git_sha, registered_at, artifact, artifact_sha256)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (version) DO UPDATE SET git_sha = excluded.git_sha,
                     artifact = excluded.artifact, artifact_sha256 = excluded.artifact_sha256,
                     swept_at = NULL
                 WHERE versions.artifact = ''",
                &row.version as &Version,
                &row.git_sha as &GitSha,
                row.registered_at,
                row.artifact,
                artifact_sha256
            )
            .execute(&mut *tx)
            .await?;
            replaced = offer_candidate(&mut tx, first_tier, &row.version).await?;
        }
        if settle {
            sqlx::query!(
                "UPDATE rebuild_requests SET settled_at = $1 WHERE id = $2 AND settled_at IS NULL",
                now,
                request_id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// The latest run of each gate kind of `version` at `tier`, with what
    /// the planner needs: attempt, last evaluation, and a rerun request.
    pub async fn plan_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanRun>> {
        Ok(sqlx::query_as!(
            PlanRun,
            r#"SELECT g.id AS "run_id!: GateRunId", g.gate_kind AS "gate!: GateKind",
                      g.outcome_json AS "outcome: GateStatus", g.attempt AS "attempt!",
                      COALESCE(g.evaluated_at, g.finished_at, g.started_at) AS "evaluated_at!: DateTime<Utc>",
                      (r.gate_run_id IS NOT NULL) AS "rerun_requested!: bool"
               FROM gate_runs g LEFT JOIN rerun_requests r ON r.gate_run_id = g.id
               WHERE g.id IN (SELECT MAX(id) FROM gate_runs WHERE tier = $1 AND version = $2 GROUP BY gate_kind)"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Per node: the latest deploy of `version` at `tier`, and how many there were.
    pub async fn plan_deploys(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanDeploy>> {
        Ok(sqlx::query_as!(
            PlanDeploy,
            r#"WITH reset AS (SELECT COALESCE(MAX(id), 0) AS id FROM deploys
                              WHERE tier = $1 AND rollback_id IS NOT NULL),
                    mine AS (SELECT * FROM deploys
                             WHERE tier = $1 AND version = $2 AND rollback_id IS NULL
                               AND id > (SELECT id FROM reset))
               SELECT d.node AS "node!: NodeId", d.outcome_json AS "outcome!: DeployOutcome",
                      d.finished_at AS "finished_at: DateTime<Utc>",
                      (SELECT COUNT(*) FROM mine c WHERE c.node = d.node) AS "attempts!: i64"
               FROM mine d WHERE d.id IN (SELECT MAX(id) FROM mine GROUP BY node)"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// When something a blocked gate of `version` at `tier` may wait for last
    /// changed: a confirmation, a fetched backup.
    pub async fn inputs_changed(
        &self,
        tier: &TierId,
        version: &Version,
    ) -> Result<Option<DateTime<Utc>>> {
        let confirmed = sqlx::query_scalar!(
            r#"SELECT MAX(confirmed_at) AS "at: DateTime<Utc>" FROM confirmations WHERE tier = $1 AND version = $2"#,
            tier as &TierId,
            version as &Version
        )
        .fetch_one(&self.pool)
        .await?;
        let backup = sqlx::query_scalar!(
            r#"SELECT fetched_at AS "at: DateTime<Utc>" FROM backups ORDER BY id DESC LIMIT 1 -- any backup"#
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(confirmed.max(backup))
    }

    /// Every node of `tier` runs `version`: it becomes current there, its
    /// arrival starts the next tier's burn-in clock, and it is offered to the
    /// next tier, all in one transaction. Returns the next tier's candidate
    /// it replaced.
    pub async fn promote_to(
        &self,
        tier: &TierId,
        version: &Version,
        next: Option<&TierId>,
        now: DateTime<Utc>,
    ) -> Result<Option<Version>> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE tiers SET current_version = $1,
                 candidate_version = CASE WHEN candidate_version = $1 THEN NULL ELSE candidate_version END
             WHERE name = $2",
            version as &Version,
            tier as &TierId
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO tier_arrivals (tier, version, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            tier as &TierId,
            version as &Version,
            now
        )
        .execute(&mut *tx)
        .await?;
        let replaced = match next {
            Some(next) => offer_candidate(&mut tx, next, version).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(replaced)
    }

    /// The sha256 (hex) recorded for a version's artifact when it was kept.
    pub async fn artifact_sha256(&self, version: &Version) -> Result<Option<String>> {
        Ok(sqlx::query_scalar!(
            r#"SELECT artifact_sha256 AS "sha: String" FROM versions WHERE version = $1"#,
            version as &Version
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Clears `tier`'s candidate if it is still `version`.
    pub async fn drop_candidate(&self, tier: &TierId, version: &Version) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE tiers SET candidate_version = NULL WHERE name = $1 AND candidate_version = $2",
            tier as &TierId,
            version as &Version
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a deploy before its command runs, durably even if the server
    /// is set to commit asynchronously (`synchronous_commit = on` for this
    /// one transaction), so a restart knows a deploy may have half-happened
    /// and runs it again.
    pub async fn insert_deploy_durably(
        &self,
        tier: &TierId,
        version: &Version,
        node: &NodeId,
        log_ref: &LogRef,
        rollback: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<DeployId> {
        let mut tx = self.write().await?;
        sqlx::query("SET LOCAL synchronous_commit = on").execute(&mut *tx).await?;
        let id = insert_deploy_on(&mut tx, tier, version, node, log_ref, rollback, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Gives a deploy a worker left unfinished its outcome.
    pub async fn finish_deploy_if_in_progress(
        &self,
        id: DeployId,
        outcome: &DeployOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE deploys SET outcome_json = $1, finished_at = $2 WHERE id = $3 AND outcome_json = $4",
            outcome as &DeployOutcome,
            now,
            id as DeployId,
            DeployOutcome::InProgress as DeployOutcome
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives a build a worker left unfinished its outcome.
    pub async fn finish_build_if_running(
        &self,
        id: i64,
        outcome: &BuildOutcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query!(
            "UPDATE builds SET outcome_json = $1, finished_at = $2 WHERE id = $3 AND outcome_json IS NULL",
            outcome as &BuildOutcome,
            now,
            id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Makes `version` the candidate of `tier` unless the tier already runs it
/// or something newer, or waits for something newer. Returns the candidate
/// it replaced. The tier's row is locked first, so two writers offering to
/// one tier decide one after the other.
async fn offer_candidate(
    tx: &mut Transaction<'_, Postgres>,
    tier: &TierId,
    version: &Version,
) -> Result<Option<Version>> {
    let row = sqlx::query!(
        r#"SELECT current_version AS "current: Version", candidate_version AS "candidate: Version"
           FROM tiers WHERE name = $1 FOR UPDATE"#,
        tier as &TierId
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if row.current.as_ref().is_some_and(|c| c >= version)
        || row.candidate.as_ref().is_some_and(|c| c >= version)
    {
        return Ok(None);
    }
    sqlx::query!(
        "UPDATE tiers SET candidate_version = $1 WHERE name = $2",
        version as &Version,
        tier as &TierId
    )
    .execute(&mut **tx)
    .await?;
    Ok(row.candidate)
}

/// A deploy's row, `in_progress`, on `conn`.
async fn insert_deploy_on(
    conn: &mut PgConnection,
    tier: &TierId,
    version: &Version,
    node: &NodeId,
    log_ref: &LogRef,
    rollback: Option<i64>,
    now: DateTime<Utc>,
) -> Result<DeployId> {
    let id = sqlx::query_scalar!(
        "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref, rollback_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        version as &Version,
        tier as &TierId,
        node as &NodeId,
        now,
        DeployOutcome::InProgress as DeployOutcome,
        log_ref as &LogRef,
        rollback
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(DeployId::try_from(id).expect("identity ids are positive"))
}
