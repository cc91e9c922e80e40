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

/// Fills the SQLite history at `db` (made by a daemon whose one tier is
/// `bench`) with 1,000 versions of 100 finished gate runs each, and makes
/// the newest the tier's candidate.
#[allow(dead_code)] // not every benchmark seeds a history
pub async fn seed_history(db: &Path) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let kinds = ["cargo_test", "migration_dry_run", "boot_smoke", "burn_in", "manual_confirm"];
    let outcome = r#"{"kind":"failed","failure":{"kind":"cargo_test","failed_count":3,"first_failed":"tests::parse"}}"#;
    for v in 0..1000 {
        let version = format!("0.{v}.0");
        sqlx::query("INSERT INTO versions (version, git_sha, registered_at, artifact) VALUES (?, ?, ?, '/x')")
            .bind(&version)
            .bind(format!("{v:040x}"))
            .bind(format!("2026-01-01T00:00:{:02}.{v:06}Z", v % 60))
            .execute(&mut *tx)
            .await
            .unwrap();
        for r in 0..100 {
            sqlx::query(
                "INSERT INTO gate_runs (version, tier, gate_kind, started_at, finished_at, status, outcome_json, log_ref, component_digest, contract)
                 VALUES (?, 'bench', ?, '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'failed', ?, 'x.log', 'digest', '0.1.0')",
            )
            .bind(&version)
            .bind(kinds[r % kinds.len()])
            .bind(outcome)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    sqlx::query("UPDATE tiers SET candidate_version = '0.999.0', current_version = '0.998.0'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
}
