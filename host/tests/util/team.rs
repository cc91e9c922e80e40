//! Operators for the team tests: tokens made with the real `sando operators add`, a one-tier config holding them, and reading the audit trail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::daemon::{Daemon, Events, TOKEN, gate_done};

/// `sando operators add NAME --role ROLE`: the token (printed once) and
/// the `[[operators]]` entry to paste.
pub fn add_operator(name: &str, role: &str, emails: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["operators", "add", name, "--role", role])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.lines().next().unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{stdout}");
    assert!(!stdout.contains("token_file"), "{stdout}");
    let entry = stdout.lines().skip(1).filter(|l| !l.starts_with('#')).collect::<Vec<_>>();
    let mut entry = entry.join("\n");
    assert!(entry.contains(&format!("name = \"{name}\"")), "{entry}");
    assert!(!entry.contains(&token), "the config gets only the digest: {entry}");
    if !emails.is_empty() {
        entry.push_str(&format!("\nemails = {emails:?}\n"));
    }
    (token, entry)
}

pub struct Team {
    pub alice: String,
    pub bob: String,
    pub carol: String,
    pub viewer: String,
    pub operators: String,
}

/// alice and bob operate, carol operates and wrote the commits (the
/// project's git author e-mail), vic only views.
pub fn team() -> Team {
    let (alice, a) = add_operator("alice", "operator", &[]);
    let (bob, b) = add_operator("bob", "operator", &[]);
    let (carol, c) = add_operator("carol", "operator", &["t@example.com"]);
    let (viewer, v) = add_operator("vic", "viewer", &[]);
    Team { alice, bob, carol, viewer, operators: [a, b, c, v].join("\n") }
}

/// One tier, `prod`, with `gates`, one node, and `tier_extra` on the tier
/// (an approval policy); `top` goes at the top of the file.
pub fn write_config(
    root: &Path,
    repo: &Path,
    top: &str,
    tier_extra: &str,
    gates: &str,
    operators: &str,
) -> PathBuf {
    let prod = format!("[[tiers]]\nname = \"prod\"\n{tier_extra}");
    let node = super::config::copy_node(&root.join("nodes"), "prod-1", "");
    super::config::write(root, &[&super::config::head(repo, top), &prod, &node, gates, operators])
}

pub fn rebuild(daemon: &Daemon, sha: &str) {
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202, "{body}");
}

pub fn get_as(daemon: &Daemon, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = Daemon::agent().get(format!("{}{path}", daemon.url));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().expect("GET");
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub async fn waiting_run(events: &Events) -> i64 {
    let waiting = events
        .wait(
            "the confirmation waits",
            Duration::from_secs(180),
            gate_done("manual_confirm", "blocked"),
        )
        .await;
    waiting["event"]["run_id"].as_i64().unwrap()
}

/// The audit trail's (actor, action) pairs, oldest first.
pub fn audit(daemon: &Daemon, token: &str) -> Vec<(String, String, Value)> {
    let (status, page) = get_as(daemon, "/api/audit?limit=1000", Some(token));
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
                e.clone(),
            )
        })
        .collect()
}
