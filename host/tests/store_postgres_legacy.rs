//! The PostgreSQL store's legacy import and retention against the SQLite store's: the same inputs through both backends give the same rows and the same answers (`./x test` starts PostgreSQL).

mod util;

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::types::Json;
use sqlx::{PgPool, SqlitePool};

use sando::domain::{
    BackupSource, DeployFailure, DeployOutcome, GateKind, GateRunId, GateStatus, GitSha, LogRef,
    NodeId, TierId, Version,
};
use sando::store::{
    Imported, LegacyBackup, LegacyDeploy, LegacyHistory, LegacyRun, LegacySource, LegacyTier,
    LegacyVersion, PgStore, Store,
};

/// A time with microseconds (PostgreSQL's precision), `s` seconds on.
fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 9, 30, 0).unwrap()
        + Duration::microseconds(123_456)
        + Duration::seconds(s)
}

fn version(i: u32) -> Version {
    format!("0.{i}.0").parse().unwrap()
}

fn sha(i: u32) -> GitSha {
    format!("{:040x}", 0xabc_0000 + i).parse().unwrap()
}

fn tier(name: &str) -> TierId {
    name.parse().unwrap()
}

/// A value bound to a statement run on both backends.
#[derive(Clone)]
enum P {
    I(i64),
    S(String),
    At(DateTime<Utc>),
    J(Value),
    B(Vec<u8>),
}

fn s(text: impl ToString) -> P {
    P::S(text.to_string())
}

/// The SQLite store and the PostgreSQL store side by side, each fresh, and
/// a plain pool on each for setting rows up and reading them back.
struct Both {
    _dir: tempfile::TempDir,
    sqlite: Store,
    pg: PgStore,
    sqlite_pool: SqlitePool,
    pg_pool: PgPool,
}

