//! Every screen drawn into ratatui's `TestBackend` at fixed sizes and kept as insta snapshots; colours are asserted cell by cell, since snapshots hold only text.
//!
//! The model is fed the way the client feeds it: a typed `/api/state` body
//! and `EventEnvelope`s, parsed from the JSON the daemon sends.

use chrono::{DateTime, TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use sando_tui::app::{App, Command, Msg};
use sando_wire::{Event, EventEnvelope, Frame, GateRunId, GateRunSummary, StateResponse, Stream};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 30, 0).unwrap()
}

fn run(id: i64, tier: &str, version: &str, gate: &str, status: &str, outcome: Value) -> Value {
    let finished = status != "running";
    json!({
        "run_id": id, "tier": tier, "version": version, "gate": gate, "status": status,
        "outcome": if finished { outcome } else { Value::Null },
        "started_at": "2026-11-27T12:20:00Z",
        "finished_at": if finished { json!("2026-11-27T12:21:30Z") } else { Value::Null },
        "log_ref": format!("{version}/{gate}/{id}.log"),
        "component_digest": "a4d85037816f2b9c0e1d7a66b1c3f0e4d2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5",
        "contract": "0.1.0",
        "fuel": if finished { json!(45153) } else { Value::Null },
        "peak_memory": if finished { json!(196608) } else { Value::Null },
    })
}

/// staging: 0.2.0 with a passed, a failed and a running gate; prod: 0.1.0
/// with burn-in passed and manual confirmation waiting.
fn state() -> StateResponse {
    let body = json!({
        "tiers": [
            {
                "name": "staging", "canary": "all_at_once",
                "current_version": "0.1.0", "candidate_version": "0.2.0",
                "pipeline": ["cargo_test", "migration_dry_run", "boot_smoke"],
                "gates": [
                    run(11, "staging", "0.2.0", "cargo_test", "failed",
                        json!({"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": 3, "first_failed": "tests::parse"}})),
                    run(12, "staging", "0.2.0", "migration_dry_run", "passed",
                        json!({"kind": "passed", "note": {"kind": "migrated", "backup": 1, "count": 4}})),
                    run(13, "staging", "0.2.0", "boot_smoke", "running", Value::Null),
                ],
                "confirmation": null,
            },
            {
                "name": "prod", "canary": "one_then_rest",
                "current_version": null, "candidate_version": "0.1.0",
                "pipeline": ["burn_in", "manual_confirm"],
                "gates": [
                    run(7, "prod", "0.1.0", "burn_in", "blocked",
                        json!({"kind": "blocked", "blocker": {"kind": "burn_in_remaining", "seconds": 169920, "total_seconds": 604800}})),
                    run(8, "prod", "0.1.0", "manual_confirm", "blocked",
                        json!({"kind": "blocked", "blocker": {"kind": "awaiting_operator_confirmation"}})),
                ],
                "confirmation": null,
            }
        ],
        "versions": [
            {"version": "0.2.0", "git_sha": "52345a6c0ffee0000000000000000000000000aa", "registered_at": "2026-11-27T12:19:00Z", "artifact": "artifacts/0.2.0"},
        ],
        "deploys": [
            {"deploy_id": 2, "tier": "staging", "version": "0.1.0", "node": "staging-1",
             "outcome": {"kind": "ok"}, "started_at": "2026-11-27T12:10:00Z",
             "finished_at": "2026-11-27T12:10:02Z", "log_ref": "deploys/2.log"},
            {"deploy_id": 1, "tier": "staging", "version": "0.0.9", "node": "staging-1",
             "outcome": {"kind": "failed", "failure": {"kind": "health_check", "exit_code": 1}},
             "started_at": "2026-11-27T11:00:00Z", "finished_at": "2026-11-27T11:00:05Z",
             "log_ref": "deploys/1.log"},
        ],
    });
    serde_json::from_value(body).expect("a state body the daemon would send")
}

fn event(seq: u64, at: &str, event: Value) -> Msg {
    let envelope: EventEnvelope =
        serde_json::from_value(json!({ "seq": seq, "at": at, "event": event }))
            .expect("event frame");
    Msg::Event(envelope)
}

/// A `gate_log_chunk` of run 13, as its binary frame carries it.
fn chunk(seq: u64, at: &str, stream: Stream, offset: usize, bytes: &[u8]) -> Msg {
    let envelope = EventEnvelope {
        seq,
        at: at.parse().expect("a time"),
        event: Event::GateLogChunk {
            run_id: GateRunId::try_from(13).unwrap(),
            seq,
            stream,
            offset: offset as u64,
            bytes: bytes.to_vec().into(),
        },
    };
    let Frame::Binary(frame) = envelope.to_frame() else { panic!("a chunk is binary") };
    Msg::Event(EventEnvelope::from_binary(frame).expect("a frame the daemon would send"))
}

fn app() -> App {
    let mut app = App::new("http://127.0.0.1:7878", "alice", true);
    app.on_msg(Msg::Connected);
    app.on_msg(Msg::State(state()));
    app.on_msg(event(
        1,
        "2026-11-27T12:21:30Z",
        json!({"kind": "gate_done", "run_id": 11, "tier": "staging", "version": "0.2.0", "gate": "cargo_test",
               "outcome": {"status": {"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": 3, "first_failed": "tests::parse"}},
                           "log_ref": "0.2.0/cargo_test/11.log"}}),
    ));
    app.on_msg(event(
        2,
        "2026-11-27T12:22:00Z",
        json!({"kind": "gate_start", "run_id": 13, "tier": "staging", "version": "0.2.0", "gate": "boot_smoke"}),
    ));
    // The model asked for resyncs; the client would answer with the state.
    app.on_msg(Msg::State(state()));
    app
}

fn key(app: &mut App, code: KeyCode) -> Vec<Command> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| sando_tui::view::draw(frame, app, now())).unwrap();
    terminal
}

/// The foreground colour of the first cell of `text`'s first occurrence.
fn fg_of(buffer: &Buffer, text: &str) -> Color {
    let width = buffer.area.width;
    for y in 0..buffer.area.height {
        let row: Vec<&str> = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
        let joined: String = row.concat();
        if let Some(byte) = joined.find(text) {
            // Cells hold one symbol each; count symbols up to the match.
            let mut seen = 0;
            for (x, symbol) in row.iter().enumerate() {
                if seen == byte {
                    return buffer[(x as u16, y)].fg;
                }
                seen += symbol.len();
            }
        }
    }
    panic!("{text:?} is not on screen:\n{}", lines(buffer).join("\n"));
}

fn lines(buffer: &Buffer) -> Vec<String> {
    (0..buffer.area.height)
        .map(|y| (0..buffer.area.width).map(|x| buffer[(x, y)].symbol()).collect())
        .collect()
}

