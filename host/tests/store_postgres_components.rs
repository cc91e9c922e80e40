//! The PostgreSQL store's hot-reload part (`store/postgres/components.rs`) against the SQLite store's: the same calls on both give the same answers (raw outputs, reclassifications, components, transcripts), on a real PostgreSQL (`./x test` starts it).

mod util;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use sando::domain::{
    ComponentPart, ComponentState, GateBlocker, GateFailure, GateKind, GateRunId, GateStatus,
    PassNote, ProcessEnd, RawOutput, TierId, VerdictChange, Version,
};
use sando::sandbox::transcript::{Call, SpawnCall, Transcript};
use sando::sandbox::{GateParams, Invocation};
use sando::store::VersionRecord;
use sando::store::{Attempt, PgStore, RunComponents, RunCost, Store};
use sqlx::{PgPool, SqlitePool};

/// Both stores, set up alike (the same tiers, versions and runs, so the
/// same ids), and a pool on each for what no method writes or reads.
struct Both {
    sqlite: Store,
    pg: PgStore,
    sqlite_pool: SqlitePool,
    pg_pool: PgPool,
    _dir: tempfile::TempDir,
}

/// Calls `method` with the same arguments on both stores, asserts the
/// answers are the same, and gives the SQLite store's.
macro_rules! same {
    ($both:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        let sqlite = $both.sqlite.$method($($arg),*).await.unwrap();
        let pg = $both.pg.$method($($arg),*).await.unwrap();
        assert_eq!(format!("{sqlite:?}"), format!("{pg:?}"), "{} on SQLite and PostgreSQL", stringify!($method));
        sqlite
    }};
}

fn tier(name: &str) -> TierId {
    name.parse().unwrap()
}

fn version(text: &str) -> Version {
    text.parse().unwrap()
}

/// A time PostgreSQL keeps exactly (it keeps microseconds).
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
        + Duration::minutes(minutes)
        + Duration::microseconds(123_456)
}

fn passed() -> GateStatus {
    GateStatus::Passed { note: PassNote::TestsPassed { count: 12, duration_s: 3, flaky: vec![] } }
}

fn failed() -> GateStatus {
    GateStatus::failed(GateFailure::CargoTest {
        failed_count: 2,
        first_failed: Some("store::it_works".into()),
    })
}

fn unclassified() -> GateStatus {
    GateStatus::unclassified()
}

fn output(stdout: &[u8], end: ProcessEnd, duration_ms: Option<u64>) -> RawOutput {
    RawOutput {
        stdout: stdout.to_vec(),
        stderr: b"warning: \xff\x00 bytes".to_vec(),
        end,
        duration_ms,
    }
}

async fn both() -> Both {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sando.sqlite");
    let sqlite = Store::open(&path).await.unwrap();
    let url = util::postgres::fresh_database().await;
    let pg = PgStore::open(&url, sando::store::Role::Command).await.unwrap();
    let tiers = [tier("staging"), tier("prod")];
    sqlite.sync_tiers(&tiers).await.unwrap();
    pg.sync_tiers(&tiers).await.unwrap();
    let sqlite_pool = SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let pg_pool = PgPool::connect(&url).await.unwrap();
    let both = Both { sqlite, pg, sqlite_pool, pg_pool, _dir: dir };
    for (n, v) in ["0.1.0", "0.2.0"].into_iter().enumerate() {
        let row = VersionRecord {
            version: version(v),
            git_sha: format!("{n}{}", "a".repeat(39)).parse().unwrap(),
            registered_at: at(n as i64),
            artifact: format!("artifacts/{v}.tar"),
        };
        both.sqlite.insert_version(&row).await.unwrap();
        sqlx::query(
            "INSERT INTO versions (version, git_sha, registered_at, artifact) VALUES ($1, $2, $3, $4)",
        )
        .bind(&row.version)
        .bind(&row.git_sha)
        .bind(row.registered_at)
        .bind(&row.artifact)
        .execute(&both.pg_pool)
        .await
        .unwrap();
    }
    both
}

