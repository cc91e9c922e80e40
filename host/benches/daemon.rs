//! Benchmarks for the daemon issue, each against a baseline measured in the same run:
//! 1. a gate whose process writes 512 MiB: the daemon's path (log file + a
//!    WebSocket subscriber that ends with every byte) against `cat` writing
//!    the same bytes to a file, and the daemon's peak RSS growth; once with
//!    a subscriber reading as fast as it can (`throughput`), once with one
//!    throttled to 1 MB/s that lags and resumes (`throttled`); the
//!    baselines are `cat` and a minimal relay (file + loopback socket);
//! 2. live-tail latency from the child's write to a WebSocket client's
//!    receipt, at 10 MB/s;
//! 3. `GET /api/state` with 100,000 historical gate runs in the database;
//! 4. `GET /metrics` with the same history (`metrics`).
//!
//! Run with `./x bench` (or `cargo bench -p sando --bench daemon` after `./x build`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use sando::domain::{Event, EventEnvelope, Stream};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

mod support;

use support::{Daemon, git};
const FLOOD_BYTES: u64 = 512 << 20;

/// The process the gate runs: floods stdout, or writes time-stamped lines at a rate.
const GENERATOR: &str = r#"
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut out = std::io::stdout().lock();
    match args[1].as_str() {
        "flood" => {
            let total: u64 = args[2].parse().unwrap();
            let line = [b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde".as_slice(), b"\n"].concat();
            let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
            let mut written = 0;
            while written < total {
                let n = block.len().min((total - written) as usize);
                out.write_all(&block[..n]).unwrap();
                written += n as u64;
            }
            out.flush().unwrap();
            if args.get(3).map(String::as_str) == Some("exit") {
                return;
            }
        }
        "paced" => {
            let rate: u64 = args[2].parse().unwrap();
            let secs: u64 = args[3].parse().unwrap();
            let start = Instant::now();
            let tick = Duration::from_millis(10);
            let per_tick = (rate / 100) as usize;
            let mut next = start;
            while start.elapsed() < Duration::from_secs(secs) {
                let mut chunk = Vec::with_capacity(per_tick + 64);
                while chunk.len() < per_tick {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                    chunk.extend_from_slice(format!("T{now:020} ........................................\n").as_bytes());
                }
                out.write_all(&chunk).unwrap();
                out.flush().unwrap();
                next += tick;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        _ => {}
    }
    std::thread::sleep(Duration::from_secs(600));
}
"#;

/// The generator as a git project; returns the commit.
fn generator_project(root: &Path) -> (PathBuf, String) {
    let dir = root.join("generator");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"generator\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[profile.dev]\nopt-level = 2\n").unwrap();
    std::fs::write(dir.join("src/main.rs"), GENERATOR).unwrap();
    std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "generator"]);
    let sha = git(&dir, &["rev-parse", "HEAD"]);
    (dir, sha)
}

fn config(root: &Path, name: &str, repo: &Path, boot_args: &str) -> PathBuf {
    let path = root.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
data_dir = "{name}-data"
token_env = "SANDO_BENCH_TOKEN"
[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/generator"
[[tiers]]
name = "bench"
[[tiers.gates]]
kind = "boot_smoke"
args = "{boot_args}"
stay_up = "600s"
"#,
            repo = repo.display()
        ),
    )
    .unwrap();
    path
}

