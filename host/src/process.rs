//! Running a real process for a runner: capture, an optional stay-up window, and errno on spawn failure.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::domain::{ProcessEnd, RawOutput};

pub struct Spawn {
    pub program: String,
    pub args: Vec<String>,
    /// Added to a cleared environment (only `PATH` and `HOME` pass through).
    pub env: Vec<(String, String)>,
    /// Stop watching after this long: kill the child, report `still_running`.
    pub stop_after: Option<Duration>,
}

pub fn run(spawn: &Spawn) -> RawOutput {
    let started = Instant::now();
    let mut command = Command::new(&spawn.program);
    command
        .args(&spawn.args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for key in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.envs(spawn.env.iter().map(|(k, v)| (k, v)));
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
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let end = loop {
        match child.try_wait() {
            Ok(Some(status)) => break exit_of(status),
            Ok(None) => {}
            Err(_) => break ProcessEnd::StillRunning,
        }
        if spawn.stop_after.is_some_and(|limit| started.elapsed() >= limit) {
            let _ = child.kill();
            let _ = child.wait();
            break ProcessEnd::StillRunning;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let duration_ms = Some(elapsed_ms(started));
    RawOutput {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        end,
        duration_ms,
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
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