#[test]
fn overview_at_80x24() {
    let app = app();
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    assert_eq!(fg_of(buffer, "failed  cargo_test"), Color::Red);
    assert_eq!(fg_of(buffer, "tests failed: 3 (first: tests::parse)"), Color::Red);
    assert_eq!(fg_of(buffer, "passed  migration"), Color::Green);
    assert_eq!(fg_of(buffer, "blocked burn_in"), Color::Yellow);
    assert_eq!(fg_of(buffer, "awaiting operator confirmation"), Color::Yellow);
    assert_eq!(fg_of(buffer, "running boot_smoke"), Color::Cyan);
}

#[test]
fn overview_at_120x40_shows_ages() {
    let app = app();
    let terminal = draw(&app, 120, 40);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("8m30s ago"), "{screen}");
}

#[test]
fn overview_at_160x40_puts_panes_on_the_side() {
    let app = app();
    insta::assert_snapshot!(draw(&app, 160, 40).backend());
}

#[test]
fn the_filter_narrows_the_gates() {
    let mut app = app();
    key(&mut app, KeyCode::Char('/'));
    for c in "blocked".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(!screen.contains("failed  cargo_test"), "{screen}");
    // Esc while typing clears it again.
    key(&mut app, KeyCode::Esc);
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("failed  cargo_test"), "{screen}");
}

#[test]
fn run_detail_with_a_live_tail() {
    let mut app = app();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    let commands = key(&mut app, KeyCode::Enter);
    assert!(commands.is_empty(), "a running run shows its live tail: {commands:?}");
    let mut seq = 3;
    let mut offset = 0;
    for i in 0..40 {
        let data = format!("[{i:02}] GET /health 200 in {}ms\n", i % 7);
        app.on_msg(chunk(seq, "2026-11-27T12:22:01Z", Stream::Stdout, offset, data.as_bytes()));
        seq += 1;
        offset += data.len();
    }
    // A line still being written shows too; and bytes that are not UTF-8
    // show as replacement characters.
    app.on_msg(chunk(seq, "2026-11-27T12:22:02Z", Stream::Stderr, offset, b"warming \xff cach"));
    offset += 14;
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(
        screen.contains("[39] GET /health") && screen.contains("warming \u{fffd} cach"),
        "{screen}"
    );
    assert!(!screen.contains("[20] GET"), "following shows the end: {screen}");

    // Scrolling up leaves follow mode and stays put while lines arrive.
    key(&mut app, KeyCode::PageUp);
    let before = lines(draw(&app, 80, 24).backend().buffer());
    app.on_msg(chunk(99, "2026-11-27T12:22:03Z", Stream::Stdout, offset, b"e\nready\n"));
    let after = lines(draw(&app, 80, 24).backend().buffer());
    assert_eq!(before[10..20], after[10..20], "the view does not move under the reader");
    insta::assert_snapshot!("run_detail_scrolled", draw(&app, 80, 24).backend());
}

#[test]
fn an_unclassified_run_leads_with_its_log() {
    let mut app = app();
    let mut state = state();
    let unclassified: sando_wire::GateRunSummary = serde_json::from_value(run(
        14,
        "staging",
        "0.2.0",
        "boot_smoke",
        "failed",
        json!({"kind": "failed", "failure": {"kind": "unclassified"}}),
    ))
    .unwrap();
    state.tiers[0].gates[2] = unclassified;
    app.on_msg(Msg::State(state));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(commands, vec![Command::FetchLog(sando_wire::GateRunId::try_from(14).unwrap())]);
    app.on_msg(Msg::Log {
        run_id: sando_wire::GateRunId::try_from(14).unwrap(),
        text: "sando: running ./tiny --port 0\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n"
            .into(),
    });
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    assert_eq!(fg_of(buffer, "unclassified failure: read the log"), Color::Red);
    let screen = lines(buffer).join("\n");
    assert!(screen.contains("fatal runtime error: stack overflow"), "{screen}");
}

#[test]
fn the_help_screen() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
    key(&mut app, KeyCode::Esc);
    assert!(app.dialog.is_none());
}

#[test]
fn the_confirm_dialog_asks_then_sends_the_operator() {
    let mut app = app();
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(key(&mut app, KeyCode::Char('c')), vec![]);
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(fg_of(terminal.backend().buffer(), "[y]"), Color::Green);
    let commands = key(&mut app, KeyCode::Char('y'));
    assert_eq!(
        commands,
        vec![Command::Confirm {
            run_id: sando_wire::GateRunId::try_from(8).unwrap(),
            by: "alice".into()
        }]
    );
    // The daemon's answer reaches the status line.
    app.on_msg(Msg::Done { ok: true, text: "run 8 confirmed by alice".into() });
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("run 8 confirmed by alice"), "{screen}");
}

#[test]
fn actions_that_do_not_apply_say_why_and_send_nothing() {
    let mut app = app();
    // The first row is staging's failed cargo_test: not confirmable.
    assert_eq!(key(&mut app, KeyCode::Char('c')), vec![]);
    assert!(app.dialog.is_none());
    let status = app.status.clone().unwrap();
    assert!(!status.ok && status.text.contains("only a manual_confirm gate"), "{status:?}");
    // But it can run again, after a yes.
    key(&mut app, KeyCode::Char('r'));
    assert_eq!(key(&mut app, KeyCode::Char('n')), vec![]);
    key(&mut app, KeyCode::Char('r'));
    assert!(matches!(&key(&mut app, KeyCode::Char('y'))[..], [Command::Rerun { .. }]));
    // An error from the daemon is shown in red, not swallowed.
    app.on_msg(Msg::Done {
        ok: false,
        text:
            "daemon: gate run 11 is not the latest cargo_test run at staging (run 15 is) (HTTP 409)"
                .into(),
    });
    let terminal = draw(&app, 80, 24);
    assert_eq!(fg_of(terminal.backend().buffer(), "daemon: gate run 11"), Color::Red);
}

#[test]
fn read_only_without_a_token() {
    let mut app = App::new("http://127.0.0.1:7878", "alice", false);
    app.on_msg(Msg::State(state()));
    key(&mut app, KeyCode::Char('b'));
    assert!(app.dialog.is_none());
    assert!(app.status.as_ref().unwrap().text.contains("--token-file"));
}

