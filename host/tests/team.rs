//! Operating Sando as a team, through the real `sando serve`: operators and their roles, identities taken from tokens only, approval policies bound to the evidence, rejection, and the audit trail.
//!
//! Each test makes its operators' tokens with `sando operators add`, as an
//! operator would, and pastes the entry it prints into the config.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use util::config::{CARGO_TEST, CONFIRM};
use util::daemon::{Daemon, Events, Project, TOKEN, gate, gate_done, poll_state, tier};
use util::team::{audit, get_as, rebuild, team, waiting_run, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_confirm_an_operator_can_and_the_run_records_the_tokens_identity() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let team = team();
    let config = write_config(root.path(), &project.dir, "", "", CONFIRM, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    // Rebuilds are an admin's (the old single token is the admin `admin`).
    let body = json!({ "sha": sha }).to_string();
    let (status, refused) = daemon.post("/api/rebuild", Some(&team.alice), &body);
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "alice has the operator role; POST /api/rebuild needs admin",);
    rebuild(&daemon, &sha);
    let run = waiting_run(&events).await;
    let confirm = format!("/api/gate-runs/{run}/confirm");

    let (status, body) = daemon.post(&confirm, Some(&team.viewer), "{}");
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().starts_with("vic has the viewer role; "), "{body}");
    assert_eq!(daemon.post(&confirm, None, "{}").0, 401);
    assert_eq!(daemon.post(&confirm, Some("not-a-token"), "{}").0, 401);
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(
        (gate(&prod, "manual_confirm")["status"].as_str(), &prod["confirmation"]),
        (Some("blocked"), &Value::Null)
    );

    // Whatever the body says, the confirmation is alice's: her token's.
    let (status, body) = daemon.post(&confirm, Some(&team.alice), r#"{"by":"mallory"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["confirmed_by"], "alice");
    events
        .wait("0.1.0 promoted", Duration::from_secs(60), |e| {
            e["kind"] == "promoted" && e["version"] == "0.1.0"
        })
        .await;
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(prod["confirmation"]["confirmed_by"], "alice", "{prod}");
    assert_eq!(events.count(|e| e["kind"] == "confirmed" && e["by"] == "alice"), 1);
    let trail = audit(&daemon, &team.viewer);
    let acts: Vec<_> = trail.iter().map(|(who, what, _)| (who.as_str(), what.as_str())).collect();
    assert_eq!(acts, [("admin", "rebuild"), ("alice", "approve")]);
    let _ = (&team.bob, &team.carol);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_can_require_a_token_and_the_audit_trail_always_does() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    project.commit("0.1.0", "");
    let team = team();
    let config = write_config(
        root.path(),
        &project.dir,
        "read_requires_token = true",
        "",
        CONFIRM,
        &team.operators,
    );
    let daemon = Daemon::start(&config);
    assert_eq!(get_as(&daemon, "/api/state", None).0, 401);
    assert_eq!(get_as(&daemon, "/api/events", None).0, 401);
    assert_eq!(get_as(&daemon, "/logs/0.1.0/manual_confirm", None).0, 401);
    assert_eq!(get_as(&daemon, "/api/state", Some("wrong")).0, 401);
    let (status, state) = get_as(&daemon, "/api/state", Some(&team.viewer));
    assert_eq!(status, 200, "{state}");
    // Who a token is, for clients that show only what it may do.
    assert_eq!(
        get_as(&daemon, "/api/whoami", Some(&team.viewer)).1,
        json!({"name": "vic", "role": "viewer"})
    );
    assert_eq!(
        get_as(&daemon, "/api/whoami", Some(TOKEN)).1,
        json!({"name": "admin", "role": "admin"})
    );
    assert_eq!(get_as(&daemon, "/api/whoami", None).0, 401);
    assert_eq!(get_as(&daemon, "/api/audit", None).0, 401);
    assert_eq!(get_as(&daemon, "/api/audit", Some(&team.viewer)).0, 200);
    let (status, body) = get_as(&daemon, "/api/audit?since=yesterday", Some(&team.viewer));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("since: \"yesterday\" is neither"),
        "{body}"
    );
    assert_eq!(get_as(&daemon, "/api/audit?limit=100000", Some(&team.viewer)).0, 400);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_of_three_the_authors_refused_a_rerun_voids_and_two_fresh_ones_deploy() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let team = team();
    let policy =
        r#"approvals = { required = 2, from = ["alice", "bob", "carol"], forbid_author = true }"#;
    let gates = format!("{CARGO_TEST}\n{CONFIRM}");
    let config = write_config(root.path(), &project.dir, "", policy, &gates, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let run = waiting_run(&events).await;
    let confirm = format!("/api/gate-runs/{run}/confirm");
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(
        gate(&prod, "manual_confirm")["outcome"],
        json!({ "kind": "blocked", "blocker": { "kind": "awaiting_approvals", "have": 0, "need": 2 } })
    );
    assert_eq!(
        (prod["approvals"]["have"].as_u64(), prod["approvals"]["need"].as_u64()),
        (Some(0), Some(2))
    );

    // One approval: still blocked, `1 of 2`.
    let (status, body) = daemon.post(&confirm, Some(&team.alice), "{}");
    assert_eq!(status, 200, "{body}");
    events
        .wait("1 of 2", Duration::from_secs(30), |e| {
            e["kind"] == "gate_updated" && e["outcome"]["status"]["blocker"]["have"] == 1
        })
        .await;
    let prod = tier(&daemon.state(), "prod").clone();
    let approvals: sando::domain::ApprovalState =
        serde_json::from_value(prod["approvals"].clone()).unwrap();
    assert_eq!(approvals.to_string(), "1 of 2: alice");
    assert_eq!(gate(&prod, "manual_confirm")["status"], "blocked");
    // The status page says so too.
    let (status, page) = daemon.get("/");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("approvals: 1 of 2: alice"), "{page}");
    // alice again on the same evidence counts once, and says so.
    let (status, body) = daemon.post(&confirm, Some(&team.alice), "{}");
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("alice has already approved 0.1.0 at prod on this evidence"))
    );

    // The author may not approve their own commit.
    let (status, body) = daemon.post(&confirm, Some(&team.carol), "{}");
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"],
        "carol wrote 0.1.0 (git author) and may not approve it (forbid_author)"
    );
    // The admin is not among `from`.
    let (status, body) = daemon.post(&confirm, Some(TOKEN), "{}");
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("admin may not approve at prod: only alice, bob, carol may"))
    );

    // bob asks for the tests to run again: alice's approval was given on
    // the old run, so it no longer counts.
    let tests = gate(&prod, "cargo_test")["run_id"].as_i64().unwrap();
    let (status, body) =
        daemon.post(&format!("/api/gate-runs/{tests}/rerun"), Some(&team.bob), "{}");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["requested_by"], "bob");
    events
        .wait("the tests ran again", Duration::from_secs(120), |e| {
            gate_done("cargo_test", "passed")(e) && e["run_id"] != tests
        })
        .await;
    let state = poll_state(&daemon, "alice's approval voided", Duration::from_secs(30), |s| {
        let prod = tier(s, "prod");
        prod["approvals"]["approvals"][0]["voided"] == true
            && gate(prod, "manual_confirm")["outcome"]["blocker"]["have"] == 0
    });
    let prod = tier(&state, "prod");
    assert_eq!(prod["approvals"]["have"], 0, "{prod}");
    assert_eq!(gate(prod, "manual_confirm")["run_id"], run, "the same run waits");

    // Two fresh approvals: it deploys.
    let (status, body) = daemon.post(&confirm, Some(&team.alice), "{}");
    assert_eq!(status, 200, "{body}");
    let one_of_two =
        |e: &Value| e["kind"] == "gate_updated" && e["outcome"]["status"]["blocker"]["have"] == 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while events.count(one_of_two) < 2 {
        assert!(std::time::Instant::now() < deadline, "no second `1 of 2`");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!root.path().join("nodes/prod-1/tiny").exists(), "one approval deploys nothing");
    let (status, body) = daemon.post(&confirm, Some(&team.bob), r#"{"by":"someone else"}"#);
    assert_eq!((status, &body["confirmed_by"]), (200, &json!("bob")), "{body}");
    events
        .wait("0.1.0 promoted", Duration::from_secs(60), |e| {
            e["kind"] == "promoted" && e["version"] == "0.1.0"
        })
        .await;
    assert!(root.path().join("nodes/prod-1/tiny").is_file());

    // Every act, in order, with who did it; refusals changed nothing and are not acts.
    let trail = audit(&daemon, &team.viewer);
    let acts: Vec<_> = trail.iter().map(|(who, what, _)| (who.as_str(), what.as_str())).collect();
    assert_eq!(
        acts,
        [
            ("admin", "rebuild"),
            ("alice", "approve"),
            ("bob", "rerun"),
            ("alice", "approve"),
            ("bob", "approve"),
        ]
    );
    let first = &trail[1].2;
    assert_eq!(first["before"], r#"{"have":0,"need":2}"#);
    assert_eq!(first["after"], r#"{"have":1,"need":2}"#);
    // Paged: one at a time, by the cursor.
    let (_, page) = get_as(&daemon, "/api/audit?limit=2", Some(&team.viewer));
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().unwrap();
    let (_, rest) =
        get_as(&daemon, &format!("/api/audit?since={next}&limit=1000"), Some(&team.viewer));
    assert_eq!(rest["entries"][0]["actor"], "bob");
    assert_eq!(rest["next"], Value::Null);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_ends_the_gate_red_and_the_version_never_reaches_the_tier() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "");
    let team = team();
    let policy = r#"approvals = { required = 1, from = ["alice", "bob"] }"#;
    let config = write_config(root.path(), &project.dir, "", policy, CONFIRM, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    let run = waiting_run(&events).await;
    let reject = format!("/api/gate-runs/{run}/reject");

    // Bad input: one line each, nothing changed.
    let long = json!({ "reason": "x".repeat(1025) }).to_string();
    let (status, body) = daemon.post(&reject, Some(&team.alice), &long);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("reason: 1025 bytes; at most 1024 (1 KiB)"))
    );
    let (status, body) = daemon.post(&reject, Some(&team.alice), "{}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(daemon.post(&reject, Some(&team.viewer), r#"{"reason":"no"}"#).0, 403);
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(gate(&prod, "manual_confirm")["status"], "blocked", "{prod}");

    let (status, body) = daemon.post(
        &reject,
        Some(&team.alice),
        r#"{"reason":"the changelog promises a migration it lacks"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let rejected = json!({
        "kind": "failed",
        "failure": { "kind": "rejected", "by": "alice", "reason": "the changelog promises a migration it lacks" }
    });
    assert_eq!(body["outcome"], rejected);
    let done = events
        .wait("rejected", Duration::from_secs(10), gate_done("manual_confirm", "failed"))
        .await;
    assert_eq!(done["event"]["outcome"]["status"], rejected);

    // Final: no approval, no rerun, no second rejection moves it.
    let confirm = format!("/api/gate-runs/{run}/confirm");
    assert_eq!(daemon.post(&confirm, Some(&team.bob), "{}").0, 409);
    let (status, body) = daemon.post(&format!("/api/gate-runs/{run}/rerun"), Some(&team.bob), "{}");
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("rejected by alice"), "{body}");
    assert_eq!(daemon.post(&reject, Some(&team.bob), r#"{"reason":"again"}"#).0, 409);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(prod["current_version"], Value::Null, "{prod}");
    assert_eq!(gate(&prod, "manual_confirm")["status"], "failed");
    assert_eq!(gate(&prod, "manual_confirm")["run_id"], run, "no new run");
    assert!(!root.path().join("nodes/prod-1/tiny").exists(), "never deployed");
    assert_eq!(events.count(|e| e["kind"] == "deploy_start"), 0);

    let trail = audit(&daemon, &team.viewer);
    let acts: Vec<_> = trail.iter().map(|(who, what, _)| (who.as_str(), what.as_str())).collect();
    assert_eq!(acts, [("admin", "rebuild"), ("alice", "reject")]);
    assert!(
        trail[1].2["after"].as_str().unwrap().contains("the changelog promises"),
        "{:?}",
        trail[1]
    );
    let (_, from_then) =
        get_as(&daemon, "/api/audit?since=2000-01-01T00:00:00Z", Some(&team.viewer));
    assert_eq!(from_then["entries"].as_array().unwrap().len(), 2, "{from_then}");
    let (_, later) = get_as(&daemon, "/api/audit?since=2999-01-01T00:00:00Z", Some(&team.viewer));
    assert_eq!(later["entries"], json!([]), "{later}");
    let _ = &team.carol;
    daemon.kill();

    // The trail is append-only in the store itself.
    let written = std::fs::read_to_string(&config).unwrap();
    let store_url = written
        .lines()
        .find_map(|l| l.strip_prefix("url = \"").and_then(|u| u.strip_suffix('"')))
        .map(str::to_owned);
    let mut refusals = Vec::new();
    for sql in ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"] {
        let refused = match &store_url {
            Some(url) => {
                let mut pg = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut pg).await.unwrap_err()
            }
            None => {
                let file = root.path().join("data/sando.sqlite");
                let url = format!("sqlite://{}", file.display());
                let db = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&db).await.unwrap_err()
            }
        };
        refusals.push(refused.to_string());
    }
    for refusal in refusals {
        assert!(refusal.contains("the audit trail is append-only"), "{refusal}");
    }
}

