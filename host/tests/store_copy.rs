//! `sando store copy` through the real binary, on a real PostgreSQL (`./x test` starts it): an old daemon's imported history copied whole, the SQLite file only read, then served the same from PostgreSQL; and the copies it refuses.

mod util;

use serde_json::Value;
use util::daemon::Daemon;

fn sha256(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `/api/state` without what is the daemon's own rather than the
/// history's: its decision loop (workers appear as it starts them), who
/// leads (only a shared store has a leader); and times past the
/// microsecond (PostgreSQL keeps microseconds; SQLite what the clock gave).
fn settled(mut state: Value) -> Value {
    let fields = state.as_object_mut().unwrap();
    fields.remove("scheduler");
    fields.remove("leader");
    to_microseconds(&mut state);
    state
}

/// Every RFC 3339 time in `value` cut to the microsecond.
fn to_microseconds(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
                let time = time.with_timezone(&chrono::Utc);
                let cut =
                    chrono::DurationRound::duration_trunc(time, chrono::TimeDelta::microseconds(1))
                        .unwrap();
                *text = cut.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(to_microseconds),
        Value::Object(fields) => fields.values_mut().for_each(to_microseconds),
        _ => {}
    }
}

fn served(config: &std::path::Path, runs: &[i64]) -> (Value, Vec<String>) {
    let daemon = Daemon::start(config);
    let state = settled(daemon.state());
    let logs = runs
        .iter()
        .map(|id| {
            let (status, body) = daemon.get(&format!("/api/gate-runs/{id}/log"));
            format!("{status} {body}")
        })
        .collect();
    daemon.kill();
    (state, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_history_copied_to_postgres_is_served_the_same() {
    let (sando, legacy) = util::legacy::setup(7);
    let logs = util::legacy::seed_dir(7).join("logs");
    let imported = sando.run(&[
        "import-legacy",
        "--from",
        legacy.to_str().unwrap(),
        "--config",
        "sando.toml",
        "--logs",
        logs.to_str().unwrap(),
    ]);
    assert!(imported.status.success(), "{}", util::stderr(&imported));
    let db = sando.path("data/sando.sqlite");
    let before = sha256(&db);
    let url = util::postgres::fresh_database().await;
    let from = format!("sqlite://{}", db.display());

    let out = sando.run(&["store", "copy", "--from", &from, "--to", &url]);
    let printed = util::stdout(&out);
    assert!(out.status.success(), "{}{printed}", util::stderr(&out));
    assert_eq!(sha256(&db), before, "the SQLite file was written to");
    let last = printed.lines().last().unwrap();
    assert!(last.starts_with("copied ") && last.contains(" rows of 18 tables "), "{printed}");
    let gate_runs = printed.lines().find(|l| l.starts_with("gate_runs ")).unwrap();
    let old = sqlx::SqlitePool::connect(&format!("sqlite://{}", legacy.display())).await.unwrap();
    let old_runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM gate_runs").fetch_one(&old).await.unwrap();
    // Runs with the old daemon's log files attached, to read back served.
    let attached: Vec<i64> = {
        let pool = sqlx::SqlitePool::connect(&from).await.unwrap();
        let ids = sqlx::query_scalar("SELECT id FROM gate_runs ORDER BY id LIMIT 5")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    };
    old.close().await;
    assert!(gate_runs.contains(&format!(" {old_runs} rows ")), "{gate_runs}");

    // Served from either store: the same state, the same logs.
    let on_sqlite = served(&sando.path("sando.toml"), &attached);
    let config = std::fs::read_to_string(sando.path("sando.toml")).unwrap();
    sando.write("postgres.toml", format!("{config}\n[store]\nurl = \"{url}\"\n"));
    let on_postgres = served(&sando.path("postgres.toml"), &attached);
    assert!(on_sqlite.0["versions"].as_array().unwrap().len() > 3, "{}", on_sqlite.0);
    assert_eq!(on_sqlite.0, on_postgres.0);
    assert_eq!(on_sqlite.1, on_postgres.1);

    // Into a database that is not empty: refused, nothing changed.
    let again = sando.run(&["store", "copy", "--from", &from, "--to", &url]);
    let err = util::stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not empty (legacy_imports has 1 rows)"), "{err}");
}

#[tokio::test]
async fn a_copy_from_what_is_not_a_sando_history_is_refused_in_one_line() {
    let sando = util::Sando::new();
    let url = util::postgres::fresh_database().await;
    let old = util::legacy::seed_dir(1).join("legacy.sqlite");
    let cases = [
        (old.display().to_string(), "is the old Sando daemon's database"),
        ("sqlite:///no/such/file.sqlite".to_owned(), "/no/such/file.sqlite: no such file"),
        (url.clone(), "a copy reads a SQLite history"),
    ];
    for (from, expected) in cases {
        let out = sando.run(&["store", "copy", "--from", &from, "--to", &url]);
        let err = util::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{from}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{from}: {err}");
    }
    let out = sando
        .command()
        .args(["store", "copy", "--from", "x.sqlite", "--to-env", "SANDO_NO_SUCH_URL"])
        .output()
        .unwrap();
    assert!(util::stderr(&out).contains("--to-env: SANDO_NO_SUCH_URL is not set"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_the_demo_made_copied_to_postgres_is_served_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = util::Demo::start(&dir.path().join("demo"));
    // Settled: 0.2.0 red at staging, 0.1.0 waiting for an operator at prod
    // (burn-in over), so serving it again changes nothing.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let runs: Vec<i64> = loop {
        let state: Value = agent
            .get(format!("{}/api/state", demo.url))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null);
        let gates: Vec<&Value> = state["tiers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["gates"].as_array().into_iter().flatten())
            .collect();
        let settled = |gate: &str, status: &str| {
            gates.iter().any(|g| g["gate"] == gate && g["status"] == status)
        };
        if settled("migration_dry_run", "failed") && settled("manual_confirm", "blocked") {
            break gates.iter().filter_map(|g| g["run_id"].as_i64()).collect();
        }
        assert!(std::time::Instant::now() < deadline, "the demo did not settle: {state}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    demo.kill();
    let db = demo.dir.join("state/sando.sqlite");
    let before = sha256(&db);
    let url = util::postgres::fresh_database().await;
    let out = util::Sando::new().run(&[
        "store",
        "copy",
        "--from",
        &format!("sqlite://{}", db.display()),
        "--to",
        &url,
    ]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    assert_eq!(sha256(&db), before, "the SQLite file was written to");

    let config = demo.dir.join("sando.toml");
    let on_sqlite = served(&config, &runs);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(demo.dir.join("postgres.toml"), format!("{text}\n[store]\nurl = \"{url}\"\n"))
        .unwrap();
    let on_postgres = served(&demo.dir.join("postgres.toml"), &runs);
    assert!(runs.len() >= 4, "{runs:?}");
    assert!(on_sqlite.1.iter().all(|log| log.starts_with("200 ")), "{:?}", on_sqlite.1);
    assert_eq!(on_sqlite.0, on_postgres.0);
    assert_eq!(on_sqlite.1, on_postgres.1);
}
