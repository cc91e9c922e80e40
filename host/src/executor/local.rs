//! `LocalExecutor`: processes on this machine, each tree in its own PID namespace under bubblewrap (or only its own process group where there is none), bounded, ended whole, with a cleared environment; and what a daemon started after a crash ends of what the last one left.
//!
//! Under bubblewrap a tree lives in its own PID namespace, which the kernel
//! empties when the namespace's first process dies, so ending a process ends
//! descendants that left its process group too. Children die with the
//! daemon: each program runs under a small supervisor (`supervise.rs`)
//! which ends it when its lifeline, a pipe only the daemon writes, closes;
//! parent-death signals and bubblewrap's `--die-with-parent` back that up.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::pipes::{PIPE_SIZE, drain};
use super::supervise::{
    descendants, kill_group, parent_in, signal_all, supervise_or_become_child, tree,
};
use super::{
    BoxFuture, CancellationToken, Ended, Executor, Finished, LogSink, ProcessSpec, Stream,
    exec_shim,
};
use crate::domain::{ProcessEnd, RawOutput};

/// After the main process ended, how long its output may keep arriving from
/// descendants that hold the pipes before the tree is ended.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How a local process tree is held together.
#[derive(Debug, Clone)]
enum Containment {
    /// `bwrap --unshare-pid --die-with-parent`: the tree is a PID namespace.
    PidNamespace { bwrap: PathBuf },
    /// Its own process group only: descendants that leave the group (`setsid`)
    /// can outlive a timeout. Used only where bubblewrap is unavailable.
    ProcessGroup,
}

#[derive(Debug, Clone)]
pub struct LocalExecutor {
    containment: Containment,
    /// Between SIGTERM and SIGKILL when a tree is ended.
    grace: Duration,
    /// Whether a spec's `isolation` is applied (off only by an operator's
    /// explicit `isolation = "none"`).
    isolate: bool,
    /// Marks every sandbox this executor starts (`--setenv SANDO_OWNER
    /// <owner>`), so a daemon started after a crash finds those left behind.
    owner: Option<String>,
    /// The `sando` binary, run as the last step inside bubblewrap so a
    /// failed exec is known as one ([`exec_shim`]).
    exec_shim: Option<PathBuf>,
    /// Whether this process may mount: it can make a mount namespace of
    /// its own and the kernel has overlayfs (a daemon run as root).
    can_mount: bool,
}

