//! The client's side of freezes, rollbacks and the audit trail: each `Command` goes out as the request the daemon's API takes (method, path, JSON body, token), against a fake daemon on a local socket that records what it got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use sando_tui::app::{Command, Msg};
use sando_tui::client::{Client, serve_commands};
use serde_json::{Value, json};

/// One request as the fake daemon read it.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Option<Value>,
}

type Answer = fn(&str) -> (u16, Value);

/// A daemon on a free port answering each request with `answer(path)`;
/// what it received is in the returned list.
fn fake_daemon(answer: Answer) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = log.clone();
            std::thread::spawn(move || serve(stream, answer, &log));
        }
    });
    (url, seen)
}

/// Requests on one kept-alive connection until the client closes it.
fn serve(stream: TcpStream, answer: Answer, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = first.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let (mut length, mut authorization) = (0, None);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = (!body.is_empty()).then(|| serde_json::from_slice(&body).unwrap());
        log.lock().unwrap().push(Request { method, path: path.clone(), authorization, body });
        let (status, value) = answer(&path);
        let text = value.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
    }
}

/// Runs `commands` through the TUI's command worker and returns its messages.
fn serve_all(url: &str, commands: Vec<Command>) -> Vec<Msg> {
    let client = Client::new(url, Some("s3cret".into())).unwrap();
    let (command_tx, command_rx) = mpsc::channel();
    let (msg_tx, msg_rx) = mpsc::channel();
    let count = commands.len();
    for command in commands {
        command_tx.send(command).unwrap();
    }
    let worker = std::thread::spawn(move || serve_commands(client, command_rx, msg_tx));
    let msgs: Vec<Msg> = msg_rx.iter().take(count).collect();
    command_tx.send(Command::Quit).unwrap();
    worker.join().unwrap();
    msgs
}

fn freeze(tier: Value) -> Value {
    json!({"source": {"manual": {"id": 3}}, "tier": tier, "by": "alice",
           "reason": "release weekend", "since": "2026-11-27T12:00:00Z", "until": null})
}

fn answer(path: &str) -> (u16, Value) {
    match path {
        "/api/freezes" => (201, freeze(json!("prod"))),
        "/api/freezes/3/lift" => (200, freeze(Value::Null)),
        "/api/tiers/prod/rollback" => (
            202,
            json!({"id": 1, "tier": "prod", "from": "0.2.0", "to": "0.1.0", "by": "alice",
                   "reason": "error rate up", "requested_at": "2026-11-27T12:25:00Z",
                   "progress": "pending"}),
        ),
        "/api/tiers/staging/rollback" => {
            (409, json!({"error": "staging has no version to roll back to"}))
        }
        "/api/audit?since=0&limit=1000" => (
            200,
            json!({"entries": [
                {"id": 1, "at": "2026-11-27T12:05:00Z", "actor": "alice", "action": "freeze",
                 "target": "tier prod", "before": null, "after": "{}"},
                {"id": 2, "at": "2026-11-27T12:06:00Z", "actor": "bob", "action": "lift_freeze",
                 "target": "freeze 3", "before": "{}", "after": null},
            ], "next": 2}),
        ),
        "/api/audit?since=2&limit=1000" => (
            200,
            json!({"entries": [
                {"id": 3, "at": "2026-11-27T12:07:00Z", "actor": "bob", "action": "rollback",
                 "target": "tier prod", "before": null, "after": null},
            ], "next": null}),
        ),
        _ => (404, json!({"error": format!("no route {path}")})),
    }
}

#[test]
fn freezes_rollbacks_and_the_audit_trail_go_out_as_the_api_takes_them() {
    let (url, seen) = fake_daemon(answer);
    let msgs = serve_all(
        &url,
        vec![
            Command::Freeze {
                tier: Some("prod".parse().unwrap()),
                reason: "release weekend".into(),
            },
            Command::Freeze { tier: None, reason: "incident 42".into() },
            Command::LiftFreeze { id: 3 },
            Command::Rollback {
                tier: "prod".parse().unwrap(),
                to: "0.1.0".parse().unwrap(),
                reason: "error rate up".into(),
            },
            Command::Rollback {
                tier: "staging".parse().unwrap(),
                to: "0.0.9".parse().unwrap(),
                reason: "why not".into(),
            },
            Command::FetchAudit { since: 0 },
        ],
    );
    let seen = seen.lock().unwrap().clone();
    let sent: Vec<(&str, &str, Option<&Value>)> =
        seen.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.body.as_ref())).collect();
    assert_eq!(
        sent,
        vec![
            (
                "POST",
                "/api/freezes",
                Some(&json!({"tier": "prod", "reason": "release weekend", "until": null}))
            ),
            (
                "POST",
                "/api/freezes",
                Some(&json!({"tier": null, "reason": "incident 42", "until": null}))
            ),
            ("POST", "/api/freezes/3/lift", None),
            (
                "POST",
                "/api/tiers/prod/rollback",
                Some(&json!({"to": "0.1.0", "reason": "error rate up"}))
            ),
            (
                "POST",
                "/api/tiers/staging/rollback",
                Some(&json!({"to": "0.0.9", "reason": "why not"}))
            ),
            ("GET", "/api/audit?since=0&limit=1000", None),
            ("GET", "/api/audit?since=2&limit=1000", None),
        ]
    );
    assert!(seen.iter().all(|r| r.authorization.as_deref() == Some("Bearer s3cret")), "{seen:?}");

    let said: Vec<String> = msgs
        .iter()
        .map(|m| match m {
            Msg::Done { ok, text } => format!("{ok} {text}"),
            Msg::Audit { since, entries: Ok(entries), more } => format!(
                "audit after {since}: {:?} more {more}",
                entries.iter().map(|e| e.id).collect::<Vec<_>>()
            ),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        said,
        vec![
            // The fake answers every freeze as alice's of prod.
            "true prod frozen by alice",
            "true prod frozen by alice",
            "true freeze 3 on every tier lifted",
            "true rolling prod back from 0.2.0 to 0.1.0 (asked by alice)",
            "false daemon: staging has no version to roll back to (HTTP 409)",
            "audit after 0: [1, 2, 3] more false",
        ]
    );
}
