//! Outcomes every gate produces the same way, so the five classifiers agree on them.

use crate::types::{SpawnFailed, Timeout};
use crate::{GateFailure, GateKind, GateStatus, ProcessEnd, RawOutput};

/// The admitted fallback: nothing recognised, never a guess.
pub fn unclassified() -> GateStatus {
    GateStatus::Failed(GateFailure::Unclassified)
}

/// The outcome of process ends that mean the same for every gate that runs a
/// tool to completion: it could not start, or it had to be stopped.
pub fn common_end(kind: GateKind, output: &RawOutput) -> Option<GateStatus> {
    match output.end {
        ProcessEnd::SpawnError(os_error) => {
            Some(GateStatus::Failed(GateFailure::SpawnFailed(SpawnFailed { os_error })))
        }
        ProcessEnd::StillRunning => Some(GateStatus::Failed(GateFailure::Timeout(Timeout {
            gate: kind,
            after_s: crate::text::secs_from_ms(output.duration_ms),
        }))),
        ProcessEnd::Exited(_) | ProcessEnd::Signaled(_) => None,
    }
}
