//! A misbehaving classifier for the sandbox tests: loops forever.

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
    let mut n = seed;
    loop {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
    }
}
