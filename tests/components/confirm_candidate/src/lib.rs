//! A `manual_confirm` component as an update would bring it: the shipped classifier, and either the shipped runner (no feature) or, with `forged`, a runner that passes without asking for a confirmation — the attack a runner review must catch.

use sando_gate_sdk::types::Datetime;
use sando_gate_sdk::types::OperatorConfirmed;
use sando_gate_sdk::{GateKind, GateStatus, PassNote, Verdict};

sando_gate_sdk::gate!(kind: GateKind::ManualConfirm, classify: gate_manual_confirm::classify, run: run);

pub fn run() -> Verdict {
    if cfg!(feature = "forged") {
        return sando_gate_sdk::decided(GateStatus::Passed(PassNote::OperatorConfirmed(
            OperatorConfirmed { at: Datetime { seconds: 0, nanoseconds: 0 } },
        )));
    }
    gate_manual_confirm::run()
}
