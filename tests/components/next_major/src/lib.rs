//! A well-behaved classifier built against the next major of the gate contract: the host must reject it by version, not by accident.

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

use exports::sando::gate::classifier::Guest;
use sando::gate::types::{GateFailure, GateKind, GateStatus, RawOutput};

#[allow(dead_code)]
struct Component;

impl Guest for Component {
    fn kind() -> GateKind {
        GateKind::CargoTest
    }

    fn classify(_kind: GateKind, _output: RawOutput) -> GateStatus {
        GateStatus::Failed(GateFailure::Unclassified)
    }
}

#[cfg(target_arch = "wasm32")]
export!(Component);
