//! Per-run log files under `<data_dir>/logs/`, written as the process writes, and the same bytes broadcast as `gate_log_chunk` events.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::events::{Event, EventBus};
use bytes::Bytes;

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

    /// Opens an existing log to add to it (a blocked run evaluated again):
    /// not `O_APPEND`, under which `pwrite` ignores its offset; `RunLog`
    /// starts at the file's end.
    pub fn append(&self, log_ref: &LogRef) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(log_ref))
    }

    pub fn root(&self) -> &Path {
        &self.0
    }
}

/// The most bytes one `gate_log_chunk` carries.
pub const LIVE_CHUNK: usize = 256 << 10;

/// A log being written: to its file always, and for gate runs also to the
/// event bus, chunk by chunk. Each chunk gets its place in the file first
/// (an atomic reservation) and is written there with `pwrite`, so the two
/// streams' readers never wait on each other, and a live chunk's `offset`
/// is exactly where its bytes are in the file.
pub struct RunLog {
    file: File,
    live: Option<(EventBus, GateRunId)>,
    seq: AtomicU64,
    /// Where the next chunk goes: the file's length when it was opened
    /// (a blocked run evaluated again appends), plus every chunk since.
    end: AtomicU64,
}

impl RunLog {
    pub fn new(file: File, live: Option<(EventBus, GateRunId)>) -> Self {
        let end = file.metadata().map(|m| m.len()).unwrap_or(0);
        Self { file, live, seq: AtomicU64::new(0), end: AtomicU64::new(end) }
    }

    /// A line of the host's own (a step starting, a command being run).
    pub fn note(&self, text: &str) {
        self.chunk(Stream::Stderr, Bytes::from(format!("sando: {text}\n")));
    }
}

impl LogSink for RunLog {
    fn chunk(&self, stream: Stream, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let offset = self.end.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // A full disk must not stop the gate; the chunk still goes out live.
        let _ = self.file.write_all_at(&bytes, offset);
        let Some((bus, run_id)) = &self.live else { return };
        // Live in pieces of at most `LIVE_CHUNK`: frames stay small, and the
        // bus's bound on held bytes lets go of little at a time.
        let mut at = 0;
        while at < bytes.len() {
            let piece = bytes.slice(at..bytes.len().min(at + LIVE_CHUNK));
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let offset = offset + at as u64;
            at += piece.len();
            bus.send(Event::GateLogChunk { run_id: *run_id, seq, stream, offset, bytes: piece });
        }
    }
}
