//! The store on a real PostgreSQL (`./x test` starts it): its schema against the SQLite one, values read back equal through both backends, refusals before any write, and the methods ported so far.

mod util;

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Row as _;

/// Each table's columns, and whether each may be NULL.
type Schema = BTreeMap<String, BTreeMap<String, bool>>;

async fn sqlite_schema() -> Schema {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sando.sqlite");
    // The store's own migrations, as `sando serve` applies them.
    drop(sando::store::Store::open(&path).await.unwrap());
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for table in tables {
        let columns = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|c| {
                let required = c.get::<i64, _>("notnull") == 1 || c.get::<i64, _>("pk") > 0;
                (c.get::<String, _>("name"), !required)
            })
            .collect();
        schema.insert(table, columns);
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/postgres");
    sqlx::migrate::Migrator::new(migrations).await.unwrap().run(&pool).await.unwrap();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for row in rows {
        schema
            .entry(row.get("t"))
            .or_default()
            .insert(row.get("c"), row.get::<String, _>("n") == "YES");
    }
    pool.close().await;
    schema
}

#[tokio::test]
async fn the_postgres_schema_has_the_sqlite_schemas_tables_and_columns() {
    let url = util::postgres::fresh_database().await;
    let (sqlite, mut postgres) = (sqlite_schema().await, postgres_schema(&url).await);
    assert!(sqlite.len() > 10, "{sqlite:?}");
    // Only a store several daemons share has a leader.
    assert!(postgres.remove("leader").is_some(), "{postgres:?}");
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "the same tables"
    );
    for (table, columns) in &sqlite {
        assert_eq!(columns, &postgres[table], "table {table}: columns and which may be NULL");
    }
}

/// Every `expected.json` of the shipped fixtures: the outcomes a gate can
/// give, as the contract writes them.
fn fixture_outcomes() -> Vec<sando::domain::GateStatus> {
    let mut outcomes = Vec::new();
    let mut stack = vec![util::fixtures_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "expected.json") {
                let text = std::fs::read_to_string(&path).unwrap();
                outcomes.push(serde_json::from_str(&text).unwrap());
            }
        }
    }
    outcomes
}

#[tokio::test]
async fn an_outcome_written_by_one_backend_reads_back_equal_on_the_other() {
    use sando::domain::{DeployFailure, DeployOutcome, GateRunId, GitSha, TierId, Version};
    let outcomes = fixture_outcomes();
    assert!(outcomes.len() > 50, "{} outcomes", outcomes.len());
    let pg = sqlx::PgPool::connect(&util::postgres::fresh_database().await).await.unwrap();
    let sqlite = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    for outcome in &outcomes {
        // SQLite's TEXT form, read back into PostgreSQL's jsonb and out again.
        let text: String =
            sqlx::query_scalar("SELECT ?1").bind(outcome).fetch_one(&sqlite).await.unwrap();
        let from_sqlite: sando::domain::GateStatus = serde_json::from_str(&text).unwrap();
        let through_pg: sando::domain::GateStatus =
            sqlx::query_scalar("SELECT $1::jsonb").bind(&from_sqlite).fetch_one(&pg).await.unwrap();
        assert_eq!(&through_pg, outcome);
        let back: sando::domain::GateStatus =
            sqlx::query_scalar("SELECT ?1").bind(&through_pg).fetch_one(&sqlite).await.unwrap();
        assert_eq!(&back, outcome);
    }
    // A NUL that code under test printed into a test's name: jsonb cannot
    // hold it, so it is kept as U+FFFD rather than failing the write.
    let nul: sando::domain::GateStatus = serde_json::from_str(
        r#"{"kind":"failed","failure":{"kind":"cargo_test","failed_count":1,"first_failed":"t::a\u0000b"}}"#,
    )
    .unwrap();
    let read: serde_json::Value =
        sqlx::query_scalar("SELECT $1::jsonb").bind(&nul).fetch_one(&pg).await.unwrap();
    assert_eq!(read["failure"]["first_failed"], "t::a\u{FFFD}b");
    let deploy =
        DeployOutcome::Failed { failure: DeployFailure::Transport { exit_code: Some(12) } };
    let read: DeployOutcome =
        sqlx::query_scalar("SELECT $1::jsonb").bind(&deploy).fetch_one(&pg).await.unwrap();
    assert_eq!(read, deploy);
    let (tier, version): (TierId, Version) =
        ("prod".parse().unwrap(), "1.2.3-rc.1".parse().unwrap());
    let sha: GitSha = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
    let run = GateRunId::try_from(4_000_000_000i64).unwrap();
    let row: (TierId, Version, GitSha, GateRunId) = sqlx::query_as("SELECT $1, $2, $3, $4")
        .bind(&tier)
        .bind(&version)
        .bind(&sha)
        .bind(run)
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(row, (tier, version, sha, run));
    // A value PostgreSQL holds that is not a domain value is refused, not guessed.
    let bad = sqlx::query_scalar::<_, Version>("SELECT 'not-semver'::text").fetch_one(&pg).await;
    assert!(bad.is_err());
    pg.close().await;
}

