//! Starting processes: the one `Executor` seam everything that starts a process goes through, and what crosses it (`ProcessSpec` in, `Finished` out, output to a `LogSink` as it is written).
//!
//! A process is bounded three ways: an expected end (`stop_after`, boot
//! smoke's window: reported `still_running`), a timeout, and cancellation
//! (both reported in [`Ended`]). Ending a process ends its whole tree,
//! including descendants that left its process group.
//!
//! One file per job: `local.rs` is `LocalExecutor`, which runs processes on
//! this machine, each tree in its own PID namespace; `supervise.rs` the
//! supervisor each of its programs runs under, which ends the tree when the
//! daemon lets go (or dies), and the signals that end a tree;
//! `pipes.rs` the threads that read a process's output; `isolation.rs` the
//! sandbox for code under test; `secrets.rs` the operator's secrets, kept
//! out of what a process printed; `exec_shim.rs` the last step inside a
//! sandbox, which tells a failed exec from the program's own exit;
//! `slurm.rs` `SlurmExecutor`, which runs the same sandbox as a Slurm
//! batch job on a cluster's node; `workspace.rs` what a sandboxed process
//! is given, by name (`Mount`), which each executor resolves.

pub mod exec_shim;
mod isolation;
mod local;
mod pipes;
mod secrets;
mod slurm;
mod supervise;
mod workspace;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
pub use tokio_util::sync::CancellationToken;

pub use crate::domain::Stream;
use crate::domain::{RawOutput, Unframed};
pub use crate::run_as::RunAs;
pub use isolation::Isolation;
pub use local::LocalExecutor;
pub(crate) use local::resolve;
pub use pipes::READ_SIZE;
pub use secrets::{SHORTEST_SECRET, Secrets, redact};
pub use slurm::{SlurmError, SlurmExecutor};
pub use workspace::{Layers, Mount, Mounted};

/// How much of each stream is kept for the classifier: the end of a tool's
/// output is where its verdict is (libtest's and nextest's summaries, cargo's
/// and sqlx's errors). The whole output goes to the sink.
pub const KEPT_TAIL: usize = 8 << 20;

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
    /// For a process that can outlive the daemon (a Slurm job): where its
    /// handle is recorded before it may start, or the handle of one a
    /// previous daemon started, to follow instead of starting it again.
    pub job: Option<JobHook>,
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

/// Records a job's handle, durably, before the job may start; an error
/// (one line) means it must not start.
pub type RecordJob = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How a process that can outlive the daemon is kept track of.
#[derive(Clone)]
pub struct JobHook {
    pub record: RecordJob,
    /// A job a previous daemon started for this very process, by its
    /// handle: followed from its first byte, never started again.
    pub resume: Option<String>,
}

impl std::fmt::Debug for JobHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHook").field("resume", &self.resume).finish_non_exhaustive()
    }
}

/// Why a process stopped, beyond its own exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It exited, was killed by something else, or reached `stop_after`.
    Normally,
    /// It ran past its timeout; its tree was ended.
    TimedOut(Duration),
    /// Its cancellation token fired; its tree was ended.
    Cancelled,
    /// What it ran on failed it, not the program: a node that failed, a
    /// job preempted or cancelled from outside Sando, a scheduler that
    /// refused it or cannot be reached. One line saying what (what the
    /// scheduler said). An infrastructure failure: the run is retried by
    /// its class, never judged by what the program printed.
    Lost(String),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub output: RawOutput,
    pub ended: Ended,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where processes run: here (`LocalExecutor`) or on a cluster
/// (`SlurmExecutor`). Any executor provides the same three things: output
/// streamed to the sink as it is written, cancellation that ends everything
/// the process started, and the exit status (or spawn errno) as a
/// `ProcessEnd`. One whose processes outlive the daemon also records each
/// one's handle before it starts (`ProcessSpec::job`), follows one again by
/// that handle (`can_adopt`, `JobHook::resume`), and ends the ones nobody
/// adopts (`end_orphans`).
///
/// The daemon holds two, by role: `tools` for its own processes (git,
/// deploy and health commands), always local, and `gates` for code under
/// test (the build command and gate processes), the one a remote executor
/// would take.
pub trait Executor: Send + Sync {
    fn run(
        &self,
        spec: ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: CancellationToken,
    ) -> BoxFuture<'_, Finished>;

    /// One line for `/api/state` and start-up: how processes are contained.
    fn describe(&self) -> String;

    /// Whether a spec's `isolation` is honoured: code under test started
    /// here runs sandboxed. No default: each executor says so itself, and
    /// the daemon warns (or refuses to start) when it does not.
    fn isolates(&self) -> bool;

    /// Whether a sandbox here can be given an overlay mount
    /// ([`Mount::overlay`]): the build cache's copy-on-write view. By default
    /// no, and the daemon then builds each version cold in its own tree.
    fn overlays(&self) -> bool {
        false
    }

    /// Ends what a previous daemon started here and left running (a crash
    /// between a fork and a parent-death signal), but for the jobs named in
    /// `keep` (about to be adopted); returns how many were ended. Called
    /// once, at start-up or takeover. By default nothing: an executor whose
    /// processes cannot outlive the daemon unseen.
    fn end_orphans(&self, keep: &[String]) -> usize {
        let _ = keep;
        0
    }

    /// Whether a job a previous daemon recorded (`JobHook::record`) can be
    /// followed from here: it is this executor's kind and its files are
    /// there. By default no: processes that end with their daemon are never
    /// adopted, their runs are interrupted and retried.
    fn can_adopt(&self, handle: &str) -> bool {
        let _ = handle;
        false
    }
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

/// What the unit tests of every file here share.
#[cfg(test)]
mod testing {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::{
        CancellationToken, Executor, Finished, LocalExecutor, LogSink, ProcessSpec, Stream,
    };

    #[derive(Default)]
    pub(super) struct Collect(pub(super) Mutex<Vec<(Stream, Vec<u8>)>>);

    impl LogSink for Collect {
        fn chunk(&self, stream: Stream, bytes: Bytes) {
            self.0.lock().unwrap().push((stream, bytes.to_vec()));
        }
    }

    pub(super) fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            ..ProcessSpec::default()
        }
    }

    pub(super) fn executor() -> LocalExecutor {
        LocalExecutor::detect(Duration::from_secs(2))
    }

    pub(super) fn run(spec: ProcessSpec, sink: Option<Arc<dyn LogSink>>) -> Finished {
        super::block_on(executor().run(spec, sink, CancellationToken::new()))
    }

    /// Whether any process's command line holds `marker`.
    pub(super) fn alive(marker: &str) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
        })
    }

    /// Waits up to `within` for `check` to hold.
    pub(super) fn eventually(within: Duration, check: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        check()
    }
}
