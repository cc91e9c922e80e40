//! The TUI end to end: the real `sando tui` in a real terminal (tmux) against the real daemon running the demo. Keys go in with `send-keys`; the screen comes back with its colours from `capture-pane -e`.

mod util;

use std::process::Command;
use std::time::Duration;

use util::tmux::{GREEN, RED, Tmux, YELLOW};

#[test]
fn the_operator_sees_red_and_yellow_and_confirms_to_green() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the daemon restarted from the demo's config below
    // comes back where the TUI looks for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut demo = util::Demo::start_on(&dir.path().join("demo"), &format!("127.0.0.1:{port}"));
    let command = format!(
        "env -u RUST_BACKTRACE USER=e2e-operator {sando} tui --url {url} --token-file {token}; \
         echo TUI-EXITED=$?; sleep 600",
        sando = env!("CARGO_BIN_EXE_sando"),
        url = demo.url,
        token = demo.dir.join("token").display(),
    );
    let tmux = Tmux::start(100, 30, &command);

    // Red: 0.2.0's edited migration, with its typed summary.
    let screen = tmux.wait("a red migration_dry_run", Duration::from_secs(240), |s| {
        s.colour_of("migration 20260101000000 modified") == Some(RED)
    });
    assert_eq!(screen.colour_of("failed  migration_dry_run"), Some(RED), "{}", screen.text());
    assert!(screen.contains("● live"), "{}", screen.text());

    // Its detail: the typed outcome and the log that explains it.
    tmux.keys(&["g", "j", "Enter"]);
    let detail = tmux.wait("the migration_dry_run detail", Duration::from_secs(20), |s| {
        s.contains("staging · 0.2.0 · migration_dry_run")
            && s.contains("was previously applied but has been modified")
    });
    assert!(detail.contains(r#""kind":"migration_modified""#), "{}", detail.text());
    assert!(detail.contains("contract 0.2.0"), "{}", detail.text());
    tmux.keys(&["Escape"]);
    tmux.wait("the overview again", Duration::from_secs(10), |s| s.contains("Tiers"));

    // Yellow: prod waits for the operator once the 60 s burn-in is over.
    let screen = tmux.wait("a yellow manual_confirm", Duration::from_secs(180), |s| {
        s.colour_of("awaiting operator confirmation") == Some(YELLOW)
    });
    assert_eq!(screen.colour_of("blocked manual_confirm"), Some(YELLOW), "{}", screen.text());
    // The 60 s burn-in reads in seconds, not as a rounded hour.
    let text = screen.text();
    let elapsed = text.split("burn-in done: ").nth(1).and_then(|r| r.split(" elapsed").next());
    let elapsed = elapsed.unwrap_or_else(|| panic!("no burn-in line: {text}"));
    let seconds = elapsed.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
    assert!(seconds.is_some_and(|s| (60..120).contains(&s)), "burn-in done: {elapsed} elapsed");

    // Confirm it: a question first, then green, with who confirmed: the
    // token's operator (the demo's single token is the admin `admin`),
    // whatever `$USER` says.
    tmux.keys(&["G", "c"]);
    tmux.wait("the confirm dialog", Duration::from_secs(10), |s| {
        s.contains("Confirm manual_confirm 0.1.0 at prod?") && s.contains("confirmed by admin")
    });
    tmux.keys(&["y"]);
    let screen = tmux.wait("a green manual_confirm", Duration::from_secs(60), |s| {
        s.colour_of("passed  manual_confirm") == Some(GREEN)
    });
    assert!(screen.contains("by admin"), "{}", screen.text());
    tmux.wait("0.1.0 promoted to prod", Duration::from_secs(60), |s| {
        s.contains("0.1.0 promoted to prod")
    });

    // The daemon goes away: the TUI says so and keeps what it showed.
    demo.kill();
    let screen = tmux.wait("the lost connection", Duration::from_secs(30), |s| {
        s.colour_of("○ reconnecting") == Some(RED)
    });
    assert!(screen.contains("passed  manual_confirm"), "{}", screen.text());

    // It comes back (same config, same database): the TUI reconnects,
    // resyncs, and the operator's selection is where it was.
    let mut restarted = Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["serve", "--config"])
        .arg(demo.dir.join("sando.toml"))
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("restart the daemon");
    let screen = tmux.wait("the reconnection", Duration::from_secs(60), |s| {
        s.colour_of("● live") == Some(GREEN)
    });
    let selected = screen.text().lines().find(|l| l.contains('▶')).unwrap_or_default().to_owned();
    assert!(selected.contains("manual_confirm"), "the selection moved: {}", screen.text());
    assert!(screen.contains("prod       current 0.1.0"), "{}", screen.text());

    // A TUI that connects only now fills its events pane from the
    // daemon's backlog (`?since=`), kept across the restart.
    let late = Tmux::start(
        100,
        30,
        &format!(
            "env -u RUST_BACKTRACE {sando} tui --url {url}; sleep 600",
            sando = env!("CARGO_BIN_EXE_sando"),
            url = demo.url,
        ),
    );
    let screen = late.wait("the events pane filled on connect", Duration::from_secs(30), |s| {
        s.contains("0.1.0 promoted to prod") && s.contains("● live")
    });
    assert!(screen.contains("confirmed"), "{}", screen.text());
    drop(late);
    let _ = restarted.kill();
    let _ = restarted.wait();

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    tmux.wait("the TUI to exit", Duration::from_secs(10), |s| s.contains("TUI-EXITED=0"));
    assert_eq!(tmux.run(&["display-message", "-p", "-t", "sando", "#{alternate_on}"]).trim(), "0");
}

/// An old daemon's history, imported, in the real terminal: typed summaries
/// in their colours, the old text beside them.
#[test]
fn an_imported_history_shows_with_typed_summaries() {
    let (sando, legacy) = util::legacy::setup(7);
    let out =
        sando.run(&["import-legacy", "--from", legacy.to_str().unwrap(), "--config", "sando.toml"]);
    assert!(out.status.success(), "{}", util::stderr(&out));
    let daemon = util::daemon::Daemon::start(&sando.path("sando.toml"));
    let command = format!(
        "env -u RUST_BACKTRACE {sando} tui --url {url}; echo TUI-EXITED=$?; sleep 600",
        sando = env!("CARGO_BIN_EXE_sando"),
        url = daemon.url,
    );
    let tmux = Tmux::start(120, 30, &command);
    let screen = tmux.wait("prod's imported confirmation", Duration::from_secs(30), |s| {
        s.contains("passed (legacy: confirmed by")
    });
    assert_eq!(screen.colour_of("passed (legacy: confirmed by"), Some(GREEN), "{}", screen.text());
    assert!(screen.contains("prod"), "{}", screen.text());
    daemon.kill();
}
