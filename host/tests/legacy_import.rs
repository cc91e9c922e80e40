//! `sando import-legacy` through the real binary, on old daemons' databases captured from the old schema's generator (`tests/legacy/`): every row typed by the rules, counts kept, a second import a no-op, a refused or failed or killed import leaving the target as it was, and the history served.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

use util::Sando;
use util::daemon::Daemon;

const SEEDS: [u32; 5] = [1, 2, 3, 7, 42];

use util::legacy::{seed_dir, setup};

fn import(sando: &Sando, legacy: &Path, extra: &[&str]) -> std::process::Output {
    let mut args =
        vec!["import-legacy", "--from", legacy.to_str().unwrap(), "--config", "sando.toml"];
    args.extend_from_slice(extra);
    sando.run(&args)
}

async fn open(path: &Path) -> SqlitePool {
    SqlitePool::connect_with(SqliteConnectOptions::new().filename(path)).await.unwrap()
}

/// Every row of every table the import writes, as text, for comparing.
async fn dump(db: &Path) -> BTreeMap<String, Vec<String>> {
    let mut tables = BTreeMap::new();
    if !db.exists() {
        return tables;
    }
    let pool = open(db).await;
    for table in [
        "versions",
        "tiers",
        "tier_arrivals",
        "gate_runs",
        "deploys",
        "backups",
        "legacy_imports",
        "confirmations",
    ] {
        let rows = sqlx::query(&format!("SELECT json_object(*) FROM {table} ORDER BY rowid"))
            .fetch_all(&pool)
            .await;
        // Older SQLite has no `json_object(*)`: quote each column instead.
        let rows = match rows {
            Ok(rows) => rows.iter().map(|r| r.get::<String, _>(0)).collect(),
            Err(_) => {
                let columns: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("name"))
                    .collect();
                let select = columns
                    .iter()
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                sqlx::query(&format!("SELECT {select} FROM {table} ORDER BY rowid"))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect()
            }
        };
        tables.insert(table.to_owned(), rows);
    }
    pool.close().await;
    tables
}

/// A `--report` file: its per-row lines, and its last line, the summary.
fn read_report(path: &Path) -> (Vec<Value>, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["table"], "summary", "the last line is the summary");
    for line in &lines {
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "{line}");
        for key in ["table", "legacy_id", "new_id", "status", "outcome"] {
            assert!(keys.contains(&key), "{line} has no {key}");
        }
    }
    (lines, summary)
}

/// The report's line for `table`'s row `id`: exactly one.
fn row_line<'a>(rows: &'a [Value], table: &str, id: &Value) -> &'a Value {
    let found: Vec<&Value> =
        rows.iter().filter(|r| r["table"] == table && r["legacy_id"] == *id).collect();
    assert_eq!(found.len(), 1, "{table} {id}: {} report lines", found.len());
    found[0]
}

fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the design document's backfill makes of an old gate run: an
/// independent statement of the rules, checked against every row.
fn expected_run(kind: &str, passed: Option<i64>, detail: Option<&str>) -> Value {
    let blocker = |kind_: &str| json!({ "kind": "blocked", "blocker": { "kind": kind_ } });
    match passed {
        Some(1) => json!({ "kind": "passed", "note": { "kind": "legacy", "text": detail } }),
        None => json!({ "kind": "failed", "failure": { "kind": "interrupted" } }),
        Some(_) => {
            let d = detail.unwrap_or("");
            if kind == "burn_in" && d.starts_with("burn-in clock not started") {
                return blocker("burn_in_clock_not_started");
            }
            if let Some((h, t)) = d.split_once(" hours remaining of ").filter(|_| kind == "burn_in")
            {
                return json!({ "kind": "blocked", "blocker": {
                    "kind": "burn_in_remaining",
                    "seconds": h.parse::<u64>().unwrap() * 3600,
                    "total_seconds": t.parse::<u64>().unwrap() * 3600,
                }});
            }
            if kind == "migration_dry_run" && d.starts_with("scratch_db_url unset") {
                return blocker("scratch_db_url_unset");
            }
            if kind == "migration_dry_run" && d.starts_with("no backup fetched") {
                return blocker("no_backup_available");
            }
            if kind == "manual_confirm" && d.starts_with("waiting on operator") {
                return blocker("awaiting_operator_confirmation");
            }
            json!({ "kind": "failed", "failure": { "kind": "unclassified", "legacy_detail": detail } })
        }
    }
}