impl Both {
    async fn new() -> Both {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sando.sqlite");
        let sqlite = Store::open(&path).await.unwrap();
        let sqlite_pool =
            SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path)).await.unwrap();
        let url = util::postgres::fresh_database().await;
        let pg = PgStore::open(&url, sando::store::Role::Command).await.unwrap();
        let pg_pool = PgPool::connect(&url).await.unwrap();
        Both { _dir: dir, sqlite, pg, sqlite_pool, pg_pool }
    }

    /// Runs `sql` (written with `$N`) on both; the first column of each
    /// row it returns, as an integer, per backend.
    async fn exec(&self, sql: &str, params: &[P]) -> (Vec<i64>, Vec<i64>) {
        use sqlx::Row as _;
        let sqlite_sql = sql.replace('$', "?");
        let mut q = sqlx::query(&sqlite_sql);
        for p in params {
            q = match p.clone() {
                P::I(v) => q.bind(v),
                P::S(v) => q.bind(v),
                P::At(v) => q.bind(v),
                P::J(v) => q.bind(Json(v)),
                P::B(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(&self.sqlite_pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let on_sqlite = rows.iter().filter_map(|r| r.try_get::<i64, _>(0).ok()).collect();
        let mut q = sqlx::query(sql);
        for p in params {
            q = match p.clone() {
                P::I(v) => q.bind(v),
                P::S(v) => q.bind(v),
                P::At(v) => q.bind(v),
                P::J(v) => q.bind(Json(v)),
                P::B(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(&self.pg_pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let on_pg = rows.iter().filter_map(|r| r.try_get::<i64, _>(0).ok()).collect();
        (on_sqlite, on_pg)
    }

    /// `sql`'s rows on each backend, decoded into the same Rust types.
    async fn rows<T>(&self, sql: &str) -> (Vec<T>, Vec<T>)
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow>,
        T: Send + Unpin + Debug,
    {
        let on_sqlite = sqlx::query_as::<_, T>(sql)
            .fetch_all(&self.sqlite_pool)
            .await
            .unwrap_or_else(|e| panic!("SQLite: {sql}: {e}"));
        let on_pg = sqlx::query_as::<_, T>(sql)
            .fetch_all(&self.pg_pool)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL: {sql}: {e}"));
        (on_sqlite, on_pg)
    }

    /// Every row of every table an import writes, per backend, in each
    /// backend's column types read into the same Rust values. An import's
    /// row is named by its file's digest, not its id: a rolled-back insert
    /// (a dry run) uses up an identity value on PostgreSQL, not on SQLite.
    async fn dump(&self) -> (Dump, Dump) {
        let mut dumps = (Dump::new(), Dump::new());
        fn add<T: Debug>(dumps: &mut (Dump, Dump), table: &str, rows: (Vec<T>, Vec<T>)) {
            let text = |rows: Vec<T>| rows.iter().map(|r| format!("{r:?}")).collect();
            dumps.0.insert(table.to_owned(), text(rows.0));
            dumps.1.insert(table.to_owned(), text(rows.1));
        }
        type VersionCols = (
            String,
            String,
            DateTime<Utc>,
            String,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<String>,
        );
        let rows = self
            .rows::<VersionCols>(
                "SELECT version, git_sha, registered_at, artifact, artifact_sha256, swept_at,
                        (SELECT source_sha256 FROM legacy_imports l WHERE l.id = imported_from)
                 FROM versions ORDER BY version",
            )
            .await;
        add(&mut dumps, "versions", rows);
        let rows = self
            .rows::<(String, i64, Option<String>, Option<String>)>(
                "SELECT name, position, current_version, candidate_version FROM tiers ORDER BY name",
            )
            .await;
        add(&mut dumps, "tiers", rows);
        let rows = self
            .rows::<(String, String, DateTime<Utc>)>(
                "SELECT tier, version, at FROM tier_arrivals ORDER BY tier, version",
            )
            .await;
        add(&mut dumps, "tier_arrivals", rows);
        let rows = self
            .rows::<RunCols>(
                "SELECT id, version, tier, gate_kind, started_at, finished_at, status,
                        outcome_json, log_ref, component_digest, contract, attempt,
                        max_attempts, legacy_detail
                 FROM gate_runs ORDER BY id",
            )
            .await;
        add(&mut dumps, "gate_runs", rows);
        type DeployCols = (
            i64,
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Json<Value>,
            String,
            Option<String>,
        );
        let rows = self
            .rows::<DeployCols>(
                "SELECT id, version, tier, node, started_at, finished_at, outcome_json, log_ref,
                        legacy_error
                 FROM deploys ORDER BY id",
            )
            .await;
        add(&mut dumps, "deploys", rows);
        let rows = self
            .rows::<(i64, String, String, DateTime<Utc>, Option<DateTime<Utc>>)>(
                "SELECT id, source, path, fetched_at, removed_at FROM backups ORDER BY id",
            )
            .await;
        add(&mut dumps, "backups", rows);
        let rows = self
            .rows::<(String, String, DateTime<Utc>, Json<Value>)>(
                "SELECT source_path, source_sha256, imported_at, report_json
                 FROM legacy_imports ORDER BY id",
            )
            .await;
        add(&mut dumps, "legacy_imports", rows);
        dumps
    }

    /// Asserts both backends hold the same rows; those rows.
    async fn same_rows(&self) -> Dump {
        let (on_sqlite, on_pg) = self.dump().await;
        for (table, rows) in &on_sqlite {
            assert_eq!(rows, &on_pg[table], "table {table}: SQLite's rows, then PostgreSQL's");
        }
        on_sqlite
    }

    async fn import(
        &self,
        history: &LegacyHistory,
        source: &LegacySource<'_>,
        now: DateTime<Utc>,
        commit: bool,
    ) -> (Imported, Imported) {
        let on_sqlite = self.sqlite.import_legacy(history, source, now, commit).await.unwrap();
        let on_pg = self.pg.import_legacy(history, source, now, commit).await.unwrap();
        (on_sqlite, on_pg)
    }
}

type Dump = BTreeMap<String, Vec<String>>;

/// A gate run's columns (more than a tuple prints).
#[derive(Debug, sqlx::FromRow)]
#[allow(dead_code)]
struct RunCols {
    id: i64,
    version: String,
    tier: String,
    gate_kind: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    status: String,
    outcome_json: Option<Json<Value>>,
    log_ref: Option<String>,
    component_digest: String,
    contract: String,
    attempt: i64,
    max_attempts: i64,
    legacy_detail: Option<String>,
}

fn counts(dump: &Dump) -> BTreeMap<&str, usize> {
    dump.iter().map(|(t, rows)| (t.as_str(), rows.len())).collect()
}

/// Every `expected.json` of the shipped fixtures, with its gate's kind: the
/// outcomes a gate can give, as the contract writes them.
fn fixture_outcomes() -> Vec<(GateKind, GateStatus)> {
    let root = util::fixtures_dir();
    let mut outcomes = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "expected.json") {
                let kind = path.strip_prefix(&root).unwrap().iter().next().unwrap();
                let kind: GateKind = kind.to_str().unwrap().parse().unwrap();
                let text = std::fs::read_to_string(&path).unwrap();
                outcomes.push((kind, serde_json::from_str(&text).unwrap()));
            }
        }
    }
    outcomes
        .sort_by_key(|(kind, status)| (kind.to_string(), serde_json::to_string(status).unwrap()));
    outcomes
}

/// An old daemon's history with a bit of everything: every fixture outcome
/// as a run (ids with gaps), a tier the config no longer has, deploys of
/// every kind of ending, ssh and local backups, one whose file is gone.
fn rich_history() -> LegacyHistory {
    let versions = (1..=4)
        .map(|i| LegacyVersion {
            version: version(i),
            git_sha: sha(i),
            registered_at: at(i64::from(i) * 100),
        })
        .collect();
    let tiers = vec![
        LegacyTier {
            name: tier("staging"),
            position: 0,
            current: Some(version(3)),
            arrived_at: Some(at(350)),
        },
        LegacyTier {
            name: tier("prod"),
            position: 1,
            current: Some(version(2)),
            arrived_at: Some(at(260)),
        },
        LegacyTier { name: tier("canary"), position: 2, current: None, arrived_at: None },
        LegacyTier { name: tier("edge"), position: 3, current: Some(version(1)), arrived_at: None },
    ];
    let outcomes = fixture_outcomes();
    assert!(outcomes.len() > 50, "{} fixture outcomes", outcomes.len());
    let gate_runs = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, (gate, status))| {
            let n = i as i64;
            LegacyRun {
                id: GateRunId::try_from(10 + 3 * n).unwrap(),
                version: version(1 + (i % 4) as u32),
                tier: tier(if i % 2 == 0 { "staging" } else { "prod" }),
                gate,
                started_at: at(1000 + n * 10),
                finished_at: at(1005 + n * 10),
                status,
                log_ref: (i % 3 != 0)
                    .then(|| format!("0.{}.0/run-{i}.log", 1 + i % 4).parse::<LogRef>().unwrap()),
                detail: (i % 2 == 1).then(|| format!("old prose, \"quoted\", run {i}")),
            }
        })
        .collect();
    let deploy_outcomes = [
        DeployOutcome::Ok,
        DeployOutcome::Failed { failure: DeployFailure::Transport { exit_code: Some(12) } },
        DeployOutcome::Failed { failure: DeployFailure::HealthCheck { exit_code: None } },
        DeployOutcome::Failed { failure: DeployFailure::Timeout { after_s: 30 } },
        DeployOutcome::Failed { failure: DeployFailure::Interrupted },
        DeployOutcome::Failed { failure: DeployFailure::Unclassified },
    ];
    let deploys = deploy_outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            let n = i as i64;
            LegacyDeploy {
                id: [5, 6, 9, 40, 41, 77][i],
                version: version(1 + (i % 3) as u32),
                tier: tier(if i < 3 { "staging" } else { "prod" }),
                node: format!("node-{i}").parse::<NodeId>().unwrap(),
                started_at: at(5000 + n * 60),
                finished_at: at(5030 + n * 60),
                error: matches!(
                    outcome,
                    DeployOutcome::Failed { failure: DeployFailure::Unclassified }
                )
                .then(|| "rsync: connection reset by peer".to_owned()),
                outcome,
                log_ref: format!("deploys/{i}.log").parse().unwrap(),
            }
        })
        .collect();
    let backups = vec![
        LegacyBackup {
            id: 3,
            source: "ssh://db.internal/var/backups/app.sqlite".parse::<BackupSource>().unwrap(),
            path: "/data/backups/3.sqlite".into(),
            fetched_at: at(7000),
            file_missing: false,
        },
        LegacyBackup {
            id: 4,
            source: "/var/backups/app.sqlite".parse().unwrap(),
            path: "/data/backups/4.sqlite".into(),
            fetched_at: at(7100),
            file_missing: true,
        },
        LegacyBackup {
            id: 8,
            source: "ssh://ops@db.internal:2222/var/backups/app.sqlite".parse().unwrap(),
            path: "/data/backups/8.sqlite".into(),
            fetched_at: at(7200),
            file_missing: false,
        },
    ];
    LegacyHistory { versions, tiers, gate_runs, deploys, backups }
}

