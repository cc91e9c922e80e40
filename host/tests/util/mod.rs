//! Shared test helpers: where the built components are, and running the real `sando` binary in a temp dir.
#![allow(dead_code)]

pub mod config;
pub mod daemon;
pub mod legacy;
pub mod postgres;
pub mod team;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/` of this build, found from the test executable
/// (`target/release/deps/<test>-<hash>`), so `CARGO_TARGET_DIR` is honoured.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target/<profile>/deps/<exe>").to_owned()
}

/// A component built by `./x build` (`cargo build --profile gates --target wasm32-wasip2`).
pub fn component(crate_name: &str) -> PathBuf {
    let path = target_dir().join("wasm32-wasip2").join("gates").join(format!("{crate_name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the components first with `./x build`",
        path.display()
    );
    path
}

pub fn component_bytes(crate_name: &str) -> Vec<u8> {
    std::fs::read(component(crate_name)).expect("read component")
}

/// A shipped gate as it was built under gate contract 0.1
/// (`tests/components/contract-0.1/`, from its `capture.sh`).
pub fn contract_0_1_gate(kind: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/components/contract-0.1")
        .join(format!("{kind}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The repository's `fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures")
}

/// The real `sando` binary, run in a fresh temporary directory with its own
/// component cache, so tests never share state.
pub struct Sando {
    pub dir: tempfile::TempDir,
}

impl Sando {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sando"));
        command
            .current_dir(self.dir.path())
            .env("SANDO_CACHE_DIR", self.dir.path().join("cache"))
            .env_remove("SANDO_GATES_DIR")
            .env_remove("RUST_BACKTRACE");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run sando")
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `sando demo` on a free port, killed when dropped.
pub struct Demo {
    child: std::process::Child,
    pub url: String,
    /// What the demo printed up to "Ctrl-C stops the demo".
    pub printed: String,
    pub dir: PathBuf,
}

impl Demo {
    pub fn start(dir: &Path) -> Demo {
        Demo::start_on(dir, "127.0.0.1:0")
    }

    /// The demo listening on `listen` (so a daemon restarted from its
    /// config comes back on the same address).
    pub fn start_on(dir: &Path, listen: &str) -> Demo {
        Demo::start_binary(Path::new(env!("CARGO_BIN_EXE_sando")), dir, listen)
    }

    /// The demo with more arguments (`--slurm-partition …`).
    pub fn start_with(dir: &Path, args: &[&std::ffi::OsStr]) -> Demo {
        Demo::start_binary_with(Path::new(env!("CARGO_BIN_EXE_sando")), dir, "127.0.0.1:0", args)
    }

    /// The demo of the `sando` binary at `binary` (a copy elsewhere, with
    /// its `gates/` beside it).
    pub fn start_binary(binary: &Path, dir: &Path, listen: &str) -> Demo {
        Demo::start_binary_with(binary, dir, listen, &[])
    }

    fn start_binary_with(
        binary: &Path,
        dir: &Path,
        listen: &str,
        args: &[&std::ffi::OsStr],
    ) -> Demo {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(binary)
            .args(["demo", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(args)
            .env("SANDO_TOKEN", "demo-test-token")
            .env_remove("RUST_BACKTRACE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start sando demo");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut url = None;
        let mut printed = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(rest) = line.strip_prefix("Sando demo: ") {
                url = Some(rest.trim().to_owned());
            }
            if line.starts_with("Ctrl-C stops the demo") {
                break;
            }
        }
        let url = url.unwrap_or_else(|| panic!("no URL printed:\n{printed}"));
        Demo { child, url, printed, dir: dir.to_owned() }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `GET path` of the demo's API; the body, if it answered 200.
    pub fn get(&self, path: &str) -> Option<String> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(format!("{}{path}", self.url)).call().ok()?;
        (response.status() == 200).then(|| response.body_mut().read_to_string().ok())?
    }

    /// Waits (up to `within`) for what the demo promises: 0.1.0 current in
    /// staging (green), then blocked in prod's burn-in (yellow), and
    /// 0.2.0 failed by staging's migration dry run (red). The state then,
    /// with the red and the yellow run.
    pub fn outcomes(
        &self,
        within: std::time::Duration,
    ) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        use serde_json::Value;
        let deadline = std::time::Instant::now() + within;
        let mut green = false;
        loop {
            let state: Value = self
                .get("/api/state")
                .and_then(|body| serde_json::from_str(&body).ok())
                .unwrap_or(Value::Null);
            let gate = |tier: &str, kind: &str| -> Option<Value> {
                state["tiers"].as_array()?.iter().find(|t| t["name"] == tier)?["gates"]
                    .as_array()?
                    .iter()
                    .find(|g| g["gate"] == kind)
                    .cloned()
            };
            // 0.1.0 passed every staging gate: it is staging's current version.
            green |= state["tiers"]
                .as_array()
                .and_then(|tiers| tiers.iter().find(|t| t["name"] == "staging"))
                .is_some_and(|t| t["current_version"] == "0.1.0");
            let staging = gate("staging", "migration_dry_run")
                .filter(|g| g["version"] == "0.2.0" && g["status"] == "failed");
            let prod = gate("prod", "burn_in")
                .filter(|g| g["version"] == "0.1.0" && g["status"] == "blocked");
            if let (Some(staging), Some(prod), true) = (staging, prod, green) {
                return (state, staging, prod);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "demo did not reach its outcomes; last state: {state}"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}