#[tokio::test]
async fn the_postgres_store_opens_only_its_own_database_and_keeps_tiers_in_order() {
    use sando::store::PgStore;
    let url = util::postgres::fresh_database().await;
    let store = PgStore::open(&url, sando::store::Role::Command).await.unwrap();
    let tier = |n: &str| -> sando::domain::TierId { n.parse().unwrap() };
    store.sync_tiers(&[tier("staging"), tier("prod")]).await.unwrap();
    let names = |rows: Vec<sando::store::TierRow>| -> Vec<String> {
        rows.into_iter().map(|r| r.name.to_string()).collect()
    };
    assert_eq!(names(store.tiers().await.unwrap()), ["staging", "prod"]);
    // A tier the config drops keeps its row (its history), after the rest.
    store.sync_tiers(&[tier("prod"), tier("canary")]).await.unwrap();
    assert_eq!(names(store.tiers().await.unwrap()), ["prod", "staging", "canary"]);
    // Opened again: its own, at a migration it knows.
    assert!(PgStore::open(&url, sando::store::Role::Command).await.is_ok());

    // A newer Sando's database is refused before anything is written.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err =
        PgStore::open(&url, sando::store::Role::Command).await.err().expect("refused").to_string();
    assert!(err.contains("written by a newer Sando (its migration 99991231000000"), "{err}");

    // Another program's database: refused, naming its tables; nothing made.
    let other = util::postgres::fresh_database().await;
    let pool = sqlx::PgPool::connect(&other).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id bigint)").execute(&pool).await.unwrap();
    let err = PgStore::open(&other, sando::store::Role::Command)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("another program's database (tables: invoices)"), "{err}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1, "nothing was created beside it");
    pool.close().await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_one_line_without_the_password() {
    // Port 1: nothing listens there.
    let err = sando::store::PgStore::open(
        "postgresql://sando:hunter2@127.0.0.1:1/sando",
        sando::store::Role::Command,
    )
    .await
    .err()
    .expect("nothing listens on port 1")
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn a_restart_on_postgres_gives_what_was_in_flight_a_typed_outcome() {
    let url = util::postgres::fresh_database().await;
    let store = sando::store::PgStore::open(&url, sando::store::Role::Command).await.unwrap();
    store.sync_tiers(&["staging".parse().unwrap()]).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for sql in [
        "INSERT INTO versions (version, git_sha, registered_at, artifact)
         VALUES ('0.1.0', 'aaaaaaa', now(), 'a')",
        "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract)
         VALUES ('0.1.0', 'staging', 'cargo_test', now(), 'running', 'd', '0.2.0')",
        "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract,
                                outcome_json)
         VALUES ('0.1.0', 'staging', 'burn_in', now(), 'passed', 'd', '0.2.0',
                 '{\"kind\":\"passed\",\"note\":{\"kind\":\"burn_in_elapsed\",\"seconds\":60}}')",
        // Written with other spacing and key order than Sando writes: the
        // same value all the same.
        "INSERT INTO deploys (version, tier, node, started_at, outcome_json, log_ref)
         VALUES ('0.1.0', 'staging', 'n1', now(), '{ \"kind\" : \"in_progress\" }', 'l')",
        "INSERT INTO builds (git_sha, started_at, log_ref) VALUES ('aaaaaaa', now(), 'b')",
        // A run whose job outlives the daemon (recorded below): adopted,
        // not interrupted.
        "INSERT INTO gate_runs (version, tier, gate_kind, started_at, status, component_digest, contract)
         VALUES ('0.1.0', 'staging', 'boot_smoke', now(), 'running', 'd', '0.2.0')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let id = |id: i64| sando::domain::GateRunId::try_from(id).unwrap();
    let (finished, with_job) = (id(2), id(3));
    assert!(store.record_run_job(with_job, 0, "slurm:7:x", 42).await.unwrap());
    assert!(!store.record_run_job(finished, 0, "slurm:8:y", 0).await.unwrap(), "not running");
    let jobs = store.run_jobs().await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        (jobs[0].run_id, jobs[0].handle.as_str(), jobs[0].spawn, jobs[0].log_at),
        (with_job, "slurm:7:x", 0, 42)
    );
    assert_eq!(store.interrupt_unfinished(chrono::Utc::now()).await.unwrap(), 1);
    // Let go of (no executor can follow it), it is interrupted like the rest.
    store.forget_run_job(with_job).await.unwrap();
    assert!(store.run_jobs().await.unwrap().is_empty());
    assert_eq!(store.interrupt_unfinished(chrono::Utc::now()).await.unwrap(), 1);
    let runs: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT status, outcome_json FROM gate_runs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(runs[0].0, "failed");
    assert_eq!(runs[0].1, serde_json::json!({"kind":"failed","failure":{"kind":"interrupted"}}));
    assert_eq!(runs[1].0, "passed", "a finished run is left as it was");
    let deploy: serde_json::Value =
        sqlx::query_scalar("SELECT outcome_json FROM deploys").fetch_one(&pool).await.unwrap();
    assert_eq!(deploy["failure"]["kind"], "interrupted");
    let build: serde_json::Value =
        sqlx::query_scalar("SELECT outcome_json FROM builds").fetch_one(&pool).await.unwrap();
    assert_eq!(build["failure"]["kind"], "interrupted");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_database_stands_by_until_the_first_is_gone() {
    let url = util::postgres::fresh_database().await;
    let (first, _) = util::legacy::setup(1);
    let (second, _) = util::legacy::setup(1);
    for sando in [&first, &second] {
        let config = std::fs::read_to_string(sando.path("sando.toml")).unwrap();
        sando.write("sando.toml", format!("{config}\n[store]\nurl = \"{url}\"\n"));
    }
    let mut daemon = util::daemon::Daemon::start(&first.path("sando.toml"));
    let standby = util::daemon::Daemon::start(&second.path("sando.toml"));
    let first_pid = daemon.pid();
    let stood_by = wait_for_line(&standby, "standing by: ");
    assert!(
        stood_by.contains(&format!("(pid {first_pid}) leads (epoch 1, at {})", daemon.url)),
        "{stood_by}"
    );
    let leader = &standby.state()["leader"];
    assert_eq!(
        (leader["epoch"].as_i64(), leader["this_daemon"].as_bool()),
        (Some(1), Some(false)),
        "{leader}"
    );
    assert_eq!(daemon.state()["leader"]["this_daemon"], true);
    // Its lock connection cut by the server: it stops rather than act on
    // beside a daemon that may take the lock now, and the standby does.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cut, [true], "one daemon held the lead");
    let status = daemon.exited_within(std::time::Duration::from_secs(15));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", daemon.stderr.lock().unwrap());
    assert!(daemon.stderr.lock().unwrap().contains("this daemon no longer leads (epoch 1)"));
    wait_for_line(&standby, "this daemon leads (epoch 2)");
    assert_eq!(standby.state()["tiers"].as_array().unwrap().len(), 2);
    assert_eq!(standby.state()["leader"]["this_daemon"], true);
    // Gone however it went (here: kill -9), its lock goes with its session.
    standby.kill();
    let again = util::daemon::Daemon::start(&first.path("sando.toml"));
    assert_eq!(again.state()["leader"]["epoch"], 3);
    again.kill();
    pool.close().await;
}

/// Waits up to 30 s for a line of the daemon's stderr holding `text`.
fn wait_for_line(daemon: &util::daemon::Daemon, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stderr = daemon.stderr.lock().unwrap().clone();
        if let Some(line) = stderr.lines().find(|l| l.contains(text)) {
            return line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no {text:?} in: {stderr}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `sando serve` on `url`: its exit code and stderr, or a failure if it
/// is still serving after 30 s.
fn serve_on(url: &str) -> (Option<i32>, String) {
    let (sando, _) = util::legacy::setup(1);
    let config = std::fs::read_to_string(sando.path("sando.toml")).unwrap();
    sando.write("sando.toml", format!("{config}\n[store]\nurl = \"{url}\"\n"));
    let mut child = sando
        .command()
        .args(["serve", "--config", "sando.toml"])
        .env("SANDO_TEST_TOKEN", util::daemon::TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("sando serve on {url} is serving");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (output.status.code(), util::stderr(&output))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_sando_serve_cannot_use_is_one_line_and_nothing_is_written() {
    let cluster = util::postgres::cluster_url();
    let (code, err) = serve_on("postgresql://postgres:hunter2@127.0.0.1:1/sando");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("postgres://postgres@127.0.0.1:1/sando") && !err.contains("hunter2"),
        "{err}"
    );

    // The suite's cluster asks for a password over TCP.
    let password = cluster.split_once("postgres:").unwrap().1.split_once('@').unwrap().0.to_owned();
    assert!(!password.is_empty(), "the suite's cluster has a password: {cluster}");
    let wrong = cluster.replacen(&password, "not-the-password-1", 1);
    let (code, err) = serve_on(&wrong);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("password authentication failed for user \"postgres\""), "{err}");
    assert!(!err.contains("not-the-password-1") && !err.contains(&password), "{err}");

    let other = util::postgres::fresh_database().await;
    let pool = sqlx::PgPool::connect(&other).await.unwrap();
    sqlx::query("CREATE TABLE invoices (id bigint)").execute(&pool).await.unwrap();
    let (code, err) = serve_on(&other);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("another program's database (tables: invoices)"), "{err}");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tables, ["invoices"], "nothing was made beside it");
    pool.close().await;

    let newer = util::postgres::fresh_database().await;
    sando::store::PgStore::open(&newer, sando::store::Role::Command).await.unwrap();
    let pool = sqlx::PgPool::connect(&newer).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000000, 'from the future', TRUE, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (code, err) = serve_on(&newer);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("written by a newer Sando (its migration 99991231000000"), "{err}");
    let written: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM leader) + (SELECT count(*) FROM tiers) + (SELECT count(*) FROM components)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(written, 0, "no leader, tier or component was written");
    pool.close().await;
}