fn report(n: u32) -> String {
    // Written with spacing and key order PostgreSQL's jsonb does not keep.
    format!(r#"{{ "source" : "old.sqlite", "dry_run" : false, "counts" : {{ "runs" : {n} }} }}"#)
}

#[tokio::test]
async fn an_import_writes_the_same_rows_on_both_backends_and_a_second_is_a_no_op() {
    let both = Both::new().await;
    // The configured tiers, synced before the import: their positions stay,
    // the history fills their current versions in.
    both.sqlite.sync_tiers(&[tier("staging"), tier("prod")]).await.unwrap();
    both.pg.sync_tiers(&[tier("staging"), tier("prod")]).await.unwrap();
    let history = rich_history();
    let report_json = report(7);
    let source =
        LegacySource { path: "/old/sando.sqlite", sha256: "aa11", report_json: &report_json };
    let (on_sqlite, on_pg) = both.import(&history, &source, at(9000), true).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));

    let rows = both.same_rows().await;
    let expected = BTreeMap::from([
        ("backups", 3),
        ("deploys", 6),
        ("gate_runs", history.gate_runs.len()),
        ("legacy_imports", 1),
        ("tier_arrivals", 2),
        ("tiers", 4),
        ("versions", 4),
    ]);
    assert_eq!(counts(&rows), expected);
    assert_eq!(
        both.sqlite.tiers().await.unwrap(),
        both.pg.tiers().await.unwrap(),
        "the tiers in the same order, with the same current versions"
    );
    // The outcomes read back typed (each backend's column form), equal to
    // what went in.
    let (sqlite_runs, pg_runs) = both
        .rows::<(GateRunId, GateStatus)>("SELECT id, outcome_json FROM gate_runs ORDER BY id")
        .await;
    let written: Vec<(GateRunId, GateStatus)> =
        history.gate_runs.iter().map(|r| (r.id, r.status.clone())).collect();
    assert_eq!(sqlite_runs, written);
    assert_eq!(pg_runs, written);
    let (sqlite_deploys, pg_deploys) =
        both.rows::<(i64, DeployOutcome)>("SELECT id, outcome_json FROM deploys ORDER BY id").await;
    let written: Vec<(i64, DeployOutcome)> =
        history.deploys.iter().map(|d| (d.id, d.outcome.clone())).collect();
    assert_eq!(sqlite_deploys, written);
    assert_eq!(pg_deploys, written);

    // The same file again: nothing changes; the first import's time and report.
    let again = LegacySource { path: "/elsewhere/copy.sqlite", sha256: "aa11", report_json: "{}" };
    let (on_sqlite, on_pg) = both.import(&history, &again, at(9999), true).await;
    let (
        Imported::Already { imported_at: sqlite_at, report_json: sqlite_report },
        Imported::Already { imported_at: pg_at, report_json: pg_report },
    ) = (on_sqlite, on_pg)
    else {
        panic!("both say it was imported before");
    };
    assert_eq!((sqlite_at, pg_at), (at(9000), at(9000)));
    // SQLite keeps the text; PostgreSQL's jsonb the value (its own spacing).
    assert_eq!(sqlite_report, report_json);
    let value = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    assert_eq!(value(&pg_report), value(&report_json));
    assert_eq!(both.same_rows().await, rows, "nothing changed");
}