#[test]
fn a_lost_connection_is_shown_and_the_place_is_kept() {
    let mut app = app();
    key(&mut app, KeyCode::Char('G'));
    let selected = app.selected.clone();
    app.on_msg(Msg::Disconnected("connect: Connection refused (os error 111)".into()));
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(fg_of(terminal.backend().buffer(), "○ reconnecting"), Color::Red);
    // Back: the client resyncs and the selection is where it was.
    assert_eq!(app.on_msg(Msg::Connected), vec![Command::Resync]);
    app.on_msg(Msg::State(state()));
    assert_eq!(app.selected, selected);
    // A lag notice asks for a resync too, and for the running run's log
    // from where its tail stopped.
    let commands =
        app.on_msg(event(0, "2026-11-27T12:29:00Z", json!({"kind": "lagged", "missed": 1200})));
    let run = GateRunId::try_from(13).unwrap();
    assert_eq!(commands, vec![Command::Resync, Command::FetchLogFrom { run_id: run, from: 0 }]);
}

#[test]
fn an_updated_component_waits_for_review() {
    let mut app = app();
    let mut state = state();
    state.pending_components = vec![serde_json::from_value(json!({
        "id": 7, "kind": "cargo_test",
        "digest": "3f2a9c0e1d7a66b1c3f0e4d2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5a4d8503781",
        "contract": "0.1.0", "source": "api", "state": "pending", "reason": null,
        "diff": [
            {"case": "run 11 (staging 0.2.0)",
             "old": {"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": 1, "first_failed": "tests::flaky"}},
             "new": {"kind": "passed", "note": {"kind": "tests_passed", "count": 0, "duration_s": 0}}},
            {"case": "run 9 (staging 0.1.0)",
             "old": {"kind": "failed", "failure": {"kind": "unclassified"}},
             "new": {"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": 1, "first_failed": null}}}
        ],
        "loaded_at": "2026-11-27T12:25:00Z"
    }))
    .unwrap()];
    app.on_msg(Msg::State(state));
    app.on_msg(event(
        5,
        "2026-11-27T12:25:00Z",
        json!({"kind": "component_pending", "gate": "cargo_test",
               "digest": "3f2a9c0e1d7a66b1c3f0e4d2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5a4d8503781", "diff": []}),
    ));
    let overview = draw(&app, 100, 24);
    let screen = lines(overview.backend().buffer()).join("\n");
    assert!(
        screen.contains(
            "updated cargo_test component 3f2a9c0e1d7a changes 2 verdict(s): p to review"
        ),
        "{screen}"
    );
    assert_eq!(fg_of(overview.backend().buffer(), "◆ updated cargo_test"), Color::Yellow);

    assert_eq!(key(&mut app, KeyCode::Char('p')), vec![]);
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(fg_of(terminal.backend().buffer(), "0 tests passed in 0s"), Color::Green);
    assert_eq!(
        fg_of(terminal.backend().buffer(), "tests failed: 1 (first: tests::flaky)"),
        Color::Red
    );
    assert_eq!(
        key(&mut app, KeyCode::Char('a')),
        vec![Command::SettleComponent {
            kind: sando_wire::GateKind::CargoTest,
            accept: true,
            digest: "3f2a9c0e1d7a66b1c3f0e4d2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5a4d8503781".into()
        }]
    );
    assert!(app.dialog.is_none());
    // Rejecting goes the same way.
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(
        key(&mut app, KeyCode::Char('x')),
        vec![Command::SettleComponent {
            kind: sando_wire::GateKind::CargoTest,
            accept: false,
            digest: "3f2a9c0e1d7a66b1c3f0e4d2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5a4d8503781".into()
        }]
    );
}

#[test]
fn a_long_verdict_diff_scrolls_and_keeps_its_keys_in_view() {
    let mut app = app();
    let mut state = state();
    let diff: Vec<Value> = (1..=30)
        .map(|i| {
            json!({"case": format!("run {i} (staging 0.2.0)"),
                   "old": {"kind": "failed", "failure": {"kind": "unclassified"}},
                   "new": {"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": i, "first_failed": null}}})
        })
        .collect();
    state.pending_components =
        vec![serde_json::from_value(json!({
        "id": 8, "kind": "cargo_test", "digest": "77aa", "contract": "0.1.0", "source": "api",
        "state": "pending", "reason": null, "diff": diff, "loaded_at": "2026-11-27T12:25:00Z"
    }))
    .unwrap()];
    app.on_msg(Msg::State(state));
    key(&mut app, KeyCode::Char('p'));
    let first = lines(draw(&app, 100, 24).backend().buffer()).join("\n");
    assert!(first.contains("run 1 (staging 0.2.0)") && first.contains("more below"), "{first}");
    assert!(first.contains("[a] accept"), "{first}");
    for _ in 0..40 {
        key(&mut app, KeyCode::Down);
    }
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    let last = lines(terminal.backend().buffer()).join("\n");
    assert!(last.contains("run 30 (staging 0.2.0)") && !last.contains("run 1 (staging"), "{last}");
    assert!(last.contains("[a] accept") && !last.contains("more below"), "{last}");
}

#[test]
fn the_cancel_dialog_stops_a_running_gate_after_a_yes() {
    let mut app = app();
    // Only a running gate can be cancelled: the first row has failed.
    assert_eq!(key(&mut app, KeyCode::Char('x')), vec![]);
    let status = app.status.clone().unwrap();
    assert!(!status.ok && status.text.contains("only a running gate"), "{status:?}");
    // staging's boot_smoke is the third row, and running.
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(key(&mut app, KeyCode::Char('x')), vec![]);
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(fg_of(terminal.backend().buffer(), "[n]"), Color::Red);
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Command::Cancel {
            run_id: sando_wire::GateRunId::try_from(13).unwrap(),
            by: "alice".into()
        }]
    );
}

#[test]
fn a_retried_run_shows_its_attempt_and_a_stopped_loop_and_warnings_show_in_the_header() {
    let mut body = serde_json::to_value(state()).unwrap();
    let failed = &mut body["tiers"][0]["gates"][0];
    failed["attempt"] = json!(2);
    failed["max_attempts"] = json!(3);
    body["scheduler"] = json!({ "alive": false, "planned_at": null, "workers": [] });
    body["warnings"] = json!([
        "not sandboxed (isolation = \"none\"): builds and gates run with the daemon's authority"
    ]);
    let mut app = App::new("http://127.0.0.1:7878", "alice", true);
    app.on_msg(Msg::Connected);
    app.on_msg(Msg::State(serde_json::from_value(body).unwrap()));
    let terminal = draw(&app, 120, 40);
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("attempt 2 of 3"), "{screen}");
    assert!(!screen.contains("attempt 1 of"), "a first attempt says nothing: {screen}");
    assert!(screen.contains("decision loop stopped"), "{screen}");
    assert_eq!(fg_of(terminal.backend().buffer(), "decision loop stopped"), Color::Red);
    assert!(screen.contains("⚠ not sandboxed (isolation = \"none\")"), "{screen}");
    assert_eq!(fg_of(terminal.backend().buffer(), "⚠ not sandboxed"), Color::Yellow);
}

