//! `SlurmExecutor`: each process a Slurm batch job that runs the local executor's very sandbox (bubblewrap, the change of user, the exec shim) on a cluster's node; its output followed live from files under the shared directory, its end read from Slurm and mapped to the same `ProcessEnd`s, cancels and timeouts through `scancel`.
//!
//! Slurm is driven through its command-line tools (`sbatch --parsable`,
//! `scontrol show job -o`, `scancel`) run with `tokio::process`, not
//! `slurmrestd`: the tools are on every submit host, authenticate with
//! munge like everything else there, speak the same to every Slurm since
//! 20.x, and need no token or extra daemon; `slurmrestd` is an optional
//! service, off at most sites, whose API version changes with Slurm's. A
//! tool's run costs a few milliseconds against a job's second or more.
//!
//! What a job sees: its script, `job.sh`, and its output files are in a
//! directory of its own under `<shared_dir>/jobs/<name>/`, which the daemon and
//! every node see at the same path. The script starts the program exactly
//! as the local executor would (`LocalExecutor::command_line`), with
//! stdout and stderr to files the daemon follows, and the exec shim's
//! report to a third. The environment is the local one (PATH, HOME, the
//! spec's variables and secrets), handed to `sbatch` and not written in the
//! script, so no secret rests in the shared directory.
//!
//! How a job ends: only Slurm's record says, read by polling. A failed
//! poll is never read as the job's end (a dropped connection is not an
//! exit); a controller unreachable for `UNREACHABLE_FOR` is an
//! infrastructure failure ([`Ended::Lost`]), as are a node failure,
//! preemption, running out of memory, a cancel from outside Sando and a
//! job Slurm no longer knows. The job's `--time` is Sando's bound plus
//! `SLACK`: Slurm ends a job whose daemon died before it could.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::local::{LocalExecutor, resolve};
use super::pipes::follow;
use super::workspace::{Mount, Mounted};
use super::{
    BoxFuture, CancellationToken, Ended, Executor, Finished, LogSink, ProcessSpec, Stream,
    exec_shim,
};
use crate::config::SlurmResources;
use crate::domain::{ProcessEnd, RawOutput};

/// How often a job's state is read while it runs.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Added to a job's own bound for its `--time`: Slurm's limit is only a
/// backstop for a daemon that died, Sando's own timeout comes first.
const SLACK: Duration = Duration::from_secs(120);

/// How long Slurm may go unanswered before a running job counts as lost.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// How long a job may take to end after `scancel` before Sando stops
/// waiting (Slurm's `KillWait` is 30 s by default).
const END_AFTER_CANCEL: Duration = Duration::from_secs(90);

