//! The PostgreSQL store's part of hot reload: gate components and what became of them, the raw outputs runs were classified from, and reclassifications (as `store/components.rs` is for SQLite).
//!
//! JSON the SQLite store keeps as text (a component's diff, a transcript) is
//! `jsonb` here: written from `serde_json::Value`, read back as text and
//! parsed as on SQLite. PostgreSQL has no single writer as SQLite has, so
//! the component rows are locked while a component is inserted or settled:
//! two daemons settle a candidate once, and never both pend one.

use crate::store::RunRecord;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::domain::{
    ComponentPart, ComponentRecord, ComponentState, GateKind, GateRunId, GateStatus, IMPORTED_RUN,
    RawOutput, RunState, TierId, VerdictChange, Version,
};
use crate::sandbox::transcript::{Call, Transcript};
use crate::store::Result;
use crate::store::components::{
    ComponentRow, RawRow, RawRun, RecordedTranscript, end_columns, output_from,
};

impl PgStore {
    pub async fn record_raw_output(
        &self,
        run: GateRunId,
        kind: GateKind,
        output: &RawOutput,
    ) -> Result<()> {
        let (end, duration) = end_columns(output);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO raw_outputs (gate_run_id, gate_kind, stdout, stderr, process_end, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (gate_run_id) DO UPDATE SET gate_kind = excluded.gate_kind,
                 stdout = excluded.stdout, stderr = excluded.stderr,
                 process_end = excluded.process_end, duration_ms = excluded.duration_ms",
            run as GateRunId,
            kind as GateKind,
            &output.stdout,
            &output.stderr,
            end,
            duration
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` finished runs of `kind` with a recorded output,
    /// newest first: ids only, so a shadow test holds one output at a time.
    pub async fn recent_raw_run_ids(&self, kind: GateKind, limit: u32) -> Result<Vec<GateRunId>> {
        let rows = sqlx::query!(
            r#"SELECT o.gate_run_id AS "run_id!: GateRunId"
               FROM raw_outputs o JOIN gate_runs r ON r.id = o.gate_run_id
               WHERE o.gate_kind = $1 AND r.status != 'running'
               ORDER BY o.gate_run_id DESC LIMIT $2"#,
            kind as GateKind,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.run_id).collect())
    }

    /// One run's recorded output, with where the run belongs.
    pub async fn raw_run(&self, run: GateRunId) -> Result<Option<RawRun>> {
        let row = sqlx::query_as!(
            RawRow,
            r#"SELECT r.id AS "run_id!: GateRunId", r.tier AS "tier!: TierId", r.version AS "version!: Version",
                      r.outcome_json AS "outcome: GateStatus", o.stdout AS "stdout!", o.stderr AS "stderr!",
                      o.process_end AS "process_end!", o.duration_ms
               FROM raw_outputs o JOIN gate_runs r ON r.id = o.gate_run_id
               WHERE o.gate_run_id = $1"#,
            run as GateRunId
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(RawRow::into_run))
    }

    /// Finished runs of `kind` started at or after `since`, oldest first,
    /// each with its recorded output if there is one.
    pub async fn runs_to_reclassify(
        &self,
        kind: GateKind,
        since: DateTime<Utc>,
    ) -> Result<Vec<(GateRunId, Option<RawRun>)>> {
        let rows = sqlx::query!(
            r#"SELECT r.id AS "run_id!: GateRunId", r.tier AS "tier!: TierId", r.version AS "version!: Version",
                      r.outcome_json AS "outcome: GateStatus", o.stdout AS "stdout?", o.stderr AS "stderr?",
                      o.process_end AS "process_end?", o.duration_ms AS "duration_ms?"
               FROM gate_runs r LEFT JOIN raw_outputs o ON o.gate_run_id = r.id
               WHERE r.gate_kind = $1 AND r.status != 'running' AND r.started_at >= $2
               ORDER BY r.id"#,
            kind as GateKind,
            since
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let raw = match (row.stdout, row.stderr, row.process_end) {
                    (Some(stdout), Some(stderr), Some(process_end)) => RawRow {
                        run_id: row.run_id,
                        tier: row.tier,
                        version: row.version,
                        outcome: row.outcome,
                        stdout,
                        stderr,
                        process_end,
                        duration_ms: row.duration_ms,
                    }
                    .into_run(),
                    _ => None,
                };
                (row.run_id, raw)
            })
            .collect())
    }

    /// Runs of `kind` imported from the old daemon, started at or after
    /// `since`, each with the text the old daemon kept standing in for its
    /// output: as stdout, ended as the old daemon recorded (exit 0 for a pass,
    /// 1 for anything else, the old code not being kept).
    pub async fn legacy_runs_to_reclassify(
        &self,
        kind: GateKind,
        since: DateTime<Utc>,
    ) -> Result<Vec<(GateRunId, Option<RawRun>)>> {
        let rows = sqlx::query!(
            r#"SELECT id AS "run_id!: GateRunId", tier AS "tier!: TierId", version AS "version!: Version",
                      outcome_json AS "outcome: GateStatus", legacy_detail AS "detail: String"
               FROM gate_runs
               WHERE gate_kind = $1 AND component_digest = $3 AND started_at >= $2
               ORDER BY id"#,
            kind as GateKind,
            since,
            IMPORTED_RUN
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let run =
                    RawRun::from_legacy(row.run_id, row.tier, row.version, row.outcome, row.detail);
                (row.run_id, run)
            })
            .collect())
    }

    /// Gives `run` a new outcome from another component, keeping the old
    /// outcome and the provenance of both.
    pub async fn reclassify(
        &self,
        run: &RunRecord,
        new: &GateStatus,
        digest: &str,
        contract: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(old) = &run.outcome else { return Ok(()) };
        let label = RunState::of(new);
        // The classifier that decided it before: its own, before 0.2.
        let old_digest = run.classifier_digest.as_ref().unwrap_or(&run.component_digest);
        let old_contract = run.classifier_contract.as_ref().unwrap_or(&run.contract);
        let mut tx = self.write().await?;
        sqlx::query!(
            "INSERT INTO reclassifications (gate_run_id, old_outcome_json, old_digest, old_contract,
                                            new_outcome_json, new_digest, new_contract, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            run.run_id as GateRunId,
            old as &GateStatus,
            old_digest,
            old_contract,
            new as &GateStatus,
            digest,
            contract,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE gate_runs SET status = $1, outcome_json = $2, classifier_digest = $3,
                                  classifier_contract = $4
             WHERE id = $5",
            label as RunState,
            new as &GateStatus,
            digest,
            contract,
            run.run_id as GateRunId
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many times a run was classified again.
    pub async fn reclassification_count(&self, run: GateRunId) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM reclassifications WHERE gate_run_id = $1"#,
            run as GateRunId
        )
        .fetch_one(&self.pool)
        .await?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_component(
        &self,
        kind: GateKind,
        part: ComponentPart,
        digest: &str,
        contract: &str,
        source: &str,
        state: ComponentState,
        reason: Option<&str>,
        diff: &[VerdictChange],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let diff = serde_json::to_value(diff).expect("verdict changes serialize");
        let mut tx = self.write().await?;
        lock_components(&mut tx).await?;
        match state {
            // One pending component per kind at most.
            ComponentState::Pending => {
                sqlx::query!(
                    "UPDATE components SET state = 'rejected',
                                           reason = COALESCE(reason, 'replaced by a newer candidate')
                     WHERE kind = $1 AND state = 'pending'",
                    kind as GateKind
                )
                .execute(&mut *tx)
                .await?;
            }
            // A shipped gate arriving with a Sando upgrade keeps the
            // operator's classifier-only part; any other whole gate ends it.
            ComponentState::Serving => {
                let ends_classifier = part == ComponentPart::Gate && source != "shipped";
                retire_replaced(&mut tx, kind, part, ends_classifier).await?
            }
            ComponentState::Retired | ComponentState::Rejected => {}
        }
        let id = sqlx::query_scalar!(
            "INSERT INTO components (kind, part, digest, contract, source, state, reason, diff_json, loaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING id",
            kind as GateKind,
            part as ComponentPart,
            digest,
            contract,
            source,
            state as ComponentState,
            reason,
            diff,
            now
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Settles a pending component: serving (the one before retires) or
    /// rejected. Returns false if it was no longer pending.
    pub async fn settle_pending(&self, id: i64, accept: bool, reason: &str) -> Result<bool> {
        let mut tx = self.write().await?;
        // Locked first: a daemon settling the same candidate waits, then
        // finds it settled.
        lock_components(&mut tx).await?;
        let Some(row) = sqlx::query!(
            r#"SELECT kind AS "kind: GateKind", part AS "part: ComponentPart"
               FROM components WHERE id = $1 AND state = 'pending'"#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        if accept {
            retire_replaced(&mut tx, row.kind, row.part, row.part == ComponentPart::Gate).await?;
            sqlx::query!("UPDATE components SET state = 'serving' WHERE id = $1", id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query!(
                "UPDATE components SET state = 'rejected', reason = $1 WHERE id = $2",
                reason,
                id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Whether `digest` was ever given to the daemon for `kind`.
    pub async fn component_known(&self, kind: GateKind, digest: &str) -> Result<bool> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM components WHERE kind = $1 AND digest = $2"#,
            kind as GateKind,
            digest
        )
        .fetch_one(&self.pool)
        .await?
            > 0)
    }

    /// Every component of `kind`, newest first.
    pub async fn components_of(&self, kind: GateKind) -> Result<Vec<ComponentRecord>> {
        let rows = sqlx::query_as!(
            ComponentRow,
            r#"SELECT id AS "id!", kind AS "kind: GateKind", digest, contract, source,
                      part AS "part: ComponentPart", state AS "state: ComponentState", reason,
                      diff_json::text AS "diff_json!", loaded_at AS "loaded_at: DateTime<Utc>"
               FROM components WHERE kind = $1 ORDER BY id DESC"#,
            kind as GateKind
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn pending_components(&self) -> Result<Vec<ComponentRecord>> {
        let rows = sqlx::query_as!(
            ComponentRow,
            r#"SELECT id AS "id!", kind AS "kind: GateKind", digest, contract, source,
                      part AS "part: ComponentPart", state AS "state: ComponentState", reason,
                      diff_json::text AS "diff_json!", loaded_at AS "loaded_at: DateTime<Utc>"
               FROM components WHERE state = 'pending' ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// Holds every other writer of `components` off until `tx` ends (readers
/// go on): what SQLite's one writer at a time gives its store.
async fn lock_components(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query!("LOCK TABLE components IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
    Ok(())
}

/// Retires what a component of `part` coming into service replaces: the
/// serving one of its part, and with `ends_classifier` a classifier-only
/// part too (a whole gate pushed brings its own classifier).
async fn retire_replaced(
    tx: &mut Transaction<'_, Postgres>,
    kind: GateKind,
    part: ComponentPart,
    ends_classifier: bool,
) -> Result<()> {
    sqlx::query!(
        "UPDATE components SET state = 'retired'
         WHERE kind = $1 AND state = 'serving' AND (part = $2 OR $3)",
        kind as GateKind,
        part as ComponentPart,
        ends_classifier
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl PgStore {
    /// Keeps a run's transcript (again, for a run evaluated again in place).
    pub async fn record_transcript(
        &self,
        run: GateRunId,
        kind: GateKind,
        transcript: &Transcript,
        outputs: &[RawOutput],
    ) -> Result<()> {
        let json = serde_json::to_value(transcript).expect("a transcript serialises");
        let mut tx = self.write().await?;
        // The transcript's row first (an update in place, unlike SQLite's
        // replace): its lock makes another recording of the run wait until
        // this one is committed, then replace its outputs whole.
        sqlx::query!(
            "INSERT INTO run_transcripts (gate_run_id, gate_kind, transcript_json)
             VALUES ($1, $2, $3)
             ON CONFLICT (gate_run_id) DO UPDATE SET gate_kind = excluded.gate_kind,
                 transcript_json = excluded.transcript_json",
            run as GateRunId,
            kind as GateKind,
            json
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM transcript_outputs WHERE gate_run_id = $1", run as GateRunId)
            .execute(&mut *tx)
            .await?;
        for (seq, output) in (0_i64..).zip(outputs) {
            let (end, duration) = end_columns(output);
            sqlx::query!(
                "INSERT INTO transcript_outputs (gate_run_id, seq, stdout, stderr, process_end, duration_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                run as GateRunId,
                seq,
                &output.stdout,
                &output.stderr,
                end,
                duration
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` transcripts of finished runs of `kind`, newest
    /// first: ids only, so a review holds one transcript at a time.
    pub async fn recent_transcript_ids(
        &self,
        kind: GateKind,
        limit: u32,
    ) -> Result<Vec<GateRunId>> {
        let rows = sqlx::query!(
            r#"SELECT t.gate_run_id AS "run_id!: GateRunId"
               FROM run_transcripts t JOIN gate_runs r ON r.id = t.gate_run_id
               WHERE t.gate_kind = $1 AND r.status != 'running'
               ORDER BY t.gate_run_id DESC LIMIT $2"#,
            kind as GateKind,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.run_id).collect())
    }

    /// One run's transcript with its outputs. `None` when there is none, or
    /// it no longer parses or lost an output (skipped, not fatal).
    pub async fn transcript(&self, run: GateRunId) -> Result<Option<RecordedTranscript>> {
        let Some(json) = sqlx::query_scalar!(
            r#"SELECT transcript_json::text AS "transcript_json!" FROM run_transcripts
               WHERE gate_run_id = $1"#,
            run as GateRunId
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let Ok(transcript) = serde_json::from_str::<Transcript>(&json) else {
            return Ok(None);
        };
        let outputs = sqlx::query!(
            "SELECT stdout, stderr, process_end, duration_ms FROM transcript_outputs
             WHERE gate_run_id = $1 ORDER BY seq",
            run as GateRunId
        )
        .fetch_all(&self.pool)
        .await?;
        let outputs: Option<Vec<RawOutput>> = outputs
            .into_iter()
            .map(|o| output_from(o.stdout, o.stderr, &o.process_end, o.duration_ms))
            .collect();
        let spawns = transcript.calls.iter().filter(|c| matches!(c, Call::Spawn(_))).count();
        Ok(outputs.filter(|o| o.len() == spawns).map(|outputs| RecordedTranscript {
            run_id: run,
            transcript,
            outputs,
        }))
    }
}