impl Daemon {
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(url: &str) -> Socket {
    tokio_tungstenite::connect_async(format!("{}/api/events", url.replace("http://", "ws://")))
        .await
        .unwrap()
        .0
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// What a lossless subscriber ended with.
struct Followed {
    /// A CRC-32 of every byte of the run's log, in order: live chunks and
    /// resumes, taken as they arrive into buffers that are reused. What a
    /// subscriber costs decides this benchmark on two cores: sha256 inline
    /// took 0.3 CPU-s, and keeping every byte to hash later faulted in
    /// 512 MiB of fresh memory (the relay baseline with such a subscriber
    /// did 0.64 of `cat`; with one reusing its buffer, 0.84–1.05).
    log: crc32fast::Hasher,
    len: u64,
    live: u64,
    /// Live bytes that came too late (a resume had them) or too early (past
    /// a gap, before the next resume): work the daemon and this subscriber did for nothing.
    discarded: u64,
    resumed: u64,
    lagged: u32,
}

impl Followed {
    /// What a resume brought: the hasher it carried on, and its length.
    fn resumed_with(&mut self, (log, len): (crc32fast::Hasher, u64)) {
        self.log = log;
        self.len += len;
        self.resumed += len;
    }
}

/// Follows one run's log as the TUI does: live chunks that continue what it
/// has, and after each `lagged` the log from its end (`?from=`), until the
/// run is done and one last resume. `rate` throttles how fast it reads, in
/// bytes per second, both the WebSocket and its resumes, until `filled` is
/// set (the measured window is over); then it takes the rest at full speed,
/// so the benchmark ends in seconds with every byte checked.
async fn follow(
    mut socket: Socket,
    url: String,
    run_id: i64,
    rate: Option<u64>,
    filled: Arc<AtomicBool>,
) -> Followed {
    let mut followed = Followed {
        log: crc32fast::Hasher::new(),
        len: 0,
        live: 0,
        discarded: 0,
        resumed: 0,
        lagged: 0,
    };
    // The rate while it applies: until the log has filled.
    let throttled = move || rate.filter(|_| !filled.load(Ordering::Relaxed));
    let pause = {
        let throttled = throttled.clone();
        move |len: usize| throttled().map(|rate| Duration::from_secs_f64(len as f64 / rate as f64))
    };
    // The log from `from` to its end, into the hasher; how many bytes.
    let resume = |from: u64, mut log: crc32fast::Hasher| {
        let (address, path) = (address(&url), format!("/api/gate-runs/{run_id}/log?from={from}"));
        let (throttled, pause) = (throttled.clone(), pause.clone());
        tokio::task::spawn_blocking(move || {
            let mut len = 0u64;
            // Small reads while throttled, so the pauses stay short.
            let want = || if throttled().is_some() { 64 << 10 } else { 1 << 20 };
            get_streamed(&address, &path, want, |piece| {
                log.update(piece);
                len += piece.len() as u64;
                if let Some(pause) = pause(piece.len()) {
                    std::thread::sleep(pause);
                }
            });
            (log, len)
        })
    };
    while let Some(Ok(message)) = socket.next().await {
        if let Some(pause) = pause(message.len()) {
            tokio::time::sleep(pause).await;
        }
        match decode(message).map(|e| e.event) {
            Some(Event::GateLogChunk { run_id: run, offset, bytes, .. }) if run.get() == run_id => {
                let end = offset + bytes.len() as u64;
                if offset <= followed.len && end > followed.len {
                    let new = &bytes[(followed.len - offset) as usize..];
                    followed.log.update(new);
                    followed.len = end;
                    followed.live += new.len() as u64;
                    followed.discarded += (bytes.len() - new.len()) as u64;
                } else {
                    followed.discarded += bytes.len() as u64;
                }
            }
            Some(Event::Lagged { .. }) => {
                followed.lagged += 1;
                let log = std::mem::take(&mut followed.log);
                followed.resumed_with(resume(followed.len, log).await.unwrap());
            }
            Some(Event::GateDone { run_id: run, .. }) if run.get() == run_id => {
                let log = std::mem::take(&mut followed.log);
                followed.resumed_with(resume(followed.len, log).await.unwrap());
                return followed;
            }
            _ => {}
        }
    }
    panic!("the event stream ended before the run did");
}

/// `host:port` of a daemon's `http://` URL.
fn address(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_owned()
}

/// A GET whose body is handed to `each` as it arrives, in pieces of up to
/// `want()` bytes read straight into one reused buffer: the least an HTTP
/// client does (the header is parsed by `httparse`). ureq, as the TUI
/// uses, copies every byte through a buffer of its own and shifts it; in a
/// profile of this benchmark that `memmove` was about half of the
/// subscriber's CPU, which on two cores is taken from the gate.
fn get_streamed(address: &str, path: &str, want: impl Fn() -> usize, mut each: impl FnMut(&[u8])) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut piece = vec![0u8; 1 << 20];
    let mut filled = 0;
    let (header_len, mut left) = loop {
        let n = socket.read(&mut piece[filled..]).unwrap();
        assert!(n > 0, "the response ended inside its header");
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(header_len) = response.parse(&piece[..filled]).unwrap() {
            assert_eq!(response.code, Some(200), "{path}");
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse::<u64>().unwrap())
                .expect("a log has a Content-Length");
            break (header_len, length);
        }
    };
    if filled > header_len {
        each(&piece[header_len..filled]);
        left -= (filled - header_len) as u64;
    }
    while left > 0 {
        let n = socket.read(&mut piece[..want()]).unwrap();
        assert!(n > 0, "the body ended {left} bytes short");
        each(&piece[..n]);
        left -= n as u64;
    }
}

