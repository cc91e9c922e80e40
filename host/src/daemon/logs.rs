//! Per-run log files under `<data_dir>/logs/`, written as the process writes, and the same bytes broadcast as `gate_log_chunk` events.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::events::{Event, EventBus, Unframed};
use bytes::{Bytes, BytesMut};

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
        // Readable too: live chunks are sent from the file (`FromLog`).
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)
    }

    /// Opens an existing log to add to it (a blocked run evaluated again):
    /// not `O_APPEND`, under which `pwrite` ignores its offset; `RunLog`
    /// starts at the file's end.
    pub fn append(&self, log_ref: &LogRef) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(log_ref))
    }

    pub fn root(&self) -> &Path {
        &self.0
    }
}

/// How much of a log file one read takes when serving it.
const LOG_READ: usize = 256 << 10;

/// `len` bytes of a log file from byte `from`, as the pieces of a response
/// body. Each piece is read straight into the buffer that is sent, on
/// tokio's blocking pool as `tokio::fs` reads (tokio's `File` reads into
/// a buffer of its own and copies out of it: a second copy of every byte a
/// client resumes, measured at 3 % of the daemon's time under a flood).
/// Memory is one piece in flight, however long the log.
pub fn read_from(
    file: File,
    from: u64,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = (std::sync::Arc::new(file), from, from + len);
    futures_util::stream::try_unfold(state, |(file, at, end)| async move {
        if at >= end {
            return Ok(None);
        }
        let want = (end - at).min(LOG_READ as u64) as usize;
        let (piece, file) = tokio::task::spawn_blocking(move || {
            read_at(&file, want, at).map(|piece| (piece, file))
        })
        .await
        .map_err(std::io::Error::other)??;
        if piece.is_empty() {
            // Shorter than when it was opened: the length promised cannot be met.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let next = at + piece.len() as u64;
        Ok(Some((piece, (file, next, end))))
    })
}

/// Up to `want` bytes at `offset`, in a buffer of their own.
fn read_at(file: &File, want: usize, offset: u64) -> std::io::Result<Bytes> {
    use std::os::fd::AsFd as _;
    let mut piece = BytesMut::with_capacity(want);
    crate::read_into::read_into(file.as_fd(), &mut piece, want, Some(offset))?;
    Ok(piece.freeze())
}

/// The most bytes one `gate_log_chunk` carries.
pub const LIVE_CHUNK: usize = 256 << 10;

// Every pipe read goes out live in one frame made around it.
const _: () = assert!(crate::executor::READ_SIZE <= LIVE_CHUNK);

/// A log being written: to its file always, and for gate runs also to the
/// event bus, chunk by chunk. Each chunk gets its place in the file first
/// (an atomic reservation) and is written there with `pwrite`, so the two
/// streams' readers never wait on each other, and a live chunk's `offset`
/// is exactly where its bytes are in the file.
pub struct RunLog {
    /// Shared with the live chunks sent from it.
    file: Arc<File>,
    live: Option<(EventBus, GateRunId)>,
    seq: AtomicU64,
    /// Where the next chunk goes: the file's length when it was opened
    /// (a blocked run evaluated again appends), plus every chunk since.
    end: AtomicU64,
}

impl RunLog {
    pub fn new(file: File, live: Option<(EventBus, GateRunId)>) -> Self {
        let end = file.metadata().map(|m| m.len()).unwrap_or(0);
        Self { file: Arc::new(file), live, seq: AtomicU64::new(0), end: AtomicU64::new(end) }
    }

    /// How long the log is: where the next chunk goes.
    pub fn written(&self) -> u64 {
        self.end.load(Ordering::Relaxed)
    }

    /// A line of the host's own (a step starting, a command being run).
    pub fn note(&self, text: &str) {
        self.chunk(Stream::Stderr, Bytes::from(format!("sando: {text}\n")));
    }

    /// Reserves the chunk's place in the file and writes it there; its
    /// offset, and whether all of it is there.
    fn write(&self, bytes: &[u8]) -> (u64, bool) {
        let offset = self.end.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        // A full disk must not stop the gate; the chunk still goes out live.
        let whole = self.file.write_all_at(bytes, offset).is_ok();
        super::metrics::global().log_bytes(bytes.len());
        (offset, whole)
    }
}

impl LogSink for RunLog {
    fn chunk(&self, stream: Stream, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let (offset, _) = self.write(&bytes);
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

    /// A chunk of at most `LIVE_CHUNK` (a pipe reader's) goes out in one
    /// frame made around its bytes; a longer one in pieces, as `chunk`.
    fn chunk_with_room(&self, stream: Stream, chunk: Unframed) -> Bytes {
        let len = chunk.bytes().len();
        match &self.live {
            Some((bus, run_id)) if len > 0 && len <= LIVE_CHUNK => {
                let (offset, whole) = self.write(chunk.bytes());
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                // Sent from the file only if the file has every byte.
                let log = whole.then_some(&self.file);
                bus.send_chunk(*run_id, seq, stream, offset, chunk, log)
            }
            _ => {
                let bytes = chunk.into_bytes();
                self.chunk(stream, bytes.clone());
                bytes
            }
        }
    }
}
