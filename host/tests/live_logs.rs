//! Live logs are exact and lossless, through the real `sando serve`: a gate prints 64 MiB that are not UTF-8, at about 100 MB/s; the log file holds exactly those bytes, a WebSocket client that keeps up reassembles the log from the chunks' offsets, one that reads slowly, lags and resumes with `?from=` reassembles the same bytes, and one that stops reading is let go.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use sando::domain::{Event, EventEnvelope};
use tokio_tungstenite::tungstenite::Message;
use util::daemon::{Daemon, Events, Project, TOKEN, gate_done};

const BLOCKS: u32 = 1024;
const BLOCK: usize = 64 << 10;

/// What the test prints: 64 KiB blocks of bytes that are mostly not UTF-8.
/// The same expression runs in the project's test (as source below).
fn block(b: u32, block: &mut [u8]) {
    for (i, x) in block.iter_mut().enumerate() {
        *x = ((i as u32).wrapping_mul(31) ^ b.wrapping_mul(131)) as u8;
    }
}

const PRINTER: &str = r#"pub fn answer() -> u32 { 42 }

#[cfg(test)]
mod tests {
    #[test]
    fn prints_64_mib() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let mut block = vec![0u8; 64 << 10];
        for b in 0..1024u32 {
            for (i, x) in block.iter_mut().enumerate() {
                *x = ((i as u32).wrapping_mul(31) ^ b.wrapping_mul(131)) as u8;
            }
            out.write_all(&block).unwrap();
            // About 100 MB/s: a client that keeps up is one that reads
            // faster than this.
            if b % 16 == 15 {
                out.flush().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        out.flush().unwrap();
    }
}
"#;

fn printed() -> Vec<u8> {
    let mut all = Vec::with_capacity(BLOCKS as usize * BLOCK);
    let mut buf = vec![0u8; BLOCK];
    for b in 0..BLOCKS {
        block(b, &mut buf);
        all.extend_from_slice(&buf);
    }
    all
}

/// Opens the event stream and reads nothing: a client that stopped reading.
fn stalled_client(address: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    stream
}

/// Everything a stalled client was sent, up to the daemon closing the
/// connection (panics if it is still open 30 s on): the first bytes, and
/// how many in all.
fn read_to_close(mut stream: std::net::TcpStream) -> (Vec<u8>, usize) {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut first, mut total, mut buf) = (Vec::new(), 0, vec![0u8; 1 << 20]);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (first, total),
            Ok(n) => {
                if first.len() < 64 {
                    first.extend_from_slice(&buf[..n.min(64)]);
                }
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (first, total),
            Err(e) => panic!("the daemon kept a client that stopped reading: {e}"),
        }
    }
}

