//! Helpers for tests that drive the real daemon: a git project of a tiny Rust crate, `sando serve` as a child process, and a WebSocket client that records every event.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sando::domain::{Event, EventEnvelope, Stream};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub const TOKEN: &str = "test-token-5f1e";

/// A tiny Rust service in a git repository: each `commit` writes the
/// version and the test body, so one test can pass and another fail.
pub struct Project {
    pub dir: PathBuf,
}

impl Project {
    pub fn new(root: &Path) -> Project {
        let dir = root.join("repo");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("src/main.rs"),
            "fn main() {\n    println!(\"tiny up\");\n    std::thread::sleep(std::time::Duration::from_secs(600));\n}\n",
        )
        .unwrap();
        std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
        let project = Project { dir };
        project.git(&["init", "-q", "-b", "main"]);
        project
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn commit(&self, version: &str, test_body: &str) -> String {
        self.commit_lib(
            version,
            &format!("pub fn answer() -> u32 {{ 42 }}\n\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn answers() {{ {test_body} }}\n}}\n"),
        )
    }

    /// Commits `version` with `lib_rs` as the whole of `src/lib.rs`.
    pub fn commit_lib(&self, version: &str, lib_rs: &str) -> String {
        std::fs::write(
            self.dir.join("Cargo.toml"),
            // A workspace of its own: a project under the suite's target
            // dir (the Slurm tests' shared directory) is inside Sando's.
            format!(
                "[package]\nname = \"tiny\"\nversion = \"{version}\"\nedition = \"2021\"\n\n[workspace]\n"
            ),
        )
        .unwrap();
        std::fs::write(self.dir.join("src/lib.rs"), lib_rs).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", version]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A running `sando serve`, killed on drop.
pub struct Daemon {
    child: Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Started with `env` added to its environment.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let written = std::fs::read_to_string(config).expect("read the config");
        if let Some(store) = super::postgres::store_table().filter(|_| !written.contains("[store]"))
        {
            std::fs::write(config, written + &store).expect("name the store in the config");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_sando"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .envs(env.iter().copied())
            .env("SANDO_TEST_TOKEN", TOKEN)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sando serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let url = loop {
            let line = lines.next().expect("sando serve exited before listening").unwrap();
            stderr.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("sando: listening on ") {
                break url.to_owned();
            }
        };
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                collected.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Daemon { child, url, stderr }
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let mut response = Self::agent().get(format!("{}{path}", self.url)).call().expect("GET");
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut request =
            Self::agent().post(format!("{}{path}", self.url)).content_type("application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.send(body).expect("POST");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn state(&self) -> Value {
        let (status, body) = self.get("/api/state");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The daemon's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it exited, if it did within `within`.
    pub fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait on sando serve") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event frame a real WebSocket client received, in order: as JSON
/// (a log chunk's header), and each log chunk's bytes beside it.
pub struct Events {
    seen: Arc<Mutex<Vec<Value>>>,
    chunks: Arc<Mutex<Vec<Chunk>>>,
}

/// One `gate_log_chunk` as it arrived: exactly its bytes.
#[derive(Clone)]
pub struct Chunk {
    pub run_id: i64,
    pub stdout: bool,
    pub offset: u64,
    pub bytes: bytes::Bytes,
}

impl Events {
    pub async fn connect(url: &str) -> Events {
        let ws_url = format!("{}/api/events", url.replace("http://", "ws://"));
        let (socket, _) = tokio_tungstenite::connect_async(ws_url).await.expect("websocket");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let (sink, chunk_sink) = (seen.clone(), chunks.clone());
        tokio::spawn(async move {
            let (_, mut read) = socket.split();
            while let Some(Ok(message)) = read.next().await {
                let envelope = match message {
                    Message::Text(text) => EventEnvelope::from_text(&text).expect("an event"),
                    Message::Binary(frame) => {
                        EventEnvelope::from_binary(frame).expect("a log chunk")
                    }
                    _ => continue,
                };
                if let Event::GateLogChunk { run_id, stream, offset, bytes, .. } = &envelope.event {
                    chunk_sink.lock().unwrap().push(Chunk {
                        run_id: run_id.get(),
                        stdout: *stream == Stream::Stdout,
                        offset: *offset,
                        bytes: bytes.clone(),
                    });
                }
                sink.lock().unwrap().push(serde_json::to_value(&envelope).unwrap());
            }
        });
        Events { seen, chunks }
    }

    /// Every log chunk so far, with its bytes.
    pub fn chunks(&self) -> Vec<Chunk> {
        self.chunks.lock().unwrap().clone()
    }

    /// Every frame so far.
    pub fn all(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// How many events so far match `pred`.
    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|e| pred(&e["event"])).count()
    }

    /// Waits for an event matching `pred` and returns it.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.seen.lock().unwrap().iter().find(|e| pred(&e["event"])) {
                return found.clone();
            }
            if Instant::now() > deadline {
                let kinds: Vec<String> = self
                    .seen
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["event"]["kind"],
                            e["event"].get("outcome").map(|o| o.to_string()).unwrap_or_default()
                        )
                    })
                    .collect();
                panic!("timed out waiting for {what}; events so far:\n{}", kinds.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn gate_done(gate: &'static str, status: &'static str) -> impl Fn(&Value) -> bool {
    move |e| {
        e["kind"] == "gate_done" && e["gate"] == gate && e["outcome"]["status"]["kind"] == status
    }
}

pub fn tier<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["tiers"].as_array().unwrap().iter().find(|t| t["name"] == name).expect("tier in state")
}

pub fn gate<'a>(tier: &'a Value, kind: &str) -> &'a Value {
    tier["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == kind)
        .unwrap_or_else(|| panic!("{kind} in {tier}"))
}

/// Every process whose command line holds `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(marker)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// Waits until some process holds `marker` (a test or deploy got that far).
pub fn wait_for_process(marker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while processes_with(marker).is_empty() {
        assert!(Instant::now() < deadline, "no process with {marker:?} started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no process holds `marker`, or fails naming them.
pub fn assert_none_left(marker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `/api/state` until `pred` holds.
pub fn poll_state(
    daemon: &Daemon,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let state = daemon.state();
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
