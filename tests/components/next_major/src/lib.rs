//! A well-behaved classifier built against the next major of the gate contract: the host must reject it by version, not by accident.

// The component type is only used by the wasm32 export.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

use exports::sando::gate::classifier::Guest;
use sando::gate::types::{GateFailure, GateKind, GateStatus, RawOutput};

struct Component;

impl Guest for Component {
    fn kind() -> GateKind {
        GateKind::CargoTest
    }

    fn classify(_kind: GateKind, _output: RawOutput) -> GateStatus {
        GateStatus::Failed(GateFailure::Unclassified)
    }
}

// Natively (tests, benchmarks) there is nothing to export to, and the
// component export names are not valid native symbol names.
#[cfg(target_arch = "wasm32")]
export!(Component);