/// Any one Slurm command's bound.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A Slurm command that did not do what was asked: one line, with what
/// Slurm said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlurmError {
    #[error("{tool} could not be started: {message}")]
    NotStarted { tool: &'static str, message: String },
    #[error("{tool} gave no answer within {}s", COMMAND_TIMEOUT.as_secs())]
    NoAnswer { tool: &'static str },
    #[error("{tool} failed: {said}")]
    Failed { tool: &'static str, said: String },
    #[error("{tool} answered {answer:?}, which is not a job id")]
    Unreadable { tool: &'static str, answer: String },
}

/// Runs the `gates` role's processes as Slurm jobs.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    /// Builds each job's command line: the sandbox it runs in on the node.
    local: LocalExecutor,
    resources: SlurmResources,
    /// `<shared_dir>/jobs/<name>`: one directory per job of this daemon's
    /// (another daemon sharing the directory has its own).
    jobs: PathBuf,
    /// The directory every node sees at the same path: what a job is
    /// given must be under it.
    shared: PathBuf,
    /// Every job's name, from its owner: the daemon's, so one started after
    /// a crash, or taking over a shared store's lead, finds what the last
    /// one left (`end_orphans`).
    name: String,
    /// The environment every Slurm command runs with (`SLURM_CONF`).
    slurm_env: Vec<(OsString, OsString)>,
}

/// What ended the wait for a job, on Sando's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// `stop_after`: its window is over.
    Window,
    Timeout,
    Cancel,
}

impl SlurmExecutor {
    /// Jobs of `owner` (the daemon uses `shared_dir`: see `name`) under
    /// `<shared_dir>/jobs`, each running `local`'s sandbox on its node.
    pub fn new(
        local: LocalExecutor,
        resources: SlurmResources,
        shared_dir: &Path,
        owner: &Path,
    ) -> SlurmExecutor {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        owner.hash(&mut hasher);
        let slurm_env = ["SLURM_CONF", "PATH", "HOME", "MUNGE_SOCKET"]
            .into_iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
            .collect();
        let name = format!("sando-{:016x}", hasher.finish());
        SlurmExecutor {
            local,
            resources,
            jobs: shared_dir.join("jobs").join(&name),
            shared: shared_dir.to_owned(),
            name,
            slurm_env,
        }
    }

    /// The name every job of this daemon carries.
    pub fn job_name(&self) -> &str {
        &self.name
    }

    /// What `sando check` can know before anything runs: the controller
    /// answers, the partition exists, the shared directory is writable.
    /// One line per problem.
    pub async fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.slurm("scontrol", &["ping".into()]).await {
            Ok(said) if said.contains("is UP") => {
                if let Some(partition) = &self.resources.partition {
                    let args =
                        ["show".into(), "partition".into(), partition.to_string(), "-o".into()];
                    if let Err(e) = self.slurm("scontrol", &args).await {
                        problems.push(format!("executor.partition: \"{partition}\": {e}"));
                    }
                }
            }
            Ok(said) => problems.push(format!(
                "executor: the Slurm controller is not reachable: {}",
                crate::text::one_line(&said)
            )),
            Err(e) => {
                problems.push(format!("executor: the Slurm controller is not reachable: {e}"))
            }
        }
        let probe = self.jobs.join(format!(".sando-check-{}", std::process::id()));
        let written =
            std::fs::create_dir_all(&self.jobs).and_then(|()| std::fs::write(&probe, b""));
        let _ = std::fs::remove_file(&probe);
        if let Err(e) = written {
            problems.push(format!(
                "executor.shared_dir: {} cannot be written: {}",
                self.jobs.display(),
                crate::fixtures::io_message(&e)
            ));
        }
        problems
    }

    /// Runs a Slurm tool; its stdout, or one line of what it said on failure.
    async fn slurm(&self, tool: &'static str, args: &[String]) -> Result<String, SlurmError> {
        self.slurm_with(tool, args, &[]).await
    }

    async fn slurm_with(
        &self,
        tool: &'static str,
        args: &[String],
        env: &[(OsString, OsString)],
    ) -> Result<String, SlurmError> {
        let mut command = Command::new(tool);
        command
            .args(args)
            .env_clear()
            .envs(self.slurm_env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = match tokio::time::timeout(COMMAND_TIMEOUT, command.output()).await {
            Err(_) => return Err(SlurmError::NoAnswer { tool }),
            Ok(Err(e)) => {
                return Err(SlurmError::NotStarted {
                    tool,
                    message: crate::fixtures::io_message(&e),
                });
            }
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        // Slurm's tools print their own name first, and sometimes several
        // lines of which the last says why.
        let (stderr, stdout) =
            (String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout));
        let said = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .or_else(|| stdout.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .trim()
            .to_owned();
        let said = if said.is_empty() { format!("exit status {}", output.status) } else { said };
        Err(SlurmError::Failed { tool, said: crate::text::one_line(&said) })
    }

    /// Submits `script`; its job id.
    async fn submit(
        &self,
        spec: &ProcessSpec,
        dir: &Path,
        script: &Path,
        env: &[(OsString, OsString)],
    ) -> Result<u64, SlurmError> {
        let mut args = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.name),
            "--no-requeue".to_owned(),
            "--ntasks=1".to_owned(),
            format!("--chdir={}", dir.display()),
            // Slurm's own messages (a cancel, a limit); the program's output
            // goes to files of its own.
            format!("--output={}", dir.join("slurm.out").display()),
            "--export=ALL".to_owned(),
        ];
        if spec.job.is_some() {
            // Held until its id is recorded: a job nobody could adopt never
            // runs.
            args.push("--hold".to_owned());
        }
        let r = &self.resources;
        args.extend(r.partition.as_ref().map(|p| format!("--partition={p}")));
        args.extend(r.account.as_ref().map(|a| format!("--account={a}")));
        args.extend(r.qos.as_ref().map(|q| format!("--qos={q}")));
        args.extend(r.cpus.map(|c| format!("--cpus-per-task={}", c.get())));
        args.extend(r.mem.as_ref().map(|m| format!("--mem={m}")));
        if let Some(bound) = spec.timeout.or(spec.stop_after) {
            let minutes = (bound + SLACK).as_secs().div_ceil(60).max(1);
            args.push(format!("--time={minutes}"));
        }
        args.push(script.display().to_string());
        let answer = self.slurm_with("sbatch", &args, env).await?;
        let first = answer.trim().split(';').next().unwrap_or("");
        first.parse().map_err(|_| SlurmError::Unreadable {
            tool: "sbatch",
            answer: answer.trim().to_owned(),
        })
    }

    /// The job's state now, `None` when Slurm no longer knows it.
    async fn state(&self, job: u64) -> Result<Option<JobState>, SlurmError> {
        let args = ["show".into(), "job".into(), "-o".into(), job.to_string()];
        match self.slurm("scontrol", &args).await {
            Ok(line) => Ok(JobState::parse(&line)),
            Err(SlurmError::Failed { said, .. }) if said.contains("Invalid job id") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn cancel(&self, job: u64) -> Result<(), SlurmError> {
        self.slurm("scancel", &[job.to_string()]).await.map(drop)
    }

    async fn release(&self, job: u64) -> Result<(), SlurmError> {
        self.slurm("scontrol", &["release".into(), job.to_string()]).await.map(drop)
    }

    /// A recorded job's handle, `slurm:<job id>:<directory name>`.
    fn handle(job: u64, dir: &Path) -> String {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("slurm:{job}:{name}")
    }

    /// The job and directory a handle names, if it is one of this daemon's
    /// jobs: a directory name, never a path, so a handle cannot point
    /// outside `jobs`.
    fn parse_handle(&self, handle: &str) -> Option<(u64, PathBuf)> {
        let (job, name) = handle.strip_prefix("slurm:")?.split_once(':')?;
        let plain = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plain.then(|| Some((job.parse().ok()?, self.jobs.join(name))))?
    }

    /// Writes the job's directory and script; the script's path.
    fn prepare(
        &self,
        spec: &ProcessSpec,
        program: &Path,
        dir: &Path,
    ) -> Result<PathBuf, PrepareError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::create_dir_all(&self.jobs).map_err(PrepareError::Io)?;
        std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(PrepareError::Io)?;
        for file in ["stdout", "stderr", "exec-report", "slurm.out"] {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(file))
                .map_err(PrepareError::Io)?;
        }
        // The shim's report goes to descriptor 3, which bubblewrap passes on.
        let report = self.local.has_exec_shim().then_some(3);
        let line = self.local.command_line(spec, program, report).map_err(PrepareError::Errno)?;
        let word = |w: &std::ffi::OsStr| -> Result<String, PrepareError> {
            let text = w.to_str().ok_or(PrepareError::Errno(libc::EINVAL))?;
            shlex::try_quote(text)
                .map(|q| q.into_owned())
                .map_err(|_| PrepareError::Errno(libc::EINVAL))
        };
        let mut env_words = vec!["env".to_owned(), "-i".to_owned()];
        for name in self.env_names(spec) {
            // Names only: the values come from the job's environment.
            if !is_shell_name(&name) {
                return Err(PrepareError::Errno(libc::EINVAL));
            }
            env_words.push(format!("\"{name}=${{{name}}}\""));
        }
        let mut command = Vec::new();
        for w in line.iter().map(OsString::as_os_str).chain(spec.args.iter().map(|a| a.as_ref())) {
            command.push(word(w)?);
        }
        let file = |name: &str| word(dir.join(name).as_os_str());
        let mut script = String::from("#!/bin/sh\n");
        script
            .push_str("# A Sando job: the daemon follows stdout and stderr beside this script.\n");
        if report.is_some() {
            script.push_str(&format!("exec 3>{}\n", file("exec-report")?));
        }
        if spec.isolation.is_none() || !self.local.isolates() {
            // No sandbox to change to the work tree.
            if let Some(cwd) = &spec.cwd {
                script.push_str(&format!("cd {} || exit 126\n", word(cwd.as_os_str())?));
            }
        }
        script.push_str(&format!(
            "exec {} {} <{} >{} 2>{}\n",
            env_words.join(" "),
            command.join(" "),
            word(std::ffi::OsStr::new("/dev/null"))?,
            file("stdout")?,
            file("stderr")?,
        ));
        let path = dir.join("job.sh");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, script.as_bytes()))
            .map_err(PrepareError::Io)?;
        Ok(path)
    }

    /// The variables a job's program gets, by name: as the local executor
    /// passes them.
    fn env_names(&self, spec: &ProcessSpec) -> Vec<String> {
        let mut names: Vec<String> = ["PATH", "HOME"]
            .into_iter()
            .filter(|k| std::env::var_os(k).is_some())
            .map(String::from)
            .collect();
        names.extend(spec.env.iter().map(|(k, _)| k.clone()));
        names.extend(spec.secrets.env().map(|(k, _)| k.to_owned()));
        names.dedup();
        names
    }

    /// The environment `sbatch` hands to the job.
    fn job_env(&self, spec: &ProcessSpec) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = ["PATH", "HOME"]
            .into_iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
            .collect();
        env.extend(spec.env.iter().map(|(k, v)| (k.into(), v.into())));
        env.extend(spec.secrets.env().map(|(k, v)| (k.into(), v.into())));
        env
    }

    async fn run_job(
        &self,
        spec: ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: CancellationToken,
    ) -> Finished {
        let started = Instant::now();
        let finish = |end: ProcessEnd, ended: Ended, stdout: Vec<u8>, stderr: Vec<u8>| Finished {
            output: RawOutput {
                stdout,
                stderr,
                end,
                duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            },
            ended,
        };
        if stop.is_cancelled() {
            return finish(ProcessEnd::StillRunning, Ended::Cancelled, Vec::new(), Vec::new());
        }
        let program = match resolve(&spec.program, spec.cwd.as_deref()) {
            Ok(program) => program,
            Err(errno) => {
                return finish(
                    ProcessEnd::SpawnError(errno),
                    Ended::Normally,
                    Vec::new(),
                    Vec::new(),
                );
            }
        };
        if let Some(handle) = spec.job.as_ref().and_then(|j| j.resume.clone()) {
            return self.adopt(&spec, sink, &stop, &handle, started).await;
        }
        // A node sees only the shared directory: a work tree, artifact or
        // backup elsewhere would be missing there, not empty.
        let cwd = spec.cwd.iter().map(|cwd| Mount::new(Mounted::Tree, cwd));
        let mounts = spec.isolation.iter().flat_map(|i| i.mounts.iter().cloned());
        if let Some(why) = cwd.chain(mounts).find_map(|m| m.unseen_outside(&self.shared)) {
            return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
        }
        // A job's sandbox is made on its node by bubblewrap alone, which
        // (0.8) cannot mount an overlay: binding the overlay's mount point
        // as a plain directory would let the job write what the view
        // protects. The daemon does not ask (`overlays` is false).
        let overlay =
            spec.isolation.iter().flat_map(|i| i.mounts.iter()).find(|m| m.layers.is_some());
        if let Some(m) = overlay {
            let why = format!(
                "the slurm executor cannot mount the {} overlay at {}",
                m.what.name(),
                m.path.display()
            );
            return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
        }
        let dir = self.jobs.join(unique_name());
        let script = match self.prepare(&spec, &program, &dir) {
            Ok(script) => script,
            Err(PrepareError::Errno(errno)) => {
                let _ = std::fs::remove_dir_all(&dir);
                return finish(
                    ProcessEnd::SpawnError(errno),
                    Ended::Normally,
                    Vec::new(),
                    Vec::new(),
                );
            }
            Err(PrepareError::Io(e)) => {
                let _ = std::fs::remove_dir_all(&dir);
                let why = format!(
                    "the job's files in {} cannot be written: {}",
                    self.jobs.display(),
                    crate::fixtures::io_message(&e)
                );
                return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
            }
        };
        // Followed from before the job can write.
        let ended = Arc::new(AtomicBool::new(false));
        let open = |name: &str| std::fs::File::open(dir.join(name));
        let (Ok(out), Ok(err)) = (open("stdout"), open("stderr")) else {
            let _ = std::fs::remove_dir_all(&dir);
            let why = format!("the job's output files in {} cannot be read", dir.display());
            return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
        };
        let stdout = follow(out, Stream::Stdout, sink.clone(), spec.secrets.clone(), ended.clone());
        let stderr = follow(err, Stream::Stderr, sink, spec.secrets.clone(), ended.clone());
        let job = match self.submit(&spec, &dir, &script, &self.job_env(&spec)).await {
            Ok(job) => job,
            Err(e) => {
                ended.store(true, Ordering::Release);
                let _ = std::fs::remove_dir_all(&dir);
                let why = format!("slurm did not take the job: {e}");
                return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
            }
        };
        tracing::debug!(job, dir = %dir.display(), "slurm job submitted");
        if let Some(hook) = &spec.job {
            let recorded = match (hook.record)(Self::handle(job, &dir)).await {
                Ok(()) => self.release(job).await.map_err(|e| format!("releasing job {job}: {e}")),
                Err(e) => Err(format!("recording job {job}: {e}")),
            };
            if let Err(why) = recorded {
                let _ = self.cancel(job).await;
                ended.store(true, Ordering::Release);
                let _ = std::fs::remove_dir_all(&dir);
                return finish(ProcessEnd::StillRunning, Ended::Lost(why), Vec::new(), Vec::new());
            }
        }
        let (end, ended, stdout, stderr) =
            self.see_through(job, &dir, &spec, &stop, (stdout, stderr), ended).await;
        finish(end, ended, stdout, stderr)
    }

    /// Follows a job a previous daemon started and recorded, from the first
    /// byte of its output (the run's log was cut back to where that output
    /// began), to its end: the same chunks, the same verdict, no second job.
    async fn adopt(
        &self,
        spec: &ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: &CancellationToken,
        handle: &str,
        started: Instant,
    ) -> Finished {
        let lost = |why: String| Finished {
            output: RawOutput {
                stdout: Vec::new(),
                stderr: Vec::new(),
                end: ProcessEnd::StillRunning,
                duration_ms: Some(0),
            },
            ended: Ended::Lost(why),
        };
        let Some((job, dir)) = self.parse_handle(handle) else {
            return lost(format!("{handle:?} is not a job of this daemon's"));
        };
        let open = |name: &str| std::fs::File::open(dir.join(name));
        let (Ok(out), Ok(err)) = (open("stdout"), open("stderr")) else {
            let _ = self.cancel(job).await;
            return lost(format!("job {job}'s output files in {} are gone", dir.display()));
        };
        // A daemon killed between recording and releasing it left it held.
        let _ = self.release(job).await;
        tracing::info!(job, "following a job the previous daemon started");
        let ended = Arc::new(AtomicBool::new(false));
        let stdout = follow(out, Stream::Stdout, sink.clone(), spec.secrets.clone(), ended.clone());
        let stderr = follow(err, Stream::Stderr, sink, spec.secrets.clone(), ended.clone());
        let (end, ended, stdout, stderr) =
            self.see_through(job, &dir, spec, stop, (stdout, stderr), ended).await;
        Finished {
            output: RawOutput {
                stdout,
                stderr,
                end,
                duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            },
            ended,
        }
    }

    /// Watches a submitted job to its end, then gathers what it printed and
    /// how it ended, and removes its directory.
    async fn see_through(
        &self,
        job: u64,
        dir: &Path,
        spec: &ProcessSpec,
        stop: &CancellationToken,
        (stdout, stderr): (Tail, Tail),
        ended: Arc<AtomicBool>,
    ) -> (ProcessEnd, Ended, Vec<u8>, Vec<u8>) {
        let (state, why) = self.watch(job, spec, stop).await;
        ended.store(true, Ordering::Release);
        let (stdout, stderr) = (stdout.await.unwrap_or_default(), stderr.await.unwrap_or_default());
        let report = std::fs::read(dir.join("exec-report")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(dir);
        let (end, ended) = end_of(job, state, why, spec);
        // The program never started: the shim knows, whatever bubblewrap
        // printed and however it exited.
        let end = match exec_shim::Report::read(&report) {
            exec_shim::Report::ExecFailed(errno) if end != ProcessEnd::StillRunning => {
                ProcessEnd::SpawnError(errno)
            }
            _ => end,
        };
        crate::memory::give_back_freed();
        (end, ended, stdout, stderr)
    }

    /// Waits for the job's end, cancelling it when its window or timeout is
    /// over or `stop` fires. Its last state (or why there is none), and
    /// why Sando cancelled it, if it did.
    async fn watch(
        &self,
        job: u64,
        spec: &ProcessSpec,
        stop: &CancellationToken,
    ) -> (Result<JobState, String>, Option<Why>) {
        let submitted = Instant::now();
        let mut running_since: Option<Instant> = None;
        let mut last_answer = Instant::now();
        let mut cancelled: Option<(Why, Instant)> = None;
        let mut last = None;
        loop {
            match self.state(job).await {
                Ok(Some(state)) => {
                    last_answer = Instant::now();
                    if state.is_final() {
                        return (Ok(state), cancelled.map(|(why, _)| why));
                    }
                    if state.state == "RUNNING" && running_since.is_none() {
                        running_since = Some(Instant::now());
                    }
                    last = Some(state);
                }
                Ok(None) => {
                    let why = format!("job {job} is gone from Slurm's records");
                    return (Err(why), cancelled.map(|(why, _)| why));
                }
                Err(e) if last_answer.elapsed() > UNREACHABLE_FOR => {
                    // Try to end it all the same: nothing may be left.
                    let _ = self.cancel(job).await;
                    let why = format!("slurm unreachable while job {job} ran: {e}");
                    return (Err(why), cancelled.map(|(why, _)| why));
                }
                Err(e) => {
                    tracing::debug!(job, error = %e, "reading the job's state failed; trying again")
                }
            }
            if let Some((_, at)) = cancelled {
                if at.elapsed() > END_AFTER_CANCEL {
                    let why = format!(
                        "job {job} did not end within {}s of scancel",
                        END_AFTER_CANCEL.as_secs()
                    );
                    return (Err(why), cancelled.map(|(why, _)| why));
                }
            } else {
                // Bounds count from the start of the program, as locally; a
                // job still pending after its timeout never got a node.
                let over = |limit: Option<Duration>, from: Option<Instant>| matches!((limit, from), (Some(limit), Some(from)) if from.elapsed() >= limit);
                let why = if stop.is_cancelled() {
                    Some(Why::Cancel)
                } else if over(spec.stop_after, running_since) {
                    Some(Why::Window)
                } else if over(spec.timeout, running_since) {
                    Some(Why::Timeout)
                } else if running_since.is_none() && over(spec.timeout, Some(submitted)) {
                    let _ = self.cancel(job).await;
                    let reason = last.as_ref().map_or("", |s: &JobState| s.reason.as_str());
                    let why = format!("job {job} did not start within the timeout ({reason})");
                    return (Err(why), None);
                } else {
                    None
                };
                if let Some(why) = why {
                    if let Err(e) = self.cancel(job).await {
                        tracing::warn!(job, error = %e, "scancel failed; trying again");
                    } else {
                        cancelled = Some((why, Instant::now()));
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = stop.cancelled(), if cancelled.is_none() && !stop.is_cancelled() => {}
            }
        }
    }
}

/// What a stream's follower hands back at the end: the stream's kept tail.
type Tail = tokio::sync::oneshot::Receiver<Vec<u8>>;

/// Why a job could not be prepared: the program's fault (an errno, as a
/// spawn error) or the shared directory's (an infrastructure failure).
enum PrepareError {
    Errno(i32),
    Io(std::io::Error),
}

/// What `scontrol show job -o` says of a job, as far as Sando reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobState {
    /// `JobState`: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …
    state: String,
    reason: String,
    /// `ExitCode=status:signal`.
    exit: (i32, i32),
}

impl JobState {
    /// The first `JobState=`, `Reason=` and `ExitCode=` words: Slurm
    /// prints them before any path or free text.
    fn parse(line: &str) -> Option<JobState> {
        let field = |key: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_owned)
        };
        let state = field("JobState=")?;
        let exit = field("ExitCode=").and_then(|e| {
            let (status, signal) = e.split_once(':')?;
            Some((status.parse().ok()?, signal.parse().ok()?))
        });
        Some(JobState {
            state,
            reason: field("Reason=").unwrap_or_default(),
            exit: exit.unwrap_or((0, 0)),
        })
    }

    /// Whether the job is over and its processes gone (`COMPLETING` is
    /// neither yet).
    fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "COMPLETED"
                | "FAILED"
                | "CANCELLED"
                | "TIMEOUT"
                | "NODE_FAIL"
                | "PREEMPTED"
                | "BOOT_FAIL"
                | "DEADLINE"
                | "OUT_OF_MEMORY"
                | "REVOKED"
                | "SPECIAL_EXIT"
        )
    }
}