impl Both {
    /// A gate run on both stores, started at `started_at`, finished a second
    /// later with `outcome` (still running without one).
    async fn run(
        &self,
        kind: GateKind,
        v: &str,
        started_at: DateTime<Utc>,
        outcome: Option<&GateStatus>,
    ) -> GateRunId {
        let (tier, version) = (tier("staging"), version(v));
        let components = RunComponents {
            runner_digest: "runner",
            runner_contract: "0.2.0",
            classifier_digest: "classifier",
            classifier_contract: "0.2.0",
        };
        let (id, log_ref) = self
            .sqlite
            .insert_gate_run(
                &tier,
                &version,
                kind,
                components,
                Attempt { number: 1, of: 1 },
                started_at,
                |id| format!("runs/{id}.log").parse().unwrap(),
            )
            .await
            .unwrap();
        let finished_at = outcome.map(|_| started_at + Duration::seconds(1));
        if let (Some(outcome), Some(finished_at)) = (outcome, finished_at) {
            self.sqlite
                .finish_gate_run(id, outcome, RunCost::ZERO, finished_at, finished_at)
                .await
                .unwrap();
        }
        let status = outcome.map_or("running", GateStatus::label);
        let cost = outcome.map(|_| 0_i64);
        let pg_id: GateRunId = sqlx::query_scalar(
            "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, outcome_json,
                                    finished_at, evaluated_at, log_ref, component_digest, contract,
                                    classifier_digest, classifier_contract, fuel, peak_memory)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, 'runner', '0.2.0', 'classifier', '0.2.0', $9, $9)
             RETURNING id",
        )
        .bind(&version)
        .bind(&tier)
        .bind(kind)
        .bind(started_at)
        .bind(status)
        .bind(outcome)
        .bind(finished_at)
        .bind(&log_ref)
        .bind(cost)
        .fetch_one(&self.pg_pool)
        .await
        .unwrap();
        assert_eq!(pg_id, id, "both stores give the run the same id");
        id
    }

    /// The same edit by hand on both databases (`?1`, `?2` on SQLite, `$1`,
    /// `$2` on PostgreSQL): a row's id, and a text if the statement takes one.
    async fn edit(&self, sqlite: &str, pg: &str, id: i64, text: Option<&str>) {
        let mut sqlite = sqlx::query(sqlite).bind(id);
        let mut pg = sqlx::query(pg).bind(id);
        if let Some(text) = text {
            sqlite = sqlite.bind(text);
            pg = pg.bind(text);
        }
        sqlite.execute(&self.sqlite_pool).await.unwrap();
        pg.execute(&self.pg_pool).await.unwrap();
    }
}