impl LocalExecutor {
    /// Uses bubblewrap when it is installed and can make a PID namespace here.
    pub fn detect(grace: Duration) -> LocalExecutor {
        let bwrap = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|p| p.join("bwrap")).find(|p| is_executable(p))
        });
        let usable = bwrap.filter(|bwrap| {
            std::process::Command::new(bwrap)
                .args(namespace_args())
                .arg("true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let containment = match usable {
            Some(bwrap) => Containment::PidNamespace { bwrap },
            None => Containment::ProcessGroup,
        };
        let can_mount = matches!(containment, Containment::PidNamespace { .. }) && can_mount();
        LocalExecutor { containment, grace, isolate: true, owner: None, exec_shim: None, can_mount }
    }

    /// Starts every program under bubblewrap through `shim` (this `sando`
    /// binary), so one that cannot be started is a spawn error with its
    /// errno, not bubblewrap's text and exit status 1.
    pub fn with_exec_shim(mut self, shim: PathBuf) -> LocalExecutor {
        self.exec_shim = Some(shim);
        self
    }

    /// Marks the sandboxes this executor starts as `owner`'s (the daemon's
    /// data directory).
    pub fn owned_by(mut self, owner: &Path) -> LocalExecutor {
        self.owner = Some(owner.display().to_string());
        self
    }

    /// Runs code under test without a filesystem or network sandbox (an
    /// operator's `isolation = "none"`). Trees still get a PID namespace.
    pub fn without_isolation(mut self) -> LocalExecutor {
        self.isolate = false;
        self
    }

    /// Whether a sandboxed process can change to its `run_as` user: `setpriv`
    /// is on `PATH`.
    pub fn can_change_user(&self) -> bool {
        resolve("setpriv", None).is_ok()
    }

    /// Whether ending a process also ends descendants that left its group.
    pub fn contains_trees(&self) -> bool {
        matches!(self.containment, Containment::PidNamespace { .. })
    }

    /// This executor holding trees in process groups only, as where
    /// bubblewrap is missing.
    #[cfg(test)]
    pub(super) fn in_process_groups(self) -> LocalExecutor {
        LocalExecutor { containment: Containment::ProcessGroup, ..self }
    }

    /// The command line that starts `program` as this executor does, up to
    /// the program itself (its arguments follow): bubblewrap with the
    /// spec's sandbox (or only a PID namespace), the change of user, and the
    /// exec shim reporting to `report` when there is a shim and a
    /// descriptor. Also what a Slurm job runs on its node.
    pub(super) fn command_line(
        &self,
        spec: &ProcessSpec,
        program: &Path,
        report: Option<RawFd>,
    ) -> Result<Vec<OsString>, i32> {
        let Containment::PidNamespace { bwrap } = &self.containment else {
            return Ok(vec![program.as_os_str().to_owned()]);
        };
        let mut line: Vec<OsString> = vec![bwrap.as_os_str().to_owned()];
        let shim = self.exec_shim.as_deref().filter(|_| report.is_some());
        let mut run_as = None;
        match spec.isolation.as_ref().filter(|_| self.isolate) {
            Some(isolation) => {
                let isolation = isolation.with_programs(program, shim, &spec.args);
                line.extend(isolation.bwrap_args(spec.cwd.as_deref()));
                run_as = isolation.run_as;
            }
            None => line.extend(namespace_args().map(OsString::from)),
        }
        if let Some(owner) = &self.owner {
            line.extend(["--setenv", "SANDO_OWNER", owner].map(OsString::from));
        }
        line.push("--".into());
        if let Some(user) = &run_as {
            line.extend(user.setpriv(&resolve("setpriv", None)?));
        }
        if let (Some(shim), Some(fd)) = (shim, report) {
            line.push(shim.as_os_str().to_owned());
            line.extend(exec_shim::args(fd));
        }
        line.push(program.as_os_str().to_owned());
        Ok(line)
    }

    /// Whether programs start through the exec shim.
    pub(super) fn has_exec_shim(&self) -> bool {
        self.exec_shim.is_some() && self.contains_trees()
    }

    /// The spec's overlays, as the C strings `mount_overlays` needs (made
    /// before the fork: the child allocates nothing). An overlay asked of
    /// an executor that cannot mount one is refused (`EPERM`): the daemon
    /// asks only when [`Executor::overlays`] says yes.
    fn overlay_mounts(&self, spec: &ProcessSpec) -> Result<Vec<OverlayMount>, i32> {
        let Some(isolation) = spec.isolation.as_ref().filter(|_| self.isolate) else {
            return Ok(Vec::new());
        };
        let c = |s: &[u8]| std::ffi::CString::new(s).map_err(|_| libc::EINVAL);
        let mut mounts = Vec::new();
        for mount in &isolation.mounts {
            let Some(layers) = &mount.layers else { continue };
            if !self.overlays() {
                return Err(libc::EPERM);
            }
            use std::os::unix::ffi::OsStrExt as _;
            mounts.push(OverlayMount {
                target: c(mount.path.as_os_str().as_bytes())?,
                options: c(layers.options().as_bytes())?,
            });
        }
        Ok(mounts)
    }

    pub(super) async fn start(&self, spec: &ProcessSpec) -> Result<Started, i32> {
        let program = resolve(&spec.program, spec.cwd.as_deref())?;
        // Written by the shim, read once the process ended.
        let report = match self.has_exec_shim() {
            true => Some(std::io::pipe().map_err(|e| e.raw_os_error().unwrap_or(0))?),
            false => None,
        };
        let line =
            self.command_line(spec, &program, report.as_ref().map(|(_, w)| w.as_raw_fd()))?;
        let mut command = Command::new(&line[0]);
        command.args(&line[1..]);
        command
            .args(&spec.args)
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a SIGKILL reaches what it started in it.
            .process_group(0)
            .kill_on_drop(true);
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        command.envs(spec.secrets.env());
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        // The lifeline: the daemon holds the only write end (close-on-exec,
        // so no other child keeps it), the supervisor reads it as stdin. The
        // kernel closes it however the daemon dies, so the supervisor always
        // learns of it, whatever became of parent-death signals.
        let (lifeline_in, lifeline) = std::io::pipe().map_err(|e| e.raw_os_error().unwrap_or(0))?;
        command.stdin(Stdio::from(lifeline_in));
        let daemon = std::process::id() as libc::pid_t;
        let report_fd = report.as_ref().map(|(_, writer)| writer.as_raw_fd());
        let overlays = self.overlay_mounts(spec)?;
        // SAFETY: the closure runs in the forked child of a multi-threaded
        // process, so it calls only async-signal-safe system calls and
        // allocates nothing (see `supervise_or_become_child`).
        unsafe {
            command.pre_exec(move || {
                supervise_or_become_child(daemon)?;
                // Before bubblewrap, in a mount namespace of the program's
                // own: the overlay is never seen outside it, and goes when
                // the program's tree does.
                if !overlays.is_empty() {
                    mount_overlays(&overlays)?;
                }
                // The shim's report pipe goes through bubblewrap to the shim,
                // which closes it on exec.
                if let Some(fd) = report_fd
                    && libc::fcntl(fd, libc::F_SETFD, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| e.raw_os_error().unwrap_or(0))?;
        // Only the child's copies of the write end may stay open.
        let report = report.map(|(reader, _writer)| reader);
        // Large pipes: a fast writer runs a megabyte ahead of the reader
        // instead of 64 KiB, and both sides make fewer, larger calls. Where
        // the system refuses (an unprivileged limit), the default stays.
        let pipes =
            [child.stdout.as_ref().map(AsFd::as_fd), child.stderr.as_ref().map(AsFd::as_fd)];
        for pipe in pipes.into_iter().flatten() {
            let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        Ok(Started { child, _lifeline: lifeline, report })
    }

    /// SIGTERM to the tree, then SIGKILL after the grace period if the main
    /// process is still there, then waits for it.
    async fn end_tree(
        &self,
        child: &mut Child,
        graceful: bool,
    ) -> Option<std::process::ExitStatus> {
        let Some(pid) = child.id().map(|p| p as i32) else { return child.wait().await.ok() };
        if graceful {
            // Not the supervisor, and not bubblewrap itself: ended first, it
            // would take its namespace down with SIGKILL and no grace.
            let below = match self.containment {
                Containment::PidNamespace { .. } => 2,
                Containment::ProcessGroup => 1,
            };
            let targets: Vec<i32> = tree(pid)
                .into_iter()
                .filter(|&(_, depth)| depth >= below)
                .map(|(p, _)| p)
                .collect();
            signal_all(&targets, libc::SIGTERM);
            if let Ok(status) = tokio::time::timeout(self.grace, child.wait()).await {
                // The main process is gone; whatever it left in its group goes too.
                kill_group(pid);
                return status.ok();
            }
        }
        let leftovers = descendants(pid);
        // Under bubblewrap, killing it kills the namespace's init, and with it
        // every process in the namespace.
        kill_group(pid);
        signal_all(&[pid], libc::SIGKILL);
        signal_all(&leftovers, libc::SIGKILL);
        child.wait().await.ok()
    }

    fn exit_of(&self, status: std::process::ExitStatus) -> ProcessEnd {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            // bubblewrap reports a child killed by signal N as exit 128 + N.
            (Some(code), _)
                if matches!(self.containment, Containment::PidNamespace { .. })
                    && (129..=128 + 64).contains(&code) =>
            {
                ProcessEnd::Signaled(code - 128)
            }
            (Some(code), _) => ProcessEnd::Exited(code),
            (None, Some(signal)) => ProcessEnd::Signaled(signal),
            (None, None) => ProcessEnd::Exited(-1),
        }
    }
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        spec: ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: CancellationToken,
    ) -> BoxFuture<'_, Finished> {
        Box::pin(async move {
            let started = Instant::now();
            let elapsed =
                |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            if stop.is_cancelled() {
                let output = RawOutput {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    end: ProcessEnd::StillRunning,
                    duration_ms: Some(0),
                };
                return Finished { output, ended: Ended::Cancelled };
            }
            let Started { mut child, _lifeline: lifeline, report } = match self.start(&spec).await {
                Ok(started) => started,
                Err(errno) => {
                    let output = RawOutput {
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        end: ProcessEnd::SpawnError(errno),
                        duration_ms: Some(elapsed(started)),
                    };
                    return Finished { output, ended: Ended::Normally };
                }
            };
            let stdout = drain(
                child.stdout.take().and_then(|pipe| pipe.into_owned_fd().ok()),
                Stream::Stdout,
                sink.clone(),
                spec.secrets.clone(),
            );
            let stderr = drain(
                child.stderr.take().and_then(|pipe| pipe.into_owned_fd().ok()),
                Stream::Stderr,
                sink,
                spec.secrets.clone(),
            );
            let window = async {
                match spec.stop_after {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let bound = async {
                match spec.timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let (end, ended) = tokio::select! {
                status = child.wait() => (status.map_or(ProcessEnd::StillRunning, |s| self.exit_of(s)), Ended::Normally),
                () = window => {
                    self.end_tree(&mut child, false).await;
                    (ProcessEnd::StillRunning, Ended::Normally)
                }
                () = bound => {
                    self.end_tree(&mut child, true).await;
                    (ProcessEnd::StillRunning, Ended::TimedOut(spec.timeout.unwrap_or_default()))
                }
                () = stop.cancelled() => {
                    self.end_tree(&mut child, true).await;
                    (ProcessEnd::StillRunning, Ended::Cancelled)
                }
            };
            // A descendant may still hold the pipes: read on for a moment,
            // then end whatever is left and stop reading.
            let readers = async { (stdout.await, stderr.await) };
            tokio::pin!(readers);
            let (stdout, stderr) = match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut readers).await
            {
                Ok(done) => done,
                Err(_) => {
                    if let Some(pid) = child.id() {
                        kill_group(pid as i32);
                    }
                    match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut readers).await {
                        Ok(done) => done,
                        Err(_) => (Ok(Vec::new()), Ok(Vec::new())),
                    }
                }
            };
            // The program never started: the shim knows, whatever bubblewrap
            // printed and however it exited.
            let end = match report.map(|r| exec_shim::Report::read(&read_available(r))) {
                Some(exec_shim::Report::ExecFailed(errno)) if end != ProcessEnd::StillRunning => {
                    ProcessEnd::SpawnError(errno)
                }
                _ => end,
            };
            let output = RawOutput {
                stdout: stdout.unwrap_or_default(),
                stderr: stderr.unwrap_or_default(),
                end,
                duration_ms: Some(elapsed(started)),
            };
            crate::memory::give_back_freed();
            // Only now: while it is held, the supervisor keeps the tree.
            drop(lifeline);
            Finished { output, ended }
        })
    }

    fn describe(&self) -> String {
        match &self.containment {
            Containment::PidNamespace { bwrap } if self.isolate => format!(
                "local, each process tree in its own PID namespace, code under test sandboxed ({})",
                bwrap.display()
            ),
            Containment::PidNamespace { bwrap } => format!(
                "local, each process tree in its own PID namespace, code under test NOT sandboxed \
                 (isolation = \"none\") ({})",
                bwrap.display()
            ),
            Containment::ProcessGroup => "local, process groups only (bubblewrap not found: \
                 descendants that leave their group can outlive a timeout)"
                .into(),
        }
    }

    /// Whether code under test runs sandboxed: bubblewrap is here and
    /// isolation is not turned off.
    fn isolates(&self) -> bool {
        self.isolate && self.contains_trees()
    }

    fn overlays(&self) -> bool {
        self.isolates() && self.can_mount
    }

    /// Ends the sandboxes a previous daemon of the same owner left behind:
    /// orphans (adopted by init) whose command line carries the owner's mark.
    /// A child's parent-death signal normally ends them with the daemon; this
    /// catches one forked at the very moment the daemon was killed. Returns
    /// how many were ended.
    fn end_orphans(&self, _keep: &[String]) -> usize {
        let Some(owner) = &self.owner else { return 0 };
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let parent_of = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parent_in(&s))
        };
        let mut ended = 0;
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let marked = words
                .windows(3)
                .any(|w| w[0] == b"--setenv" && w[1] == b"SANDO_OWNER" && w[2] == owner.as_bytes());
            if !marked {
                continue;
            }
            // Adopted by init, or under a supervisor that was.
            let parent = parent_of(pid);
            let supervisor = parent.filter(|&p| p != 1 && parent_of(p) == Some(1));
            if parent == Some(1) || supervisor.is_some() {
                // Its whole tree: a bubblewrap whose parent-death signal never
                // came may not take its namespace down with it.
                let tree = descendants(pid);
                signal_all(&[supervisor.unwrap_or(pid), pid], libc::SIGKILL);
                signal_all(&tree, libc::SIGKILL);
                ended += 1;
            }
        }
        ended
    }
}