/// The least any daemon must do with the same output, as a second baseline:
/// one thread reads the generator's pipe (1 MiB, as the daemon's) in pieces
/// of up to 256 KiB and writes each to a file, a second writes the same
/// pieces to a loopback TCP socket, and a subscriber thread reads the socket
/// and takes a CRC-32 of every byte, as `follow` does. No sandbox, framing, bus or database; the subscriber keeps
/// up because the relay waits for it (at most 16 MiB in flight). Returns how
/// long the file took to fill.
fn relay(generator: &Path, target: &Path) -> Duration {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let subscriber = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let (mut log, mut total, mut piece) = (crc32fast::Hasher::new(), 0u64, vec![0u8; 1 << 20]);
        loop {
            let n = socket.read(&mut piece).unwrap();
            if n == 0 {
                break (log.finalize(), total);
            }
            log.update(&piece[..n]);
            total += n as u64;
        }
    });
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let (to_socket, pieces) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(64);
    let sender = std::thread::spawn(move || {
        for piece in pieces {
            socket.write_all(&piece).unwrap();
        }
    });
    sync();
    let start = Instant::now();
    let mut child = Command::new(generator)
        .args(["flood", &FLOOD_BYTES.to_string(), "exit"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    // The daemon's pipes are 1 MiB; so is the relay's.
    {
        use std::os::fd::AsRawFd as _;
        // SAFETY: F_SETPIPE_SZ on a pipe this function owns.
        let size = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        assert!(size >= 1 << 20, "the relay's pipe is 1 MiB");
    }
    let mut file = std::fs::File::create(target).unwrap();
    loop {
        let mut piece = vec![0u8; 256 << 10];
        let n = pipe.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        piece.truncate(n);
        file.write_all(&piece).unwrap();
        to_socket.send(std::sync::Arc::new(piece)).unwrap();
    }
    let elapsed = start.elapsed();
    drop(to_socket);
    sender.join().unwrap();
    assert!(child.wait().unwrap().success());
    let (crc, total) = subscriber.join().unwrap();
    assert_eq!(total, FLOOD_BYTES, "the relay's subscriber has every byte");
    let file = std::fs::read(target).unwrap();
    assert_eq!(file.len() as u64, FLOOD_BYTES);
    assert_eq!(crc, crc32fast::hash(&file), "the relay's subscriber has the file's bytes");
    elapsed
}

fn median_of_three(mut run: impl FnMut() -> Duration) -> Duration {
    let mut times = [run(), run(), run()];
    times.sort();
    times[1]
}

/// Writes every dirty page back.
fn sync() {
    assert!(Command::new("sync").status().unwrap().success());
}

/// What a process has used so far: CPU seconds (user and system), and
/// minor page faults (each a fresh page of memory touched).
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    (ticks / 100.0, fields[7].parse().unwrap())
}