fn expected_deploy(outcome: Option<&str>, error: Option<&str>) -> Value {
    let failed = |failure: Value| json!({ "kind": "failed", "failure": failure });
    let e = error.unwrap_or("");
    let status =
        |s: &str| s.split("exit status: ").nth(1).map(|n| n.trim().parse::<i64>().unwrap());
    match outcome {
        Some("ok") => json!({ "kind": "ok" }),
        Some("failed") if e.starts_with("spawn failed") => {
            let errno: i64 =
                e.rsplit("(os error ").next().unwrap().trim_end_matches(')').parse().unwrap();
            failed(json!({ "kind": "spawn", "os_error": errno }))
        }
        Some("failed") if e.starts_with("rsync") || e.starts_with("ssh") => {
            failed(json!({ "kind": "transport", "exit_code": status(e) }))
        }
        Some("failed") if e.starts_with("health check failed") => {
            failed(json!({ "kind": "health_check", "exit_code": status(e) }))
        }
        Some("failed") => failed(json!({ "kind": "unclassified" })),
        _ => failed(json!({ "kind": "interrupted" })),
    }
}

/// Checks every row of `legacy` against what the import made of it in `db`.
async fn check_import(legacy: &Path, db: &Path, rows: &[Value], report: &Value) {
    let old = open(legacy).await;
    let new = open(db).await;

    // Gate runs: ids kept, each typed by the rules, the old text beside it.
    let runs = sqlx::query("SELECT id, version, tier, gate_kind, passed, detail FROM gate_runs")
        .fetch_all(&old)
        .await
        .unwrap();
    assert!(!runs.is_empty());
    let mut seen = BTreeMap::<String, usize>::new();
    for run in &runs {
        let id: i64 = run.get("id");
        let kind: String = run.get("gate_kind");
        let passed: Option<i64> = run.get("passed");
        let detail: Option<String> = run.get("detail");
        let row = sqlx::query(
            "SELECT version, tier, gate_kind, status, outcome_json, legacy_detail, finished_at
             FROM gate_runs WHERE id = ?1",
        )
        .bind(id)
        .fetch_one(&new)
        .await
        .unwrap_or_else(|e| panic!("run {id} was not imported: {e}"));
        let outcome: Value = serde_json::from_str(&row.get::<String, _>("outcome_json")).unwrap();
        let expected = expected_run(&kind, passed, detail.as_deref());
        assert_eq!(outcome, expected, "run {id} ({kind}, passed {passed:?}, {detail:?})");
        let line = row_line(rows, "gate_runs", &json!(id));
        assert_eq!(line["new_id"], json!(id), "run ids are kept");
        assert_eq!(line["status"], expected["kind"], "run {id}");
        assert_eq!(line["outcome"], expected, "run {id}");
        assert_eq!(row.get::<String, _>("status"), expected["kind"].as_str().unwrap());
        assert_ne!(row.get::<String, _>("status"), "running", "run {id}");
        assert!(row.get::<Option<String>, _>("finished_at").is_some(), "run {id} has an end");
        assert_eq!(row.get::<Option<String>, _>("legacy_detail"), detail);
        assert_eq!(row.get::<String, _>("version"), run.get::<String, _>("version"));
        assert_eq!(row.get::<String, _>("tier"), run.get::<String, _>("tier"));
        *seen.entry(expected["kind"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert!(seen.contains_key("passed") && seen.contains_key("failed"), "{seen:?}");
    assert_eq!(report["gate_runs"]["total"], runs.len());
    for (status, n) in &seen {
        assert_eq!(report["gate_runs"]["by_status"][status], *n, "{status}");
    }

    // Deploys: typed outcomes, the old error kept.
    let deploys =
        sqlx::query("SELECT id, node, outcome, error FROM deploys").fetch_all(&old).await.unwrap();
    for d in &deploys {
        let id: i64 = d.get("id");
        let row = sqlx::query("SELECT node, outcome_json, legacy_error FROM deploys WHERE id = ?1")
            .bind(id)
            .fetch_one(&new)
            .await
            .unwrap_or_else(|e| panic!("deploy {id} was not imported: {e}"));
        let outcome: Value = serde_json::from_str(&row.get::<String, _>("outcome_json")).unwrap();
        let error: Option<String> = d.get("error");
        assert_eq!(outcome, expected_deploy(d.get("outcome"), error.as_deref()), "deploy {id}");
        let line = row_line(rows, "deploys", &json!(id));
        assert_eq!(line["new_id"], json!(id), "deploy ids are kept");
        assert_eq!(line["outcome"], outcome, "deploy {id}");
        let label = if outcome["kind"] == "failed" { "failed" } else { "ok" };
        assert_eq!(line["status"], label, "deploy {id}: {outcome}");
        assert_eq!(row.get::<Option<String>, _>("legacy_error"), error);
        assert_eq!(row.get::<String, _>("node"), d.get::<String, _>("node"));
    }
    assert_eq!(report["deploys"]["total"], deploys.len());

    // Versions, with their shas as written (no repository to resolve them).
    let versions = sqlx::query("SELECT version, git_sha, built_at FROM versions")
        .fetch_all(&old)
        .await
        .unwrap();
    for v in &versions {
        let version: String = v.get("version");
        let row =
            sqlx::query("SELECT git_sha, registered_at, artifact FROM versions WHERE version = ?1")
                .bind(&version)
                .fetch_one(&new)
                .await
                .unwrap_or_else(|e| panic!("version {version} was not imported: {e}"));
        assert_eq!(row.get::<String, _>("git_sha"), v.get::<String, _>("git_sha").to_lowercase());
        assert_eq!(row.get::<String, _>("artifact"), "", "an imported version has no artifact yet");
        let old_time =
            chrono::DateTime::parse_from_rfc3339(&v.get::<String, _>("built_at")).unwrap();
        let new_time =
            chrono::DateTime::parse_from_rfc3339(&row.get::<String, _>("registered_at")).unwrap();
        assert_eq!(old_time, new_time);
        let line = row_line(rows, "versions", &json!(version));
        assert_eq!((&line["new_id"], &line["status"]), (&json!(version), &json!("imported")));
    }
    assert_eq!(report["versions"], versions.len());

    // Tiers: what they ran; what they were gating is not carried over.
    let states = sqlx::query("SELECT tier, current_version, candidate_version FROM tier_state")
        .fetch_all(&old)
        .await
        .unwrap();
    for s in &states {
        let tier: String = s.get("tier");
        let row =
            sqlx::query("SELECT current_version, candidate_version FROM tiers WHERE name = ?1")
                .bind(&tier)
                .fetch_one(&new)
                .await
                .unwrap();
        assert_eq!(
            row.get::<Option<String>, _>("current_version"),
            s.get::<Option<String>, _>("current_version"),
            "{tier}"
        );
        assert_eq!(row.get::<Option<String>, _>("candidate_version"), None, "{tier}");
    }

    // Backups: typed sources in their canonical form, ids kept; their files
    // are not on this machine, so they are history only.
    let backups =
        sqlx::query("SELECT id, source, path FROM backups").fetch_all(&old).await.unwrap();
    for b in &backups {
        let row = sqlx::query("SELECT source, path, removed_at FROM backups WHERE id = ?1")
            .bind(b.get::<i64, _>("id"))
            .fetch_one(&new)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("source"), b.get::<String, _>("source"));
        assert_eq!(row.get::<String, _>("path"), b.get::<String, _>("path"));
        assert!(row.get::<Option<String>, _>("removed_at").is_some());
        let line = row_line(rows, "backups", &json!(b.get::<i64, _>("id")));
        assert_eq!(line["status"], "kept_as_history", "its file is not here");
    }
    let old_tiers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tiers").fetch_one(&old).await.unwrap();

    for table in ["gate_runs", "deploys", "versions", "backups"] {
        let old_n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&old)
            .await
            .unwrap();
        let new_n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&new)
            .await
            .unwrap();
        assert_eq!(old_n, new_n, "{table}");
        let lines = rows.iter().filter(|r| r["table"] == table).count();
        assert_eq!(lines as i64, old_n, "{table}: one report line per old row");
    }
    let tier_lines = rows.iter().filter(|r| r["table"] == "tiers").count();
    assert_eq!(tier_lines as i64, old_tiers);
    assert_eq!(rows.len(), rows.iter().filter(|r| r["table"] != "summary").count());
    old.close().await;
    new.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_imports_by_the_rules_and_a_second_import_changes_nothing() {
    for seed in SEEDS {
        let (sando, legacy) = setup(seed);
        let before = sha256(&legacy);
        let logs = seed_dir(seed).join("logs");
        let out =
            import(&sando, &legacy, &["--logs", logs.to_str().unwrap(), "--report", "report.json"]);
        assert!(out.status.success(), "seed {seed}: {}", util::stderr(&out));
        let printed = util::stdout(&out);
        assert!(printed.contains("gate runs:"), "{printed}");
        let (rows, report) = read_report(&sando.path("report.json"));
        let db = sando.path("data/sando.sqlite");
        check_import(&legacy, &db, &rows, &report).await;

        // Each old log file went to a run of its version and gate, byte for byte.
        let mut attached = 0;
        let pool = open(&db).await;
        for version in std::fs::read_dir(&logs).unwrap().flatten() {
            for file in std::fs::read_dir(version.path()).unwrap().flatten() {
                let gate = file.path().file_stem().unwrap().to_str().unwrap().to_owned();
                let version = version.file_name().to_str().unwrap().to_owned();
                let log_ref: String = sqlx::query_scalar(
                    "SELECT log_ref FROM gate_runs WHERE version = ?1 AND gate_kind = ?2 AND log_ref IS NOT NULL",
                )
                .bind(&version)
                .bind(&gate)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: no run of {version} {gate} has the old log: {e}"));
                assert_eq!(
                    std::fs::read(sando.path("data/logs").join(log_ref)).unwrap(),
                    std::fs::read(file.path()).unwrap()
                );
                attached += 1;
            }
        }
        pool.close().await;
        assert_eq!(report["logs_attached"], attached);

        // Twice: the same result, not duplicates.
        let once = dump(&db).await;
        let again = import(&sando, &legacy, &["--logs", logs.to_str().unwrap()]);
        assert!(again.status.success(), "{}", util::stderr(&again));
        assert!(util::stdout(&again).contains("already imported"), "{}", util::stdout(&again));
        assert_eq!(dump(&db).await, once, "seed {seed}: a second import changed the database");
        assert_eq!(sha256(&legacy), before, "seed {seed}: the old file was written to");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_reports_the_same() {
    let (sando, legacy) = setup(2);
    let out = import(&sando, &legacy, &["--dry-run", "--report", "dry.json"]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    assert!(util::stdout(&out).starts_with("would import"), "{}", util::stdout(&out));
    assert!(!sando.path("data").exists(), "a dry run made the data directory");
    let out = import(&sando, &legacy, &["--report", "real.json"]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let ((dry_rows, mut dry), (real_rows, real)) =
        (read_report(&sando.path("dry.json")), read_report(&sando.path("real.json")));
    assert_eq!(dry["dry_run"], true);
    dry["dry_run"] = json!(false);
    assert_eq!(dry, real);
    assert_eq!(dry_rows, real_rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_database_with_the_same_versions_is_refused() {
    let (sando, legacy) = setup(1);
    assert!(import(&sando, &legacy, &[]).status.success());
    let db = sando.path("data/sando.sqlite");
    let before = dump(&db).await;
    let other = sando.path("other.sqlite");
    std::fs::copy(seed_dir(2).join("legacy.sqlite"), &other).unwrap();
    let out = import(&sando, &other, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = util::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sando: versions: 0.8.0 (commit "), "{err}");
    assert!(
        err.contains("already in the database") && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(dump(&db).await, before);
}

/// Makes a variant of seed 1's database with `sql` applied (the captured
/// file itself is never edited).
async fn variant(sando: &Sando, name: &str, sql: &str) -> PathBuf {
    let path = sando.path(name);
    std::fs::copy(seed_dir(1).join("legacy.sqlite"), &path).unwrap();
    let pool = open(&path).await;
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_typed_stops_the_import_naming_it() {
    let (sando, _) = setup(1);
    let db = sando.path("data/sando.sqlite");
    let last: i64 = {
        let pool = open(&seed_dir(1).join("legacy.sqlite")).await;
        let id =
            sqlx::query_scalar("SELECT max(id) FROM gate_runs").fetch_one(&pool).await.unwrap();
        pool.close().await;
        id
    };
    let cases = [
        (
            variant(&sando, "kind.sqlite", &format!("UPDATE gate_runs SET gate_kind = 'smoke_test' WHERE id = {last}")).await,
            format!("sando: gate_runs row {last}: gate_kind \"smoke_test\" is not valid:"),
        ),
        (
            variant(&sando, "semver.sqlite", "PRAGMA foreign_keys = OFF; UPDATE versions SET version = '0.8' WHERE version = '0.8.3'").await,
            "sando: versions row 0.8: version \"0.8\" is not valid:".to_owned(),
        ),
        (
            variant(&sando, "canary.sqlite", "UPDATE tiers SET canary = 'half-and-half' WHERE name = 'prod'").await,
            "sando: tiers row prod: canary \"half-and-half\" is not a canary policy".to_owned(),
        ),
        (
            variant(&sando, "source.sqlite", "UPDATE backups SET source = 'ftp://db1/x' WHERE id = 2").await,
            "sando: backups row 2: source \"ftp://db1/x\" is not valid:".to_owned(),
        ),
        (
            variant(&sando, "schema.sqlite", "ALTER TABLE gate_runs DROP COLUMN detail").await,
            "is not the old Sando's database: it has no column gate_runs.detail".to_owned(),
        ),
    ];
    for (file, expected) in cases {
        let out = import(&sando, &file, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", file.display());
        let err = util::stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&expected), "{err}\nexpected: {expected}");
        let tables = dump(&db).await;
        for table in ["versions", "gate_runs", "deploys", "backups", "legacy_imports"] {
            assert_eq!(
                tables.get(table).map_or(0, Vec::len),
                0,
                "{table} after {}",
                file.display()
            );
        }
    }
    // This daemon's own database is not the old one.
    assert!(import(&sando, &seed_dir(1).join("legacy.sqlite"), &[]).status.success());
    let out = import(&sando, &db, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        util::stderr(&out)
            .contains("is not the old Sando's database: it has no column versions.built_at"),
        "{}",
        util::stderr(&out)
    );
    let out = import(&sando, &sando.path("sando.toml"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(util::stderr(&out).lines().count(), 1, "{}", util::stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_halfway_leaves_the_target_as_it_was() {
    let (sando, _) = setup(1);
    // Seed 1 with its gate runs copied many times over, so an import takes
    // long enough to be killed in the middle of it.
    let mut copies = String::from("PRAGMA foreign_keys = OFF;");
    for _ in 0..12 {
        copies.push_str(
            "INSERT INTO gate_runs (version, tier, gate_kind, started_at, finished_at, passed, detail)
             SELECT version, tier, gate_kind, started_at, finished_at, passed, detail FROM gate_runs;",
        );
    }
    let big = variant(&sando, "big.sqlite", &copies).await;
    let pool = open(&big).await;
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gate_runs").fetch_one(&pool).await.unwrap();
    pool.close().await;
    let db = sando.path("data/sando.sqlite");
    let mut killed_running = 0;
    for delay_ms in [150u64, 400, 800, 1300, 2000] {
        let mut child = sando
            .command()
            .args(["import-legacy", "--from", big.to_str().unwrap(), "--config", "sando.toml"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let tables = dump(&db).await;
        for table in ["versions", "gate_runs", "deploys", "backups", "legacy_imports"] {
            assert_eq!(
                tables.get(table).map_or(0, Vec::len),
                0,
                "{table} after a kill at {delay_ms} ms"
            );
        }
    }
    assert!(killed_running >= 2, "the import ended before it could be killed");
    // The target is whole: the import then runs to its end.
    let out = import(&sando, &big, &[]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let pool = open(&db).await;
    let imported: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gate_runs").fetch_one(&pool).await.unwrap();
    assert_eq!(imported, runs);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_history_is_served() {
    let (sando, legacy) = setup(7);
    let logs = seed_dir(7).join("logs");
    let out = import(&sando, &legacy, &["--logs", logs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let daemon = Daemon::start(&sando.path("sando.toml"));
    let state = daemon.state();

    let old = open(&legacy).await;
    let prod: Option<String> =
        sqlx::query_scalar("SELECT current_version FROM tier_state WHERE tier = 'prod'")
            .fetch_one(&old)
            .await
            .unwrap();
    assert_eq!(util::daemon::tier(&state, "prod")["current_version"], json!(prod));
    let versions: Vec<String> = state["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    assert!(versions.contains(&"0.9.0-rc.1".to_owned()), "{versions:?}");

    // An unclassified run reads as its old text; a run with an old log file
    // opens on that file.
    let (id, detail): (i64, String) = sqlx::query_as(
        "SELECT id, detail FROM gate_runs WHERE passed = 0 AND detail LIKE 'cargo test failed%' ORDER BY id LIMIT 1",
    )
    .fetch_one(&old)
    .await
    .unwrap();
    let (status, body) = daemon.get(&format!("/api/gate-runs/{id}"));
    assert_eq!(status, 200, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["outcome"]["failure"]["kind"], "unclassified");
    assert_eq!(run["outcome"]["failure"]["legacy_detail"], detail.as_str());
    let (status, log) = daemon.get(&format!("/api/gate-runs/{id}/log"));
    assert_eq!(status, 200);
    assert_eq!(log, detail, "the run opens on its old text or its old log, which holds the same");

    let (id, blocker): (i64, String) = sqlx::query_as(
        "SELECT id, detail FROM gate_runs WHERE passed = 0 AND gate_kind = 'manual_confirm' LIMIT 1",
    )
    .fetch_one(&old)
    .await
    .unwrap();
    assert_eq!(blocker, "waiting on operator");
    let (_, body) = daemon.get(&format!("/api/gate-runs/{id}"));
    let run: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["status"], "blocked");
    assert_eq!(run["outcome"]["blocker"]["kind"], "awaiting_operator_confirmation");

    // Nothing imported is acted on: no build, gate or deploy starts.
    std::thread::sleep(Duration::from_secs(2));
    let state = daemon.state();
    assert_eq!(state["scheduler"]["alive"], true);
    for worker in state["scheduler"]["workers"].as_array().unwrap() {
        assert!(worker["doing"].is_null(), "{worker}");
    }
    old.close().await;
    daemon.kill();
}

/// A short sha the repository has is made full; pushing an imported version's
/// commit again builds it here and keeps its artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_shas_resolve_from_the_repository_and_an_imported_version_builds_again() {
    let (sando, _) = setup(1);
    let project = util::daemon::Project::new(sando.dir.path());
    let full = project.commit("0.8.0", "assert_eq!(answer(), 42);");
    let short = &full[..7];
    let legacy = variant(
        &sando,
        "resolvable.sqlite",
        &format!(
            "UPDATE versions SET git_sha = '{}' WHERE version = '0.8.0'",
            short.to_uppercase()
        ),
    )
    .await;
    let node = sando.path("nodes/staging-1");
    std::fs::create_dir_all(&node).unwrap();
    let config = std::fs::read_to_string(sando.path("sando.toml"))
        .unwrap()
        .replace(
            "repo = \"no-such-repo\"",
            &format!("repo = {:?}", project.dir.display().to_string()),
        )
        .replace("build = \"true\"", "build = \"cargo build --offline --quiet\"")
        .replace("artifact = \"app\"", "artifact = \"target/debug/tiny\"")
        .replace(
            "deploy = \"true\"",
            &format!("deploy = \"cp {{artifact}} {}/tiny\"", node.display()),
        );
    std::fs::write(sando.path("sando.toml"), config).unwrap();

    let out = import(&sando, &legacy, &["--report", "report.json"]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let (_, report) = read_report(&sando.path("report.json"));
    assert_eq!(report["shas_resolved"], 1);
    assert!(!report["short_shas_kept"].as_array().unwrap().contains(&json!("0.8.0")));
    let db = sando.path("data/sando.sqlite");
    let pool = open(&db).await;
    let (sha, artifact): (String, String) =
        sqlx::query_as("SELECT git_sha, artifact FROM versions WHERE version = '0.8.0'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((sha.as_str(), artifact.as_str()), (full.as_str(), ""));

    // Pushed again, its commit is built here like a new version's.
    let daemon = Daemon::start(&sando.path("sando.toml"));
    let events = util::daemon::Events::connect(&daemon.url).await;
    let (status, body) =
        daemon.post("/api/rebuild", Some(util::daemon::TOKEN), &json!({ "sha": full }).to_string());
    assert_eq!(status, 202, "{body}");
    let done = events
        .wait("the build of 0.8.0", Duration::from_secs(180), |e| e["kind"] == "build_done")
        .await;
    assert_eq!(done["event"]["outcome"]["kind"], "ok", "{done}");
    let (artifact, sha256): (String, Option<String>) =
        sqlx::query_as("SELECT artifact, artifact_sha256 FROM versions WHERE version = '0.8.0'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(artifact.ends_with("artifacts/0.8.0/tiny"), "{artifact}");
    assert_eq!(sha256.map(|s| s.len()), Some(64));
    pool.close().await;
    daemon.kill();
}

/// `sando serve` on a data directory holding `db`: it must refuse, say why
/// on one line, and leave the file's bytes as they were.
fn serve_refuses(sando: &Sando, db: &Path) -> String {
    let before = sha256(db);
    let out = sando
        .command()
        .args(["serve", "--config", "sando.toml"])
        .env("SANDO_TEST_TOKEN", "a-test-token")
        .output()
        .unwrap();
    let err = util::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(sha256(db), before, "the refused database was written to");
    for side in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(side);
        assert!(!Path::new(&name).exists(), "{side} file left beside the refused database");
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_an_old_database_naming_the_upgrade_and_the_upgrade_then_works() {
    for seed in [1, 7] {
        let (sando, legacy) = setup(seed);
        let db = sando.path("data/sando.sqlite");
        std::fs::create_dir_all(sando.path("data")).unwrap();
        std::fs::copy(&legacy, &db).unwrap();
        let err = serve_refuses(&sando, &db);
        assert!(err.contains("is the old Sando daemon's database"), "{err}");
        // Paths as the config gives them (`data_dir = "data"`, from here).
        assert!(err.contains("`mv data/sando.sqlite data/sando-legacy.sqlite`"), "{err}");
        assert!(err.contains("`sando import-legacy --from data/sando-legacy.sqlite"), "{err}");
        let aside = sando.path("data/sando-legacy.sqlite");
        // Doing what it says upgrades.
        std::fs::rename(&db, &aside).unwrap();
        let out = import(&sando, &aside, &[]);
        assert!(out.status.success(), "seed {seed}: {}", util::stderr(&out));
        assert!(dump(&db).await["gate_runs"].len() > 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_newer_sandos_database_and_another_programs() {
    let (sando, legacy) = setup(3);
    assert!(import(&sando, &legacy, &[]).status.success());
    let db = sando.path("data/sando.sqlite");
    use sqlx::Connection as _;
    let mut pool = sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from the future', TRUE, X'00', 0)",
    )
    .execute(&mut pool)
    .await
    .unwrap();
    // Closed, as a stopped newer daemon leaves it: still in WAL mode, its
    // log checkpointed and gone.
    pool.close().await.unwrap();
    assert!(!sando.path("data/sando.sqlite-wal").exists());
    let err = serve_refuses(&sando, &db);
    assert!(err.contains("newer Sando (its migration 99991231000000"), "{err}");

    std::fs::remove_file(&db).unwrap();
    let other =
        SqlitePool::connect_with(SqliteConnectOptions::new().filename(&db).create_if_missing(true))
            .await
            .unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        .execute(&other)
        .await
        .unwrap();
    other.close().await;
    let err = serve_refuses(&sando, &db);
    assert!(err.contains("another program's database (tables: invoices)"), "{err}");

    std::fs::write(&db, b"not a database at all, but bytes someone keeps").unwrap();
    let err = serve_refuses(&sando, &db);
    assert!(err.contains("is not a SQLite database"), "{err}");
}

/// What an old `cargo test` failure's text says failed: the count on its
/// result line and the first name of its failures list.
fn old_failures(detail: &str) -> Option<(u64, String)> {
    let result = detail.lines().find(|l| l.starts_with("test result: FAILED."))?;
    let count = result.split("; ").find_map(|part| part.strip_suffix(" failed"))?;
    let list = detail.split("failures:\n").nth(1)?;
    let first = list.lines().next()?.trim().to_owned();
    Some((count.parse().ok()?, first))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclassify_legacy_shows_what_todays_classifier_makes_of_the_kept_text_and_writes_nothing()
{
    let (sando, legacy) = setup(7);
    assert!(import(&sando, &legacy, &[]).status.success());
    let daemon = Daemon::start(&sando.path("sando.toml"));
    sando.write("token", util::daemon::TOKEN);
    let db = sando.path("data/sando.sqlite");
    let before = dump(&db).await;
    let reclassify = |extra: &[&str]| {
        let mut args = vec!["reclassify", "--gate", "cargo_test", "--legacy", "--url", &daemon.url];
        args.extend_from_slice(&["--token-file", "token"]);
        args.extend_from_slice(extra);
        sando.run(&args)
    };
    let out = reclassify(&[]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let printed = util::stdout(&out);
    assert!(printed.contains("imported runs classified by the serving component"), "{printed}");

    let old = open(&legacy).await;
    let runs: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, detail FROM gate_runs WHERE gate_kind = 'cargo_test' AND passed = 0 ORDER BY id",
    )
    .fetch_all(&old)
    .await
    .unwrap();
    old.close().await;
    // Imported runs whose old daemon kept no text are counted, not lost.
    let old = open(&legacy).await;
    let silent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM gate_runs WHERE gate_kind = 'cargo_test' AND detail IS NULL",
    )
    .fetch_one(&old)
    .await
    .unwrap();
    old.close().await;
    assert!(silent > 0, "seed 7 has runs without text");
    assert!(printed.contains(&format!(", {silent} without a recorded output")), "{printed}");
    let mut named = 0;
    for (id, detail) in &runs {
        let line = printed.lines().find(|l| l.trim_start().starts_with(&format!("run {id} (")));
        if let Some((count, first)) = old_failures(detail) {
            // The kept tail names the failures: today's classifier reads them.
            let line = line.unwrap_or_else(|| panic!("run {id} not in the diff:\n{printed}"));
            let new = line.split("  ->  ").nth(1).unwrap();
            assert_eq!(new, format!("tests failed: {count} (first: {first})"), "run {id}");
            named += 1;
        }
    }
    assert!(named > 0, "seed 7 has failures with names:\n{printed}");
    assert_eq!(dump(&db).await, before, "a legacy reclassification wrote to the database");

    // Never applied: the command line refuses, and so does the API.
    let out = reclassify(&["--apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", util::stderr(&out));
    let (status, body) = daemon.post(
        "/api/reclassify",
        Some(util::daemon::TOKEN),
        r#"{"gate":"cargo_test","legacy":true,"apply":true}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("dry run only"), "{body}");
    daemon.kill();
}
