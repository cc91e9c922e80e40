//! The `boot_smoke` gate: starts the built binary and checks it stays up for N seconds.

use sando_gate_sdk::host::{self, GateParams};
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::text::secs_from_ms;
use sando_gate_sdk::types::{ExitCode, SignalRef, SpawnFailed, StayedUp};
use sando_gate_sdk::{GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput, Verdict};

/// Starts the version's artifact and watches it for the stay-up window;
/// the classifier in service judges how it ended (or that it did not).
pub fn run() -> Verdict {
    let GateParams::BootSmoke(params) = host::context().params else {
        return sando_gate_sdk::decided(unclassified());
    };
    sando_gate_sdk::spawn(&params.command, Some(params.stay_up_ms.max(1)));
    sando_gate_sdk::judge()
}

sando_gate_sdk::gate!(kind: GateKind::BootSmoke, classify: classify, run: run);

/// Still running when the window closed is the only pass; any end before it
/// is a failure, told apart by how the process ended.
pub fn classify(output: &RawOutput) -> GateStatus {
    let panicked = || {
        let stderr = String::from_utf8_lossy(&output.stderr);
        stderr.lines().any(|l| l.starts_with("thread '") && l.contains("panicked at"))
    };
    let failure = match output.end {
        ProcessEnd::StillRunning => {
            return GateStatus::Passed(PassNote::StayedUp(StayedUp {
                duration_s: secs_from_ms(output.duration_ms),
            }));
        }
        ProcessEnd::SpawnError(os_error) => GateFailure::SpawnFailed(SpawnFailed { os_error }),
        ProcessEnd::Exited(code) if panicked() => {
            GateFailure::BootPanic(ExitCode { exit_code: Some(code) })
        }
        ProcessEnd::Exited(code) => {
            GateFailure::BootExitedEarly(ExitCode { exit_code: Some(code) })
        }
        ProcessEnd::Signaled(_) if panicked() => {
            GateFailure::BootPanic(ExitCode { exit_code: None })
        }
        ProcessEnd::Signaled(signal) => GateFailure::BootKilled(SignalRef { signal }),
    };
    GateStatus::Failed(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(end: ProcessEnd, stderr: &str) -> RawOutput {
        RawOutput { stdout: Vec::new(), stderr: stderr.into(), end, duration_ms: Some(3000) }
    }

    #[test]
    fn exit_zero_is_early_not_a_pass() {
        assert_eq!(
            classify(&output(ProcessEnd::Exited(0), "")),
            GateStatus::Failed(GateFailure::BootExitedEarly(ExitCode { exit_code: Some(0) }))
        );
    }

    #[test]
    fn panic_is_recognised_by_its_message() {
        let stderr = "\nthread 'main' panicked at src/main.rs:3:5:\nboom\n";
        assert_eq!(
            classify(&output(ProcessEnd::Exited(101), stderr)),
            GateStatus::Failed(GateFailure::BootPanic(ExitCode { exit_code: Some(101) }))
        );
        assert_eq!(
            classify(&output(ProcessEnd::Exited(101), "")),
            GateStatus::Failed(GateFailure::BootExitedEarly(ExitCode { exit_code: Some(101) }))
        );
    }
}
