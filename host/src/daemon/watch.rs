//! The watched gates directory: a `<kind>.wasm` written there is submitted like a push to `POST /api/gates/{kind}`.
//!
//! The directory is scanned every 100 ms; a file is taken once its size and
//! modification time have held still for one scan, so a copy in progress is
//! not loaded half-written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Daemon;
use super::components::submit;
use crate::domain::GateKind;

const SCAN: Duration = Duration::from_millis(100);

type Stamp = (SystemTime, u64);

pub(crate) async fn run(daemon: Arc<Daemon>, dir: PathBuf) {
    let mut taken: HashMap<PathBuf, Stamp> = HashMap::new();
    let mut settling: HashMap<PathBuf, Stamp> = HashMap::new();
    loop {
        for (path, kind, stamp) in scan(&dir) {
            if taken.get(&path) == Some(&stamp) {
                continue;
            }
            if settling.get(&path) != Some(&stamp) {
                settling.insert(path, stamp);
                continue;
            }
            settling.remove(&path);
            taken.insert(path.clone(), stamp);
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("sando: gates dir: {}: {e}", path.display());
                    continue;
                }
            };
            let source = format!("watched {}", path.display());
            match submit(&daemon, kind, bytes, source, false).await {
                Ok(verdict) => eprintln!(
                    "sando: gates dir: {}: {:?}{}",
                    path.display(),
                    verdict.decision,
                    verdict.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                Err(e) => eprintln!("sando: gates dir: {}: {e}", path.display()),
            }
        }
        tokio::time::sleep(SCAN).await;
    }
}

/// Every `<kind>.wasm` in `dir` with its size and modification time.
fn scan(dir: &Path) -> Vec<(PathBuf, GateKind, Stamp)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let kind: GateKind = path.file_name()?.to_str()?.strip_suffix(".wasm")?.parse().ok()?;
            let meta = entry.metadata().ok()?;
            Some((path, kind, (meta.modified().ok()?, meta.len())))
        })
        .collect()
}