fn namespace_args() -> [&'static str; 8] {
    [
        "--dev-bind",
        "/",
        "/",
        "--unshare-pid",
        "--die-with-parent",
        "--proc",
        "/proc",
        "--new-session",
    ]
}

/// An overlay to mount in the child, before bubblewrap.
struct OverlayMount {
    target: std::ffi::CString,
    options: std::ffi::CString,
}

/// A private mount namespace for this process: what it mounts is seen by it
/// and its children only, and goes with them.
///
/// # Safety
/// Only in a forked, not exec'd, child: system calls only.
unsafe fn private_mounts() -> std::io::Result<()> {
    // SAFETY: plain system calls on this process's own namespace.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0
            || libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In the forked child: a private mount namespace, then each overlay.
/// Async-signal-safe system calls only, on strings made before the fork.
fn mount_overlays(mounts: &[OverlayMount]) -> std::io::Result<()> {
    // SAFETY: system calls on this (forked) process's own namespace, with
    // NUL-terminated strings that outlive them.
    unsafe {
        private_mounts()?;
        for m in mounts {
            if libc::mount(
                c"overlay".as_ptr(),
                m.target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                m.options.as_ptr().cast(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Whether this process can make a mount namespace (a daemon run as root)
/// and the kernel has overlayfs: tried once, in a child that does only that.
fn can_mount() -> bool {
    let overlayfs = std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.split_whitespace().last() == Some("overlay")));
    if !overlayfs {
        return false;
    }
    let mut probe = std::process::Command::new("/bin/sh");
    probe.args(["-c", "exit 0"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only system calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut probe, || private_mounts());
    }
    probe.status().is_ok_and(|s| s.success())
}

/// Finds the program as `execvp` would, so a missing one is a typed spawn
/// error (its errno) even when a wrapper starts it.
pub(crate) fn resolve(program: &str, cwd: Option<&Path>) -> Result<PathBuf, i32> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        let path = Path::new(program);
        vec![match (path.is_absolute(), cwd) {
            (false, Some(cwd)) => cwd.join(path),
            _ => path.to_path_buf(),
        }]
    } else {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).map(|p| p.join(program)).collect())
            .unwrap_or_default()
    };
    let mut errno = libc::ENOENT;
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                return Ok(candidate);
            }
            Ok(_) => errno = libc::EACCES,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => errno = libc::EACCES,
            Err(_) => {}
        }
    }
    Err(errno)
}