/// The gate prints 512 MiB and exits; one subscriber follows its log,
/// reading as fast as it can or at `rate` bytes per second.
async fn throughput(root: &Path, repo: &Path, sha: &str, name: &str, rate: Option<u64>) {
    let config = config(root, name, repo, &format!("flood {FLOOD_BYTES} exit"));
    let daemon = Daemon::start(&config);
    let mut socket = subscribe(&daemon.url).await;
    let before = daemon.peak_rss_kib();
    // Each side starts with no dirty pages to write back, so neither pays
    // for the other's writeback.
    sync();
    daemon.rebuild(sha);
    let run_id = loop {
        let message = socket.next().await.unwrap().unwrap();
        if let Some(Event::GateStart { run_id, .. }) = decode(message).map(|e| e.event) {
            break run_id.get();
        }
    };
    let (daemon_before, own_before) = (usage(daemon.child.id()), usage(std::process::id()));
    let started = Instant::now();
    let filled = Arc::new(AtomicBool::new(false));
    let follower = tokio::spawn(follow(socket, daemon.url.clone(), run_id, rate, filled.clone()));
    let log_path = root.join(format!("{name}-data/logs/0.1.0/boot_smoke/{run_id}.log"));
    let log_size = || std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    while log_size() < FLOOD_BYTES {
        assert!(started.elapsed() < Duration::from_secs(240), "the log did not fill");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let daemon_time = started.elapsed();
    filled.store(true, Ordering::Relaxed);
    let filling_mib = (daemon.peak_rss_kib().saturating_sub(before)) as f64 / 1024.0;
    let (daemon_after, own_after) = (usage(daemon.child.id()), usage(std::process::id()));
    let (daemon_cpu, own_cpu) = (daemon_after.0 - daemon_before.0, own_after.0 - own_before.0);
    let daemon_faults = daemon_after.1 - daemon_before.1;
    let followed = tokio::time::timeout(Duration::from_secs(600), follower).await.unwrap().unwrap();
    let growth_mib = (daemon.peak_rss_kib().saturating_sub(before)) as f64 / 1024.0;
    drop(daemon);
    let log = std::fs::read(&log_path).unwrap();
    let log_bytes = log.len();
    assert_eq!(followed.len, log_bytes as u64, "the subscriber has every byte");
    assert_eq!(
        followed.log.finalize(),
        crc32fast::hash(&log),
        "the subscriber's bytes are the log's"
    );
    drop(log);

    // Baselines, each the median of three runs (a single `cat` varied by a
    // factor of three between runs): the same generator, its bytes written
    // to a file by `cat`, and by the least a daemon must do (`relay`).
    let artifact = root.join(format!("{name}-data/artifacts/0.1.0/generator"));
    let target = root.join(format!("{name}-cat-output"));
    let cat_time = median_of_three(|| {
        sync();
        let start = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{}' flood {FLOOD_BYTES} exit | cat > '{}'",
                artifact.display(),
                target.display()
            ))
            .status()
            .unwrap();
        let cat_time = start.elapsed();
        assert!(status.success());
        assert_eq!(std::fs::metadata(&target).unwrap().len(), FLOOD_BYTES);
        std::fs::remove_file(&target).unwrap();
        cat_time
    });
    let relay_time = median_of_three(|| {
        let time = relay(&artifact, &target);
        std::fs::remove_file(&target).unwrap();
        time
    });
    let mib = FLOOD_BYTES as f64 / (1 << 20) as f64;
    let (daemon_rate, cat_rate) = (mib / daemon_time.as_secs_f64(), mib / cat_time.as_secs_f64());
    let relay_rate = mib / relay_time.as_secs_f64();
    let subscriber = match rate {
        None => "one subscriber reading as fast as it can".to_owned(),
        Some(rate) => format!("one subscriber throttled to {:.1} MB/s", rate as f64 / 1e6),
    };
    println!("512 MiB gate output, {subscriber}:");
    println!(
        "  subscriber ended with all {log_bytes} bytes of the log (CRC-32 equal): {} live, {} by resuming, lagged {} times; {} live bytes discarded",
        followed.live, followed.resumed, followed.lagged, followed.discarded
    );
    println!(
        "  daemon path (disk log + WebSocket):           {daemon_rate:.0} MiB/s ({daemon_time:.2?})"
    );
    println!(
        "  cat to a file (baseline, median of 3):        {cat_rate:.0} MiB/s ({cat_time:.2?})"
    );
    println!(
        "  relay to a file and a socket (median of 3):   {relay_rate:.0} MiB/s ({relay_time:.2?})"
    );
    println!(
        "  ratio daemon/cat: {:.2} (target >= 0.8); relay/cat: {:.2}; daemon/relay: {:.2}",
        daemon_rate / cat_rate,
        relay_rate / cat_rate,
        daemon_rate / relay_rate
    );
    println!(
        "  CPU while the log filled: daemon {daemon_cpu:.2} s, this benchmark (the subscriber) {own_cpu:.2} s; daemon page faults {daemon_faults}"
    );
    println!(
        "  daemon peak RSS growth while the log filled: {filling_mib:.1} MiB (target <= 64 MiB)"
    );
    println!(
        "  daemon peak RSS growth, the run's end and the subscriber's resumes included: {growth_mib:.1} MiB"
    );
}

