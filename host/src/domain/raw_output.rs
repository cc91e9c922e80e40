//! `RawOutput`: what a classifier may know about one process run.

/// How the observed process ended. Exactly one of these, as in `case.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i32),
    Signaled(i32),
    /// The program could not be started: the OS errno.
    SpawnError(i32),
    /// Still alive when the host stopped watching (and killed it).
    StillRunning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: ProcessEnd,
    pub duration_ms: Option<u64>,
}
