//! The watched gates directory: a `<kind>.wasm` written there is submitted like a push to `POST /api/gates/{kind}`.
//!
//! Linux inotify reports a file once its writer closes it (or once it is
//! renamed in), so a copy in progress is never loaded half-written and a
//! new file is picked up at once. Files already there at start-up are
//! submitted too; one identical to the serving component changes nothing.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Daemon;
use super::components::submit;
use crate::domain::GateKind;

pub(crate) async fn run(daemon: Arc<Daemon>, dir: PathBuf) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("sando: gates dir {}: {e}; not watching it", dir.display());
        return;
    }
    let (sender, mut changed) = mpsc::unbounded_channel();
    let watched = dir.clone();
    let watching = std::thread::Builder::new()
        .name("sando-gates-dir".into())
        .spawn(move || watch(&watched, &sender));
    if let Err(e) = watching {
        eprintln!("sando: gates dir {}: {e}; not watching it", dir.display());
        return;
    }
    for path in existing(&dir) {
        take(&daemon, &path).await;
    }
    while let Some(path) = changed.recv().await {
        take(&daemon, &path).await;
    }
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

async fn take(daemon: &Arc<Daemon>, path: &Path) {
    let Some(kind) = kind_of(path) else { return };
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => return eprintln!("sando: gates dir: {}: {e}", path.display()),
    };
    let source = format!("watched {}", path.display());
    match submit(daemon, kind, bytes, source, false).await {
        Ok(verdict) => eprintln!(
            "sando: gates dir: {}: {:?}{}",
            path.display(),
            verdict.decision,
            verdict.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        Err(e) => eprintln!("sando: gates dir: {}: {e}", path.display()),
    }
}

/// Blocks on inotify for files closed after writing or moved into `dir`,
/// and sends their paths until the receiver is gone.
fn watch(dir: &Path, changed: &mpsc::UnboundedSender<PathBuf>) {
    let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else { return };
    // SAFETY: plain syscalls on a descriptor this function owns; the buffer
    // outlives every read into it.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        eprintln!("sando: gates dir: inotify: {}", std::io::Error::last_os_error());
        return;
    }
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO;
    if unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), mask) } < 0 {
        eprintln!("sando: gates dir {}: {}", dir.display(), std::io::Error::last_os_error());
        unsafe { libc::close(fd) };
        return;
    }
    // Aligned for `inotify_event`.
    let mut buffer = vec![0u64; 4096 / 8];
    const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
    loop {
        let read = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len() * 8) };
        if read < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), read as usize) };
        let mut offset = 0;
        while offset + HEADER <= bytes.len() {
            let event: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(bytes[offset..].as_ptr().cast()) };
            let name_end = (offset + HEADER + event.len as usize).min(bytes.len());
            let name = &bytes[offset + HEADER..name_end];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if !name.is_empty() {
                let path = dir.join(std::ffi::OsStr::from_bytes(name));
                if kind_of(&path).is_some() && changed.send(path).is_err() {
                    unsafe { libc::close(fd) };
                    return;
                }
            }
            offset = name_end;
        }
    }
    unsafe { libc::close(fd) };
}
