//! Property tests of the API's outside input, against the real `sando serve`: any path parameter and any request body, with or without the token, is answered with a status below 500 and, when refused, one JSON `{"error"}` saying why.

mod util;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use util::daemon::{Daemon, Project, TOKEN};

/// One daemon for every case (its temp dir lives as long as the process).
fn daemon() -> &'static Daemon {
    static DAEMON: OnceLock<(tempfile::TempDir, Daemon)> = OnceLock::new();
    &DAEMON
        .get_or_init(|| {
            let root = tempfile::tempdir().unwrap();
            let project = Project::new(root.path());
            project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
            let config = root.path().join("sando.toml");
            std::fs::write(
                &config,
                format!(
                    "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\ntoken_env = \"SANDO_TEST_TOKEN\"\n[project]\nrepo = \"{}\"\nbuild = \"true\"\nartifact = \"Cargo.toml\"\n[[tiers]]\nname = \"staging\"\n[[tiers.gates]]\nkind = \"manual_confirm\"\n",
                    project.dir.display()
                ),
            )
            .unwrap();
            let daemon = Daemon::start(&config);
            // A static is never dropped: end the daemon and its directory
            // when the test process exits, or they outlive the run.
            let _ = LEFT_AT_EXIT.set((daemon.pid(), root.path().to_owned()));
            // SAFETY: registers a function that only signals a pid and
            // removes a directory.
            unsafe { libc::atexit(end_daemon) };
            (root, daemon)
        })
        .1
}

static LEFT_AT_EXIT: OnceLock<(u32, std::path::PathBuf)> = OnceLock::new();

extern "C" fn end_daemon() {
    if let Some((pid, root)) = LEFT_AT_EXIT.get() {
        // SAFETY: kill(2) on the daemon this process started.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(root);
    }
}

/// Sends a request and checks the answer's shape.
fn check(method: &str, path: &str, token: bool, body: &str) -> Result<(), TestCaseError> {
    let daemon = daemon();
    let agent = Daemon::agent();
    let url = format!("{}{path}", daemon.url);
    let mut response = if method == "GET" {
        let mut request = agent.get(&url);
        if token {
            request = request.header("Authorization", format!("Bearer {TOKEN}"));
        }
        request.call()
    } else {
        let mut request = agent.post(&url).content_type("application/json");
        if token {
            request = request.header("Authorization", format!("Bearer {TOKEN}"));
        }
        request.send(body)
    }
    .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    prop_assert!(status < 500, "{method} {path} {body:?}: {status} {text}");
    if status >= 400 && status != 405 {
        let error: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("{method} {path}: not JSON: {text}")))?;
        let message = error["error"].as_str().unwrap_or_default();
        prop_assert!(!message.is_empty() && !message.contains('\n'), "{path}: {text}");
    }
    Ok(())
}

/// Path segments as a client may send them, percent-encoding included.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,20}",
        "-?[0-9]{1,25}",
        "[0-9a-f]{7}",
        "[0-9a-f]{40}",
        "[a-z_]{1,20}",
        "%[0-9A-F]{2}[a-z.]{0,6}",
        "\\.\\.(%2F\\.\\.){0,3}",
        "[ -~&&[^/?#]]{1,30}",
    ]
    .prop_map(|s| {
        // What a client would send: anything else percent-encoded.
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._~%".contains(c) {
                    c.to_string()
                } else {
                    format!("%{:02X}", c as u32)
                }
            })
            .collect()
    })
}

/// Bodies: valid JSON of the wrong shape, broken JSON, and noise.
fn body() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
    ];
    let json = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sha".to_owned()),
                    Just("by".to_owned()),
                    Just("gate".to_owned()),
                    Just("since".to_owned()),
                    Just("all".to_owned()),
                    Just("apply".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop_oneof![json.prop_map(|v| v.to_string()), "[ -~]{0,60}", Just(String::new())]
}

/// Cases per property: `default` in CI, more with `SANDO_PROPTEST_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("SANDO_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_path_and_body_is_answered_below_500(
        route in 0usize..14,
        a in segment(),
        b in segment(),
        token in any::<bool>(),
        body in body(),
    ) {
        let (method, path) = match route {
            0 => ("POST", "/api/rebuild".to_owned()),
            1 => ("POST", format!("/api/gate-runs/{a}/confirm")),
            2 => ("POST", format!("/api/gate-runs/{a}/rerun")),
            3 => ("POST", format!("/api/gate-runs/{a}/cancel")),
            4 => ("POST", format!("/api/builds/{a}/cancel")),
            5 => ("POST", format!("/api/gates/{a}/accept?digest={b}")),
            6 => ("POST", format!("/api/gates/{a}/rollback?accept_changes={b}")),
            7 => ("POST", "/api/reclassify".to_owned()),
            8 => ("GET", format!("/api/gate-runs/{a}")),
            9 => ("GET", format!("/api/gate-runs/{a}/log")),
            10 => ("GET", format!("/logs/{a}/{b}")),
            11 => ("POST", format!("/api/gates/{a}/rollback?part={b}")),
            12 => ("GET", format!("/api/gate-runs/{a}/log?from={b}")),
            _ => ("POST", format!("/api/gates/{a}/reject")),
        };
        check(method, &path, token, &body)?;
    }
}