/// Lays chunks out by offset; panics on a gap or a disagreement.
fn reassemble(chunks: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Vec<u8> {
    let by_offset: BTreeMap<u64, Vec<u8>> = chunks.into_iter().collect();
    let mut log = Vec::new();
    for (offset, bytes) in by_offset {
        assert_eq!(offset, log.len() as u64, "a gap or an overlap at {offset}");
        log.extend_from_slice(&bytes);
    }
    log
}

/// A client that reads one frame every 20 ms (a few MB/s): it lags, and on
/// each `lagged` it fetches the log from the end of what it has, then
/// takes live chunks again, skipping what it already holds. It ends when
/// the run is done, with one last fetch. Returns the log and how often it
/// lagged.
async fn slow_reader(
    url: String,
    run: tokio::sync::watch::Receiver<Option<i64>>,
) -> (Vec<u8>, u32) {
    let ws_url = format!("{}/api/events", url.replace("http://", "ws://"));
    let (socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket");
    let (_, mut read) = socket.split();
    let mut log: Vec<u8> = Vec::new();
    let mut lagged = 0;
    let fetch_from = |from: usize, run: i64| {
        let url = url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut response = Daemon::agent()
                    .get(format!("{url}/api/gate-runs/{run}/log?from={from}"))
                    .call()
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap()
            })
            .await
            .unwrap()
        }
    };
    while let Some(Ok(message)) = read.next().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let envelope = match message {
            Message::Text(text) => EventEnvelope::from_text(&text).unwrap(),
            Message::Binary(frame) => EventEnvelope::from_binary(frame).unwrap(),
            _ => continue,
        };
        let Some(run_id) = *run.borrow() else { continue };
        match envelope.event {
            Event::Lagged { .. } => {
                lagged += 1;
                let more = fetch_from(log.len(), run_id).await;
                log.extend_from_slice(&more);
            }
            Event::GateLogChunk { run_id: run, offset, bytes, .. } if run.get() == run_id => {
                let (start, end) = (offset as usize, offset as usize + bytes.len());
                // Only what continues the log: older bytes are held already;
                // a later chunk means a gap the next `lagged` fills.
                if start <= log.len() && end > log.len() {
                    log.extend_from_slice(&bytes[log.len() - start..]);
                }
            }
            Event::GateDone { run_id: run, .. } if run.get() == run_id => {
                let rest = fetch_from(log.len(), run_id).await;
                log.extend_from_slice(&rest);
                return (log, lagged);
            }
            _ => {}
        }
    }
    panic!("the event stream ended before the run did");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_of_bytes_arrive_exactly_live_and_after_a_lag() {
    let root = tempfile::tempdir().unwrap();
    let project = Project::new(root.path());
    let sha = project.commit_lib("0.1.0", PRINTER);
    let config = root.path().join("sando.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
event_send_timeout = "5s"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline -- --nocapture"
"#,
            repo = project.dir.display(),
        ),
    )
    .unwrap();
    // Its debug lines say how each event stream client is written to.
    let daemon =
        Daemon::start_with_env(&config, &[("SANDO_LOG", "info,sando::daemon::websocket=debug")]);
    let events = Events::connect(&daemon.url).await;
    let (tell_run, run) = tokio::sync::watch::channel(None);
    let slow = tokio::spawn(slow_reader(daemon.url.clone(), run));
    let stalled = stalled_client(daemon.url.trim_start_matches("http://"));
    // The slow client is connected before anything runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = daemon.post("/api/rebuild", Some(TOKEN), &json!({ "sha": sha }).to_string());
    assert_eq!(status, 202);
    let started = events
        .wait("the gate starts", Duration::from_secs(180), |e| {
            e["kind"] == "gate_start" && e["gate"] == "cargo_test"
        })
        .await;
    let run_id = started["event"]["run_id"].as_i64().unwrap();
    let stalled_since = std::time::Instant::now();
    tell_run.send(Some(run_id)).unwrap();
    events
        .wait("the gate passes", Duration::from_secs(300), gate_done("cargo_test", "passed"))
        .await;

    let log_file =
        std::fs::read(root.path().join(format!("data/logs/0.1.0/cargo_test/{run_id}.log")))
            .unwrap();
    // The client that keeps up: every byte of the file from the chunks alone.
    let frames = events.all();
    assert!(
        !frames.iter().any(|f| f["event"]["kind"] == "lagged"),
        "the client that keeps up never lagged"
    );
    let chunks: Vec<_> = events.chunks().into_iter().filter(|c| c.run_id == run_id).collect();
    let live = reassemble(chunks.iter().map(|c| (c.offset, c.bytes.to_vec())));
    assert!(
        live == log_file,
        "live chunks reassemble the log ({} vs {} bytes)",
        live.len(),
        log_file.len()
    );
    // The file interleaves the two pipes as they were read; the process's
    // stdout, in order, holds exactly what it printed.
    let mut stdout: Vec<(u64, Vec<u8>)> =
        chunks.iter().filter(|c| c.stdout).map(|c| (c.offset, c.bytes.to_vec())).collect();
    stdout.sort_by_key(|(offset, _)| *offset);
    let stdout: Vec<u8> = stdout.into_iter().flat_map(|(_, bytes)| bytes).collect();
    let payload = printed();
    assert!(
        memchr::memmem::find(&stdout, &payload).is_some(),
        "stdout holds the printed bytes, whole and in order"
    );

    // The slow client: lagged, resumed by offset, same bytes.
    let (resumed, lagged) =
        tokio::time::timeout(Duration::from_secs(300), slow).await.unwrap().unwrap();
    assert!(lagged > 0, "the slow client lagged");
    assert!(resumed == log_file, "resumed log has {} of {} bytes", resumed.len(), log_file.len());

    // The client that never read was let go once a message had waited on
    // it for `event_send_timeout`: what it was sent ends, short of the log.
    // (Read sooner, it would have taken its message in time.)
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(stalled_since.elapsed())).await;
    let (answer, taken) =
        tokio::task::spawn_blocking(move || read_to_close(stalled)).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&answer[..40]));
    assert!(taken < log_file.len(), "it stalled: {taken} bytes, the log {}", log_file.len());

    // Every client was written to on a socket of its own: log bytes went
    // from the file (`sendfile`), not through hyper's connection.
    let said = daemon.stderr.lock().unwrap().clone();
    assert!(said.contains("log bytes go from their files"), "{said}");
    assert!(!said.contains("go through hyper's connection"), "{said}");

    // `Range` serves the same bytes as `?from=`.
    let at = log_file.len() / 2;
    let mut ranged = Daemon::agent()
        .get(format!("{}/api/gate-runs/{run_id}/log", daemon.url))
        .header("Range", format!("bytes={at}-"))
        .call()
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    let range = ranged.headers().get("content-range").unwrap().to_str().unwrap().to_owned();
    assert_eq!(range, format!("bytes {at}-{}/{}", log_file.len() - 1, log_file.len()));
    let tail = ranged.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    assert!(tail[..] == log_file[at..]);
    let past = Daemon::agent()
        .get(format!("{}/api/gate-runs/{run_id}/log?from={}", daemon.url, log_file.len() + 1))
        .call()
        .unwrap();
    assert_eq!(past.status().as_u16(), 416);
    daemon.kill();
}