/// The event backlog on both backends: appended in any order, read back
/// in `seq` order after a point, bounded by count (not by `seq`, which has
/// gaps) and by age, with the marks a resumed stream needs.
#[tokio::test]
async fn the_event_backlog_keeps_the_newest_by_count_and_age_on_both_backends() {
    use chrono::{Duration, Utc};
    use sando::store::{BacklogBound, BackloggedEvent, EventMarks};
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sando::store::Store::open(&dir.path().join("sando.sqlite")).await.unwrap();
    let url = util::postgres::fresh_database().await;
    let postgres = sando::store::PgStore::open(&url, sando::store::Role::Command).await.unwrap();
    let now = Utc::now();
    let event = |seq: i64, age_h: i64| BackloggedEvent {
        seq,
        at: now - Duration::hours(age_h),
        envelope: format!(r#"{{"seq":{seq},"event":{{"kind":"lagged","missed":0}}}}"#),
    };
    let keep = |events: i64| BacklogBound { events, since: now - Duration::hours(24) };
    let seqs = |rows: Vec<BackloggedEvent>| rows.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    macro_rules! check {
        ($store:expr) => {{
            let store = $store;
            assert_eq!(store.event_marks().await.unwrap(), EventMarks { top: 0, floor: 0 });
            // One too old, then gaps in `seq` (log chunks took numbers).
            let batch = [event(3, 30), event(10, 2), event(5, 3), event(1_000_020, 1)];
            store.append_events(&batch, 1_000_025, keep(10)).await.unwrap();
            assert_eq!(seqs(store.events_since(0, 100).await.unwrap()), [5, 10, 1_000_020]);
            assert_eq!(store.event_marks().await.unwrap(), EventMarks { top: 1_000_025, floor: 3 });
            assert_eq!(seqs(store.events_since(5, 1).await.unwrap()), [10]);
            // Two kept by count: the oldest goes however far its `seq` is.
            store.append_events(&[event(1_000_030, 0)], 1_000_030, keep(2)).await.unwrap();
            assert_eq!(seqs(store.events_since(0, 100).await.unwrap()), [1_000_020, 1_000_030]);
            let marks = store.event_marks().await.unwrap();
            assert_eq!(marks, EventMarks { top: 1_000_030, floor: 10 });
            // A top mark only moves up, and the same event twice is kept once.
            store.append_events(&[event(1_000_030, 0)], 7, keep(2)).await.unwrap();
            assert_eq!(store.event_marks().await.unwrap(), marks);
            let row = &store.events_since(1_000_020, 100).await.unwrap()[0];
            assert_eq!(row.envelope, event(1_000_030, 0).envelope, "kept as it was sent");
        }};
    }
    check!(&sqlite);
    check!(&postgres);
}
