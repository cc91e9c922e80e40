//! Per-run log files under `<data_dir>/logs/`, written as the process writes, and the same bytes broadcast as `gate_log_chunk` events.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::events::{Event, EventBus};
use crate::domain::{GateRunId, LogRef};
use crate::executor::{LogSink, Stream};

/// Where logs live, and the only way from a `LogRef` to a path: `LogRef`
/// cannot contain `..` or a leading `/`, so nothing outside this directory
/// is reachable.
#[derive(Debug, Clone)]
pub struct LogsDir(PathBuf);

impl LogsDir {
    pub fn new(root: PathBuf) -> Self {
        Self(root)
    }

    pub fn path(&self, log_ref: &LogRef) -> PathBuf {
        self.0.join(log_ref.as_str())
    }

    /// Creates the file for a log, and its directory.
    pub fn create(&self, log_ref: &LogRef) -> std::io::Result<File> {
        let path = self.path(log_ref);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        File::create(path)
    }

    /// Opens an existing log to add to it (a blocked run evaluated again).
    pub fn append(&self, log_ref: &LogRef) -> std::io::Result<File> {
        std::fs::OpenOptions::new().append(true).create(true).open(self.path(log_ref))
    }

    pub fn root(&self) -> &Path {
        &self.0
    }
}

/// A log being written: to its file always, and for gate runs also to the
/// event bus, chunk by chunk.
pub struct RunLog {
    file: Mutex<File>,
    live: Option<(EventBus, GateRunId)>,
    seq: AtomicU64,
    /// Bytes of an incomplete UTF-8 character at the end of the last chunk,
    /// per stream, so events never split a character.
    carry: Mutex<[Vec<u8>; 2]>,
}

impl RunLog {
    pub fn new(file: File, live: Option<(EventBus, GateRunId)>) -> Self {
        Self {
            file: Mutex::new(file),
            live,
            seq: AtomicU64::new(0),
            carry: Mutex::new([Vec::new(), Vec::new()]),
        }
    }

    /// A line of the host's own (a step starting, a command being run).
    pub fn note(&self, text: &str) {
        self.chunk(Stream::Stderr, format!("sando: {text}\n").as_bytes());
    }
}

impl LogSink for RunLog {
    fn chunk(&self, stream: Stream, bytes: &[u8]) {
        // A full disk must not stop the gate; the chunk still goes out live.
        let _ = self.file.lock().expect("log file lock").write_all(bytes);
        let Some((bus, run_id)) = &self.live else { return };
        let data = {
            let mut carry = self.carry.lock().expect("carry lock");
            let pending = &mut carry[stream as usize];
            pending.extend_from_slice(bytes);
            let cut = pending.len() - incomplete_suffix(pending);
            let text = String::from_utf8_lossy(&pending[..cut]).into_owned();
            pending.drain(..cut);
            text
        };
        if !data.is_empty() {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            bus.send(Event::GateLogChunk { run_id: *run_id, seq, stream, data });
        }
    }
}

/// Length of a UTF-8 sequence begun but not finished at the end of `bytes`.
fn incomplete_suffix(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unfinished_characters() {
        assert_eq!(incomplete_suffix(b"abc"), 0);
        assert_eq!(incomplete_suffix("é".as_bytes()), 0);
        assert_eq!(incomplete_suffix(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_suffix(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_suffix(&"😀".as_bytes()[..3]), 3);
    }
}
