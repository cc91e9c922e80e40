//! Who may do what over the API, through the real `sando serve`: the token is checked before any body is read, the read routes can be closed, the event stream checks Origin and caps its clients.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use util::daemon::{Daemon, Project, TOKEN};

fn config(root: &Path, extra: &str) -> std::path::PathBuf {
    let project = Project::new(root);
    project.commit("0.1.0", "assert_eq!(super::answer(), 42);");
    let path = root.join("sando.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\ntoken_env = \"SANDO_TEST_TOKEN\"\n{extra}\n[project]\nrepo = \"{}\"\nbuild = \"true\"\nartifact = \"Cargo.toml\"\n[[tiers]]\nname = \"staging\"\n",
            project.dir.display()
        ),
    )
    .unwrap();
    path
}

/// The status line the daemon answers a request's head with, before any
/// body is sent: `Expect: 100-continue` makes a server that wants the body
/// say `100 Continue` first.
fn status_before_body(address: &str, path: &str, length: u64) -> String {
    let stream = send_head(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/wasm\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
        ),
    );
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_are_refused_unread() {
    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(root.path(), ""));
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let before = daemon.rss_kib();
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let path = if i % 2 == 0 { "/api/gates/cargo_test" } else { "/api/rebuild" };
                status_before_body(&address, path, 32 << 20)
            })
        })
        .collect();
    for client in clients {
        let status = client.join().unwrap();
        assert!(status.starts_with("HTTP/1.1 401"), "asked for the body first: {status}");
    }
    // Senders that push their 32 MiB anyway are cut off, not buffered.
    let pushers: Vec<_> = (0..50)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                let head = format!(
                    "POST /api/gates/cargo_test HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
                    32 << 20
                );
                let _ = stream.write_all(head.as_bytes());
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..32 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    for pusher in pushers {
        pusher.join().unwrap();
    }
    let after = daemon.rss_kib();
    let grown = after.saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB ({before} -> {after})");
    // With the token the same route reads its body (and says what is wrong with it).
    let (status, body) = daemon.post("/api/gates/cargo_test", Some(TOKEN), "not wasm");
    assert_eq!(status, 422, "{body}");
    // A JSON body past its route's limit is refused.
    let big = format!("{{\"sha\":\"{}\"}}", "a".repeat(100 << 10));
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &big);
    assert_eq!(status, 413);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_reads_origins_and_the_client_cap() {
    let root = tempfile::tempdir().unwrap();
    let extra = "public_read = false\nmax_event_clients = 2\nallowed_origins = [\"https://ops.example.com\"]";
    let daemon = Daemon::start(&config(root.path(), extra));
    let agent = Daemon::agent();
    let get = |path: &str, token: Option<&str>| {
        let mut request = agent.get(format!("{}{path}", daemon.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        request.call().unwrap().status().as_u16()
    };
    assert_eq!(get("/api/state", None), 401);
    assert_eq!(get("/api/state", Some("wrong")), 401);
    assert_eq!(get("/api/state", Some(TOKEN)), 200);
    assert_eq!(get("/api/gates", None), 401);

    let ws = |origin: Option<&'static str>, token: bool| {
        let url = format!("{}/api/events", daemon.url.replace("http://", "ws://"));
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(origin) = origin {
                request.headers_mut().insert("Origin", HeaderValue::from_static(origin));
            }
            if token {
                let value = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
                request.headers_mut().insert("Authorization", value);
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok((socket, _)) => Ok(socket),
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    Err(response.status().as_u16())
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(ws(None, false).await.err(), Some(401));
    assert_eq!(ws(Some("https://evil.example"), true).await.err(), Some(403));
    let first = ws(Some("https://ops.example.com"), true).await.expect("an allowed origin");
    let second = ws(None, true).await.expect("a client without Origin (not a browser)");
    assert_eq!(ws(None, true).await.err(), Some(503), "a third client is over the cap");
    drop(first);
    // Its place is given back once the daemon sees it leave.
    let mut third = None;
    for _ in 0..50 {
        if let Ok(socket) = ws(None, true).await {
            third = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(third.is_some(), "the freed place was not given back");
    drop(second);
    daemon.kill();
}

/// A connection that has sent `head` as it is, and waits at most 10 s for
/// each read of the answer.
fn send_head(address: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// The daemon's answer to a raw request head: its status line, its
/// header lines (lowercase) and its body.
fn raw_get(address: &str, head: &str) -> (String, Vec<String>, String) {
    let mut stream = send_head(
        address,
        &format!("GET /api/events HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{head}\r\n"),
    );
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_owned();
    (status, lines.map(str::to_ascii_lowercase).collect(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_names_a_bad_handshake_and_answers_pings_and_closes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(root.path(), ""));
    let address = daemon.url.trim_start_matches("http://").to_owned();
    let (status, headers, body) = raw_get(&address, "");
    assert!(status.contains(" 426 "), "{status}");
    assert!(body.contains("must ask to upgrade"), "{body}");
    // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
    assert!(headers.contains(&"upgrade: websocket".to_owned()), "{headers:?}");
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    // RFC 6455 §4.2.2: a version it does not speak is answered with the
    // version it does.
    let speaks = "sec-websocket-version: 13".to_owned();
    let (status, headers, body) = raw_get(
        &address,
        &format!(
            "{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
        ),
    );
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("`Sec-WebSocket-Version` is \\\"8\\\""), "{body}");
    assert!(headers.contains(&speaks), "{headers:?}");
    let (status, headers, body) =
        raw_get(&address, &format!("{upgrade}Sec-WebSocket-Version: 13\r\n"));
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("no `Sec-WebSocket-Key`"), "{body}");
    assert!(!headers.contains(&speaks), "the version was not the problem: {headers:?}");
    let (status, headers, body) =
        raw_get(&address, &format!("{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert!(status.contains(" 400 "), "{status}");
    assert!(body.contains("no `Sec-WebSocket-Version`"), "{body}");
    assert!(headers.contains(&speaks), "{headers:?}");

    // A client's ping is answered and its close returned, with the daemon's
    // own messages written around tungstenite's.
    let url = format!("{}/api/events", daemon.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket.send(Message::Ping(b"are you there"[..].into())).await.unwrap();
    let sha = Project { dir: root.path().join("repo") }.git(&["rev-parse", "HEAD"]);
    let (status, body) = daemon.post("/api/rebuild", Some(TOKEN), &format!(r#"{{"sha":"{sha}"}}"#));
    assert_eq!(status, 202, "{body}");
    let (mut pong, mut events) = (false, 0);
    while !(pong && events > 0) {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a pong and an event within 30 s")
            .expect("the stream is open")
            .unwrap();
        match message {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"are you there");
                pong = true;
            }
            Message::Text(text) => {
                assert!(text.as_str().starts_with('{'), "{}", text.as_str());
                events += 1;
            }
            Message::Binary(_) => events += 1,
            other => panic!("{other:?}"),
        }
    }
    socket.send(Message::Close(None)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("a clean close: {e}"),
        }
    }

    // The stream goes one way: a client sending more than a control frame's
    // worth is let go, not buffered.
    let url = format!("{}/api/events", daemon.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Whether the send completes before the daemon hangs up is a race.
    let _ = socket.send(Message::Binary(vec![b'x'; 1 << 20].into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = socket.next().await {}
    });
    assert!(ended.await.is_ok(), "a client sending 1 MiB is still connected after 10 s");
    daemon.kill();
}
