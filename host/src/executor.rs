//! Starting processes: the one `Executor` seam everything that starts a process goes through, and `LocalExecutor`, which runs them on this machine, each in its own PID namespace.
//!
//! A process is bounded three ways: an expected end (`stop_after`, boot
//! smoke's window: reported `still_running`), a timeout, and cancellation
//! (both reported in [`Ended`]). Ending a process ends its whole tree,
//! including descendants that left its process group: under bubblewrap the
//! tree lives in its own PID namespace, which the kernel empties when the
//! namespace's first process dies. Children die with the daemon: each
//! program runs under a small supervisor (the forked child that never
//! execs) which ends it when its lifeline, a pipe only the daemon writes,
//! closes; parent-death signals and bubblewrap's `--die-with-parent` back
//! that up.

pub mod exec_shim;

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::process::{Child, Command};
pub use tokio_util::sync::CancellationToken;

use crate::domain::{ProcessEnd, RawOutput, Unframed};
pub use crate::run_as::RunAs;

/// How much of each stream is kept for the classifier: the end of a tool's
/// output is where its verdict is (libtest's and nextest's summaries, cargo's
/// and sqlx's errors). The whole output goes to the sink.
pub const KEPT_TAIL: usize = 8 << 20;

/// After the main process ended, how long its output may keep arriving from
/// descendants that hold the pipes before the tree is ended.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

pub use crate::domain::Stream;

/// Receives output as the process writes it (the run's log file, WebSocket
/// subscribers). Called from one reader task per stream.
pub trait LogSink: Send + Sync {
    fn chunk(&self, stream: Stream, bytes: Bytes);

    /// A chunk as a pipe reader hands it over: its bytes with room before
    /// them, where a sink that frames them (the live log) can put its
    /// header instead of copying the bytes. Returns the bytes.
    fn chunk_with_room(&self, stream: Stream, chunk: Unframed) -> Bytes {
        let bytes = chunk.into_bytes();
        self.chunk(stream, bytes.clone());
        bytes
    }
}

/// What to start, and its bounds.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Added to a cleared environment (only `PATH` and `HOME` pass through).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// An expected end: stop watching after this long, end the tree, and
    /// report `still_running` (boot smoke's stay-up window).
    pub stop_after: Option<Duration>,
    /// A bound: after this long the tree is ended and [`Ended::TimedOut`]
    /// says so.
    pub timeout: Option<Duration>,
    /// What the process may see of the machine: for the code under test.
    /// `None` for the daemon's own tools (git, deploy and health commands).
    pub isolation: Option<Isolation>,
    /// Added to its environment, and masked in everything it prints.
    pub secrets: Arc<Secrets>,
}

/// The operator's `secret_env`: variables taken from the daemon's
/// environment and given to the processes that need them. Their values
/// never leave the executor in what a process printed: each occurrence is
/// overwritten with `*` (the same length, so byte offsets hold), even when
/// it arrives split across two reads.
#[derive(Clone, Default)]
pub struct Secrets {
    pairs: Vec<(String, String)>,
}

/// Shorter values would mask ordinary output and cannot be kept out of it.
pub const SHORTEST_SECRET: usize = 8;

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Secrets({})", names.join(", "))
    }
}

impl Secrets {
    /// Reads `names` from this process's environment; the error names the
    /// first that is missing, not Unicode, or too short to mask.
    pub fn from_env(names: &[String]) -> Result<Secrets, String> {
        let mut pairs = Vec::new();
        for name in names {
            let value = match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("{name} is not set in sando's environment"));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("{name} is not valid UTF-8"));
                }
            };
            if value.len() < SHORTEST_SECRET {
                return Err(format!(
                    "{name} is shorter than {SHORTEST_SECRET} bytes, too short to mask in logs"
                ));
            }
            pairs.push((name.clone(), value));
        }
        Ok(Secrets { pairs })
    }

    /// The variables, for a process's environment.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Overwrites every occurrence of a value in `bytes` with `*`.
    pub fn mask(&self, bytes: &mut [u8]) {
        for (_, value) in &self.pairs {
            let finder = memchr::memmem::Finder::new(value.as_bytes());
            let mut from = 0;
            while let Some(at) = finder.find(&bytes[from..]) {
                let start = from + at;
                bytes[start..start + value.len()].fill(b'*');
                from = start + value.len();
            }
        }
    }

    /// How many bytes at the end of `bytes` (already masked) begin a value
    /// not yet complete, and must wait for the next read: only those. A
    /// fixed count would hold back the end of every read, so a finished
    /// line would not show live until more output came, and the other
    /// stream's output would land in the log inside it.
    fn incomplete_at_end(&self, bytes: &[u8]) -> usize {
        self.pairs
            .iter()
            .filter_map(|(_, value)| {
                let value = value.as_bytes();
                (1..value.len().min(bytes.len() + 1))
                    .rev()
                    .find(|&len| bytes.ends_with(&value[..len]))
            })
            .max()
            .unwrap_or(0)
    }
}