/// A running run's log is one continuous text: what the daemon persisted
/// before this TUI connected, then the live chunks (by their offsets, so
/// nothing shows twice), and after a lag the same again from where it
/// stopped.
#[test]
fn a_running_log_joins_its_persisted_start_and_resumes_after_a_lag() {
    let mut app = app();
    let run = GateRunId::try_from(13).unwrap();
    let chunk = |seq: u64, offset: u64, data: &str| {
        chunk(100 + seq, "2026-11-27T12:22:05Z", Stream::Stdout, offset as usize, data.as_bytes())
    };
    let tail = |app: &App| {
        let tail = &app.tails[&run];
        (tail.first_line()..tail.end_line_no())
            .filter_map(|n| tail.line(n).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    // The log is "one\ntwo\nthree\nfour\nfive\n"; this TUI sees the run
    // from "three" on, and asks for what came before.
    let commands = app.on_msg(chunk(0, 8, "three\n"));
    assert_eq!(commands, [Command::FetchLogFrom { run_id: run, from: 0 }]);
    assert!(app.on_msg(chunk(1, 14, "fo")).is_empty(), "one fetch at a time");
    app.on_msg(Msg::LogFrom { run_id: run, from: 0, bytes: Ok(b"one\ntwo\nth".to_vec()) });
    app.on_msg(chunk(2, 8, "three\nfour\n"));
    assert_eq!(tail(&app), ["one", "two", "three", "four"]);

    // Fell behind: resynced, and the running run's log resumes at its end.
    let commands =
        app.on_msg(event(200, "2026-11-27T12:22:06Z", json!({"kind": "lagged", "missed": 9})));
    assert!(commands.contains(&Command::Resync), "{commands:?}");
    assert!(commands.contains(&Command::FetchLogFrom { run_id: run, from: 19 }), "{commands:?}");
    app.on_msg(Msg::LogFrom { run_id: run, from: 19, bytes: Ok(b"fi".to_vec()) });
    app.on_msg(chunk(3, 19, "five\n"));
    assert_eq!(tail(&app), ["one", "two", "three", "four", "five"]);
}

/// Runs imported from the old daemon: typed where its prose was known, their
/// old text kept, and an unclassified one opening on that text.
#[test]
fn imported_runs_read_as_typed_summaries_and_open_on_their_old_text() {
    let mut app = app();
    let mut state = state();
    let imported =
        |id: i64, gate: &str, status: &str, outcome: Value| -> sando_wire::GateRunSummary {
            let mut run = run(id, "staging", "0.8.4", gate, status, outcome);
            run["log_ref"] = Value::Null;
            run["component_digest"] = json!(sando_wire::IMPORTED_RUN);
            run["contract"] = json!(sando_wire::IMPORTED_RUN);
            run["fuel"] = Value::Null;
            run["peak_memory"] = Value::Null;
            serde_json::from_value(run).unwrap()
        };
    let detail = "cargo test failed: exit status: 101\n==== stderr ====\nerror[E0308]: mismatched types\n  --> src/api/orders.rs:88:21\n";
    state.tiers[0].gates = vec![
        imported(
            31,
            "cargo_test",
            "failed",
            json!({"kind": "failed", "failure": {"kind": "unclassified", "legacy_detail": detail}}),
        ),
        imported(
            32,
            "migration_dry_run",
            "blocked",
            json!({"kind": "blocked", "blocker": {"kind": "no_backup_available"}}),
        ),
        imported(
            33,
            "boot_smoke",
            "passed",
            json!({"kind": "passed", "note": {"kind": "legacy", "text": "stayed up for 10s"}}),
        ),
    ];
    app.on_msg(Msg::State(state));
    let buffer = draw(&app, 100, 24).backend().buffer().clone();
    assert_eq!(
        fg_of(&buffer, "unclassified (legacy): cargo test failed: exit status: 101"),
        Color::Red
    );
    assert_eq!(fg_of(&buffer, "passed (legacy: stayed up for 10s)"), Color::Green);
    assert_eq!(fg_of(&buffer, "no backup fetched yet"), Color::Yellow);

    let commands = key(&mut app, KeyCode::Enter);
    let id = sando_wire::GateRunId::try_from(31).unwrap();
    assert_eq!(commands, vec![Command::FetchLog(id)]);
    app.on_msg(Msg::Log { run_id: id, text: detail.into() });
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("error[E0308]: mismatched types"), "{screen}");
}

/// How long each gate and the latest build took, beside the version before's.
#[test]
fn durations_sit_beside_the_previous_versions() {
    let mut app = app();
    let mut state = state();
    state.tiers[0].previous_runs = vec![
        serde_json::from_value(json!({
            "gate": "cargo_test", "version": "0.1.0", "run_id": 4, "duration_ms": 70_000,
        }))
        .unwrap(),
    ];
    state.builds = vec![
        serde_json::from_value(json!({
            "build_id": 2, "git_sha": "52345a6c0ffee0000000000000000000000000aa",
            "outcome": {"kind": "ok", "version": "0.2.0"},
            "started_at": "2026-11-27T12:18:00Z", "finished_at": "2026-11-27T12:19:00Z",
            "duration_ms": 60_000, "previous_duration_ms": 42_000,
        }))
        .unwrap(),
    ];
    app.on_msg(Msg::State(state));
    let screen = lines(draw(&app, 140, 30).backend().buffer()).join("\n");
    assert!(
        screen.contains("build      commit 52345a6  built 0.2.0  took 1m00s (previous build 42s)"),
        "{screen}"
    );
    assert!(screen.contains("took 1m30s (0.1.0 1m10s) · 8m30s ago"), "{screen}");
    key(&mut app, KeyCode::Enter);
    let detail = lines(draw(&app, 120, 30).backend().buffer()).join("\n");
    assert!(detail.contains("(1m30s)  0.1.0 took 1m10s"), "{detail}");
}

#[test]
fn a_detail_following_its_log_moves_to_the_gates_retry_and_the_header_says_who_leads() {
    let mut app = app();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    // A takeover: run 13 was interrupted, attempt 2 (run 21) runs now, and
    // this daemon is a standby whose leader changed.
    let mut body = serde_json::to_value(state()).unwrap();
    body["tiers"][0]["gates"][2] =
        run(21, "staging", "0.2.0", "boot_smoke", "running", Value::Null);
    body["leader"] = json!({"epoch": 2, "holder": "sando serve on b (pid 7)", "url": "http://10.0.0.2:7878",
                            "since": "2026-11-27T12:25:00Z", "this_daemon": false});
    let commands = app.on_msg(Msg::State(serde_json::from_value(body).unwrap()));
    assert!(
        commands.is_empty(),
        "run 21 is running: its live tail, nothing to fetch: {commands:?}"
    );
    let screen = lines(draw(&app, 120, 24).backend().buffer()).join("\n");
    assert!(screen.contains("run 21"), "{screen}");
    assert!(screen.contains("standby; leader http://10.0.0.2:7878 (epoch 2)"), "{screen}");

    // Not following (scrolled up), a replaced run stays, fetched as it is now.
    key(&mut app, KeyCode::PageUp);
    let mut body = serde_json::to_value(state()).unwrap();
    body["tiers"][0]["gates"][2] =
        run(22, "staging", "0.2.0", "boot_smoke", "running", Value::Null);
    let commands = app.on_msg(Msg::State(serde_json::from_value(body).unwrap()));
    assert_eq!(commands, [Command::FetchRun(GateRunId::try_from(21).unwrap())]);
    let screen = lines(draw(&app, 120, 24).backend().buffer()).join("\n");
    assert!(screen.contains("run 21"), "{screen}");
}

/// The state with prod under a two-approval policy alice has approved
/// once (bob's earlier approval voided by a rerun), and `outcome` as
/// prod's manual_confirm's.
fn team_state(status: &str, outcome: Value) -> StateResponse {
    let mut state = serde_json::to_value(state()).unwrap();
    let prod = &mut state["tiers"][1];
    prod["gates"][1] = run(8, "prod", "0.1.0", "manual_confirm", status, outcome);
    prod["approvals"] = json!({
        "have": 1, "need": 2, "from": ["alice", "bob", "carol"], "forbid_author": true,
        "approvals": [
            {"by": "bob", "at": "2026-11-27T12:00:00Z", "voided": true},
            {"by": "alice", "at": "2026-11-27T12:25:00Z", "voided": false},
        ],
    });
    serde_json::from_value(state).unwrap()
}

#[test]
fn approvals_say_how_many_of_how_many_and_whose_and_a_rejection_says_who_and_why() {
    let mut app = app();
    let waiting =
        json!({"kind": "blocked", "blocker": {"kind": "awaiting_approvals", "have": 1, "need": 2}});
    app.on_msg(Msg::State(team_state("blocked", waiting)));
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("awaiting approvals: 1 of 2: alice"), "{screen}");
    assert_eq!(fg_of(terminal.backend().buffer(), "awaiting approvals: 1 of 2"), Color::Yellow);

    let rejected = json!({"kind": "failed", "failure": {"kind": "rejected", "by": "carol", "reason": "no migration for the new column"}});
    app.on_msg(Msg::State(team_state("failed", rejected)));
    let terminal = draw(&app, 100, 24);
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("rejected by carol: no migration for the new column"), "{screen}");
    assert_eq!(fg_of(terminal.backend().buffer(), "rejected by carol"), Color::Red);
}

