//! Notifications that arrive, through the real binary: a real HTTP receiver (a TCP server here) gets signed, de-duplicable deliveries for an approval wait and a failure, in order, although it was down when they happened and the daemon was killed and started again in between.

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use util::config::{self, CARGO_TEST, CONFIRM};
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

const SECRET: &str = "hook-secret-for-the-test";

/// One request the receiver took: its headers (lowercase names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP server on `port` that answers 200 to every request and keeps it.
fn receive_on(port: u16) -> Arc<Mutex<Vec<Received>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the receiver's port is free");
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let request = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut parsed = httparse::Request::new(&mut headers);
                if let Ok(httparse::Status::Complete(at)) = parsed.parse(&buf) {
                    let headers: HashMap<String, String> = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into())
                        })
                        .collect();
                    let len: usize =
                        headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    while buf.len() < at + len {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break Some(Received { headers, body: buf[at..at + len].to_vec() });
                }
            };
            if let Some(request) = request {
                kept.lock().unwrap().push(request);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    got
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_config(root: &Path, repo: &Path, port: u16) -> std::path::PathBuf {
    let hook = format!(
        "[[notify]]\nurl = \"http://127.0.0.1:{port}/hook\"\nevents = [\"gate_failed\", \"awaiting_approval\"]\nsecret_env = \"HOOK_SECRET\""
    );
    config::write(
        root,
        &[
            &config::head(repo, ""),
            "[[tiers]]\nname = \"staging\"",
            CARGO_TEST,
            "[[tiers]]\nname = \"prod\"",
            CONFIRM,
            &hook,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_arrive_signed_and_in_order_after_the_receiver_and_the_daemon_were_down() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let port = free_port();
    let config = write_config(root.path(), &project.dir, port);

    // A secret the config names but the environment lacks: one line, no start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sando"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("SANDO_TEST_TOKEN", TOKEN)
        .env_remove("HOOK_SECRET")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("notify[0].secret_env: environment variable HOOK_SECRET is not set"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // The receiver is down: 0.1.0 passes staging and waits for approval.
    let env = [("HOOK_SECRET", SECRET)];
    let daemon = Daemon::start_with_env(&config, &env);
    let events = Events::connect(&daemon.url).await;
    let first = project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": first }).to_string());
    assert_eq!(status, 202, "{body}");
    let waiting = events
        .wait(
            "0.1.0 awaits approval",
            Duration::from_secs(180),
            gate_done("manual_confirm", "blocked"),
        )
        .await;
    let waiting_run = waiting["event"]["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pending = loop {
        let (_, body) = daemon.get("/api/notifications");
        let pending: Value = serde_json::from_str(&body).unwrap();
        if pending[0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break pending;
        }
        assert!(Instant::now() < deadline, "never tried: {pending}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["event"], "awaiting_approval");
    assert!(pending[0]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{pending}");

    // kill -9, and start again: the outbox survives; 0.2.0 fails its test.
    daemon.kill();
    let daemon = Daemon::start_with_env(&config, &env);
    let events = Events::connect(&daemon.url).await;
    let second = project.commit("0.2.0", "assert_eq!(super::answer(), 41);");
    let (status, body) =
        daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": second }).to_string());
    assert_eq!(status, 202, "{body}");
    let failed = events
        .wait("0.2.0 fails", Duration::from_secs(180), gate_done("cargo_test", "failed"))
        .await;
    let failed_run = failed["event"]["run_id"].as_i64().unwrap();

    // The receiver comes up: both arrive, in order, signed, once each.
    let got = receive_on(port);
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "delivered: {:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "each once: {got:?}");
    let mut ids = Vec::new();
    for (delivery, (event, run)) in
        got.iter().zip([("awaiting_approval", waiting_run), ("gate_failed", failed_run)])
    {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&delivery.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(delivery.headers.get("x-sando-signature-256"), Some(&expected));
        assert_eq!(delivery.headers.get("x-sando-event").map(String::as_str), Some(event));
        ids.push(delivery.headers["x-sando-delivery"].clone());
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["event"], event, "{body}");
        assert_eq!(body["envelope"]["event"]["run_id"], run, "{body}");
        assert!(
            body["link"].as_str().is_some_and(|l| l.ends_with(&format!("/runs/{run}"))),
            "{body}"
        );
        assert!(body["text"].as_str().unwrap().contains(event), "{body}");
    }
    assert_ne!(ids[0], ids[1], "each delivery has an id of its own");
    let failed_body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert!(
        failed_body["text"].as_str().unwrap().contains("at staging (cargo_test): "),
        "{failed_body}"
    );
    let (_, body) = daemon.get("/api/notifications");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!([]), "nothing pending");
    daemon.kill();
}