/// What is in `pipe` now, without waiting for writers that may still hold
/// it (bubblewrap keeps its copy until it exits). At most a few bytes.
fn read_available(pipe: std::io::PipeReader) -> Vec<u8> {
    let fd = pipe.as_raw_fd();
    let mut buf = [0u8; 16];
    // SAFETY: flags and a read on our own descriptor, into a live buffer.
    let read = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
    };
    buf[..usize::try_from(read).unwrap_or(0)].to_vec()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A started process and the daemon's end of its lifeline.
pub(super) struct Started {
    /// The supervisor (see [`supervise_or_become_child`]).
    pub(super) child: Child,
    /// Dropped when the daemon no longer waits for the process (or dies):
    /// the supervisor then ends the tree.
    pub(super) _lifeline: std::io::PipeWriter,
    /// What the exec shim wrote, when it runs ([`exec_shim`]).
    pub(super) report: Option<std::io::PipeReader>,
}

#[cfg(test)]
mod tests {
    use super::super::block_on;
    use super::super::testing::{Collect, alive, executor, run, sh};
    use super::*;

    #[test]
    fn streams_both_outputs_and_keeps_them() {
        let sink = Arc::new(Collect::default());
        let out = run(sh("echo out; echo err >&2; exit 3"), Some(sink.clone()));
        assert_eq!(out.output.end, ProcessEnd::Exited(3));
        assert_eq!(out.output.stdout, b"out\n");
        assert_eq!(out.output.stderr, b"err\n");
        let chunks = sink.0.lock().unwrap();
        assert!(chunks.contains(&(Stream::Stdout, b"out\n".to_vec())));
        assert!(chunks.contains(&(Stream::Stderr, b"err\n".to_vec())));
    }