/// The job's end as the local executor would report the same process's.
fn end_of(
    job: u64,
    state: Result<JobState, String>,
    why: Option<Why>,
    spec: &ProcessSpec,
) -> (ProcessEnd, Ended) {
    let state = match state {
        Ok(state) => state,
        // Gone or unreachable after Sando cancelled it: that cancel stands.
        Err(_) if why.is_some() => return by_sando(why),
        Err(why) => return (ProcessEnd::StillRunning, Ended::Lost(why)),
    };
    let lost = |what: &str| {
        (ProcessEnd::StillRunning, Ended::Lost(format!("slurm ended job {job}: {what}")))
    };
    match state.state.as_str() {
        "COMPLETED" | "FAILED" => (exit_of(state.exit), Ended::Normally),
        "CANCELLED" if why.is_some() => by_sando(why),
        "CANCELLED" => lost("CANCELLED (not by Sando)"),
        // Slurm's limit is Sando's bound plus slack: Sando's own came first
        // unless it could not cancel.
        "TIMEOUT" => (
            ProcessEnd::StillRunning,
            Ended::TimedOut(spec.timeout.or(spec.stop_after).unwrap_or_default()),
        ),
        "NODE_FAIL" => lost("NODE_FAIL (the node failed)"),
        "PREEMPTED" => lost("PREEMPTED"),
        "OUT_OF_MEMORY" => lost("OUT_OF_MEMORY (over the job's memory)"),
        other => lost(other),
    }
}