#[test]
fn a_viewers_tui_shows_no_action_keys() {
    let mut app = app();
    app.on_msg(Msg::Identity(sando_wire::WhoAmI {
        name: "vic".into(),
        role: sando_wire::Role::Viewer,
    }));
    assert!(!app.can_act());
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(!screen.contains("c confirm") && !screen.contains("r re-run"), "{screen}");
    // The keys do nothing but say why.
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(key(&mut app, KeyCode::Char('c')), vec![]);
    assert!(app.dialog.is_none());
    assert_eq!(app.status.clone().unwrap().text, "vic is a viewer: this token reads only");
    key(&mut app, KeyCode::Char('?'));
    let help = lines(draw(&app, 80, 30).backend().buffer()).join("\n");
    assert!(!help.contains("confirm a waiting") && help.contains("this help"), "{help}");

    // An operator's token keeps them, and actions are sent as the token's operator.
    let mut app = self::app();
    app.on_msg(Msg::Identity(sando_wire::WhoAmI {
        name: "bob".into(),
        role: sando_wire::Role::Operator,
    }));
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("c confirm"), "{screen}");
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Char('c'));
    assert!(
        matches!(&key(&mut app, KeyCode::Char('y'))[..], [Command::Confirm { by, .. }] if by == "bob")
    );
}

