//! The store's part of hot reload: gate components and what became of them, the raw outputs runs were classified from, and reclassifications.

use crate::store::RunRecord;
use chrono::{DateTime, Utc};

use super::{Result, SqliteStore};
use crate::domain::{
    ComponentPart, ComponentRecord, ComponentState, GateKind, GateRunId, GateStatus, IMPORTED_RUN,
    ProcessEnd, RawOutput, RunState, TierId, VerdictChange, Version,
};
use crate::sandbox::transcript::{Call, Transcript};

/// A recorded run's classifier input, with where the run belongs.
#[derive(Debug, Clone)]
pub struct RawRun {
    pub run_id: GateRunId,
    pub tier: TierId,
    pub version: Version,
    pub outcome: Option<GateStatus>,
    pub output: RawOutput,
}

impl RawRun {
    /// An imported run with the text the old daemon kept standing in for its
    /// output: as stdout, ended as the old daemon recorded (exit 0 for a
    /// pass, 1 for anything else, the old code not being kept). `None`
    /// without a kept text: a run without a recorded output.
    pub(super) fn from_legacy(
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        outcome: Option<GateStatus>,
        detail: Option<String>,
    ) -> Option<RawRun> {
        let passed = matches!(outcome, Some(GateStatus::Passed { .. }));
        let output = RawOutput {
            stdout: detail?.into_bytes(),
            stderr: Vec::new(),
            end: ProcessEnd::Exited(if passed { 0 } else { 1 }),
            duration_ms: None,
        };
        Some(RawRun { run_id, tier, version, outcome, output })
    }
}

/// `ProcessEnd` as the `process_end` column holds it: `exited 0`,
/// `signaled 9`, `spawn_error 2`, `still_running`.
pub fn process_end_text(end: ProcessEnd) -> String {
    match end {
        ProcessEnd::Exited(code) => format!("exited {code}"),
        ProcessEnd::Signaled(signal) => format!("signaled {signal}"),
        ProcessEnd::SpawnError(errno) => format!("spawn_error {errno}"),
        ProcessEnd::StillRunning => "still_running".to_owned(),
    }
}

/// A recorded output from its columns (`raw_outputs`, `transcript_outputs`);
/// `None` when `process_end` no longer parses.
pub(super) fn output_from(
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    process_end: &str,
    duration_ms: Option<i64>,
) -> Option<RawOutput> {
    Some(RawOutput {
        stdout,
        stderr,
        end: parse_process_end(process_end)?,
        duration_ms: duration_ms.and_then(|d| u64::try_from(d).ok()),
    })
}

/// An output's `process_end` and `duration_ms` columns.
pub(super) fn end_columns(output: &RawOutput) -> (String, Option<i64>) {
    (process_end_text(output.end), output.duration_ms.and_then(|d| i64::try_from(d).ok()))
}

fn parse_process_end(text: &str) -> Option<ProcessEnd> {
    let (what, number) = text.split_once(' ').unwrap_or((text, ""));
    let number = number.parse::<i32>();
    Some(match what {
        "exited" => ProcessEnd::Exited(number.ok()?),
        "signaled" => ProcessEnd::Signaled(number.ok()?),
        "spawn_error" => ProcessEnd::SpawnError(number.ok()?),
        "still_running" => ProcessEnd::StillRunning,
        _ => return None,
    })
}

pub(super) struct ComponentRow {
    pub(super) id: i64,
    pub(super) kind: GateKind,
    pub(super) digest: String,
    pub(super) contract: String,
    pub(super) source: String,
    pub(super) part: ComponentPart,
    pub(super) state: ComponentState,
    pub(super) reason: Option<String>,
    pub(super) diff_json: String,
    pub(super) loaded_at: DateTime<Utc>,
}

impl From<ComponentRow> for ComponentRecord {
    fn from(row: ComponentRow) -> Self {
        ComponentRecord {
            id: row.id,
            kind: row.kind,
            digest: row.digest,
            contract: row.contract,
            source: row.source,
            part: row.part,
            state: row.state,
            reason: row.reason,
            // Written by this daemon from the same type; unreadable only if
            // edited by hand, and then an empty diff is the honest answer.
            diff: serde_json::from_str(&row.diff_json).unwrap_or_default(),
            loaded_at: row.loaded_at,
        }
    }
}