#[tokio::test]
async fn a_dry_run_leaves_both_backends_as_they_were_sequences_included() {
    let both = Both::new().await;
    let history = rich_history();
    let report_json = report(1);
    let source =
        LegacySource { path: "/old/sando.sqlite", sha256: "bb22", report_json: &report_json };
    let (on_sqlite, on_pg) = both.import(&history, &source, at(9000), false).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));
    let rows = both.same_rows().await;
    assert!(rows.values().all(Vec::is_empty), "{rows:?}");
    // Ids start where they would have: the kept ids were rolled back.
    let (sqlite_ids, pg_ids) = both
        .exec(
            "INSERT INTO backups (source, path, fetched_at) VALUES ('/b', '/data/b', $1) RETURNING id",
            &[P::At(at(1))],
        )
        .await;
    assert_eq!((sqlite_ids, pg_ids), (vec![1], vec![1]));
    both.exec("DELETE FROM backups", &[]).await;
    // And the real import afterwards is not taken for a second one.
    let (on_sqlite, on_pg) = both.import(&history, &source, at(9000), true).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));
    assert_eq!(counts(&both.same_rows().await)["gate_runs"], history.gate_runs.len());
    // The one difference: the dry run's import row used up id 1 of
    // PostgreSQL's identity (sequences ignore rollbacks); SQLite reuses it.
    let ids = both.exec("SELECT id FROM legacy_imports", &[]).await;
    assert_eq!(ids, (vec![1], vec![2]));
}