#[test]
fn a_gate_start_and_done_with_their_summary_update_the_row_in_place_without_a_resync() {
    let mut app = app();
    let mut started = run(14, "staging", "0.2.0", "boot_smoke", "running", Value::Null);
    started["attempt"] = json!(2);
    started["max_attempts"] = json!(3);
    let commands = app.on_msg(event(
        3,
        "2026-11-27T12:23:00Z",
        json!({"kind": "gate_start", "run_id": 14, "tier": "staging", "version": "0.2.0",
               "gate": "boot_smoke", "summary": started}),
    ));
    assert!(!commands.contains(&Command::Resync), "{commands:?}");
    let row = |app: &App| {
        app.visible_rows()
            .into_iter()
            .find(|(_, r)| r.gate == sando_wire::GateKind::BootSmoke)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert_eq!((row(&app).run_id.get(), row(&app).attempt), (14, 2));
    assert_eq!(row(&app).component_digest.len(), 64, "provenance, from the event");
    let outcome = json!({"kind": "passed", "note": {"kind": "stayed_up", "duration_s": 10}});
    let done = run(14, "staging", "0.2.0", "boot_smoke", "passed", outcome.clone());
    let commands = app.on_msg(event(
        4,
        "2026-11-27T12:24:00Z",
        json!({"kind": "gate_done", "run_id": 14, "tier": "staging", "version": "0.2.0",
               "gate": "boot_smoke", "outcome": {"status": outcome, "log_ref": "0.2.0/boot_smoke/14.log"},
               "summary": done}),
    ));
    assert!(!commands.contains(&Command::Resync), "{commands:?}");
    let row = row(&app);
    assert_eq!(row.status, sando_wire::RunState::Passed);
    assert_eq!(row.fuel, Some(45153), "the cost, from the event");
}

#[test]
fn events_replayed_on_connecting_fill_the_events_pane_and_leave_the_state_alone() {
    let mut app = App::new("http://127.0.0.1:7878", "alice", true);
    app.on_msg(Msg::Connected);
    app.on_msg(Msg::State(state()));
    let envelope = |seq: u64, event: Value| -> EventEnvelope {
        serde_json::from_value(json!({"seq": seq, "at": "2026-11-27T12:10:00Z", "event": event}))
            .unwrap()
    };
    let before = app.state.clone();
    let commands = app.on_msg(Msg::Replayed(envelope(
        1,
        json!({"kind": "promoted", "tier": "staging", "version": "0.1.0"}),
    )));
    assert!(commands.is_empty(), "{commands:?}");
    app.on_msg(Msg::Replayed(envelope(
        2,
        json!({"kind": "gate_done", "run_id": 5, "tier": "staging", "version": "0.0.9", "gate": "cargo_test",
               "outcome": {"status": {"kind": "passed", "note": {"kind": "tests_passed", "count": 1, "duration_s": 2}}, "log_ref": null}}),
    )));
    assert_eq!(app.state, before, "the state already has what happened");
    assert_eq!(app.events.len(), 2, "{:?}", app.events);
    assert!(app.events[1].text.contains("promoted"), "{:?}", app.events);
}

/// A past run with its own times, for the history screens.
fn past(
    id: i64,
    tier: &str,
    version: &str,
    gate: &str,
    status: &str,
    outcome: Value,
    minute: u32,
) -> Value {
    let mut run = run(id, tier, version, gate, status, outcome);
    run["started_at"] = json!(format!("2026-11-27T11:{minute:02}:00Z"));
    run["finished_at"] = json!(format!("2026-11-27T11:{:02}:45Z", minute + 1));
    run
}

#[test]
fn a_gates_history_lists_its_past_runs_and_names_the_flaky_test() {
    let mut app = app();
    // The selection starts on staging's cargo_test.
    let commands = key(&mut app, KeyCode::Char('h'));
    let of = sando_tui::app::HistoryOf::Gate {
        tier: "staging".parse().unwrap(),
        gate: "cargo_test".parse().unwrap(),
    };
    assert_eq!(commands, vec![Command::FetchHistory(of.clone())]);
    let screen = lines(draw(&app, 100, 16).backend().buffer()).join("\n");
    assert!(screen.contains("loading…"), "{screen}");
    let failed = |test: &str| json!({"kind": "failed", "failure": {"kind": "cargo_test", "failed_count": 1, "first_failed": test}});
    let passed =
        json!({"kind": "passed", "note": {"kind": "tests_passed", "count": 12, "duration_s": 1}});
    let flaked = json!({"kind": "passed", "note": {"kind": "tests_passed", "count": 12, "duration_s": 1, "flaky": ["tests::parse"]}});
    let runs: Vec<GateRunSummary> = [
        past(11, "staging", "0.2.0", "cargo_test", "failed", failed("tests::parse"), 50),
        past(9, "staging", "0.1.1", "cargo_test", "passed", flaked, 40),
        past(7, "staging", "0.1.1", "cargo_test", "failed", failed("tests::parse"), 30),
        past(4, "staging", "0.1.0", "cargo_test", "passed", passed, 20),
    ]
    .into_iter()
    .map(|r| serde_json::from_value(r).unwrap())
    .collect();
    app.on_msg(Msg::History { of, runs: Ok(runs) });
    let terminal = draw(&app, 100, 16);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("tests::parse: failed in 3 of 4 runs"), "{screen}");
    assert!(screen.contains("1m45s"), "each run's duration: {screen}");
    assert_eq!(fg_of(terminal.backend().buffer(), "✗ tests failed: 1"), Color::Red);
    assert_eq!(fg_of(terminal.backend().buffer(), "✓ 12 tests passed"), Color::Green);
    // Back where it was.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, sando_tui::app::Screen::Overview);
}

#[test]
fn a_versions_view_shows_its_walk_through_the_tiers_in_order() {
    let mut app = app();
    let commands = key(&mut app, KeyCode::Char('v'));
    let of = sando_tui::app::HistoryOf::Version("0.2.0".parse().unwrap());
    assert_eq!(commands, vec![Command::FetchHistory(of.clone())]);
    let passed =
        json!({"kind": "passed", "note": {"kind": "tests_passed", "count": 12, "duration_s": 1}});
    let waiting = json!({"kind": "blocked", "blocker": {"kind": "awaiting_operator_confirmation"}});
    // As the API answers: newest first.
    let runs: Vec<GateRunSummary> = [
        past(21, "prod", "0.2.0", "manual_confirm", "blocked", waiting, 30),
        past(
            20,
            "staging",
            "0.2.0",
            "boot_smoke",
            "passed",
            json!({"kind": "passed", "note": {"kind": "stayed_up", "duration_s": 3}}),
            20,
        ),
        past(19, "staging", "0.2.0", "cargo_test", "passed", passed, 10),
    ]
    .into_iter()
    .map(|r| serde_json::from_value(r).unwrap())
    .collect();
    app.on_msg(Msg::History { of, runs: Ok(runs) });
    let terminal = draw(&app, 100, 12);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    let at = |text: &str| screen.find(text).unwrap_or_else(|| panic!("{text} in {screen}"));
    assert!(
        at("staging cargo_test") < at("staging boot_smoke")
            && at("staging boot_smoke") < at("prod manual_confirm"),
        "{screen}"
    );
    assert_eq!(fg_of(terminal.backend().buffer(), "◆ "), Color::Yellow);
    // A history the daemon could not give says why, in red.
    app.on_msg(Msg::History {
        of: sando_tui::app::HistoryOf::Version("0.2.0".parse().unwrap()),
        runs: Err("GET /api/gate-runs: 503".into()),
    });
    let terminal = draw(&app, 100, 12);
    assert_eq!(fg_of(terminal.backend().buffer(), "GET /api/gate-runs: 503"), Color::Red);
}

/// The state with prod at 0.1.0 and 0.2.0 its candidate, every gate
/// passed, and `prod` (a JSON object) merged into prod's tier.
fn prod_state(prod: Value) -> StateResponse {
    let mut state = serde_json::to_value(state()).unwrap();
    let tier = &mut state["tiers"][1];
    tier["current_version"] = json!("0.1.0");
    tier["candidate_version"] = json!("0.2.0");
    tier["gates"] = json!([
        run(
            17,
            "prod",
            "0.2.0",
            "burn_in",
            "passed",
            json!({"kind": "passed", "note": {"kind": "burn_in_elapsed", "seconds": 604800}})
        ),
        run(
            18,
            "prod",
            "0.2.0",
            "manual_confirm",
            "passed",
            json!({"kind": "passed", "note": {"kind": "operator_confirmed", "at": "2026-11-27T12:22:00Z"}})
        ),
    ]);
    for (key, value) in prod.as_object().unwrap() {
        tier[key] = value.clone();
    }
    serde_json::from_value(state).expect("a state body the daemon would send")
}

/// alice's freeze of prod until Monday 08:00, holding 0.2.0.
fn frozen_prod() -> Value {
    json!({
        "frozen": {"source": {"manual": {"id": 3}}, "tier": "prod", "by": "alice",
                   "reason": "release weekend", "since": "2026-11-27T12:00:00Z",
                   "until": "2026-11-30T08:00:00Z"},
        "promotion_blocked": {"tier_frozen": {"by": "alice", "reason": "release weekend",
                                              "until": "2026-11-30T08:00:00Z"}},
    })
}

/// Selects prod's first gate (the last tier's rows end the list).
fn select_prod(app: &mut App) {
    key(app, KeyCode::Char('G'));
    key(app, KeyCode::Up);
    assert_eq!(app.selected.as_ref().unwrap().tier.to_string(), "prod");
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(key(app, KeyCode::Char(c)), vec![], "typing sends nothing");
    }
}

