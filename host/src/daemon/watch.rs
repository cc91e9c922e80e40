//! The watched gates directory: a `<kind>.wasm` written there is submitted like a push to `POST /api/gates/{kind}`.
//!
//! Linux inotify reports a file once its writer closes it (or once it is
//! renamed in), so a copy in progress is never loaded half-written and a
//! new file is picked up at once. Files already there at start-up are
//! submitted only if the daemon has never seen them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::reload::submit;
use super::shared::Daemon;
use crate::domain::GateKind;

pub(crate) async fn run(daemon: Arc<Daemon>, dir: PathBuf) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "gates dir: not watching it");
        return;
    }
    // Watching starts before the first scan, so nothing written in between is missed.
    let fd = match watch_dir(&dir) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "gates dir: not watching it");
            return;
        }
    };
    let (sender, mut changed) = mpsc::unbounded_channel();
    let watched = dir.clone();
    let reading = std::thread::Builder::new()
        .name("sando-gates-dir".into())
        .spawn(move || read_events(fd, &watched, &sender));
    if let Err(e) = reading {
        tracing::error!(dir = %dir.display(), error = %e, "gates dir: not watching it");
        return;
    }
    for path in existing(&dir) {
        take(&daemon, &path, Seen::Skip).await;
    }
    while let Some(change) = changed.recv().await {
        match change {
            Change::Written(path) => take(&daemon, &path, Seen::Submit).await,
            // The kernel dropped events: look at everything again.
            Change::Overflow => {
                for path in existing(&dir) {
                    take(&daemon, &path, Seen::Skip).await;
                }
            }
        }
    }
}

enum Change {
    Written(PathBuf),
    Overflow,
}

/// What to do with a file whose digest the daemon has seen before: at
/// start-up it is skipped, so a restart does not undo a rollback or bring
/// back a rejected candidate; written anew, it is submitted again.
#[derive(PartialEq)]
enum Seen {
    Skip,
    Submit,
}

fn kind_of(path: &Path) -> Option<GateKind> {
    path.file_name()?.to_str()?.strip_suffix(".wasm")?.parse().ok()
}

fn existing(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| kind_of(p).is_some()).collect();
    paths.sort();
    paths
}

async fn take(daemon: &Arc<Daemon>, path: &Path, seen: Seen) {
    let Some(kind) = kind_of(path) else { return };
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => return tracing::warn!(path = %path.display(), error = %e, "gates dir"),
    };
    if seen == Seen::Skip {
        let digest = crate::sandbox::Digest::of(&bytes).to_string();
        match daemon.store.component_known(kind, &digest).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => return tracing::warn!(path = %path.display(), error = %e, "gates dir"),
        }
    }
    let source = format!("watched {}", path.display());
    match submit(daemon, kind, bytes, source, Default::default()).await {
        Ok(verdict) => tracing::info!(
            path = %path.display(),
            decision = ?verdict.decision,
            reason = verdict.reason.unwrap_or_default(),
            "gates dir: component submitted"
        ),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "gates dir"),
    }
}

/// An inotify descriptor watching `dir` for files closed after writing or
/// moved in.
fn watch_dir(dir: &Path) -> std::io::Result<i32> {
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path contains a NUL byte"))?;
    // SAFETY: plain syscalls; the path outlives the call.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO;
    if unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), mask) } < 0 {
        let error = std::io::Error::last_os_error();
        unsafe { libc::close(fd) };
        return Err(error);
    }
    Ok(fd)
}

/// Blocks on the inotify descriptor and sends what changed until the
/// receiver is gone; then closes it.
fn read_events(fd: i32, dir: &Path, changed: &mpsc::UnboundedSender<Change>) {
    // Aligned for `inotify_event`.
    let mut buffer = vec![0u64; 4096 / 8];
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    'reading: loop {
        // SAFETY: the buffer is valid for its whole length during the call.
        let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len() * 8) };
        if read <= 0 {
            let error = std::io::Error::last_os_error();
            if read < 0 && error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(dir = %dir.display(), %error, "gates dir: stopped watching");
            break;
        }
        // SAFETY: `read` bytes were written into the buffer just now.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), read as usize) };
        let mut offset = 0;
        while offset + HEADER <= bytes.len() {
            // SAFETY: HEADER bytes are in bounds; read_unaligned needs no alignment.
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(bytes[offset..].as_ptr().cast()) };
            let name_end = (offset + HEADER + event.len as usize).min(bytes.len());
            let name = &bytes[offset + HEADER..name_end];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            offset = name_end;
            let change = if event.mask & libc::IN_Q_OVERFLOW != 0 {
                Change::Overflow
            } else if name.is_empty() {
                continue;
            } else {
                let path = dir.join(std::ffi::OsStr::from_bytes(name));
                if kind_of(&path).is_none() {
                    continue;
                }
                Change::Written(path)
            };
            if changed.send(change).is_err() {
                break 'reading;
            }
        }
    }
    // SAFETY: this thread owns the descriptor.
    unsafe { libc::close(fd) };
}