#[tokio::test]
async fn kept_ids_move_the_id_sequences_past_them_and_never_back() {
    let both = Both::new().await;
    both.sqlite.sync_tiers(&[tier("staging")]).await.unwrap();
    both.pg.sync_tiers(&[tier("staging")]).await.unwrap();
    // This daemon's own rows before the import: a version, a run, a deploy,
    // and backups 1 to 3 of which the newest is gone (its id not reused).
    both.exec(
        "INSERT INTO versions (version, git_sha, registered_at, artifact) VALUES ('9.0.0', $1, $2, 'a')",
        &[s(sha(99)), P::At(at(1))],
    )
    .await;
    let run = "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract)
               VALUES ('9.0.0', 'staging', 'cargo_test', $1, 'running', 'd', '0.2.0') RETURNING id";
    assert_eq!(both.exec(run, &[P::At(at(2))]).await, (vec![1], vec![1]));
    let deploy = "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref)
                  VALUES ('9.0.0', 'staging', 'n1', $1, $2, 'l') RETURNING id";
    let in_progress = P::J(json!({ "kind": "in_progress" }));
    assert_eq!(both.exec(deploy, &[P::At(at(3)), in_progress.clone()]).await, (vec![1], vec![1]));
    let backup =
        "INSERT INTO backups (source, path, fetched_at) VALUES ('/b', '/data/b', $1) RETURNING id";
    for id in 1..=3 {
        assert_eq!(both.exec(backup, &[P::At(at(4))]).await, (vec![id], vec![id]));
    }
    both.exec("DELETE FROM backups WHERE id = 3", &[]).await;

    // Runs and deploys with kept ids far past the sequences; no backups.
    let mut history = rich_history();
    history.backups.clear();
    let last_run = history.gate_runs.iter().map(|r| r.id.get()).max().unwrap();
    let last_deploy = history.deploys.iter().map(|d| d.id).max().unwrap();
    let report_json = report(2);
    let source =
        LegacySource { path: "/old/sando.sqlite", sha256: "cc33", report_json: &report_json };
    let (on_sqlite, on_pg) = both.import(&history, &source, at(9000), true).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));

    // The next ids are past the kept ones on both, and a backup id once
    // used stays used.
    let next_run = last_run + 1;
    assert_eq!(both.exec(run, &[P::At(at(10_000))]).await, (vec![next_run], vec![next_run]));
    let next_deploy = last_deploy + 1;
    let got = both.exec(deploy, &[P::At(at(10_001)), in_progress]).await;
    assert_eq!(got, (vec![next_deploy], vec![next_deploy]));
    assert_eq!(both.exec(backup, &[P::At(at(10_002))]).await, (vec![4], vec![4]));
    both.same_rows().await;
}

#[tokio::test]
async fn a_colliding_history_is_refused_with_the_same_words_and_nothing_written() {
    let both = Both::new().await;
    let first = rich_history();
    let report_json = report(3);
    let source = LegacySource { path: "/old/a.sqlite", sha256: "dd44", report_json: &report_json };
    let (on_sqlite, on_pg) = both.import(&first, &source, at(9000), true).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));
    let before = both.same_rows().await;

    // A history of other versions and ids, then each way it can collide.
    let fresh = || {
        let mut h = rich_history();
        for (i, v) in h.versions.iter_mut().enumerate() {
            v.version = version(10 + i as u32);
            v.git_sha = sha(10 + i as u32);
        }
        h.tiers.clear();
        for r in &mut h.gate_runs {
            r.id = GateRunId::try_from(r.id.get() + 100_000).unwrap();
        }
        for d in &mut h.deploys {
            d.id += 100_000;
        }
        for b in &mut h.backups {
            b.id += 100_000;
        }
        h
    };
    let mut cases: Vec<(LegacyHistory, &str)> = Vec::new();
    let mut h = fresh();
    h.versions[2].version = version(2);
    cases.push((h, "versions: 0.2.0 (commit"));
    let mut h = fresh();
    h.versions[1].git_sha = sha(4);
    cases.push((h, "is already in the database as 0.4.0"));
    let mut h = fresh();
    h.gate_runs[5].id = first.gate_runs[7].id;
    cases.push((h, "gate_runs: id "));
    let mut h = fresh();
    h.deploys[2].id = 77;
    cases.push((h, "deploys: id 77 is already used in the database"));
    let mut h = fresh();
    h.backups[0].id = 4;
    cases.push((h, "backups: id 4 is already used in the database"));
    for (i, (history, words)) in cases.iter().enumerate() {
        let sha256 = format!("ee{i}");
        let source = LegacySource { path: "/old/b.sqlite", sha256: &sha256, report_json: "{}" };
        for commit in [true, false] {
            let (on_sqlite, on_pg) = both.import(history, &source, at(9500), commit).await;
            let Imported::Refused(why) = &on_sqlite else { panic!("case {i}: {on_sqlite:?}") };
            assert!(why.contains(words), "case {i}: {why}");
            assert_eq!(on_pg, on_sqlite, "case {i}: the same refusal");
        }
        assert_eq!(both.same_rows().await, before, "case {i}: nothing written");
    }
    // Without a collision the same history goes in on both.
    let source = LegacySource { path: "/old/b.sqlite", sha256: "ff55", report_json: "{}" };
    let (on_sqlite, on_pg) = both.import(&fresh(), &source, at(9600), true).await;
    assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done));
    let after = both.same_rows().await;
    assert_eq!(after["gate_runs"].len(), 2 * before["gate_runs"].len());
}