pub(super) struct RawRow {
    pub(super) run_id: GateRunId,
    pub(super) tier: TierId,
    pub(super) version: Version,
    pub(super) outcome: Option<GateStatus>,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    pub(super) process_end: String,
    pub(super) duration_ms: Option<i64>,
}

impl RawRow {
    pub(super) fn into_run(self) -> Option<RawRun> {
        Some(RawRun {
            run_id: self.run_id,
            tier: self.tier,
            version: self.version,
            outcome: self.outcome,
            output: output_from(self.stdout, self.stderr, &self.process_end, self.duration_ms)?,
        })
    }
}

impl SqliteStore {
    pub async fn record_raw_output(
        &self,
        run: GateRunId,
        kind: GateKind,
        output: &RawOutput,
    ) -> Result<()> {
        let (end, duration) = end_columns(output);
        sqlx::query!(
            "INSERT OR REPLACE INTO raw_outputs (gate_run_id, gate_kind, stdout, stderr, process_end, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            run,
            kind,
            output.stdout,
            output.stderr,
            end,
            duration
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` finished runs of `kind` with a recorded output,
    /// newest first: ids only, so a shadow test holds one output at a time.
    pub async fn recent_raw_run_ids(&self, kind: GateKind, limit: u32) -> Result<Vec<GateRunId>> {
        let rows = sqlx::query!(
            r#"SELECT o.gate_run_id AS "run_id!: GateRunId"
               FROM raw_outputs o JOIN gate_runs r ON r.id = o.gate_run_id
               WHERE o.gate_kind = ?1 AND r.status != 'running'
               ORDER BY o.gate_run_id DESC LIMIT ?2"#,
            kind,
            limit
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
               WHERE o.gate_run_id = ?1"#,
            run
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
                      r.outcome_json AS "outcome: GateStatus", o.stdout, o.stderr, o.process_end, o.duration_ms
               FROM gate_runs r LEFT JOIN raw_outputs o ON o.gate_run_id = r.id
               WHERE r.gate_kind = ?1 AND r.status != 'running' AND r.started_at >= ?2
               ORDER BY r.id"#,
            kind,
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
               WHERE gate_kind = ?1 AND component_digest = ?3 AND started_at >= ?2
               ORDER BY id"#,
            kind,
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
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO reclassifications (gate_run_id, old_outcome_json, old_digest, old_contract,
                                            new_outcome_json, new_digest, new_contract, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            run.run_id,
            old,
            old_digest,
            old_contract,
            new,
            digest,
            contract,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE gate_runs SET status = ?1, outcome_json = ?2, classifier_digest = ?3,
                                  classifier_contract = ?4
             WHERE id = ?5",
            label,
            new,
            digest,
            contract,
            run.run_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many times a run was classified again.
    pub async fn reclassification_count(&self, run: GateRunId) -> Result<i64> {
        Ok(sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM reclassifications WHERE gate_run_id = ?1"#,
            run
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
        let diff = serde_json::to_string(diff).expect("verdict changes serialize");
        let mut tx = self.pool.begin().await?;
        match state {
            // One pending component per kind at most.
            ComponentState::Pending => {
                sqlx::query!(
                    "UPDATE components SET state = 'rejected',
                                           reason = COALESCE(reason, 'replaced by a newer candidate')
                     WHERE kind = ?1 AND state = 'pending'",
                    kind
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
        let id = sqlx::query!(
            "INSERT INTO components (kind, part, digest, contract, source, state, reason, diff_json, loaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            kind,
            part,
            digest,
            contract,
            source,
            state,
            reason,
            diff,
            now
        )
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        Ok(id)
    }

    /// Settles a pending component: serving (the one before retires) or
    /// rejected. Returns false if it was no longer pending.
    pub async fn settle_pending(&self, id: i64, accept: bool, reason: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let still_pending = sqlx::query_scalar!(
            r#"SELECT COUNT(*) AS "n!: i64" FROM components WHERE id = ?1 AND state = 'pending'"#,
            id
        )
        .fetch_one(&mut *tx)
        .await?
            == 1;
        if !still_pending {
            return Ok(false);
        }
        if accept {
            let row = sqlx::query!(
                r#"SELECT kind AS "kind: GateKind", part AS "part: ComponentPart"
                   FROM components WHERE id = ?1"#,
                id
            )
            .fetch_one(&mut *tx)
            .await?;
            retire_replaced(&mut tx, row.kind, row.part, row.part == ComponentPart::Gate).await?;
            sqlx::query!("UPDATE components SET state = 'serving' WHERE id = ?1", id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query!(
                "UPDATE components SET state = 'rejected', reason = ?1 WHERE id = ?2",
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
            r#"SELECT COUNT(*) AS "n!: i64" FROM components WHERE kind = ?1 AND digest = ?2"#,
            kind,
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
                      part AS "part: ComponentPart", state AS "state: ComponentState", reason, diff_json,
                      loaded_at AS "loaded_at: DateTime<Utc>"
               FROM components WHERE kind = ?1 ORDER BY id DESC"#,
            kind
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn pending_components(&self) -> Result<Vec<ComponentRecord>> {
        let rows = sqlx::query_as!(
            ComponentRow,
            r#"SELECT id AS "id!", kind AS "kind: GateKind", digest, contract, source,
                      part AS "part: ComponentPart", state AS "state: ComponentState", reason, diff_json,
                      loaded_at AS "loaded_at: DateTime<Utc>"
               FROM components WHERE state = 'pending' ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

/// Retires what a component of `part` coming into service replaces: the
/// serving one of its part, and with `ends_classifier` a classifier-only
/// part too (a whole gate pushed brings its own classifier).
async fn retire_replaced(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    kind: GateKind,
    part: ComponentPart,
    ends_classifier: bool,
) -> Result<()> {
    sqlx::query!(
        "UPDATE components SET state = 'retired'
         WHERE kind = ?1 AND state = 'serving' AND (part = ?2 OR ?3)",
        kind,
        part,
        ends_classifier
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A recorded run's transcript, with what its spawned programs printed.
#[derive(Debug, Clone)]
pub struct RecordedTranscript {
    pub run_id: GateRunId,
    pub transcript: Transcript,
    pub outputs: Vec<RawOutput>,
}

impl SqliteStore {
    /// Keeps a run's transcript (again, for a run evaluated again in place).
    pub async fn record_transcript(
        &self,
        run: GateRunId,
        kind: GateKind,
        transcript: &Transcript,
        outputs: &[RawOutput],
    ) -> Result<()> {
        let json = serde_json::to_string(transcript).expect("a transcript serialises");
        let mut tx = self.pool.begin().await?;
        sqlx::query!("DELETE FROM transcript_outputs WHERE gate_run_id = ?1", run)
            .execute(&mut *tx)
            .await?;
        sqlx::query!(
            "INSERT OR REPLACE INTO run_transcripts (gate_run_id, gate_kind, transcript_json)
             VALUES (?1, ?2, ?3)",
            run,
            kind,
            json
        )
        .execute(&mut *tx)
        .await?;
        for (seq, output) in (0_i64..).zip(outputs) {
            let (end, duration) = end_columns(output);
            sqlx::query!(
                "INSERT INTO transcript_outputs (gate_run_id, seq, stdout, stderr, process_end, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                run,
                seq,
                output.stdout,
                output.stderr,
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
               WHERE t.gate_kind = ?1 AND r.status != 'running'
               ORDER BY t.gate_run_id DESC LIMIT ?2"#,
            kind,
            limit
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.run_id).collect())
    }

    /// One run's transcript with its outputs. `None` when there is none, or
    /// it no longer parses or lost an output (skipped, not fatal).
    pub async fn transcript(&self, run: GateRunId) -> Result<Option<RecordedTranscript>> {
        let Some(row) =
            sqlx::query!("SELECT transcript_json FROM run_transcripts WHERE gate_run_id = ?1", run)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let Ok(transcript) = serde_json::from_str::<Transcript>(&row.transcript_json) else {
            return Ok(None);
        };
        let outputs = sqlx::query!(
            "SELECT stdout, stderr, process_end, duration_ms FROM transcript_outputs
             WHERE gate_run_id = ?1 ORDER BY seq",
            run
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