    #[test]
    fn a_signal_is_reported_as_a_signal() {
        let out = run(sh("kill -ABRT $$"), None);
        assert_eq!(out.output.end, ProcessEnd::Signaled(libc::SIGABRT));
    }

    #[test]
    fn stop_after_ends_the_tree() {
        let started = Instant::now();
        let mut spec = sh("sleep 31.5 & echo up; wait");
        spec.stop_after = Some(Duration::from_millis(300));
        let out = run(spec, None);
        assert_eq!(out.output.end, ProcessEnd::StillRunning);
        assert_eq!(out.ended, Ended::Normally);
        assert_eq!(out.output.stdout, b"up\n");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!alive("sleep 31.5"));
    }

    #[test]
    fn a_timeout_ends_descendants_that_left_the_group() {
        let executor = executor();
        if !executor.contains_trees() {
            panic!("bubblewrap is needed (./x installs it): {}", executor.describe());
        }
        let started = Instant::now();
        let mut spec = sh("setsid sleep 32.5 & echo up; wait");
        spec.timeout = Some(Duration::from_millis(500));
        let out = block_on(executor.run(spec, None, CancellationToken::new()));
        assert_eq!(out.ended, Ended::TimedOut(Duration::from_millis(500)));
        assert_eq!(out.output.stdout, b"up\n");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert!(!alive("sleep 32.5"));
    }

    #[test]
    fn a_descendant_holding_the_pipe_does_not_hold_the_reader() {
        // The main process exits at once; its detached child keeps stdout.
        let started = Instant::now();
        let out = run(sh("setsid sleep 33.5 & echo done"), None);
        assert_eq!(out.output.end, ProcessEnd::Exited(0));
        assert_eq!(out.output.stdout, b"done\n");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn cancellation_ends_the_tree_with_sigterm_first() {
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
        });
        // The trap proves SIGTERM came first: it prints before exiting.
        let script = "trap 'echo terminated; exit 0' TERM; echo up; sleep 34.5 & wait";
        let out = block_on(executor().run(sh(script), None, stop));
        assert_eq!(out.ended, Ended::Cancelled);
        assert_eq!(String::from_utf8_lossy(&out.output.stdout), "up\nterminated\n");
        assert!(!alive("sleep 34.5"));
    }

    #[test]
    fn spawn_errors_carry_errno() {
        let spec = ProcessSpec { program: "/nonexistent/tool".into(), ..ProcessSpec::default() };
        assert_eq!(run(spec, None).output.end, ProcessEnd::SpawnError(libc::ENOENT));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-a-program");
        std::fs::write(&plain, "data").unwrap();
        let spec = ProcessSpec { program: plain.display().to_string(), ..ProcessSpec::default() };
        assert_eq!(run(spec, None).output.end, ProcessEnd::SpawnError(libc::EACCES));
        let spec = ProcessSpec { program: "no-such-tool-here".into(), ..ProcessSpec::default() };
        assert_eq!(run(spec, None).output.end, ProcessEnd::SpawnError(libc::ENOENT));
    }
}