#[tokio::test]
async fn the_old_daemons_captured_histories_import_alike_on_both_backends() {
    for seed in [1, 2, 3, 7, 42] {
        // The old database through the real import, into SQLite ...
        let (sando, legacy) = util::legacy::setup(seed);
        let config = sando::config::Config::load(&sando.path("sando.toml")).unwrap();
        let request = sando::legacy::ImportRequest {
            from: &legacy,
            config: &config,
            logs: None,
            dry_run: false,
        };
        sando::legacy::import(&request).await.unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let target = sando.path("data/sando.sqlite");
        let pool =
            SqlitePool::connect_with(SqliteConnectOptions::new().filename(&target)).await.unwrap();
        // ... read back typed: the history that import wrote.
        let history = history_in(&pool).await;
        pool.close().await;
        assert!(!history.gate_runs.is_empty(), "seed {seed}");

        // ... and that history through both stores.
        let both = Both::new().await;
        let source =
            LegacySource { path: "/old/x.sqlite", sha256: "0123", report_json: "{\"seed\": 1}" };
        let (on_sqlite, on_pg) = both.import(&history, &source, at(0), true).await;
        assert_eq!((on_sqlite, on_pg), (Imported::Done, Imported::Done), "seed {seed}");
        let rows = both.same_rows().await;
        assert_eq!(rows["gate_runs"].len(), history.gate_runs.len(), "seed {seed}");
        assert_eq!(rows["deploys"].len(), history.deploys.len(), "seed {seed}");
        assert_eq!(rows["backups"].len(), history.backups.len(), "seed {seed}");
        assert_eq!(rows["versions"].len(), history.versions.len(), "seed {seed}");
    }
}

/// What an import wrote into the SQLite database at `pool`, as a history.
async fn history_in(pool: &SqlitePool) -> LegacyHistory {
    let versions = sqlx::query_as::<_, (Version, GitSha, DateTime<Utc>)>(
        "SELECT version, git_sha, registered_at FROM versions WHERE imported_from IS NOT NULL
         ORDER BY rowid",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(version, git_sha, registered_at)| LegacyVersion { version, git_sha, registered_at })
    .collect();
    let tiers = sqlx::query_as::<_, (TierId, i64, Option<Version>, Option<DateTime<Utc>>)>(
        "SELECT t.name, t.position, t.current_version, a.at FROM tiers t
         LEFT JOIN tier_arrivals a ON a.tier = t.name AND a.version = t.current_version
         ORDER BY t.position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(name, position, current, arrived_at)| LegacyTier { name, position, current, arrived_at })
    .collect();
    type Run = (
        GateRunId,
        Version,
        TierId,
        GateKind,
        DateTime<Utc>,
        DateTime<Utc>,
        GateStatus,
        Option<LogRef>,
        Option<String>,
    );
    let gate_runs =
        sqlx::query_as::<_, Run>(
            "SELECT id, version, tier, gate_kind, started_at, finished_at, outcome_json, log_ref,
                legacy_detail
         FROM gate_runs ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, version, tier, gate, started_at, finished_at, status, log_ref, detail)| {
            LegacyRun { id, version, tier, gate, started_at, finished_at, status, log_ref, detail }
        })
        .collect();
    type Deploy = (
        i64,
        Version,
        TierId,
        NodeId,
        DateTime<Utc>,
        DateTime<Utc>,
        DeployOutcome,
        Option<String>,
        LogRef,
    );
    let deploys = sqlx::query_as::<_, Deploy>(
        "SELECT id, version, tier, node, started_at, finished_at, outcome_json, legacy_error,
                log_ref
         FROM deploys ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, version, tier, node, started_at, finished_at, outcome, error, log_ref)| {
        LegacyDeploy { id, version, tier, node, started_at, finished_at, outcome, error, log_ref }
    })
    .collect();
    let backups = sqlx::query_as::<_, (i64, BackupSource, String, DateTime<Utc>, bool)>(
        "SELECT id, source, path, fetched_at, removed_at IS NOT NULL FROM backups ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, source, path, fetched_at, file_missing)| LegacyBackup {
        id,
        source,
        path,
        fetched_at,
        file_missing,
    })
    .collect();
    LegacyHistory { versions, tiers, gate_runs, deploys, backups }
}

