//! The exec shim: the last step inside a sandbox (`sando --sando-exec-shim FD PROGRAM ARGS…`), so the executor learns for certain whether the program started, and the errno when it did not, whatever bubblewrap printed.
//!
//! bubblewrap reports a failed `execvp` only as text and exit status 1,
//! which a program can print and return as well. The shim writes `S` to a
//! pipe only the executor reads, marks it close-on-exec and execs the
//! program: a successful exec closes the shim's copy without a word (the
//! code under test never holds it); a failed one writes the errno after the
//! `S` and exits 127. No `S` means the sandbox never reached the shim.

use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first argument that makes `sando` the shim.
pub const FLAG: &str = "--sando-exec-shim";

/// What the shim reported, read once the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The shim ran and the exec succeeded.
    Started,
    /// The shim ran and the exec failed with this errno.
    ExecFailed(i32),
    /// The shim never ran: the sandbox failed before it.
    NotReached,
}

impl Report {
    /// Reads what the shim wrote to `bytes` (everything in the pipe).
    pub fn read(bytes: &[u8]) -> Report {
        match bytes {
            [b'S', a, b, c, d, ..] => Report::ExecFailed(i32::from_le_bytes([*a, *b, *c, *d])),
            [b'S', ..] => Report::Started,
            _ => Report::NotReached,
        }
    }
}

/// The shim's arguments, before the program's: `FLAG FD`.
pub fn args(fd: RawFd) -> [OsString; 2] {
    [FLAG.into(), fd.to_string().into()]
}

/// Set once `main` has called [`run_if_asked`]: this executable can be the shim.
static THIS_BINARY_IS_A_SHIM: AtomicBool = AtomicBool::new(false);

/// This executable, when it can serve as the shim (its `main` calls
/// [`run_if_asked`]); `None` in a test or benchmark binary.
pub fn available() -> Option<PathBuf> {
    THIS_BINARY_IS_A_SHIM.load(Ordering::Relaxed).then(|| std::env::current_exe().ok()).flatten()
}

/// First thing in `main`: when this process was started as the shim, it
/// becomes the program and never returns; otherwise it returns at once.
pub fn run_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(FLAG)) {
        THIS_BINARY_IS_A_SHIM.store(true, Ordering::Relaxed);
        return;
    }
    let fd: Option<RawFd> = args.next().and_then(|a| a.to_str()?.parse().ok());
    let (Some(fd), Some(program)) = (fd, args.next()) else {
        eprintln!("sando: {FLAG} FD PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let report = |bytes: &[u8]| {
        // SAFETY: writing from a live buffer to the descriptor the executor
        // passed; a closed or wrong descriptor only makes the write fail.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    };
    report(b"S");
    // SAFETY: only this process's descriptor flags change.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let error = std::process::Command::new(&program).args(args).exec();
    let errno = error.raw_os_error().unwrap_or(libc::ENOEXEC);
    report(&errno.to_le_bytes());
    std::process::exit(127);
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[test]
    fn the_report_says_which_way_it_went() {
        assert_eq!(Report::read(b""), Report::NotReached);
        assert_eq!(Report::read(b"S"), Report::Started);
        assert_eq!(Report::read(&[b'S', 2, 0, 0, 0]), Report::ExecFailed(2));
        assert_eq!(Report::read(&[b'S', 13, 0, 0]), Report::Started, "a partial errno");
        assert_eq!(Report::read(b"X\x02\0\0\0"), Report::NotReached);
    }
}