async fn latency(root: &Path, repo: &Path, sha: &str) {
    let config = config(root, "paced", repo, "paced 10000000 10");
    let daemon = Daemon::start(&config);
    let mut socket = subscribe(&daemon.url).await;
    daemon.rebuild(sha);
    let mut samples: Vec<f64> = Vec::new();
    let mut carry = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(Ok(message)) = socket.next().await {
        let received = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let Some(Event::GateLogChunk { stream: Stream::Stdout, bytes, .. }) =
            decode(message).map(|e| e.event)
        else {
            continue;
        };
        carry.push_str(&String::from_utf8_lossy(&bytes));
        let complete = carry.rfind('\n').map_or(0, |i| i + 1);
        for line in carry[..complete].lines() {
            if let Some(stamp) = line
                .strip_prefix('T')
                .and_then(|l| l.get(..20))
                .and_then(|n| n.parse::<u128>().ok())
            {
                samples.push((received.saturating_sub(stamp)) as f64 / 1e6);
            }
        }
        carry.drain(..complete);
        if samples.len() >= 10_000_000 / 64 * 9 || Instant::now() > deadline {
            break;
        }
    }
    let n = samples.len();
    println!("live tail at 10 MB/s, {n} time-stamped lines:");
    println!(
        "  write -> WebSocket receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 50 ms)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
        percentile(&mut samples, 1.0)
    );
}

async fn state_with_history(root: &Path) {
    let (repo, _) = (root.join("unused-repo"), ());
    let config = config(root, "history", &repo, "");
    drop(Daemon::start(&config)); // creates the schema and the tier
    support::seed_history(&root.join("history-data/sando.sqlite")).await;

    let daemon = Daemon::start(&config);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let url = format!("{}/api/state", daemon.url);
    for _ in 0..50 {
        agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
    }
    let mut samples = Vec::new();
    let mut gates = 0;
    for _ in 0..2000 {
        let start = Instant::now();
        let body = agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        gates = serde_json::from_str::<Value>(&body).unwrap()["tiers"][0]["gates"]
            .as_array()
            .unwrap()
            .len();
    }
    println!(
        "GET /api/state with 100,000 gate runs (1,000 versions), {gates} gates shown, 2000 requests:"
    );
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms (target p99 <= 20 ms)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );
}

/// `GET /metrics` with the same 100,000 runs in the store: its counters
/// live in memory, so what a scrape reads from the store is each tier's
/// candidate and how long it has waited.
async fn metrics_with_history(root: &Path) {
    let repo = root.join("unused-repo");
    let config = config(root, "metrics", &repo, "");
    drop(Daemon::start(&config)); // creates the schema and the tier
    support::seed_history(&root.join("metrics-data/sando.sqlite")).await;

    let daemon = Daemon::start(&config);
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let url = format!("{}/metrics", daemon.url);
    for _ in 0..50 {
        agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
    }
    let mut samples = Vec::new();
    let mut bytes = 0;
    for _ in 0..2000 {
        let start = Instant::now();
        let body = agent.get(&url).call().unwrap().body_mut().read_to_string().unwrap();
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        assert!(body.contains("sando_versions_waiting{tier=\"bench\"} 1"), "{body}");
        bytes = body.len();
    }
    println!("GET /metrics with 100,000 gate runs in the store, {bytes} bytes, 2000 requests:");
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms (target p99 <= 10 ms)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let (repo, sha) = generator_project(root.path());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `cargo bench -p sando --bench daemon -- throughput` runs only the
    // benchmarks whose name holds one of the words given (all without any).
    let words: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let chosen = |name: &str| words.is_empty() || words.iter().any(|w| name.contains(w.as_str()));
    runtime.block_on(async {
        if chosen("throughput") {
            throughput(root.path(), &repo, &sha, "flood", None).await;
        }
        if chosen("throttled") {
            throughput(root.path(), &repo, &sha, "throttled", Some(1_000_000)).await;
        }
        if chosen("latency") {
            latency(root.path(), &repo, &sha).await;
        }
        if chosen("state") {
            state_with_history(root.path()).await;
        }
        if chosen("metrics") {
            metrics_with_history(root.path()).await;
        }
    });
    // The daemons go with their runtime; every process they started (the
    // generators stay up for ten minutes) must go with them.
    drop(runtime);
    let marker = root.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = processes_with(&marker);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("processes left behind: {}", left.len());
    assert!(left.is_empty(), "the benchmark left processes behind: {left:?}");
}

/// Every process whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let own = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy() != own)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(marker).then_some(cmdline)
        })
        .collect()
}

/// An `/api/events` message as its event: JSON text, or a log chunk's
/// binary frame.
fn decode(message: Message) -> Option<EventEnvelope> {
    match message {
        Message::Text(text) => Some(EventEnvelope::from_text(&text).unwrap()),
        Message::Binary(frame) => Some(EventEnvelope::from_binary(frame).unwrap()),
        _ => None,
    }
}
