//! Running a real process for a runner, a build or a deploy: its output streams to a sink as it is written, and only a bounded tail of each stream is kept in memory.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::domain::{ProcessEnd, RawOutput};

/// How much of each stream is kept for the classifier: the end of a tool's
/// output is where its verdict is (libtest's and nextest's summaries, cargo's
/// and sqlx's errors). The whole output goes to the sink.
pub const KEPT_TAIL: usize = 8 << 20;

pub use crate::domain::Stream;

/// Receives output as the process writes it (the run's log file, WebSocket
/// subscribers). Called from one reader thread per stream.
pub trait LogSink: Send + Sync {
    fn chunk(&self, stream: Stream, bytes: &[u8]);
}

#[derive(Debug, Clone, Default)]
pub struct Spawn {
    pub program: String,
    pub args: Vec<String>,
    /// Added to a cleared environment (only `PATH` and `HOME` pass through).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// Stop watching after this long: kill the process group, report `still_running`.
    pub stop_after: Option<Duration>,
}

pub fn run(spawn: &Spawn, sink: Option<&dyn LogSink>) -> RawOutput {
    let started = Instant::now();
    let mut command = Command::new(&spawn.program);
    command
        .args(&spawn.args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so stopping it stops what it started too
        // (cargo's test binaries, a shell's children).
        .process_group(0);
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.envs(spawn.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spawn.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return RawOutput {
                stdout: Vec::new(),
                stderr: Vec::new(),
                end: ProcessEnd::SpawnError(e.raw_os_error().unwrap_or(0)),
                duration_ms: Some(elapsed_ms(started)),
            };
        }
    };
    let pid = child.id();
    let (stdout, stderr, end) = std::thread::scope(|scope| {
        let out = child.stdout.take();
        let err = child.stderr.take();
        let stdout = scope.spawn(move || drain(out, Stream::Stdout, sink));
        let stderr = scope.spawn(move || drain(err, Stream::Stderr, sink));
        let end = loop {
            match child.try_wait() {
                Ok(Some(status)) => break exit_of(status),
                Ok(None) => {}
                Err(_) => break ProcessEnd::StillRunning,
            }
            if spawn.stop_after.is_some_and(|limit| started.elapsed() >= limit) {
                kill_group(pid);
                let _ = child.wait();
                break ProcessEnd::StillRunning;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Whatever the process left running still holds the pipes open.
        if end == ProcessEnd::StillRunning || !(stdout.is_finished() && stderr.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
            if !(stdout.is_finished() && stderr.is_finished()) {
                kill_group(pid);
            }
        }
        (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default(), end)
    });
    RawOutput { stdout, stderr, end, duration_ms: Some(elapsed_ms(started)) }
}

fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group we
    // created for the child; it touches no memory of ours.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

/// Reads a pipe to its end, passing every chunk to the sink and keeping the
/// last `KEPT_TAIL` bytes.
fn drain(pipe: Option<impl Read>, stream: Stream, sink: Option<&dyn LogSink>) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(sink) = sink {
                    sink.chunk(stream, &buf[..n]);
                }
                tail.extend(&buf[..n]);
                if tail.len() > KEPT_TAIL {
                    tail.drain(..tail.len() - KEPT_TAIL);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    tail.into()
}

fn exit_of(status: std::process::ExitStatus) -> ProcessEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessEnd::Exited(code),
        (None, Some(signal)) => ProcessEnd::Signaled(signal),
        (None, None) => ProcessEnd::Exited(-1),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(Stream, Vec<u8>)>>);

    impl LogSink for Collect {
        fn chunk(&self, stream: Stream, bytes: &[u8]) {
            self.0.lock().unwrap().push((stream, bytes.to_vec()));
        }
    }

    fn sh(script: &str, stop_after: Option<Duration>) -> Spawn {
        Spawn {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            stop_after,
            ..Spawn::default()
        }
    }

    #[test]
    fn streams_both_outputs_and_keeps_them() {
        let sink = Collect::default();
        let out = run(&sh("echo out; echo err >&2; exit 3", None), Some(&sink));
        assert_eq!(out.end, ProcessEnd::Exited(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let chunks = sink.0.lock().unwrap();
        assert!(chunks.contains(&(Stream::Stdout, b"out\n".to_vec())));
        assert!(chunks.contains(&(Stream::Stderr, b"err\n".to_vec())));
    }

    #[test]
    fn stop_after_kills_the_whole_group() {
        // The shell's child keeps the pipe open; only killing the group ends it.
        let started = Instant::now();
        let out = run(&sh("sleep 30 & echo up; wait", Some(Duration::from_millis(300))), None);
        assert_eq!(out.end, ProcessEnd::StillRunning);
        assert_eq!(out.stdout, b"up\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn spawn_errors_carry_errno() {
        let out = run(&Spawn { program: "/nonexistent/tool".into(), ..Spawn::default() }, None);
        assert_eq!(out.end, ProcessEnd::SpawnError(2));
    }

    #[test]
    fn keeps_only_the_tail() {
        let script = format!("head -c {} /dev/zero; printf END", KEPT_TAIL + 1000);
        let out = run(&sh(&script, None), None);
        assert_eq!(out.stdout.len(), KEPT_TAIL);
        assert!(out.stdout.ends_with(b"END"));
    }
}
