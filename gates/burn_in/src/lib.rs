//! The `burn_in` gate: passes once the version has run on the previous tier for the configured time.

use sando_gate_sdk::host;
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::{BurnInElapsed, BurnInRemaining};
use sando_gate_sdk::{GateBlocker, GateKind, GateStatus, PassNote, RawOutput};

/// Parameter: `duration_s`, the burn-in time in seconds (the host turns
/// the configuration's `"168h"` or `"90s"` into seconds).
fn run() -> GateStatus {
    let context = host::context();
    let Some(duration_s) =
        sando_gate_sdk::param(&context, "duration_s").and_then(|s| s.parse().ok())
    else {
        return unclassified();
    };
    decide(duration_s, host::burn_in_clock().map(|c| c.now.seconds - c.started_at.seconds))
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
        return GateStatus::Passed(PassNote::BurnInElapsed(BurnInElapsed {
            hours: hours_floor(elapsed_s),
        }));
    }
    GateStatus::Blocked(GateBlocker::BurnInRemaining(BurnInRemaining {
        hours: hours_ceil(duration_s - elapsed_s),
        total: hours_ceil(duration_s),
    }))
}

fn hours_floor(s: u64) -> u32 {
    u32::try_from(s / 3600).unwrap_or(u32::MAX)
}

/// Rounded up, so "47h left" is never shown when 47h 30m remain.
fn hours_ceil(s: u64) -> u32 {
    u32::try_from(s.div_ceil(3600)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_started_is_blocked() {
        assert_eq!(decide(3600, None), GateStatus::Blocked(GateBlocker::BurnInClockNotStarted));
    }

    #[test]
    fn remaining_rounds_up() {
        assert_eq!(
            decide(168 * 3600, Some(121 * 3600 - 1)),
            GateStatus::Blocked(GateBlocker::BurnInRemaining(BurnInRemaining {
                hours: 48,
                total: 168
            }))
        );
    }

    #[test]
    fn elapsed_passes() {
        assert_eq!(
            decide(90, Some(7200)),
            GateStatus::Passed(PassNote::BurnInElapsed(BurnInElapsed { hours: 2 }))
        );
    }
}