/// A sandbox for code under test: the root read-only, a private `/tmp`, no
/// network, the daemon's files invisible, and only what the version needs
/// writable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Invisible inside: a directory is empty, a file reads as empty.
    pub hidden: Vec<PathBuf>,
    /// Writable inside, even within a hidden directory (the work tree).
    pub writable: Vec<PathBuf>,
    /// Readable inside, even within a hidden directory (the artifact or the
    /// backup a gate is given).
    pub readable: Vec<PathBuf>,
    /// Keep the host's network (else only a private loopback).
    pub network: bool,
    /// The unprivileged user the process runs as, else root without
    /// capabilities.
    pub run_as: Option<RunAs>,
}

impl Isolation {
    /// This sandbox with what a process is started with readable at its own
    /// path: `program`, the exec shim, and each argument that is an existing
    /// absolute path. So a program or file under a directory the sandbox
    /// replaces (`/tmp`) or closes to `run_as` is still there. Never what
    /// the sandbox hides, and never over what it already makes writable.
    pub fn with_programs(&self, program: &Path, shim: Option<&Path>, args: &[String]) -> Isolation {
        let mut isolation = self.clone();
        let within = |p: &Path, dirs: &[PathBuf]| dirs.iter().any(|d| p.starts_with(d));
        let paths = args
            .iter()
            .map(Path::new)
            .filter(|p| p.is_absolute() && p.parent().is_some() && p.exists());
        for path in std::iter::once(program).chain(shim).chain(paths) {
            if !within(path, &self.hidden)
                && !within(path, &self.writable)
                && !isolation.readable.iter().any(|r| r == path)
            {
                isolation.readable.push(path.to_path_buf());
            }
        }
        isolation
    }

    /// bubblewrap's arguments for this sandbox, before `--`.
    fn bwrap_args(&self, cwd: Option<&Path>) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut push =
            |words: &[&std::ffi::OsStr]| args.extend(words.iter().map(|w| w.to_os_string()));
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        push(&[os("--ro-bind"), os("/"), os("/"), os("--dev"), os("/dev")]);
        push(&[os("--proc"), os("/proc"), os("--perms"), os("1777"), os("--tmpfs"), os("/tmp")]);
        if let Some(user) = &self.run_as {
            let needed: Vec<&Path> =
                self.writable.iter().chain(&self.readable).map(PathBuf::as_path).collect();
            args.extend(user.open_ways(&needed));
        }
        let mut push =
            |words: &[&std::ffi::OsStr]| args.extend(words.iter().map(|w| w.to_os_string()));
        // Each mount point's parents first, as directories anyone may enter:
        // bubblewrap makes missing parents private to root, which would shut
        // out a `run_as` user. Parents that exist are left as they are.
        let binds = |push: &mut dyn FnMut(&[&std::ffi::OsStr])| {
            let writable = self.writable.iter().map(|p| (os("--bind"), p));
            let readable = self.readable.iter().map(|p| (os("--ro-bind"), p));
            for (how, path) in writable.chain(readable).filter(|(_, p)| p.exists()) {
                if let Some(parent) = path.parent() {
                    push(&[os("--dir"), parent.as_os_str()]);
                }
                push(&[how, path.as_os_str(), path.as_os_str()]);
            }
        };
        binds(&mut push);
        for path in &self.hidden {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => push(&[os("--tmpfs"), path.as_os_str()]),
                Ok(_) => push(&[os("--ro-bind"), os("/dev/null"), path.as_os_str()]),
                Err(_) => {}
            }
        }
        // Again, over the hidden paths that hold them (bubblewrap mounts in
        // order), then the hidden directories made read-only around them.
        binds(&mut push);
        for path in self.hidden.iter().filter(|p| p.is_dir()) {
            push(&[os("--remount-ro"), path.as_os_str()]);
        }
        push(&[os("--unshare-pid"), os("--unshare-ipc"), os("--unshare-uts")]);
        push(&[os("--unshare-cgroup-try"), os("--die-with-parent"), os("--new-session")]);
        // Root inside without a capability: it cannot remount, unmount what
        // hides the daemon's files, or trace. `setpriv` alone may change user.
        push(&[os("--cap-drop"), os("ALL")]);
        if self.run_as.is_some() {
            push(&[os("--cap-add"), os("CAP_SETUID"), os("--cap-add"), os("CAP_SETGID")]);
        }
        if !self.network {
            push(&[os("--unshare-net")]);
        }
        if let Some(cwd) = cwd {
            push(&[os("--chdir"), cwd.as_os_str()]);
        }
        args
    }
}