#[tokio::test]
async fn raw_outputs_read_back_the_same_on_both_backends() {
    let both = both().await;
    let r1 = both.run(GateKind::CargoTest, "0.1.0", at(10), Some(&passed())).await;
    let r2 = both.run(GateKind::CargoTest, "0.2.0", at(20), Some(&failed())).await;
    let running = both.run(GateKind::CargoTest, "0.2.0", at(30), None).await;
    let smoke = both.run(GateKind::BootSmoke, "0.2.0", at(40), Some(&passed())).await;
    let no_output = both.run(GateKind::CargoTest, "0.2.0", at(50), Some(&unclassified())).await;
    let first = output(b"test result: ok.\n\xfe\x00", ProcessEnd::Exited(0), Some(1_500));
    same!(both, record_raw_output(r1, GateKind::CargoTest, &first));
    same!(
        both,
        record_raw_output(r2, GateKind::CargoTest, &output(b"", ProcessEnd::Signaled(9), None))
    );
    // Recorded again: the second output replaces the first.
    let replaced = output(b"error[E0432]", ProcessEnd::SpawnError(2), Some(0));
    same!(both, record_raw_output(r2, GateKind::CargoTest, &replaced));
    same!(
        both,
        record_raw_output(
            running,
            GateKind::CargoTest,
            &output(b"", ProcessEnd::StillRunning, None)
        )
    );
    same!(
        both,
        record_raw_output(
            smoke,
            GateKind::BootSmoke,
            &output(b"up", ProcessEnd::Exited(1), Some(9))
        )
    );

    assert_eq!(same!(both, recent_raw_run_ids(GateKind::CargoTest, 10)), [r2, r1]);
    assert_eq!(same!(both, recent_raw_run_ids(GateKind::CargoTest, 1)), [r2]);
    assert_eq!(same!(both, recent_raw_run_ids(GateKind::BootSmoke, 10)), [smoke]);
    assert!(same!(both, recent_raw_run_ids(GateKind::BurnIn, 10)).is_empty());

    let raw = same!(both, raw_run(r1)).expect("recorded");
    assert_eq!((raw.run_id, raw.tier, raw.version), (r1, tier("staging"), version("0.1.0")));
    assert_eq!((raw.outcome, raw.output), (Some(passed()), first.clone()));
    assert_eq!(same!(both, raw_run(r2)).expect("recorded").output, replaced);
    assert_eq!(same!(both, raw_run(running)).expect("recorded").outcome, None);
    same!(both, raw_run(smoke)).expect("recorded");
    assert!(same!(both, raw_run(no_output)).is_none());
    assert!(same!(both, raw_run(GateRunId::try_from(999).unwrap())).is_none());

    // Finished runs of the kind from `since` on, with or without an output;
    // still running and other kinds are left out.
    let runs = same!(both, runs_to_reclassify(GateKind::CargoTest, at(20)));
    let ids: Vec<_> = runs.iter().map(|(id, raw)| (*id, raw.is_some())).collect();
    assert_eq!(ids, [(r2, true), (no_output, false)]);
    let runs = same!(both, runs_to_reclassify(GateKind::CargoTest, at(0)));
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].1.as_ref().expect("recorded").output.stdout, first.stdout);
    assert!(same!(both, runs_to_reclassify(GateKind::CargoTest, at(60))).is_empty());

    // An end that no longer parses: no output, on both.
    both.edit(
        "UPDATE raw_outputs SET process_end = ?2 WHERE gate_run_id = ?1",
        "UPDATE raw_outputs SET process_end = $2 WHERE gate_run_id = $1",
        r1.get(),
        Some("exploded 3"),
    )
    .await;
    assert!(same!(both, raw_run(r1)).is_none());
    let runs = same!(both, runs_to_reclassify(GateKind::CargoTest, at(0)));
    assert_eq!((runs[0].0, runs[0].1.is_none()), (r1, true));
}