#[test]
fn a_frozen_tier_holds_its_candidate_in_yellow() {
    let mut app = app();
    app.on_msg(Msg::State(prod_state(frozen_prod())));
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let screen = lines(buffer).join("\n");
    assert!(screen.contains("candidate 0.2.0 waits: prod frozen"), "{screen}");
    assert!(screen.contains("❄ frozen by alice until Mon 08:00: release weekend"), "{screen}");
    assert_eq!(fg_of(buffer, "waits: prod frozen"), Color::Yellow);
    assert_eq!(fg_of(buffer, "❄ frozen by alice"), Color::Yellow);

    // A window's freeze says so, and cannot be lifted from here; an
    // admin's override shows.
    let mut window = frozen_prod();
    window["frozen"]["source"] = json!("window");
    window["frozen"]["by"] = json!("window");
    window["frozen"]["reason"] = json!("");
    window["override_version"] = json!("0.2.0");
    app.on_msg(Msg::State(prod_state(window)));
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("❄ frozen (window) until Mon 08:00"), "{screen}");
    assert!(screen.contains("override: 0.2.0 may enter while frozen"), "{screen}");
    select_prod(&mut app);
    assert_eq!(key(&mut app, KeyCode::Char('u')), vec![]);
    assert!(app.dialog.is_none());
    let status = app.status.clone().unwrap();
    assert!(
        !status.ok && status.text.starts_with("prod is frozen by a window in the config until"),
        "{status:?}"
    );
}

#[test]
fn the_freeze_dialog_asks_why_then_sends_the_reason_after_a_yes() {
    let mut app = app();
    select_prod(&mut app);
    assert_eq!(key(&mut app, KeyCode::Char('z')), vec![]);
    // No reason, no going on.
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.dialog, Some(sando_tui::app::Dialog::Reason { .. })));
    assert!(app.status.as_ref().unwrap().text.starts_with("a reason is needed"));
    // y and n are letters of the reason, not answers.
    typed(&mut app, "release weekenx");
    key(&mut app, KeyCode::Backspace);
    typed(&mut app, "d");
    insta::assert_snapshot!("the_freeze_reason", draw(&app, 80, 24).backend());
    assert_eq!(key(&mut app, KeyCode::Enter), vec![]);
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("Freeze prod?") && screen.contains("Reason: release weekend"));
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Command::Freeze {
            tier: Some("prod".parse().unwrap()),
            reason: "release weekend".into()
        }]
    );
    assert_eq!(app.status.as_ref().unwrap().text, "freezing prod…");

    // Z freezes every tier, the same way; Esc or n sends nothing.
    key(&mut app, KeyCode::Char('Z'));
    key(&mut app, KeyCode::Esc);
    assert!(app.dialog.is_none());
    key(&mut app, KeyCode::Char('Z'));
    typed(&mut app, "incident 42");
    key(&mut app, KeyCode::Enter);
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("Freeze every tier?"), "{screen}");
    assert_eq!(key(&mut app, KeyCode::Char('n')), vec![]);
    key(&mut app, KeyCode::Char('Z'));
    typed(&mut app, "incident 42");
    key(&mut app, KeyCode::Enter);
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Command::Freeze { tier: None, reason: "incident 42".into() }]
    );
}

#[test]
fn lifting_a_freeze_sends_its_id_after_a_yes() {
    let mut app = app();
    select_prod(&mut app);
    key(&mut app, KeyCode::Char('u'));
    assert_eq!(app.status.clone().unwrap().text, "prod is not frozen");
    app.on_msg(Msg::State(prod_state(frozen_prod())));
    key(&mut app, KeyCode::Char('u'));
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(
        screen.contains("Lift the freeze on prod?")
            && screen.contains("Frozen by alice: release weekend"),
        "{screen}"
    );
    assert_eq!(key(&mut app, KeyCode::Char('y')), vec![Command::LiftFreeze { id: 3 }]);
}

#[test]
fn the_rollback_dialog_names_both_versions_and_sends_the_one_shown() {
    let mut app = app();
    // Nothing to go back to: it says why.
    app.on_msg(Msg::State(prod_state(json!({}))));
    select_prod(&mut app);
    assert_eq!(key(&mut app, KeyCode::Char('B')), vec![]);
    assert!(app.dialog.is_none());
    let status = app.status.clone().unwrap();
    assert!(!status.ok && status.text.starts_with("prod has no version to roll back to"));

    app.on_msg(Msg::State(prod_state(json!({
        "current_version": "0.2.0", "candidate_version": null, "rollback_to": "0.1.0",
    }))));
    select_prod(&mut app);
    key(&mut app, KeyCode::Char('B'));
    typed(&mut app, "health check flapping");
    key(&mut app, KeyCode::Enter);
    let terminal = draw(&app, 80, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains("Roll back prod from 0.2.0 to 0.1.0?"), "{screen}");
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Command::Rollback {
            tier: "prod".parse().unwrap(),
            to: "0.1.0".parse().unwrap(),
            reason: "health check flapping".into()
        }]
    );
}

#[test]
fn a_rollback_shows_on_its_tier_and_its_deploys() {
    let mut app = app();
    let confirmed = json!({"kind": "passed", "note": {"kind": "operator_confirmed", "at": "2026-11-27T11:00:00Z"}});
    let mut state = serde_json::to_value(prod_state(json!({
        "current_version": "0.1.0", "candidate_version": null,
        "gates": [run(6, "prod", "0.1.0", "manual_confirm", "passed", confirmed)],
        "pipeline": ["manual_confirm"],
        "rollback": {"id": 1, "tier": "prod", "from": "0.2.0", "to": "0.1.0", "by": "bob",
                     "reason": "error rate up", "requested_at": "2026-11-27T12:25:00Z",
                     "progress": "done"},
    })))
    .unwrap();
    state["deploys"].as_array_mut().unwrap().insert(
        0,
        json!({"deploy_id": 3, "tier": "prod", "version": "0.1.0", "node": "prod-1",
               "outcome": {"kind": "ok"}, "started_at": "2026-11-27T12:25:01Z",
               "finished_at": "2026-11-27T12:25:04Z", "log_ref": "deploys/3.log",
               "rollback": {"from": "0.2.0", "to": "0.1.0", "by": "bob"}}),
    );
    app.on_msg(Msg::State(serde_json::from_value(state).unwrap()));
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(
        screen.contains("↩ rolled back 0.2.0 → 0.1.0 by bob 5m00s ago: error rate up"),
        "{screen}"
    );
    assert!(screen.contains("✓ ↩ rollback 0.1.0 → prod-1 deployed"), "{screen}");

    // Pending and failed read as such, in cyan and red.
    let mut body = serde_json::to_value(app.state.clone().unwrap()).unwrap();
    body["tiers"][1]["rollback"]["progress"] = json!("failed");
    app.on_msg(Msg::State(serde_json::from_value(body.clone()).unwrap()));
    let terminal = draw(&app, 100, 24);
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(
        screen.contains("↩ rollback 0.2.0 → 0.1.0 by bob failed 5m00s ago: prod still runs 0.2.0"),
        "{screen}"
    );
    assert_eq!(fg_of(terminal.backend().buffer(), "↩ rollback 0.2.0"), Color::Red);
    body["tiers"][1]["rollback"]["progress"] = json!("pending");
    app.on_msg(Msg::State(serde_json::from_value(body).unwrap()));
    let terminal = draw(&app, 100, 24);
    assert_eq!(fg_of(terminal.backend().buffer(), "↩ rolling back 0.2.0 → 0.1.0"), Color::Cyan);
}

