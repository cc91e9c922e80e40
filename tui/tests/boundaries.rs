//! The TUI's dependency boundary: it talks to the daemon over HTTP and WebSocket only, so neither the sandbox (wasmtime) nor the store (sqlx) may be linked into it.

use std::process::Command;

#[test]
fn the_tui_links_neither_wasmtime_nor_sqlx() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", "sando-tui", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).unwrap();
    assert!(
        tree.lines().any(|l| l.starts_with("sando-wire ")),
        "sando-wire is a dependency:\n{tree}"
    );
    assert!(tree.lines().any(|l| l.starts_with("ratatui ")), "ratatui is a dependency:\n{tree}");
    let forbidden: Vec<&str> = tree
        .lines()
        .filter(|l| {
            ["wasmtime", "sqlx", "cranelift", "libsqlite3"].iter().any(|f| l.starts_with(f))
        })
        .collect();
    assert!(forbidden.is_empty(), "the TUI links {forbidden:?}");
}
