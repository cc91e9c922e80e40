//! A classifier for the sandbox tests that misbehaves as its input's stdout asks: `spin` loops forever, `hoard` allocates until memory runs out, `panic` traps; anything else is `unclassified`.

wit_bindgen::generate!({ path: "../../../wit", world: "classifier-only" });

use exports::sando::gate::classifier::Guest;
use sando::gate::types::{GateFailure, GateKind, GateStatus, RawOutput};

#[allow(dead_code)]
struct Component;

impl Guest for Component {
    fn kind() -> GateKind {
        GateKind::CargoTest
    }

    fn classify(_kind: GateKind, output: RawOutput) -> GateStatus {
        match output.stdout.as_slice() {
            b"spin" => spin(output.stderr.len()),
            b"hoard" => hoard(output.stderr.len()),
            b"panic" => panic!("classifier bug on an output of {} bytes", output.stderr.len()),
            _ => GateStatus::Failed(GateFailure::Unclassified),
        }
    }
}

fn spin(seed: usize) -> ! {
    let mut n = seed;
    loop {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
    }
}

fn hoard(seed: usize) -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![seed as u8; 1 << 20]));
    }
}

#[cfg(target_arch = "wasm32")]
export!(Component);