#[tokio::test]
async fn legacy_runs_read_back_the_same_on_both_backends() {
    let both = both().await;
    let old = both.run(GateKind::CargoTest, "0.1.0", at(0), Some(&passed())).await;
    let pass = both.run(GateKind::CargoTest, "0.1.0", at(10), Some(&passed())).await;
    let fail = both.run(GateKind::CargoTest, "0.2.0", at(20), Some(&unclassified())).await;
    let blocked = GateStatus::Blocked { blocker: GateBlocker::BurnInClockNotStarted };
    let block = both.run(GateKind::CargoTest, "0.2.0", at(30), Some(&blocked)).await;
    let ours = both.run(GateKind::CargoTest, "0.2.0", at(40), Some(&failed())).await;
    let smoke = both.run(GateKind::BootSmoke, "0.2.0", at(50), Some(&failed())).await;
    let silent = both.run(GateKind::CargoTest, "0.2.0", at(60), Some(&passed())).await;
    // Imported as `sando import-legacy` writes them: `legacy` for the
    // components, and the old text where the old daemon kept one.
    for run in [old, pass, fail, block, smoke, silent] {
        both.edit(
            "UPDATE gate_runs SET component_digest = 'legacy', contract = 'legacy' WHERE id = ?1",
            "UPDATE gate_runs SET component_digest = 'legacy', contract = 'legacy' WHERE id = $1",
            run.get(),
            None,
        )
        .await;
    }
    for (run, detail) in [
        (old, "ran long ago"),
        (pass, "test result: ok. 12 passed"),
        (fail, "thread 'main' panicked\nat src/lib.rs:1"),
        (block, "waiting ⏳"),
        (smoke, "did not come up"),
    ] {
        both.edit(
            "UPDATE gate_runs SET legacy_detail = ?2 WHERE id = ?1",
            "UPDATE gate_runs SET legacy_detail = $2 WHERE id = $1",
            run.get(),
            Some(detail),
        )
        .await;
    }
    let runs = same!(both, legacy_runs_to_reclassify(GateKind::CargoTest, at(10)));
    let without: Vec<_> = runs.iter().filter(|(_, raw)| raw.is_none()).map(|(id, _)| *id).collect();
    assert_eq!(without, [silent], "an imported run without a kept text has no output to replay");
    let ends: Vec<_> = runs
        .iter()
        .filter_map(|(id, raw)| {
            let raw = raw.as_ref()?;
            Some((*id, raw.output.end, String::from_utf8(raw.output.stdout.clone()).unwrap()))
        })
        .collect();
    assert_eq!(
        ends,
        [
            (pass, ProcessEnd::Exited(0), "test result: ok. 12 passed".to_owned()),
            (fail, ProcessEnd::Exited(1), "thread 'main' panicked\nat src/lib.rs:1".to_owned()),
            (block, ProcessEnd::Exited(1), "waiting ⏳".to_owned()),
        ],
        "{ours} is not imported and {old} started before"
    );
    assert_eq!(same!(both, legacy_runs_to_reclassify(GateKind::BootSmoke, at(0))).len(), 1);
    assert!(same!(both, legacy_runs_to_reclassify(GateKind::BurnIn, at(0))).is_empty());
}

/// What a database holds of a run's outcome and its reclassifications.
type Reclassified = (
    (String, Option<GateStatus>, Option<String>, Option<String>),
    Vec<(GateStatus, String, String, GateStatus, String, String, DateTime<Utc>)>,
);

async fn reclassified(both: &Both, run: GateRunId) -> Reclassified {
    let sqlite = (
        sqlx::query_as(
            "SELECT status, outcome_json, classifier_digest, classifier_contract
             FROM gate_runs WHERE id = ?1",
        )
        .bind(run)
        .fetch_one(&both.sqlite_pool)
        .await
        .unwrap(),
        sqlx::query_as(
            "SELECT old_outcome_json, old_digest, old_contract, new_outcome_json, new_digest,
                    new_contract, at
             FROM reclassifications WHERE gate_run_id = ?1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&both.sqlite_pool)
        .await
        .unwrap(),
    );
    let pg = (
        sqlx::query_as(
            "SELECT status, outcome_json, classifier_digest, classifier_contract
             FROM gate_runs WHERE id = $1",
        )
        .bind(run)
        .fetch_one(&both.pg_pool)
        .await
        .unwrap(),
        sqlx::query_as(
            "SELECT old_outcome_json, old_digest, old_contract, new_outcome_json, new_digest,
                    new_contract, at
             FROM reclassifications WHERE gate_run_id = $1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&both.pg_pool)
        .await
        .unwrap(),
    );
    assert_eq!(sqlite, pg, "run {run} on SQLite and PostgreSQL");
    sqlite
}

