//! The `manual_confirm` gate: passes once an operator has confirmed the run.

// The component type is only used by the wasm32 export.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use sando_gate_sdk::host;
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::OperatorConfirmed;
use sando_gate_sdk::{GateBlocker, GateKind, GateStatus, PassNote, RawOutput};

struct Component;

impl sando_gate_sdk::Classifier for Component {
    fn kind() -> GateKind {
        GateKind::ManualConfirm
    }

    /// Only an operator confirms; no process output ever does.
    fn classify(_kind: GateKind, _output: RawOutput) -> GateStatus {
        unclassified()
    }
}

impl sando_gate_sdk::Runner for Component {
    fn run() -> GateStatus {
        match host::confirmation() {
            Some(confirmation) => {
                GateStatus::Passed(PassNote::OperatorConfirmed(OperatorConfirmed {
                    at: confirmation.at,
                }))
            }
            None => GateStatus::Blocked(GateBlocker::AwaitingOperatorConfirmation),
        }
    }
}

// Natively (tests, benchmarks) there is nothing to export to, and the
// component export names are not valid native symbol names.
#[cfg(target_arch = "wasm32")]
sando_gate_sdk::export!(Component with_types_in sando_gate_sdk);
