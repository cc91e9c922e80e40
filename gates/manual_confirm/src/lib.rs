//! The `manual_confirm` gate: passes once an operator has confirmed the run.

use sando_gate_sdk::host;
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::OperatorConfirmed;
use sando_gate_sdk::{GateBlocker, GateKind, GateStatus, PassNote, RawOutput, Verdict};

/// The runner, public so an updated component can reuse it.
pub fn run() -> Verdict {
    sando_gate_sdk::decided(match host::confirmation() {
        Some(confirmation) => GateStatus::Passed(PassNote::OperatorConfirmed(OperatorConfirmed {
            at: confirmation.at,
        })),
        None => GateStatus::Blocked(GateBlocker::AwaitingOperatorConfirmation),
    })
}

sando_gate_sdk::gate!(kind: GateKind::ManualConfirm, classify: classify, run: run);

/// Only an operator confirms; no process output ever does.
pub fn classify(_output: &RawOutput) -> GateStatus {
    unclassified()
}