/// Rows for retention on both backends: versions 0.1.0 to 0.6.0 (0.6.0
/// swept already), tiers with current and candidate versions, a run and a
/// deploy in flight, recorded outputs and transcripts, backups (one gone).
async fn retention_rows(both: &Both) {
    both.sqlite.sync_tiers(&[tier("staging"), tier("prod")]).await.unwrap();
    both.pg.sync_tiers(&[tier("staging"), tier("prod")]).await.unwrap();
    for i in 1..=6 {
        let swept = if i == 6 { "$3" } else { "NULL" };
        both.exec(
            &format!(
                "INSERT INTO versions (version, git_sha, registered_at, artifact, swept_at)
                 VALUES ($1, $2, $3, 'a', {swept})"
            ),
            &[s(version(i)), s(sha(i)), P::At(at(i64::from(i) * 100))],
        )
        .await;
    }
    both.exec(
        "UPDATE tiers SET current_version = '0.1.0', candidate_version = '0.2.0' WHERE name = 'prod'",
        &[],
    )
    .await;
    let run = "INSERT INTO gate_runs (version, tier, gate_kind, started_at, finished_at, status,
                   component_digest, contract)
               VALUES ($1, 'staging', 'cargo_test', $2, $3, $4, 'd', '0.2.0') RETURNING id";
    // 0.3.0 has a run in flight; 0.4.0 finished ones with recorded outputs.
    both.exec(
        "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract)
         VALUES ('0.3.0', 'staging', 'cargo_test', $1, 'running', 'd', '0.2.0')",
        &[P::At(at(1000))],
    )
    .await;
    for (v, status) in [(4, "passed"), (4, "failed"), (5, "passed")] {
        let (ids, pg_ids) =
            both.exec(run, &[s(version(v)), P::At(at(1100)), P::At(at(1200)), s(status)]).await;
        assert_eq!(ids, pg_ids);
        let id = P::I(ids[0]);
        both.exec(
            "INSERT INTO raw_outputs (gate_run_id, gate_kind, stdout, stderr, process_end, duration_ms)
             VALUES ($1, 'cargo_test', $2, $3, 'exited:0', 12)",
            &[id.clone(), P::B(b"out\xff".to_vec()), P::B(Vec::new())],
        )
        .await;
        both.exec(
            "INSERT INTO run_transcripts (gate_run_id, gate_kind, transcript_json) VALUES ($1, 'cargo_test', $2)",
            &[id.clone(), P::J(json!({ "steps": [1, 2] }))],
        )
        .await;
        for seq in 0..2 {
            both.exec(
                "INSERT INTO transcript_outputs (gate_run_id, seq, stdout, stderr, process_end)
                 VALUES ($1, $2, $3, $3, 'exited:0')",
                &[id.clone(), P::I(seq), P::B(vec![seq as u8])],
            )
            .await;
        }
    }
    // 0.5.0 is deploying; a finished deploy of 0.4.0 needs nothing.
    let deploy =
        "INSERT INTO deploys (version, tier, node, started_at, finished_at, outcome_json, log_ref)
                  VALUES ($1, 'staging', 'n1', $2, $3, $4, 'l')";
    both.exec(
        deploy,
        &[s(version(4)), P::At(at(2000)), P::At(at(2010)), P::J(json!({ "kind": "ok" }))],
    )
    .await;
    both.exec(
        "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref)
         VALUES ('0.5.0', 'staging', 'n1', $1, $2, 'l')",
        &[P::At(at(2100)), P::J(json!({ "kind": "in_progress" }))],
    )
    .await;
    for (i, removed) in [(1, false), (2, true), (3, false), (4, false)] {
        let removed = if removed { "$2" } else { "NULL" };
        both.exec(
            &format!(
                "INSERT INTO backups (source, path, fetched_at, removed_at)
                 VALUES ('/var/db.sqlite', $1, $2, {removed})"
            ),
            &[s(format!("/data/backups/{i}.sqlite")), P::At(at(3000 - i * 10))],
        )
        .await;
    }
}