#[tokio::test]
async fn a_reclassification_reads_back_the_same_on_both_backends() {
    let both = both().await;
    let run = both.run(GateKind::CargoTest, "0.2.0", at(0), Some(&unclassified())).await;
    let summary = both.sqlite.gate_run(run).await.unwrap().expect("the run");
    same!(both, reclassify(&summary, &failed(), "sha-new", "0.2.1", at(5)));
    assert_eq!(same!(both, reclassification_count(run)), 1);
    let (row, history) = reclassified(&both, run).await;
    assert_eq!(
        row,
        ("failed".into(), Some(failed()), Some("sha-new".into()), Some("0.2.1".into()))
    );
    assert_eq!(
        history,
        [(
            unclassified(),
            "classifier".into(),
            "0.2.0".into(),
            failed(),
            "sha-new".into(),
            "0.2.1".into(),
            at(5)
        )]
    );
    // Again, now from what it became: a second line, the status its label.
    let summary = both.sqlite.gate_run(run).await.unwrap().expect("the run");
    same!(both, reclassify(&summary, &passed(), "sha-newer", "0.2.2", at(6)));
    assert_eq!(same!(both, reclassification_count(run)), 2);
    let (row, history) = reclassified(&both, run).await;
    assert_eq!((row.0.as_str(), row.2.as_deref()), ("passed", Some("sha-newer")));
    assert_eq!((&history[1].0, history[1].1.as_str()), (&failed(), "sha-new"));

    // A run from before contract 0.2: its component was its classifier.
    let old = both.run(GateKind::CargoTest, "0.1.0", at(1), Some(&failed())).await;
    both.edit(
        "UPDATE gate_runs SET classifier_digest = NULL, classifier_contract = NULL WHERE id = ?1",
        "UPDATE gate_runs SET classifier_digest = NULL, classifier_contract = NULL WHERE id = $1",
        old.get(),
        None,
    )
    .await;
    let summary = both.sqlite.gate_run(old).await.unwrap().expect("the run");
    assert_eq!(summary.classifier_digest, None);
    same!(both, reclassify(&summary, &unclassified(), "sha-new", "0.2.1", at(7)));
    let (_, history) = reclassified(&both, old).await;
    assert_eq!((history[0].1.as_str(), history[0].2.as_str()), ("runner", "0.2.0"));

    // A run without an outcome is left alone.
    let running = both.run(GateKind::CargoTest, "0.2.0", at(2), None).await;
    let summary = both.sqlite.gate_run(running).await.unwrap().expect("the run");
    same!(both, reclassify(&summary, &failed(), "sha-new", "0.2.1", at(8)));
    assert_eq!(same!(both, reclassification_count(running)), 0);
    assert_eq!(reclassified(&both, running).await.0.0, "running");
    assert_eq!(same!(both, reclassification_count(GateRunId::try_from(999).unwrap())), 0);
}

fn diff() -> Vec<VerdictChange> {
    vec![
        VerdictChange { case: "fixture cargo_test/ok".into(), old: passed(), new: failed() },
        VerdictChange {
            case: "run 7 (staging 0.2.0)".into(),
            old: unclassified(),
            new: GateStatus::Blocked {
                blocker: GateBlocker::BurnInRemaining { seconds: 30, total_seconds: 90 },
            },
        },
    ]
}

