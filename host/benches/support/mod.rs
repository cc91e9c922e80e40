//! What the daemon benchmarks share: a real `sando serve` started from a config, asked for builds, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The API token every benchmark daemon reads from `SANDO_BENCH_TOKEN`.
pub const TOKEN: &str = "bench-token";

pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sando"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("SANDO_BENCH_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("daemon exited").unwrap();
            if let Some(url) = line.strip_prefix("sando: listening on ") {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Daemon { child, url }
    }

    pub fn rebuild(&self, sha: &str) {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let response = agent
            .post(format!("{}/api/rebuild", self.url))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .content_type("application/json")
            .send(format!("{{\"sha\":\"{sha}\"}}"))
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs git in `dir` as a fixed author; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=b", "-c", "user.email=b@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