/// Why a process stopped, beyond its own exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited, was killed by something else, or reached `stop_after`.
    Normally,
    /// It ran past its timeout; its tree was ended.
    TimedOut(Duration),
    /// Its cancellation token fired; its tree was ended.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub output: RawOutput,
    pub ended: Ended,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where processes run. Local today; a remote executor (a Kubernetes Job, a
/// Nomad batch job) must provide the same three things: output streamed to
/// the sink as it is written, cancellation that ends everything the process
/// started, and the exit status (or spawn errno) as a `ProcessEnd`.
pub trait Executor: Send + Sync {
    fn run(
        &self,
        spec: ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: CancellationToken,
    ) -> BoxFuture<'_, Finished>;

    /// One line for `/api/state` and start-up: how processes are contained.
    fn describe(&self) -> String;
}

/// Runs `future` to its end from synchronous code (a runner's `spawn`
/// import): on the current runtime from a blocking task, else on a small
/// runtime of its own on a thread of its own.
pub fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a current-thread runtime")
                        .block_on(future)
                })
                .join()
                .expect("the process thread does not panic")
        }),
    }
}

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
        LocalExecutor { containment, grace, isolate: true, owner: None, exec_shim: None }
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

    /// Ends the sandboxes a previous daemon of the same owner left behind:
    /// orphans (adopted by init) whose command line carries the owner's mark.
    /// A child's parent-death signal normally ends them with the daemon; this
    /// catches one forked at the very moment the daemon was killed. Returns
    /// how many were ended.
    pub fn end_orphans(&self) -> usize {
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

    /// Runs code under test without a filesystem or network sandbox (an
    /// operator's `isolation = "none"`). Trees still get a PID namespace.
    pub fn without_isolation(mut self) -> LocalExecutor {
        self.isolate = false;
        self
    }

    /// Whether code under test runs sandboxed: bubblewrap is here and
    /// isolation is not turned off.
    pub fn isolates(&self) -> bool {
        self.isolate && self.contains_trees()
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

    async fn start(&self, spec: &ProcessSpec) -> Result<Started, i32> {
        let program = resolve(&spec.program, spec.cwd.as_deref())?;
        // Written by the shim, read once the process ended.
        let mut report: Option<(std::io::PipeReader, std::io::PipeWriter)> = None;
        let mut command = match &self.containment {
            Containment::PidNamespace { bwrap } => {
                let mut command = Command::new(bwrap);
                let shim = self.exec_shim.as_deref();
                let mut run_as = None;
                match spec.isolation.as_ref().filter(|_| self.isolate) {
                    Some(isolation) => {
                        let isolation = isolation.with_programs(&program, shim, &spec.args);
                        command.args(isolation.bwrap_args(spec.cwd.as_deref()));
                        run_as = isolation.run_as;
                    }
                    None => {
                        command.args(namespace_args());
                    }
                }
                if let Some(owner) = &self.owner {
                    command.args(["--setenv", "SANDO_OWNER", owner]);
                }
                command.arg("--");
                if let Some(user) = &run_as {
                    command.args(user.setpriv(&resolve("setpriv", None)?));
                }
                if let Some(shim) = shim {
                    let pipe = std::io::pipe().map_err(|e| e.raw_os_error().unwrap_or(0))?;
                    command.arg(shim).args(exec_shim::args(pipe.1.as_raw_fd()));
                    report = Some(pipe);
                }
                command.arg(&program);
                command
            }
            Containment::ProcessGroup => Command::new(&program),
        };
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
        // SAFETY: the closure runs in the forked child of a multi-threaded
        // process, so it calls only async-signal-safe system calls and
        // allocates nothing (see `supervise_or_become_child`).
        unsafe {
            command.pre_exec(move || {
                supervise_or_become_child(daemon)?;
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
}

/// `text` with the password of every `scheme://user:password@host` replaced
/// by `***`, for command lines echoed into logs.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first '/', whitespace or quote.
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@').and_then(|a| authority[..a].find(':').map(|c| (c, a))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
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

/// Every process below `root`, from `/proc`'s parent links. Inside a PID
/// namespace orphans are adopted by the namespace's init, so they stay below.
fn descendants(root: i32) -> Vec<i32> {
    tree(root).into_iter().map(|(pid, _)| pid).collect()
}

/// Every process below `root` with its depth (1: a child of `root`).
fn tree(root: i32) -> Vec<(i32, usize)> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(ppid) = parent_in(&stat) else { continue };
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![(root, 0)];
    while let Some((pid, depth)) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push((child, depth + 1));
            stack.push((child, depth + 1));
        }
    }
    found
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`,
/// where comm may hold spaces and parentheses.
fn parent_in(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok())
}

/// A started process and the daemon's end of its lifeline.
struct Started {
    /// The supervisor (see [`supervise_or_become_child`]).
    child: Child,
    /// Dropped when the daemon no longer waits for the process (or dies):
    /// the supervisor then ends the tree.
    _lifeline: std::io::PipeWriter,
    /// What the exec shim wrote, when it runs ([`exec_shim`]).
    report: Option<std::io::PipeReader>,
}

/// Runs in the forked child, before `exec`. It forks once more: the new
/// child returns and becomes the program (bubblewrap or the command), with
/// `/dev/null` as stdin and a parent-death signal; this process stays as its
/// supervisor and never returns. The supervisor closes every other
/// descriptor, then waits for either the program's end (and exits the same
/// way) or the end of its lifeline, stdin, whose write end only the daemon
/// holds: the daemon is gone or has let go, so it kills the program and its
/// process group. Parent-death signals alone were seen not to end a sandbox
/// whose daemon was killed; a closed pipe is what the kernel guarantees.
///
/// # Safety
/// Call only between `fork` and `exec` (a `pre_exec` closure): it uses only
/// async-signal-safe system calls and allocates nothing.
unsafe fn supervise_or_become_child(daemon: libc::pid_t) -> std::io::Result<()> {
    // SAFETY (whole body): raw system calls on this process's own state and
    // its own child; no memory is shared with the parent.
    unsafe {
        if libc::getppid() != daemon {
            // The daemon died right after the fork: start nothing.
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        let supervisor = libc::getpid();
        let child = libc::fork();
        if child < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if child == 0 {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != supervisor {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null < 0 || libc::dup2(null, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(null);
            return Ok(());
        }
        supervise(child)
    }
}

/// The supervisor's loop (see [`supervise_or_become_child`]).
///
/// # Safety
/// Only in a forked, not exec'd, child; `child` is its own child.
unsafe fn supervise(child: libc::pid_t) -> ! {
    // SAFETY (whole body): as for `supervise_or_become_child`.
    unsafe {
        // Keep only the lifeline: the output pipes belong to the program,
        // and copies of the daemon's descriptors (other lifelines among them)
        // must not be held open here.
        if libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32) != 0 {
            for fd in 1..4096 {
                libc::close(fd);
            }
        }
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0u32) as libc::c_int;
        loop {
            let mut fds = [
                libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
            ];
            // Without a pidfd (kernels before 5.3), look at the child 10
            // times a second.
            let (count, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 100) };
            let ready = libc::poll(fds.as_mut_ptr(), count, timeout);
            let mut status = 0;
            if libc::waitpid(child, &mut status, libc::WNOHANG) == child {
                exit_as(status);
            }
            if ready > 0 && fds[0].revents != 0 {
                let mut byte = 0u8;
                let read = libc::read(0, (&raw mut byte).cast(), 1);
                let interrupted =
                    read < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
                if read <= 0 && !interrupted {
                    // Under bubblewrap the program's child is the namespace's
                    // init: killed, the kernel ends the whole namespace, with
                    // no parent-death signal to rely on.
                    kill_children_of(child);
                    libc::kill(child, libc::SIGKILL);
                    libc::kill(0, libc::SIGKILL);
                    libc::_exit(128 + libc::SIGKILL);
                }
            }
        }
    }
}

/// SIGKILLs the children of `pid`, read from
/// `/proc/<pid>/task/<pid>/children` into a buffer on the stack.
///
/// # Safety
/// As for [`supervise`]: no allocation, system calls only.
unsafe fn kill_children_of(pid: libc::pid_t) {
    // "/proc/" + pid + "/task/" + pid + "/children\0"
    let mut path = [0u8; 64];
    let mut len = 0;
    let mut put = |bytes: &[u8], len: &mut usize| {
        for &b in bytes {
            if *len < path.len() - 1 {
                path[*len] = b;
                *len += 1;
            }
        }
    };
    let mut digits = [0u8; 12];
    let mut n = 0;
    let mut value = pid.unsigned_abs();
    loop {
        digits[digits.len() - 1 - n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 || n == digits.len() {
            break;
        }
    }
    let number = &digits[digits.len() - n..];
    put(b"/proc/", &mut len);
    put(number, &mut len);
    put(b"/task/", &mut len);
    put(number, &mut len);
    put(b"/children", &mut len);
    // SAFETY (whole body): open/read/close/kill on a path we built; the
    // buffer outlives every call that uses it.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 512];
        let read = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        let Ok(read) = usize::try_from(read) else { return };
        let mut current: libc::pid_t = 0;
        for &b in &buf[..read] {
            if b.is_ascii_digit() {
                current = current.saturating_mul(10).saturating_add(libc::pid_t::from(b - b'0'));
            } else {
                if current > 0 {
                    libc::kill(current, libc::SIGKILL);
                }
                current = 0;
            }
        }
        if current > 0 {
            libc::kill(current, libc::SIGKILL);
        }
    }
}

/// Ends the supervisor the way its child ended: the same exit code, or the
/// same signal (without a core file of its own).
///
/// # Safety
/// As for [`supervise`].
unsafe fn exit_as(status: libc::c_int) -> ! {
    // SAFETY (whole body): as for `supervise_or_become_child`.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill(2) sends a signal; it touches no memory of ours.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we
    // created for the child; it touches no memory of ours.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Reads a pipe to its end in large reads, on a thread of its own, passing
/// every chunk on to the sink as shared bytes (never copied here) and
/// keeping the last `KEPT_TAIL` bytes: the same chunks, by reference.
///
/// A thread, not a task: the kernel wakes it the moment the pipe has data,
/// so a gate printing at full speed never waits for a tokio worker that is
/// busy serving subscribers (their frames and resumes). A task measured
/// 0.6 of `cat` with a subscriber reading at full speed on two cores (see
/// `BENCHMARKS.md`). The thread gives up, without waiting for the end of
/// the pipe, once nobody awaits its result: a descendant that escaped and
/// holds the pipe open costs no thread for longer than `POLL_EVERY`.
fn drain(
    pipe: Option<std::os::fd::OwnedFd>,
    stream: Stream,
    sink: Option<Arc<dyn LogSink>>,
    secrets: Arc<Secrets>,
) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
    let (done, tail) = tokio::sync::oneshot::channel();
    let Some(pipe) = pipe else {
        let _ = done.send(Vec::new());
        return tail;
    };
    let reader = move || {
        let tail = read_to_end(&pipe, stream, || done.is_closed(), sink, &secrets);
        let _ = done.send(tail);
    };
    let name = match stream {
        Stream::Stdout => "sando-stdout",
        Stream::Stderr => "sando-stderr",
    };
    if let Err(e) = std::thread::Builder::new().name(name.to_owned()).spawn(reader) {
        // The pipe closes with the closure: the process sees a broken pipe.
        tracing::error!(error = %e, "cannot start a thread to read a process's output");
    }
    tail
}

/// How often a reader with nothing to read checks whether it is still wanted.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The body of [`drain`]'s thread: reads until the end of the pipe, or
/// until `abandoned` (checked before every read, and at least every
/// `POLL_EVERY` while the pipe is quiet).
fn read_to_end(
    pipe: &std::os::fd::OwnedFd,
    stream: Stream,
    abandoned: impl Fn() -> bool,
    sink: Option<Arc<dyn LogSink>>,
    secrets: &Secrets,
) -> Vec<u8> {
    use std::os::fd::AsRawFd as _;
    const ROOM: usize = Unframed::ROOM;
    let fd = pipe.as_raw_fd();
    let mut tail = Tail::default();
    // Room for a live frame's header, then what was read and not yet passed
    // on: at most the end of a read that may be the start of a secret the
    // next read completes (nothing without secrets).
    let mut buf = BytesMut::with_capacity(ROOM + READ_SIZE);
    buf.put_bytes(0, ROOM);
    let mut pass_on = |chunk: BytesMut| {
        let chunk = Unframed::new(chunk);
        let bytes = match &sink {
            Some(sink) => sink.chunk_with_room(stream, chunk),
            None => chunk.into_bytes(),
        };
        tail.push(bytes);
    };
    while !abandoned() {
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(READ_SIZE);
        }
        let mut ready = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll(2) on one pollfd that lives across the call.
        let polled = unsafe { libc::poll(&mut ready, 1, POLL_EVERY.as_millis() as libc::c_int) };
        if polled <= 0 {
            // Nothing yet (or a signal): still wanted?
            continue;
        }
        // A chunk is at most `READ_SIZE` (held back bytes included), so it
        // goes out live in one frame.
        let waiting = buf.len() - ROOM;
        let room =
            (buf.capacity() - buf.len()).min(READ_SIZE.saturating_sub(waiting).max(MIN_READ));
        match crate::read_into::read_into(pipe.as_fd(), &mut buf, room, None) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                secrets.mask(&mut buf[ROOM..]);
                let ready = buf.len() - ROOM - secrets.incomplete_at_end(&buf[ROOM..]);
                if ready > 0 {
                    let chunk = buf.split_to(ROOM + ready);
                    // The next chunk's room goes before what was held back,
                    // in a buffer with room for a whole read (else `put`
                    // would grow it by bytes' default, 64 KiB at a time).
                    let held = buf.split();
                    if buf.capacity() < ROOM + held.len() + MIN_READ {
                        buf.reserve(ROOM + held.len() + READ_SIZE);
                    }
                    buf.put_bytes(0, ROOM);
                    buf.extend_from_slice(&held);
                    pass_on(chunk);
                }
            }
        }
    }
    if buf.len() > ROOM {
        pass_on(buf.split());
    }
    tail.into_vec()
}

/// How much of a pipe one read takes at most: a quarter of it, so a fast
/// writer fills the rest while the chunk is written and sent (a whole
/// pipe per read measured the same speed with more memory held).
pub const READ_SIZE: usize = 256 << 10;

/// The size asked for each output pipe.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A read takes at least this much room: below it, a new buffer. Reads
/// fill one buffer in turn, so small chunks kept in the tail share their
/// buffers instead of holding one each.
const MIN_READ: usize = 16 << 10;

/// The last `KEPT_TAIL` bytes of a stream, as the chunks that held them.
#[derive(Default)]
struct Tail {
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl Tail {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        self.chunks.push_back(bytes);
        while self.len > KEPT_TAIL {
            let front = self.chunks.front_mut().expect("longer than the bound, so not empty");
            let over = self.len - KEPT_TAIL;
            if front.len() <= over {
                self.len -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(over);
                self.len -= over;
            }
        }
    }

    /// The tail in one piece; each chunk is let go of once copied, so the
    /// tail is not held twice over.
    fn into_vec(self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Stream, Vec<u8>)>>);

    impl LogSink for Collect {
        fn chunk(&self, stream: Stream, bytes: Bytes) {
            self.0.lock().unwrap().push((stream, bytes.to_vec()));
        }
    }

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            ..ProcessSpec::default()
        }
    }

    fn executor() -> LocalExecutor {
        LocalExecutor::detect(Duration::from_secs(2))
    }

    fn run(spec: ProcessSpec, sink: Option<Arc<dyn LogSink>>) -> Finished {
        block_on(executor().run(spec, sink, CancellationToken::new()))
    }

    /// Whether any process's command line holds `marker`.
    fn alive(marker: &str) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
        })
    }

    /// Waits up to `within` for `check` to hold.
    fn eventually(within: Duration, check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        check()
    }

    #[test]
    fn letting_go_of_the_lifeline_ends_the_tree_without_parent_death_signals() {
        use std::os::unix::process::ExitStatusExt;
        // A grandchild has no parent-death signal of its own, so only the
        // supervisor's answer to the closed lifeline can end it here.
        let grouped = LocalExecutor { containment: Containment::ProcessGroup, ..executor() };
        for (executor, marker) in [(executor(), "sleep 917"), (grouped, "sleep 918")] {
            block_on(async {
                let spec = sh(&format!("{marker} & wait"));
                let Started { mut child, _lifeline: lifeline, .. } =
                    executor.start(&spec).await.expect("starts");
                assert!(eventually(Duration::from_secs(10), || alive(marker)), "{marker} started");
                drop(lifeline);
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .expect("the supervisor ends")
                    .unwrap();
                assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
            });
            assert!(eventually(Duration::from_secs(5), || !alive(marker)), "{marker} is left");
        }
    }

    #[test]
    fn the_supervisor_exits_as_its_program_did() {
        use std::os::unix::process::ExitStatusExt;
        let grouped = LocalExecutor { containment: Containment::ProcessGroup, ..executor() };
        block_on(async {
            let Started { mut child, _lifeline, .. } =
                grouped.start(&sh("kill -TERM $$")).await.expect("starts");
            assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
            let Started { mut child, _lifeline, .. } =
                grouped.start(&sh("exit 7")).await.expect("starts");
            assert_eq!(child.wait().await.unwrap().code(), Some(7));
        });
    }

    #[test]
    fn secrets_are_given_and_masked_even_split_across_reads() {
        let secrets = Arc::new(Secrets {
            pairs: vec![("SANDO_TEST_SECRET".into(), "hunter2-long-value".into())],
        });
        let script = r#"printf '%s\n' "$SANDO_TEST_SECRET"; printf 'x hunter2-lo'; sleep 0.3; printf 'ng-value y\n'"#;
        let spec = ProcessSpec { secrets, ..sh(script) };
        let sink = Arc::new(Collect::default());
        let out = run(spec, Some(sink.clone()));
        let masked = b"******************\nx ****************** y\n".to_vec();
        assert_eq!(String::from_utf8_lossy(&out.output.stdout), String::from_utf8_lossy(&masked));
        let streamed: Vec<u8> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(stream, _)| *stream == Stream::Stdout)
            .flat_map(|(_, bytes)| bytes.clone())
            .collect();
        assert_eq!(streamed, masked);
        assert!(!format!("{:?}", Secrets::default()).contains("hunter2"));
    }

    /// `drain` of a pipe's read end, into a `Collect`, as the executor starts it.
    fn drain_into_collect(
        reader: std::io::PipeReader,
    ) -> (Arc<Collect>, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let collect = Arc::new(Collect::default());
        let sink = Some(collect.clone() as Arc<dyn LogSink>);
        let tail = drain(Some(reader.into()), Stream::Stdout, sink, Arc::new(Secrets::default()));
        (collect, tail)
    }

    #[test]
    fn a_full_pipe_is_read_in_whole_reads_each_one_chunk() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let (reader, mut writer) = std::io::pipe().unwrap();
        // SAFETY: F_SETPIPE_SZ on a pipe this test owns.
        let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        assert!(size >= PIPE_SIZE);
        let written: Vec<u8> = (0..PIPE_SIZE as usize).map(|i| (i % 251) as u8).collect();
        writer.write_all(&written).unwrap();
        drop(writer);
        let (collect, tail) = drain_into_collect(reader);
        assert_eq!(tail.blocking_recv().unwrap(), written);
        let chunks = collect.0.lock().unwrap();
        let sizes: Vec<usize> = chunks.iter().map(|(_, bytes)| bytes.len()).collect();
        assert_eq!(sizes, vec![READ_SIZE; PIPE_SIZE as usize / READ_SIZE], "one read, one chunk");
    }

    #[test]
    fn a_reader_nobody_awaits_lets_go_of_a_pipe_still_held_open() {
        use std::io::Write as _;
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (collect, tail) = drain_into_collect(reader);
        writer.write_all(b"before\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while collect.0.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the reader passes on what it reads");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The writer stays open (a descendant that escaped); nobody waits.
        drop(tail);
        let deadline = Instant::now() + POLL_EVERY * 10;
        loop {
            match writer.write_all(b"after\n") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                Err(e) => panic!("{e}"),
                Ok(()) => {}
            }
            assert!(Instant::now() < deadline, "the reader still holds the pipe");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(collect.0.lock().unwrap()[0], (Stream::Stdout, b"before\n".to_vec()));
    }

    #[test]
    fn only_the_start_of_a_secret_waits_for_the_next_read() {
        let secrets = Secrets { pairs: vec![("S".into(), "hunter2-long-value".into())] };
        let mut line = b"the tests see hunter2-long-value\n".to_vec();
        secrets.mask(&mut line);
        assert_eq!(secrets.incomplete_at_end(&line), 0, "a finished line goes out whole");
        assert_eq!(secrets.incomplete_at_end(b"x hunter2-lo"), 10);
        assert_eq!(secrets.incomplete_at_end(b"h"), 1);
        assert_eq!(secrets.incomplete_at_end(b""), 0);
        assert_eq!(secrets.incomplete_at_end(b"hunter3"), 0);
        assert_eq!(Secrets::default().incomplete_at_end(b"anything"), 0);
    }

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

    #[test]
    fn a_sandbox_hides_the_daemons_files_and_the_network() {
        sandboxed_attempts(None);
    }

    #[test]
    fn a_run_as_sandbox_runs_as_that_user_with_the_toolchain_in_reach() {
        let nobody = RunAs::lookup("nobody").unwrap();
        let stdout = sandboxed_attempts(Some(nobody.clone()));
        assert!(stdout.contains(&format!("uid {}\n", nobody.uid())), "{stdout}");
        assert!(stdout.contains("toolchain cargo "), "cargo runs as {}: {stdout}", nobody.name());
        // A home the user may not enter shows only the toolchain mounted back.
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
        if std::fs::metadata(&home).unwrap().permissions().mode() & 0o005 != 0o005 {
            let line = stdout.lines().find(|l| l.starts_with("home:")).unwrap();
            let toolchain: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap())
                .chain([home.join(".cargo"), home.join(".rustup")])
                .collect();
            for entry in line.split_whitespace().skip(1) {
                let shown = home.join(entry);
                assert!(toolchain.iter().any(|t| t.starts_with(&shown)), "{entry} shows in {line}");
            }
        }
    }

    /// Runs a script that tries to reach the daemon's files, undo the
    /// sandbox and reach the network; asserts every attempt failed and
    /// returns what it printed.
    fn sandboxed_attempts(run_as: Option<RunAs>) -> String {
        let executor = executor();
        assert!(executor.isolates(), "bubblewrap is needed (./x installs it)");
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let tree = data.join("worktrees/abc");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(data.join("sando.sqlite"), "secret-db").unwrap();
        let token = root.path().join("token");
        std::fs::write(&token, "secret-token").unwrap();
        // Listening on the host's loopback: unreachable from the sandbox.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let artifact = data.join("artifacts/app");
        std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
        std::fs::write(&artifact, "the-artifact").unwrap();
        if let Some(user) = &run_as {
            user.own(&tree).unwrap();
            user.let_read(&artifact).unwrap();
        }
        let script = format!(
            "cat {db} 2>/dev/null; cat {token}; cat {artifact}; echo; \
             echo tree > {tree}/written && echo wrote-tree; \
             touch {data}/planted 2>/dev/null || echo no-write-data; \
             touch /etc/planted 2>/dev/null || echo no-write-root; \
             echo private > /tmp/mine && echo wrote-tmp; \
             umount {token} 2>/dev/null && cat {token} || echo no-unmount; \
             umount {data} 2>/dev/null && cat {db} || echo no-unmount-data; \
             mount -o remount,rw / 2>/dev/null && touch {root}/planted && echo remounted || echo no-remount; \
             echo uid $(id -u); echo toolchain $(cargo --version 2>&1); \
             echo home: $(ls -A \"$HOME\" 2>&1); \
             (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo net-open || echo net-closed",
            db = data.join("sando.sqlite").display(),
            token = token.display(),
            artifact = artifact.display(),
            tree = tree.display(),
            data = data.display(),
            root = root.path().display(),
            port = listener.local_addr().unwrap().port(),
        );
        let spec = ProcessSpec {
            program: "/bin/bash".into(),
            args: vec!["-c".into(), script],
            cwd: Some(tree.clone()),
            isolation: Some(Isolation {
                hidden: vec![data.clone(), token.clone()],
                writable: vec![tree.clone()],
                readable: vec![artifact.clone()],
                network: false,
                run_as,
            }),
            ..ProcessSpec::default()
        };
        let out = block_on(executor.run(spec, None, CancellationToken::new()));
        let stdout = String::from_utf8_lossy(&out.output.stdout).into_owned();
        assert!(!stdout.contains("secret"), "{stdout}");
        assert!(stdout.starts_with("the-artifact\n"), "the artifact is readable: {stdout}");
        for expected in [
            "wrote-tree",
            "no-write-data",
            "no-write-root",
            "wrote-tmp",
            "no-unmount\n",
            "no-unmount-data",
            "no-remount",
            "net-closed",
        ] {
            assert!(stdout.contains(expected), "{expected} in {stdout}");
        }
        assert_eq!(std::fs::read_to_string(tree.join("written")).unwrap(), "tree\n");
        assert!(!data.join("planted").exists() && !Path::new("/etc/planted").exists());
        assert!(!root.path().join("planted").exists());
        assert!(!Path::new("/tmp/mine").exists(), "/tmp is private");
        assert_eq!(std::fs::read_to_string(&token).unwrap(), "secret-token");
        stdout
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("sqlx migrate run --database-url postgres://sando:S3cr3t@db:5432/scratch"),
            "sqlx migrate run --database-url postgres://sando:***@db:5432/scratch"
        );
        assert_eq!(
            redact("'sqlite:///srv/x.db' https://u:p@h a://b@c"),
            "'sqlite:///srv/x.db' https://u:***@h a://b@c"
        );
        assert_eq!(redact("no urls here: just://words"), "no urls here: just://words");
        assert_eq!(redact("x://u:p:q@h"), "x://u:***@h");
    }

    #[test]
    fn keeps_only_the_tail() {
        let script = format!("head -c {} /dev/zero; printf END", KEPT_TAIL + 1000);
        let out = run(sh(&script), None);
        assert_eq!(out.output.stdout.len(), KEPT_TAIL);
        assert!(out.output.stdout.ends_with(b"END"));
    }
}