#[tokio::test]
async fn components_live_the_same_lives_on_both_backends() {
    use ComponentPart::{Classifier, Gate};
    use ComponentState::{Pending, Rejected, Retired, Serving};
    let both = both().await;
    let kind = GateKind::CargoTest;
    let no_diff: &[VerdictChange] = &[];
    let shipped = same!(
        both,
        insert_component(kind, Gate, "d1", "0.2.0", "shipped", Serving, None, no_diff, at(0))
    );
    let classifier = same!(
        both,
        insert_component(kind, Classifier, "d2", "0.2.0", "api", Serving, None, no_diff, at(1))
    );
    let first = same!(
        both,
        insert_component(kind, Gate, "d3", "0.2.0", "api", Pending, None, &diff(), at(2))
    );
    // A newer candidate replaces the one waiting.
    let second = same!(
        both,
        insert_component(
            kind,
            Gate,
            "d4",
            "0.2.0",
            "watched /gates/cargo_test.wasm",
            Pending,
            None,
            &diff(),
            at(3)
        )
    );
    let smoke = same!(
        both,
        insert_component(
            GateKind::BootSmoke,
            Gate,
            "d3",
            "0.2.0",
            "shipped",
            Serving,
            None,
            no_diff,
            at(4)
        )
    );
    assert_eq!([shipped, classifier, first, second, smoke], [1, 2, 3, 4, 5]);
    let pending = same!(both, pending_components());
    assert_eq!(pending.iter().map(|c| (c.id, &c.diff)).collect::<Vec<_>>(), [(second, &diff())]);

    // Accepted: a whole gate retires the serving gate and classifier.
    assert!(same!(both, settle_pending(second, true, "")));
    assert!(!same!(both, settle_pending(second, true, "")), "settled already");
    assert!(!same!(both, settle_pending(first, false, "no")), "not pending");
    assert!(!same!(both, settle_pending(99, true, "")), "no such component");
    let states = |records: Vec<sando::domain::ComponentRecord>| -> Vec<_> {
        records.into_iter().map(|c| (c.id, c.state, c.reason)).collect()
    };
    assert_eq!(
        states(same!(both, components_of(kind))),
        [
            (second, Serving, None),
            (first, Rejected, Some("replaced by a newer candidate".into())),
            (classifier, Retired, None),
            (shipped, Retired, None),
        ]
    );

    // A classifier rejected by the operator, then one served.
    let worse = same!(
        both,
        insert_component(kind, Classifier, "d6", "0.2.0", "api", Pending, None, &diff(), at(5))
    );
    assert!(same!(both, settle_pending(worse, false, "turns failures into passes")));
    let better = same!(
        both,
        insert_component(kind, Classifier, "d7", "0.2.0", "api", Serving, None, no_diff, at(6))
    );
    // A shipped gate (a Sando upgrade) keeps the operator's classifier; any
    // other whole gate ends it.
    let upgrade = same!(
        both,
        insert_component(kind, Gate, "d8", "0.2.1", "shipped", Serving, None, no_diff, at(7))
    );
    let states_now = states(same!(both, components_of(kind)));
    assert_eq!(
        &states_now[..4],
        [
            (upgrade, Serving, None),
            (better, Serving, None),
            (worse, Rejected, Some("turns failures into passes".into())),
            (second, Retired, None),
        ]
    );
    // An accepted classifier retires the serving classifier, not the gate.
    let best = same!(
        both,
        insert_component(kind, Classifier, "d7b", "0.2.0", "api", Pending, None, &diff(), at(7))
    );
    assert!(same!(both, settle_pending(best, true, "")));
    let states_now = states(same!(both, components_of(kind)));
    assert_eq!(
        &states_now[..3],
        [(best, Serving, None), (upgrade, Serving, None), (better, Retired, None)]
    );
    let pushed = same!(
        both,
        insert_component(kind, Gate, "d9", "0.2.1", "api", Serving, None, no_diff, at(8))
    );
    let rollback = same!(
        both,
        insert_component(
            kind,
            Gate,
            "d1",
            "0.2.0",
            "rollback",
            Retired,
            Some("kept"),
            no_diff,
            at(9)
        )
    );
    let refused = same!(
        both,
        insert_component(
            kind,
            Gate,
            "d10",
            "0.1.0",
            "api",
            Rejected,
            Some("contract 0.1"),
            &diff(),
            at(10)
        )
    );
    let states_now = states(same!(both, components_of(kind)));
    assert_eq!(
        &states_now[..5],
        [
            (refused, Rejected, Some("contract 0.1".into())),
            (rollback, Retired, Some("kept".into())),
            (pushed, Serving, None),
            (best, Retired, None),
            (upgrade, Retired, None),
        ]
    );
    let all = same!(both, components_of(kind));
    assert_eq!(all.len(), 11);
    assert_eq!((all[0].loaded_at, &all[0].diff, all[0].part), (at(10), &diff(), Gate));
    assert_eq!(same!(both, components_of(GateKind::BootSmoke)).len(), 1);
    assert!(same!(both, components_of(GateKind::BurnIn)).is_empty());
    assert!(same!(both, pending_components()).is_empty());
    assert!(same!(both, component_known(kind, "d10")));
    assert!(same!(both, component_known(GateKind::BootSmoke, "d3")));
    assert!(!same!(both, component_known(GateKind::BootSmoke, "d4")));

    // A diff edited by hand into something else: read as no diff, on both.
    both.edit(
        "UPDATE components SET diff_json = ?2 WHERE id = ?1",
        "UPDATE components SET diff_json = $2::jsonb WHERE id = $1",
        refused,
        Some(r#"{"not": "a list"}"#),
    )
    .await;
    assert!(same!(both, components_of(kind))[0].diff.is_empty());
}

#[tokio::test]
async fn daemons_sharing_a_postgres_settle_a_candidate_once_and_pend_one_at_a_time() {
    let url = util::postgres::fresh_database().await;
    let store = PgStore::open(&url, sando::store::Role::Command).await.unwrap();
    let kind = GateKind::CargoTest;
    let no_diff: &'static [VerdictChange] = &[];
    store
        .insert_component(
            kind,
            ComponentPart::Gate,
            "d0",
            "0.2.0",
            "shipped",
            ComponentState::Serving,
            None,
            no_diff,
            at(0),
        )
        .await
        .unwrap();
    // Candidates pushed at once: each replaces the one before, none fails.
    let pushes = (1..=8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let digest = format!("d{n}");
            store
                .insert_component(
                    kind,
                    ComponentPart::Gate,
                    &digest,
                    "0.2.0",
                    "api",
                    ComponentState::Pending,
                    None,
                    no_diff,
                    at(n),
                )
                .await
        })
    });
    for push in pushes.collect::<Vec<_>>() {
        push.await.unwrap().unwrap();
    }
    let pending = store.pending_components().await.unwrap();
    assert_eq!(pending.len(), 1);
    // The candidate accepted by several daemons at once: by one of them.
    let settles = (0..8).map(|_| {
        let store = store.clone();
        let id = pending[0].id;
        tokio::spawn(async move { store.settle_pending(id, true, "").await })
    });
    let mut settled = 0;
    for settle in settles.collect::<Vec<_>>() {
        settled += usize::from(settle.await.unwrap().unwrap());
    }
    assert_eq!(settled, 1);
    let serving: Vec<_> = store
        .components_of(kind)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == ComponentState::Serving)
        .map(|c| c.id)
        .collect();
    assert_eq!(serving, [pending[0].id]);
}

