//! Holding and reversing a tier through the real `sando serve`: an operator's freeze holds a promotion while gates run, lifting it deploys, an admin's override lets one version through, a config window freezes by the clock, a rollback goes back to a kept artifact (checked by sha256) whatever the freezes, a failed health check rolls back on its own, and so does a later tier whose nodes a version rolled back upstream had reached; a failed rollback is tried again when asked; an override covers the freezes it was given for, not a later one. Every act lands in the audit trail with its identity.

mod util;

use std::path::Path;
use std::time::Duration;

use chrono::{Duration as Minutes, Utc};
use serde_json::{Value, json};
use util::config::{self, CARGO_TEST, CONFIRM};
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done, poll_state, tier};
use util::team::{audit, get_as, rebuild, team, waiting_run, write_config};

const WITHIN: Duration = Duration::from_secs(180);

async fn promoted(events: &Events, version: &str) {
    let what = format!("{version} promoted");
    events.wait(&what, WITHIN, |e| e["kind"] == "promoted" && e["version"] == version).await;
}

async fn tests_passed(events: &Events, version: &'static str) {
    let passed = gate_done("cargo_test", "passed");
    events.wait("cargo_test passed", WITHIN, move |e| passed(e) && e["version"] == version).await;
}

/// The tier's candidate, its gates passed, waits on a freeze by `by`.
fn held_by(daemon: &Daemon, by: &str) -> Value {
    let what = format!("prod held by a freeze of {by}");
    let state = poll_state(daemon, &what, WITHIN, |s| {
        tier(s, "prod")["promotion_blocked"]["tier_frozen"]["by"] == by
    });
    tier(&state, "prod").clone()
}

/// The kept artifact of `version`, as `/api/state` lists it.
fn artifact(daemon: &Daemon, version: &str) -> std::path::PathBuf {
    let state = daemon.state();
    let row = state["versions"].as_array().unwrap().iter().find(|v| v["version"] == version);
    row.unwrap_or_else(|| panic!("{version} in {state}"))["artifact"].as_str().unwrap().into()
}

fn on_node(root: &Path) -> Vec<u8> {
    std::fs::read(root.join("nodes/prod-1/tiny")).unwrap_or_default()
}

