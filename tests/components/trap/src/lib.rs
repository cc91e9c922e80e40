//! A misbehaving classifier for the sandbox tests: panics (a trap).

wit_bindgen::generate!({ path: "../../../wit", world: "classifier-only" });

use exports::sando::gate::classifier::Guest;
use sando::gate::types::{GateKind, GateStatus, RawOutput};

struct Component;

impl Guest for Component {
    fn kind() -> GateKind {
        GateKind::CargoTest
    }

    fn classify(_kind: GateKind, output: RawOutput) -> GateStatus {
        misbehave(output.stdout.len());
        unreachable!("misbehave never returns")
    }
}

export!(Component);

fn misbehave(seed: usize) {
    panic!("classifier bug on an output of {seed} bytes");
}