fn transcript(spawns: &[&str]) -> Transcript {
    let mut calls = vec![Call::Context];
    for program in spawns {
        let args = ["test".to_owned(), "--url=postgres://u:secret@db/x".to_owned()];
        let env = [("TOKEN".to_owned(), "hunter2".to_owned())];
        calls.push(Call::Spawn(SpawnCall::new(program, &args, &env, Some(60_000))));
    }
    calls.push(Call::BurnInClock);
    Transcript {
        tier: "staging".into(),
        version: "0.2.0".into(),
        params: vec![("command".into(), "cargo test --workspace".into())],
        gate_params: Some(GateParams::CargoTest {
            command: Invocation { program: "cargo".into(), args: vec!["test".into(), "ü".into()] },
        }),
        burn_in_clock: Some((at(0), at(90))),
        confirmation: Some(("alice \"ops\"".into(), at(1))),
        latest_backup: Some((7, "/backups/7.sql".into(), at(2))),
        calls,
    }
}

#[tokio::test]
async fn transcripts_read_back_the_same_on_both_backends() {
    let both = both().await;
    let kind = GateKind::CargoTest;
    let r1 = both.run(kind, "0.1.0", at(0), Some(&passed())).await;
    let r2 = both.run(kind, "0.2.0", at(1), Some(&failed())).await;
    let running = both.run(kind, "0.2.0", at(2), None).await;
    let smoke = both.run(GateKind::BootSmoke, "0.2.0", at(3), Some(&passed())).await;
    let two = [
        output(b"running 12 tests\n\x00\xff", ProcessEnd::Exited(101), Some(2_000)),
        output(b"", ProcessEnd::StillRunning, None),
    ];
    same!(both, record_transcript(r1, kind, &transcript(&["cargo", "cargo"]), &two));
    same!(both, record_transcript(r2, kind, &transcript(&["cargo"]), &two[..1]));
    same!(both, record_transcript(running, kind, &transcript(&[]), &[]));
    same!(both, record_transcript(smoke, GateKind::BootSmoke, &transcript(&["app"]), &two[1..]));

    assert_eq!(same!(both, recent_transcript_ids(kind, 10)), [r2, r1]);
    assert_eq!(same!(both, recent_transcript_ids(kind, 1)), [r2]);
    assert_eq!(same!(both, recent_transcript_ids(GateKind::BootSmoke, 10)), [smoke]);

    let recorded = same!(both, transcript(r1)).expect("recorded");
    assert_eq!(
        (recorded.run_id, recorded.transcript, recorded.outputs),
        (r1, transcript(&["cargo", "cargo"]), two.to_vec())
    );
    assert!(same!(both, transcript(running)).expect("recorded").outputs.is_empty());
    assert!(same!(both, transcript(GateRunId::try_from(999).unwrap())).is_none());

    // Evaluated again in place: the new transcript and outputs replace the old.
    let again = [output(b"again", ProcessEnd::Signaled(15), Some(5))];
    same!(both, record_transcript(r1, kind, &transcript(&["cargo-nextest"]), &again));
    let recorded = same!(both, transcript(r1)).expect("recorded");
    assert_eq!(
        (recorded.transcript, recorded.outputs),
        (transcript(&["cargo-nextest"]), again.to_vec())
    );

    // An output missing for a spawn: no transcript, on both.
    same!(both, record_transcript(r2, kind, &transcript(&["cargo", "cargo"]), &two[..1]));
    assert!(same!(both, transcript(r2)).is_none());
    // A transcript that no longer reads as one, or an output that lost its end.
    both.edit(
        "UPDATE run_transcripts SET transcript_json = ?2 WHERE gate_run_id = ?1",
        "UPDATE run_transcripts SET transcript_json = $2::jsonb WHERE gate_run_id = $1",
        smoke.get(),
        Some(r#"{"tier": 1}"#),
    )
    .await;
    assert!(same!(both, transcript(smoke)).is_none());
    both.edit(
        "UPDATE transcript_outputs SET process_end = ?2 WHERE gate_run_id = ?1",
        "UPDATE transcript_outputs SET process_end = $2 WHERE gate_run_id = $1",
        r1.get(),
        Some("signaled"),
    )
    .await;
    assert!(same!(both, transcript(r1)).is_none());
}

/// The one difference: PostgreSQL's jsonb cannot hold U+0000 in a string,
/// so a transcript (or a component's diff) with one is refused there, where
/// SQLite keeps it. The daemon notes a transcript it could not record and
/// goes on; the run is not affected.
#[tokio::test]
async fn a_nul_character_in_json_is_kept_by_sqlite_and_refused_by_postgres() {
    let both = both().await;
    let kind = GateKind::CargoTest;
    let run = both.run(kind, "0.2.0", at(0), Some(&passed())).await;
    let mut with_nul = transcript(&["cargo"]);
    with_nul.params.push(("note".into(), "a\0b".into()));
    let outputs = [output(b"", ProcessEnd::Exited(0), None)];
    both.sqlite.record_transcript(run, kind, &with_nul, &outputs).await.unwrap();
    assert_eq!(both.sqlite.transcript(run).await.unwrap().expect("kept").transcript, with_nul);
    let err = both.pg.record_transcript(run, kind, &with_nul, &outputs).await.unwrap_err();
    assert!(err.to_string().contains("Unicode escape"), "{err}");
    assert!(both.pg.transcript(run).await.unwrap().is_none(), "nothing half-recorded");
}