fn acts(daemon: &Daemon, token: &str) -> Vec<(String, String)> {
    audit(daemon, token).into_iter().map(|(who, what, _)| (who, what)).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_holds_the_promotion_while_gates_run_lifting_deploys_and_an_override_is_audited() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let first = project.commit("0.1.0", "");
    let team = team();
    let config = write_config(root.path(), &project.dir, "", "", CARGO_TEST, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;

    let freeze =
        |token: &str, body: Value| daemon.post("/api/freezes", Some(token), &body.to_string());
    let (status, body) = freeze(&team.viewer, json!({"tier": "prod", "reason": "mine"}));
    assert_eq!(status, 403, "{body}");
    let (status, body) = freeze(&team.alice, json!({"tier": "qa", "reason": "x"}));
    assert_eq!((status, body["error"].as_str()), (404, Some("no tier named \"qa\" (tiers: prod)")));
    let (status, body) = freeze(&team.alice, json!({"tier": "prod", "reason": "x".repeat(1100)}));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("reason: 1100 bytes; at most 1024 (1 KiB)"))
    );
    let far = (Utc::now() + Minutes::days(400)).to_rfc3339();
    let (status, body) = freeze(&team.alice, json!({"reason": "x", "until": far}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .ends_with("is more than a year away (leave it out to freeze until lifted)"),
        "{body}"
    );
    let (status, body) = freeze(&team.alice, json!({"tier": "prod", "reason": "release weekend"}));
    assert_eq!(status, 201, "{body}");
    let id = body["source"]["manual"]["id"].as_i64().unwrap();
    assert_eq!((body["by"].as_str(), body["tier"].as_str()), (Some("alice"), Some("prod")));

    // Gates run in a frozen tier; the deploy waits, yellow.
    rebuild(&daemon, &first);
    tests_passed(&events, "0.1.0").await;
    let prod = held_by(&daemon, "alice");
    assert_eq!(prod["promotion_blocked"]["tier_frozen"]["reason"], "release weekend");
    assert_eq!(
        (prod["current_version"].clone(), prod["frozen"]["by"].clone()),
        (Value::Null, json!("alice"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(events.count(|e| e["kind"] == "deploy_start"), 0);
    assert!(on_node(root.path()).is_empty());

    // Only who froze it, or an admin, lifts a freeze.
    let lift = format!("/api/freezes/{id}/lift");
    let (status, body) = daemon.post(&lift, Some(&team.bob), "");
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some(format!("freeze {id} is alice's: only they or an admin may lift it").as_str()))
    );
    let (status, body) = daemon.post(&lift, Some(&team.alice), "");
    assert_eq!(status, 200, "{body}");
    promoted(&events, "0.1.0").await;
    assert_eq!(on_node(root.path()), std::fs::read(artifact(&daemon, "0.1.0")).unwrap());
    let (status, body) = daemon.post(&format!("/api/freezes/{id}/lift"), Some(&team.bob), "");
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some(format!("freeze {id} is not in force").as_str()))
    );

    // Every tier frozen; an admin lets one version through, with a reason.
    let (status, body) = freeze(&team.alice, json!({"reason": "incident 42"}));
    assert_eq!((status, body["tier"].clone()), (201, Value::Null), "{body}");
    let second = project.commit("0.2.0", "");
    rebuild(&daemon, &second);
    tests_passed(&events, "0.2.0").await;
    held_by(&daemon, "alice");
    let over = |token: &str, version: &str| {
        let body = json!({"version": version, "reason": "the fix for incident 42"}).to_string();
        daemon.post("/api/tiers/prod/override", Some(token), &body)
    };
    assert_eq!(over(&team.alice, "0.2.0").0, 403);
    let (status, body) = over(TOKEN, "0.3.0");
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("0.3.0 is not prod's candidate (0.2.0 is)"))
    );
    let (status, body) = over(TOKEN, "0.2.0");
    assert_eq!(status, 200, "{body}");
    promoted(&events, "0.2.0").await;
    let (_, frozen) = get_as(&daemon, "/api/freezes", None);
    assert_eq!(frozen["freezes"].as_array().unwrap().len(), 1, "{frozen}");
    assert_eq!(frozen["freezes"][0]["reason"], "incident 42");

    assert_eq!(
        acts(&daemon, &team.viewer),
        pairs(&[
            ("alice", "freeze"),
            ("admin", "rebuild"),
            ("alice", "lift_freeze"),
            ("alice", "freeze"),
            ("admin", "rebuild"),
            ("admin", "override_freeze"),
        ])
    );
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_window_holds_promotions_by_the_clock() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit("0.1.0", "");
    let team = team();
    // A window around now, in UTC; thawing by the clock is the planner's
    // unit tests' (time injected), not a sleeping test's.
    let now = Utc::now();
    let (from, to) = (now - Minutes::minutes(60), now + Minutes::minutes(120));
    let window = format!(
        "freeze = [{{ from = \"{}\", to = \"{}\", tz = \"UTC\" }}]",
        from.format("%a %H:%M"),
        to.format("%a %H:%M")
    );
    let config = write_config(root.path(), &project.dir, "", &window, CARGO_TEST, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &sha);
    tests_passed(&events, "0.1.0").await;
    let prod = held_by(&daemon, "window");
    let until = prod["promotion_blocked"]["tier_frozen"]["until"].as_str().unwrap();
    assert_eq!(until, to.format("%Y-%m-%dT%H:%M:00Z").to_string(), "{prod}");
    assert_eq!(prod["frozen"]["source"], "window", "{prod}");
    let (_, frozen) = get_as(&daemon, "/api/freezes", None);
    assert_eq!(frozen["freezes"][0]["tier"], "prod", "{frozen}");
    // A window freeze is the config's: nothing lifts it from the API.
    let (status, _) = daemon.post("/api/freezes/1/lift", Some(&team.alice), "");
    assert_eq!(status, 404);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_deploys_the_kept_artifact_checked_by_sha256_and_no_freeze_stops_it() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let team = team();
    // Retention keeps one version, and the artifacts of the last three
    // promoted to each tier: what a rollback may need.
    let top = "[retention]\nkeep_versions = 1\nkeep_promoted = 3";
    let config = write_config(root.path(), &project.dir, top, "", CARGO_TEST, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.4.0"] {
        let sha = project.commit(version, "");
        rebuild(&daemon, &sha);
        promoted(&events, version).await;
    }
    let (status, swept) = daemon.post("/api/retention/sweep", Some(TOKEN), "");
    assert_eq!(status, 200, "{swept}");
    assert_eq!(swept["versions"], json!(["0.1.0"]), "{swept}");

    let (status, _) = daemon.post(
        "/api/freezes",
        Some(&team.alice),
        &json!({"reason": "stop the line"}).to_string(),
    );
    assert_eq!(status, 201);
    let rollback = |token: &str, body: Value| {
        daemon.post("/api/tiers/prod/rollback", Some(token), &body.to_string())
    };
    let refused = |token: &str, body: Value| {
        let (status, body) = rollback(token, body);
        (status, body["error"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(refused(&team.viewer, json!({"reason": "x"})).0, 403);
    assert_eq!(
        refused(&team.bob, json!({"to": "0.9.0", "reason": "x"})),
        (
            409,
            "0.9.0 was never promoted to prod: a rollback goes only to a version that ran there"
                .into()
        )
    );
    assert_eq!(
        refused(&team.bob, json!({"to": "0.4.0", "reason": "x"})),
        (409, "prod already runs 0.4.0".into())
    );
    assert_eq!(refused(&team.bob, json!({"reason": "é".repeat(600)})).0, 400);
    assert_eq!(refused(&team.bob, json!({"to": "seven", "reason": "x"})).0, 400);
    let (status, gone) = refused(&team.bob, json!({"to": "0.1.0", "reason": "x"}));
    assert_eq!(status, 409);
    assert!(
        gone.starts_with("the kept artifact of 0.1.0 (") && gone.contains("cannot be read"),
        "{gone}"
    );
    // Someone changed 0.2.0's kept artifact: it is not what was built.
    let kept = artifact(&daemon, "0.2.0");
    let mut bytes = std::fs::read(&kept).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&kept, &bytes).unwrap();
    let (status, tampered) = refused(&team.bob, json!({"to": "0.2.0", "reason": "x"}));
    assert_eq!(status, 409);
    assert!(tampered.starts_with("the kept artifact of 0.2.0 has sha256 "), "{tampered}");
    assert!(tampered.ends_with(" was built: not rolling back"), "{tampered}");
    let prod = tier(&daemon.state(), "prod").clone();
    assert_eq!(
        (prod["current_version"].as_str(), &prod["rollback"]),
        (Some("0.4.0"), &Value::Null)
    );
    assert_eq!(prod["rollback_to"], "0.3.0");

    // Back one step, frozen or not; the body cannot name who asked.
    let (status, asked) = rollback(&team.bob, json!({"reason": "0.4.0 leaks memory"}));
    assert_eq!(status, 202, "{asked}");
    assert_eq!(
        (asked["from"].as_str(), asked["to"].as_str(), asked["by"].as_str()),
        (Some("0.4.0"), Some("0.3.0"), Some("bob"))
    );
    let done = events.wait("rolled back", WITHIN, |e| e["kind"] == "rolled_back").await;
    assert_eq!(done["event"]["done"], true, "{done}");
    let state = daemon.state();
    let prod = tier(&state, "prod");
    assert_eq!(prod["current_version"], "0.3.0");
    assert_eq!(prod["rollback"]["progress"], "done");
    assert_eq!(
        state["deploys"][0]["rollback"],
        json!({"from": "0.4.0", "to": "0.3.0", "by": "bob"})
    );
    assert_eq!(on_node(root.path()), std::fs::read(artifact(&daemon, "0.3.0")).unwrap());
    let (status, again) = refused(&team.bob, json!({"to": "0.4.0", "reason": "x"}));
    assert_eq!((status, again), (409, "prod was rolled back from 0.4.0 before".into()));

    let trail = acts(&daemon, &team.viewer);
    let tail: Vec<_> = trail.iter().skip(4).cloned().collect();
    assert_eq!(
        tail,
        pairs(&[("admin", "retention_sweep"), ("alice", "freeze"), ("bob", "rollback")])
    );
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_health_check_rolls_back_on_its_own() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let team = team();
    // The node's health check fails for 0.2.0 alone (it lands on the node's
    // table, which the config helper writes just before the gates).
    let health = "health = \"sh -c 'test {version} != 0.2.0'\"\n";
    let gates = format!("{health}{CARGO_TEST}");
    let config = write_config(
        root.path(),
        &project.dir,
        "",
        "auto_rollback = true",
        &gates,
        &team.operators,
    );
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &project.commit("0.1.0", ""));
    promoted(&events, "0.1.0").await;
    rebuild(&daemon, &project.commit("0.2.0", ""));
    let done = events.wait("rolled back", WITHIN, |e| e["kind"] == "rolled_back").await;
    assert_eq!(
        (
            done["event"]["from"].as_str(),
            done["event"]["to"].as_str(),
            done["event"]["by"].as_str(),
            done["event"]["done"].as_bool()
        ),
        (Some("0.2.0"), Some("0.1.0"), Some("auto_rollback"), Some(true)),
        "{done}"
    );
    let state = poll_state(&daemon, "0.2.0 dropped", WITHIN, |s| {
        tier(s, "prod")["candidate_version"].is_null()
    });
    assert_eq!(tier(&state, "prod")["current_version"], "0.1.0");
    assert_eq!(state["deploys"][0]["rollback"]["by"], "auto_rollback");
    assert_eq!(on_node(root.path()), std::fs::read(artifact(&daemon, "0.1.0")).unwrap());
    let trail = acts(&daemon, &team.viewer);
    assert_eq!(trail.last().unwrap(), &("auto_rollback".to_owned(), "auto_rollback".to_owned()));
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_rolled_back_upstream_is_taken_off_the_nodes_it_reached_downstream() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let team = team();
    let nodes = root.path().join("nodes");
    // prod's canary takes 0.2.0 on prod-1; prod-2's deploy of it waits for
    // `go`, so staging can be rolled back from 0.2.0 meanwhile.
    let go = root.path().join("go");
    std::fs::create_dir_all(nodes.join("prod-2")).unwrap();
    let prod_2 = format!(
        "[[tiers.nodes]]\nname = \"prod-2\"\ndeploy = \"sh -c 'while [ {{version}} = 0.2.0 ] && [ ! -e {go} ]; do sleep 0.1; done; cp {{artifact}} {nodes}/prod-2/tiny'\"",
        go = go.display(),
        nodes = nodes.display(),
    );
    let config = config::write(
        root.path(),
        &[
            &config::head(&project.dir, ""),
            "[[tiers]]\nname = \"staging\"",
            &config::copy_node(&nodes, "staging-1", ""),
            CARGO_TEST,
            "[[tiers]]\nname = \"prod\"\ncanary = \"one_then_rest\"",
            &config::copy_node(&nodes, "prod-1", ""),
            &prod_2,
            &team.operators,
        ],
    );
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let on = |node: &str| std::fs::read(nodes.join(node).join("tiny")).unwrap_or_default();

    rebuild(&daemon, &project.commit("0.1.0", ""));
    events
        .wait("0.1.0 in prod", WITHIN, |e| {
            e["kind"] == "promoted" && e["tier"] == "prod" && e["version"] == "0.1.0"
        })
        .await;
    let first = std::fs::read(artifact(&daemon, "0.1.0")).unwrap();
    rebuild(&daemon, &project.commit("0.2.0", ""));
    events
        .wait("0.2.0 on prod-1", WITHIN, |e| {
            e["kind"] == "deploy_done" && e["node"] == "prod-1" && e["version"] == "0.2.0"
        })
        .await;
    let second = std::fs::read(artifact(&daemon, "0.2.0")).unwrap();
    assert_eq!(on("prod-1"), second);

    let body = json!({"reason": "0.2.0 corrupts sessions"}).to_string();
    let (status, asked) = daemon.post("/api/tiers/staging/rollback", Some(&team.bob), &body);
    assert_eq!(status, 202, "{asked}");
    let rolled_back =
        |tier: &'static str| move |e: &Value| e["kind"] == "rolled_back" && e["tier"] == tier;
    let staging = events.wait("staging rolled back", WITHIN, rolled_back("staging")).await;
    assert_eq!(staging["event"]["done"], true, "{staging}");
    std::fs::write(&go, "").unwrap();

    // prod-2 finishes the deploy it had begun; then prod goes back to
    // 0.1.0 on every node, though it has no `auto_rollback`.
    let prod = events.wait("prod rolled back", WITHIN, rolled_back("prod")).await;
    assert_eq!(
        (
            prod["event"]["from"].as_str(),
            prod["event"]["to"].as_str(),
            prod["event"]["by"].as_str(),
            prod["event"]["done"].as_bool()
        ),
        (Some("0.2.0"), Some("0.1.0"), Some("auto_rollback"), Some(true)),
        "{prod}"
    );
    let state = poll_state(&daemon, "0.2.0 dropped from prod", WITHIN, |s| {
        tier(s, "prod")["candidate_version"].is_null()
    });
    assert_eq!(tier(&state, "prod")["current_version"], "0.1.0");
    assert_eq!(
        (on("staging-1"), on("prod-1"), on("prod-2")),
        (first.clone(), first.clone(), first)
    );
    let trail = audit(&daemon, &team.viewer);
    let (who, what, entry) = trail.last().unwrap().clone();
    assert_eq!((who.as_str(), what.as_str()), ("auto_rollback", "auto_rollback"));
    let before: Value = serde_json::from_str(entry["before"].as_str().unwrap()).unwrap();
    assert_eq!(before["barred"], "0.2.0", "{entry}");
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_tried_again_when_asked_even_to_the_current_version() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let team = team();
    let nodes = root.path().join("nodes");
    std::fs::create_dir_all(nodes.join("prod-1")).unwrap();
    // 0.2.0 deploys but is unhealthy; deploying 0.1.0 fails while `broken`
    // is there (a full disk, say), at once: one attempt per deploy.
    let broken = root.path().join("broken");
    let node = format!(
        "[[tiers.nodes]]\nname = \"prod-1\"\ndeploy = \"sh -c '{{ [ {{version}} != 0.1.0 ] || [ ! -e {broken} ]; }} && cp {{artifact}} {nodes}/prod-1/tiny'\"\nhealth = \"sh -c 'test {{version}} != 0.2.0'\"",
        broken = broken.display(),
        nodes = nodes.display(),
    );
    let config = config::write(
        root.path(),
        &[
            &config::head(&project.dir, ""),
            "[[tiers]]\nname = \"prod\"\nauto_rollback = true\ndeploy_retry = { attempts = 1 }",
            &node,
            CARGO_TEST,
            &team.operators,
        ],
    );
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    rebuild(&daemon, &project.commit("0.1.0", ""));
    promoted(&events, "0.1.0").await;
    let first = std::fs::read(artifact(&daemon, "0.1.0")).unwrap();
    std::fs::write(&broken, "").unwrap();
    rebuild(&daemon, &project.commit("0.2.0", ""));
    let failed = events.wait("rollback failed", WITHIN, |e| e["kind"] == "rolled_back").await;
    assert_eq!(
        (failed["event"]["by"].as_str(), failed["event"]["done"].as_bool()),
        (Some("auto_rollback"), Some(false)),
        "{failed}"
    );
    // The tier says 0.1.0, but its node still runs 0.2.0.
    let second = std::fs::read(artifact(&daemon, "0.2.0")).unwrap();
    assert_eq!(on_node(root.path()), second);
    let state = poll_state(&daemon, "0.2.0 dropped", WITHIN, |s| {
        tier(s, "prod")["candidate_version"].is_null()
    });
    assert_eq!(
        (&tier(&state, "prod")["current_version"], &tier(&state, "prod")["rollback"]["progress"]),
        (&json!("0.1.0"), &json!("failed"))
    );

    // Asked again once the node is fixed: the same rollback, by bob.
    std::fs::remove_file(&broken).unwrap();
    let rollback =
        |body: Value| daemon.post("/api/tiers/prod/rollback", Some(&team.bob), &body.to_string());
    let (status, asked) = rollback(json!({"reason": "the disk is free again"}));
    assert_eq!(status, 202, "{asked}");
    assert_eq!(
        (asked["from"].as_str(), asked["to"].as_str(), asked["by"].as_str()),
        (Some("0.2.0"), Some("0.1.0"), Some("bob"))
    );
    let done = events
        .wait("rolled back again", WITHIN, |e| e["kind"] == "rolled_back" && e["done"] == true)
        .await;
    assert_eq!(done["event"]["by"], "bob", "{done}");
    assert_eq!(on_node(root.path()), first);
    // Done now: asking for the current version again is refused.
    let (status, refused) = rollback(json!({"to": "0.1.0", "reason": "again"}));
    assert_eq!((status, refused["error"].as_str()), (409, Some("prod already runs 0.1.0")));
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_covers_the_freezes_it_was_given_for_not_a_later_one() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let team = team();
    let gates = format!("{CARGO_TEST}\n{CONFIRM}");
    let config = write_config(root.path(), &project.dir, "", "", &gates, &team.operators);
    let daemon = Daemon::start(&config);
    let events = Events::connect(&daemon.url).await;
    let freeze = |reason: &str| {
        let body = json!({"tier": "prod", "reason": reason}).to_string();
        let (status, body) = daemon.post("/api/freezes", Some(&team.alice), &body);
        assert_eq!(status, 201, "{body}");
    };
    let over = || {
        let body = json!({"version": "0.1.0", "reason": "the fix"}).to_string();
        daemon.post("/api/tiers/prod/override", Some(TOKEN), &body)
    };

    // Frozen; the admin lets 0.1.0 through while its confirmation waits.
    freeze("release weekend");
    rebuild(&daemon, &project.commit("0.1.0", ""));
    let run = waiting_run(&events).await;
    let (status, body) = over();
    assert_eq!(status, 200, "{body}");
    let (status, body) = over();
    assert_eq!(
        (status, body["error"].as_str()),
        (
            409,
            Some(
                "0.1.0 already has an override at prod (by admin), which every freeze in force began before"
            )
        )
    );

    // A new freeze is a new decision: it holds 0.1.0 once confirmed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    freeze("incident 7");
    let confirm = format!("/api/gate-runs/{run}/confirm");
    let (status, body) = daemon.post(&confirm, Some(&team.bob), "{}");
    assert_eq!(status, 200, "{body}");
    let prod = poll_state(&daemon, "held by incident 7", WITHIN, |s| {
        tier(s, "prod")["promotion_blocked"]["tier_frozen"]["reason"] == "incident 7"
    });
    assert_eq!(tier(&prod, "prod")["override_version"], "0.1.0");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events.count(|e| e["kind"] == "deploy_start"), 0);

    // Renewed for it, the override lets 0.1.0 through.
    let (status, body) = over();
    assert_eq!(status, 200, "{body}");
    promoted(&events, "0.1.0").await;
    let trail = acts(&daemon, &team.viewer);
    let overrides = trail.iter().filter(|(_, what)| what == "override_freeze").count();
    assert_eq!(overrides, 2, "{trail:?}");
    daemon.kill();
}
