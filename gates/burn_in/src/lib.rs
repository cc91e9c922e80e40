//! The `burn_in` gate: passes once the version has run on the previous tier for the configured time.

use sando_gate_sdk::host::{self, GateParams};
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::{BurnInElapsed, BurnInRemaining};
use sando_gate_sdk::{GateBlocker, GateKind, GateStatus, PassNote, RawOutput, Verdict};

/// Parameter: the burn-in time (`duration-ms`; the host turns the
/// configuration's `"168h"` or `"90s"` into milliseconds).
pub fn run() -> Verdict {
    let GateParams::BurnIn(params) = host::context().params else {
        return sando_gate_sdk::decided(unclassified());
    };
    let elapsed_s = host::burn_in_clock().map(|c| c.now.seconds - c.started_at.seconds);
    sando_gate_sdk::decided(decide(params.duration_ms / 1000, elapsed_s))
}

sando_gate_sdk::gate!(kind: GateKind::BurnIn, classify: classify, run: run);

/// burn_in never runs a process, so no process output means anything to it:
/// whatever it is asked to read is `unclassified`, never a guess.
pub fn classify(_output: &RawOutput) -> GateStatus {
    unclassified()
}

/// `elapsed_s`: how long the version has run on the previous tier, if it has started.
pub fn decide(duration_s: u64, elapsed_s: Option<i64>) -> GateStatus {
    let Some(elapsed_s) = elapsed_s else {
        return GateStatus::Blocked(GateBlocker::BurnInClockNotStarted);
    };
    let elapsed_s = u64::try_from(elapsed_s).unwrap_or(0);
    if elapsed_s >= duration_s {
        return GateStatus::Passed(PassNote::BurnInElapsed(BurnInElapsed { seconds: elapsed_s }));
    }
    GateStatus::Blocked(GateBlocker::BurnInRemaining(BurnInRemaining {
        seconds: duration_s - elapsed_s,
        total_seconds: duration_s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_started_is_blocked() {
        assert_eq!(decide(3600, None), GateStatus::Blocked(GateBlocker::BurnInClockNotStarted));
    }

    #[test]
    fn remaining_counts_seconds() {
        assert_eq!(
            decide(168 * 3600, Some(121 * 3600 - 1)),
            GateStatus::Blocked(GateBlocker::BurnInRemaining(BurnInRemaining {
                seconds: 47 * 3600 + 1,
                total_seconds: 168 * 3600
            }))
        );
        assert_eq!(
            decide(60, Some(15)),
            GateStatus::Blocked(GateBlocker::BurnInRemaining(BurnInRemaining {
                seconds: 45,
                total_seconds: 60
            }))
        );
    }

    #[test]
    fn elapsed_passes() {
        assert_eq!(
            decide(90, Some(7200)),
            GateStatus::Passed(PassNote::BurnInElapsed(BurnInElapsed { seconds: 7200 }))
        );
    }
}
