//! A misbehaving classifier for the sandbox tests: loops forever.

// The component type is only used by the wasm32 export.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

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

// Natively (tests, benchmarks) there is nothing to export to, and the
// component export names are not valid native symbol names.
#[cfg(target_arch = "wasm32")]
export!(Component);

fn misbehave(seed: usize) {
    let mut n = seed;
    loop {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
    }
}