/// The end of a job Sando cancelled, by why it did.
fn by_sando(why: Option<Why>) -> (ProcessEnd, Ended) {
    match why {
        Some(Why::Window) | None => (ProcessEnd::StillRunning, Ended::Normally),
        Some(Why::Timeout) => (ProcessEnd::StillRunning, Ended::TimedOut(Duration::ZERO)),
        Some(Why::Cancel) => (ProcessEnd::StillRunning, Ended::Cancelled),
    }
}

/// A job's `ExitCode=status:signal` as a `ProcessEnd`: the script execs
/// bubblewrap, which reports a program killed by signal N as 128 + N.
fn exit_of((status, signal): (i32, i32)) -> ProcessEnd {
    match (status, signal) {
        (_, signal) if signal != 0 => ProcessEnd::Signaled(signal),
        (code, _) if (129..=128 + 64).contains(&code) => ProcessEnd::Signaled(code - 128),
        (code, _) => ProcessEnd::Exited(code),
    }
}

/// A job directory's name no other job of any daemon has: this process,
/// a counter, and the time.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{}-{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn is_shell_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Executor for SlurmExecutor {
    fn run(
        &self,
        spec: ProcessSpec,
        sink: Option<Arc<dyn LogSink>>,
        stop: CancellationToken,
    ) -> BoxFuture<'_, Finished> {
        Box::pin(async move {
            let timeout = spec.timeout;
            let mut finished = self.run_job(spec, sink, stop).await;
            // The bound's own length, as the local executor reports it.
            if let (Ended::TimedOut(after), Some(limit)) = (&mut finished.ended, timeout) {
                *after = limit;
            }
            finished
        })
    }

    fn describe(&self) -> String {
        let partition = self.resources.partition.as_ref().map_or("(default)", |p| p.as_str());
        format!(
            "slurm, partition {partition}, jobs under {}, each running: {}",
            self.jobs.display(),
            self.local.describe()
        )
    }

    /// The node runs the local executor's sandbox: as isolated as that is.
    fn isolates(&self) -> bool {
        self.local.isolates()
    }

    /// Cancels every job of this daemon a previous one left but those in
    /// `keep` (recorded by a running run, about to be adopted), and removes
    /// the others' directories (this daemon's own only). Returns how many.
    fn end_orphans(&self, keep: &[String]) -> usize {
        let kept: Vec<(u64, PathBuf)> = keep.iter().filter_map(|h| self.parse_handle(h)).collect();
        let run = |tool: &str, args: &[&str]| {
            std::process::Command::new(tool)
                .args(args)
                .env_clear()
                .envs(self.slurm_env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
        };
        let name = format!("--name={}", self.name);
        let left: Vec<String> = run("squeue", &["--noheader", "--format=%i", &name])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !kept.iter().any(|(job, _)| job.to_string() == *l))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if !left.is_empty() {
            let args: Vec<&str> = left.iter().map(String::as_str).collect();
            run("scancel", &args);
        }
        if let Ok(entries) = std::fs::read_dir(&self.jobs) {
            let prefix = format!("{}-", std::process::id());
            for entry in entries.flatten() {
                let kept = kept.iter().any(|(_, dir)| *dir == entry.path());
                if !kept && !entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        left.len()
    }

    fn can_adopt(&self, handle: &str) -> bool {
        self.parse_handle(handle).is_some_and(|(_, dir)| dir.join("stdout").is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_state_is_read_from_scontrols_line() {
        let line = "JobId=7 JobName=sando-1 UserId=root(0) GroupId=root(0) MCS_label=N/A \
            Priority=1 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode \
            Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 \
            Command=/s/jobs/x/job.sh WorkDir=/s/jobs/x JobState=COMPLETED";
        let state = JobState::parse(line).unwrap();
        assert_eq!(state.state, "FAILED");
        assert_eq!(state.reason, "NonZeroExitCode");
        assert_eq!(state.exit, (3, 0));
        assert!(state.is_final());
        assert!(!JobState::parse("JobState=COMPLETING ExitCode=0:0").unwrap().is_final());
        assert_eq!(JobState::parse("slurm_load_jobs error"), None);
    }

    #[test]
    fn job_ends_map_to_the_local_executors() {
        let spec = ProcessSpec { timeout: Some(Duration::from_secs(5)), ..ProcessSpec::default() };
        let state = |s: &str, exit| Ok(JobState { state: s.into(), reason: String::new(), exit });
        let end = |s: &str, exit, why| end_of(9, state(s, exit), why, &spec);
        assert_eq!(end("COMPLETED", (0, 0), None), (ProcessEnd::Exited(0), Ended::Normally));
        assert_eq!(end("FAILED", (3, 0), None), (ProcessEnd::Exited(3), Ended::Normally));
        assert_eq!(end("FAILED", (128 + 6, 0), None), (ProcessEnd::Signaled(6), Ended::Normally));
        assert_eq!(end("FAILED", (0, 9), None), (ProcessEnd::Signaled(9), Ended::Normally));
        assert_eq!(end("CANCELLED", (0, 15), Some(Why::Cancel)).1, Ended::Cancelled);
        assert_eq!(
            end("CANCELLED", (0, 15), Some(Why::Window)),
            (ProcessEnd::StillRunning, Ended::Normally)
        );
        assert!(matches!(end("CANCELLED", (0, 15), Some(Why::Timeout)).1, Ended::TimedOut(_)));
        assert!(
            matches!(end("TIMEOUT", (0, 0), None).1, Ended::TimedOut(d) if d == Duration::from_secs(5))
        );
        for lost in ["CANCELLED", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL"] {
            let (end, ended) = end(lost, (0, 9), None);
            assert_eq!(end, ProcessEnd::StillRunning);
            let Ended::Lost(why) = ended else { panic!("{lost}: {ended:?}") };
            assert!(why.contains(lost) && why.contains("job 9") && !why.contains('\n'), "{why}");
        }
        let gone = end_of(9, Err("job 9 is gone".into()), None, &spec);
        assert_eq!(gone.1, Ended::Lost("job 9 is gone".into()));
    }
}
