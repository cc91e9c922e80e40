//! A misbehaving classifier for the sandbox tests: allocates until memory runs out.

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
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![seed as u8; 1 << 20]));
    }
}