#[tokio::test]
async fn retention_sees_and_marks_the_same_on_both_backends() {
    let both = Both::new().await;
    retention_rows(&both).await;

    let sorted = |mut v: Vec<sando::store::VersionAge>| {
        v.sort_by(|a, b| a.version.cmp(&b.version));
        v
    };
    let with_files = sorted(both.sqlite.versions_with_files().await.unwrap());
    assert_eq!(with_files, sorted(both.pg.versions_with_files().await.unwrap()));
    let names: Vec<String> = with_files.iter().map(|v| v.version.to_string()).collect();
    assert_eq!(names, ["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0"], "0.6.0 was swept");
    assert_eq!(with_files[0].registered_at, at(100));

    let in_use = both.sqlite.versions_in_use().await.unwrap();
    assert_eq!(in_use, both.pg.versions_in_use().await.unwrap());
    let mut names: Vec<String> = in_use.iter().map(ToString::to_string).collect();
    names.sort();
    assert_eq!(names, ["0.1.0", "0.2.0", "0.3.0", "0.5.0"]);

    let by_id = |mut b: Vec<sando::store::BackupAge>| {
        b.sort_by_key(|b| b.id);
        b
    };
    let on_disk = by_id(both.sqlite.backups_on_disk().await.unwrap());
    assert_eq!(on_disk, by_id(both.pg.backups_on_disk().await.unwrap()));
    assert_eq!(on_disk.iter().map(|b| b.id).collect::<Vec<_>>(), [1, 3, 4]);
    assert_eq!(on_disk[0].fetched_at, at(2990));

    // Sweeping 0.4.0: its outputs and transcripts go, 0.5.0's stay.
    let recorded = "SELECT (SELECT count(*) FROM raw_outputs) * 10000
                         + (SELECT count(*) FROM run_transcripts) * 100
                         + (SELECT count(*) FROM transcript_outputs)";
    assert_eq!(both.exec(recorded, &[]).await, (vec![30306], vec![30306]));
    both.sqlite.sweep_version(&version(4), at(5000)).await.unwrap();
    both.pg.sweep_version(&version(4), at(5000)).await.unwrap();
    assert_eq!(both.exec(recorded, &[]).await, (vec![10102], vec![10102]));
    let rows = both.same_rows().await;
    assert!(rows["versions"].iter().any(|r| r.starts_with("(\"0.4.0\"") && r.contains("Some(")));
    let with_files = sorted(both.sqlite.versions_with_files().await.unwrap());
    assert_eq!(with_files, sorted(both.pg.versions_with_files().await.unwrap()));
    assert_eq!(with_files.len(), 4);
    // The runs themselves are history and stay.
    assert_eq!(both.exec("SELECT count(*) FROM gate_runs", &[]).await, (vec![4], vec![4]));
    // A version without runs sweeps too.
    both.sqlite.sweep_version(&version(1), at(5001)).await.unwrap();
    both.pg.sweep_version(&version(1), at(5001)).await.unwrap();
    both.same_rows().await;

    // A backup is marked once: its path, then nothing; an unknown id nothing.
    let sqlite_path = both.sqlite.remove_backup(3, at(6000)).await.unwrap();
    let pg_path = both.pg.remove_backup(3, at(6000)).await.unwrap();
    assert_eq!(sqlite_path.as_deref(), Some("/data/backups/3.sqlite"));
    assert_eq!(pg_path, sqlite_path);
    for id in [3, 2, 99] {
        assert_eq!(both.sqlite.remove_backup(id, at(6001)).await.unwrap(), None, "backup {id}");
        assert_eq!(both.pg.remove_backup(id, at(6001)).await.unwrap(), None, "backup {id}");
    }
    let on_disk = by_id(both.sqlite.backups_on_disk().await.unwrap());
    assert_eq!(on_disk, by_id(both.pg.backups_on_disk().await.unwrap()));
    assert_eq!(on_disk.iter().map(|b| b.id).collect::<Vec<_>>(), [1, 4]);
    both.same_rows().await;
}