fn audit_entry(id: i64, minute: u32, actor: &str, action: &str, target: &str) -> Value {
    json!({"id": id, "at": format!("2026-11-27T12:{minute:02}:00Z"), "actor": actor,
           "action": action, "target": target, "before": null, "after": null})
}

#[test]
fn the_audit_view_lists_who_did_what_newest_first_and_opens_an_entry() {
    let mut app = app();
    // A viewer may read it.
    app.on_msg(Msg::Identity(sando_wire::WhoAmI {
        name: "vic".into(),
        role: sando_wire::Role::Viewer,
    }));
    assert_eq!(key(&mut app, KeyCode::Char('A')), vec![Command::FetchAudit { since: 0 }]);
    let screen = lines(draw(&app, 100, 20).backend().buffer()).join("\n");
    assert!(screen.contains("loading…"), "{screen}");
    let mut freeze = audit_entry(3, 12, "alice", "freeze", "tier prod");
    freeze["after"] = json!(r#"{"tier":"prod","reason":"release weekend"}"#);
    let entries: Vec<sando_wire::AuditEntry> = [
        audit_entry(1, 5, "alice", "approve", "gate_run 8"),
        audit_entry(2, 10, "bob", "rerun", "gate_run 11"),
        freeze,
        audit_entry(4, 20, "bob", "rollback", "tier prod"),
        audit_entry(5, 21, "auto_rollback", "auto_rollback", "tier staging"),
    ]
    .into_iter()
    .map(|e| serde_json::from_value(e).unwrap())
    .collect();
    app.on_msg(Msg::Audit { since: 0, entries: Ok(entries), more: false });
    let terminal = draw(&app, 100, 20);
    insta::assert_snapshot!(terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    let at = |text: &str| screen.find(text).unwrap_or_else(|| panic!("{text} in {screen}"));
    assert!(at("auto_rollback") < at("alice      freeze"), "newest first: {screen}");
    assert!(screen.contains("11-27 12:12:00  alice      freeze           tier prod"), "{screen}");

    // Down twice to the freeze; Enter shows its before and after.
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Enter);
    let terminal = draw(&app, 100, 24);
    insta::assert_snapshot!("the_audit_entry_opened", terminal.backend());
    let screen = lines(terminal.backend().buffer()).join("\n");
    assert!(screen.contains(r#""reason": "release weekend""#), "{screen}");

    // A new state while it is open fetches what came after; Esc closes
    // the entry, then goes back.
    let commands = app.on_msg(Msg::State(state()));
    assert_eq!(commands, vec![Command::FetchAudit { since: 5 }]);
    // What came after goes above; the open entry stays the freeze.
    let newer = serde_json::from_value(audit_entry(6, 22, "carol", "lift_freeze", "freeze 3"));
    app.on_msg(Msg::Audit { since: 5, entries: Ok(vec![newer.unwrap()]), more: false });
    let screen = lines(draw(&app, 100, 24).backend().buffer()).join("\n");
    assert!(
        screen.contains("after · freeze tier prod") && screen.contains("lift_freeze"),
        "{screen}"
    );
    key(&mut app, KeyCode::Esc);
    assert!(matches!(app.screen, sando_tui::app::Screen::Audit(_)));
    key(&mut app, KeyCode::Char('q'));
    assert_eq!(app.screen, sando_tui::app::Screen::Overview);

    // Refused: said in red.
    app.on_msg(Msg::Audit {
        since: 5,
        entries: Err("audit trail: daemon: a token is needed (HTTP 401)".into()),
        more: false,
    });
    key(&mut app, KeyCode::Char('A'));
    let terminal = draw(&app, 100, 20);
    assert_eq!(fg_of(terminal.backend().buffer(), "audit trail: daemon"), Color::Red);
}

#[test]
fn a_viewer_is_shown_no_freeze_or_rollback_keys() {
    let mut app = app();
    app.on_msg(Msg::State(prod_state(frozen_prod())));
    app.on_msg(Msg::Identity(sando_wire::WhoAmI {
        name: "vic".into(),
        role: sando_wire::Role::Viewer,
    }));
    let screen = lines(draw(&app, 120, 24).backend().buffer()).join("\n");
    assert!(screen.contains("A audit"), "{screen}");
    assert!(!screen.contains("z freeze") && !screen.contains("B roll back"), "{screen}");
    select_prod(&mut app);
    for c in ['z', 'Z', 'u', 'B'] {
        app.status = None;
        assert_eq!(key(&mut app, KeyCode::Char(c)), vec![]);
        assert!(app.dialog.is_none(), "{c}");
        assert_eq!(app.status.clone().unwrap().text, "vic is a viewer: this token reads only");
    }
    key(&mut app, KeyCode::Char('?'));
    let help = lines(draw(&app, 80, 30).backend().buffer()).join("\n");
    assert!(!help.contains("freeze") && help.contains("the audit trail"), "{help}");
}

#[test]
fn a_long_reason_keeps_the_answer_keys_in_view_and_stops_at_1_kib() {
    let mut app = app();
    select_prod(&mut app);
    key(&mut app, KeyCode::Char('z'));
    let long = "the payment provider's sandbox is down until they say otherwise; ".repeat(20);
    typed(&mut app, &long);
    let Some(sando_tui::app::Dialog::Reason { text, .. }) = &app.dialog else { panic!() };
    assert_eq!(text.len(), 1024, "the daemon takes at most 1 KiB");
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    let end = format!("{}▏", &long[1024 - 40..1024]);
    assert!(screen.contains(&end), "the end shows: {screen}");
    key(&mut app, KeyCode::Enter);
    let screen = lines(draw(&app, 80, 24).backend().buffer()).join("\n");
    assert!(screen.contains("[y] yes") && screen.contains("Reason: the payment"), "{screen}");
}