#[test]
fn bad_team_config_is_one_line_naming_file_and_key_and_nothing_starts() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    project.commit("0.1.0", "");
    let team = team();
    let check = |config: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_sando"))
            .args(["check", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let serve = Command::new(env!("CARGO_BIN_EXE_sando"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("SANDO_TEST_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(!serve.status.success());
        assert!(
            String::from_utf8_lossy(&serve.stderr).contains(stderr.trim()),
            "serve refuses as check does"
        );
        stderr
    };
    let unknown = write_config(
        root.path(),
        &project.dir,
        "",
        r#"approvals = { required = 2, from = ["alice", "dave"] }"#,
        CONFIRM,
        &team.operators,
    );
    let error = check(&unknown);
    assert!(
        error.contains("sando.toml:")
            && error.contains(": tiers[0].approvals.from[1]: unknown operator dave"),
        "{error}"
    );
    let malformed = write_config(
        root.path(),
        &project.dir,
        "",
        "",
        CONFIRM,
        "[[operators]]\nname = \"eve\"\nrole = \"operator\"\ntoken_sha256 = \"not-a-digest\"\n",
    );
    let error = check(&malformed);
    assert!(error.contains(": operators[0].token_sha256: must be 64 hex digits"), "{error}");
    let window = write_config(
        root.path(),
        &project.dir,
        "",
        r#"freeze = [{ from = "Fri 16:00", to = "Monday 8am", tz = "Europe/Berlin" }]"#,
        CONFIRM,
        &team.operators,
    );
    let error = check(&window);
    assert!(
        error.contains(": tiers[0].freeze[0].to: \"Monday 8am\" is not a time of the week"),
        "{error}"
    );
    assert!(!root.path().join("data").exists(), "nothing was started");
}

/// The real `sando tui` in tmux with a viewer's token against a daemon
/// whose reads need one: it reads (state and events, with the token) and
/// shows no action keys; an operator's shows them.
#[test]
fn a_viewers_tui_reads_with_its_token_and_shows_no_action_keys() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    project.commit("0.1.0", "");
    let team = team();
    let config = write_config(
        root.path(),
        &project.dir,
        "read_requires_token = true",
        "",
        CONFIRM,
        &team.operators,
    );
    let daemon = Daemon::start(&config);
    let tui = |who: &str, token: &str| {
        let file = root.path().join(format!("{who}.token"));
        std::fs::write(&file, token).unwrap();
        let command = format!(
            "env -u RUST_BACKTRACE {sando} tui --url {url} --token-file {file}; echo TUI-EXITED=$?; sleep 600",
            sando = env!("CARGO_BIN_EXE_sando"),
            url = daemon.url,
            file = file.display(),
        );
        util::tmux::Tmux::start(100, 30, &command)
    };
    let viewer = tui("vic", &team.viewer);
    let screen = viewer.wait("the viewer's TUI, live", Duration::from_secs(30), |s| {
        s.contains("● live") && s.contains("prod") && s.contains("? help")
    });
    for key in ["c confirm", "r re-run", "z freeze", "B roll back"] {
        assert!(!screen.contains(key), "{key}: {}", screen.text());
    }
    viewer.keys(&["b"]);
    viewer.wait("a viewer's action refused", Duration::from_secs(10), |s| {
        s.contains("vic is a viewer: this token reads only")
    });
    let operator = tui("alice", &team.alice);
    operator.wait("the operator's TUI with its keys", Duration::from_secs(30), |s| {
        s.contains("● live") && s.contains("c confirm") && s.contains("z freeze")
    });
    daemon.kill();
}
