//! A classifier for the sandbox tests that misbehaves as its input's stdout asks: `spin` loops forever, `hoard` allocates until memory runs out, `panic` traps, `sleep` blocks for an hour (no fuel is spent sleeping), `clock` answers with what it read of the clocks and randomness; anything else is `unclassified`.

wit_bindgen::generate!({ path: "../../../wit", world: "classifier-only" });

use exports::sando::gate::classifier::Guest;
use sando::gate::types::{CargoTestFailure, GateFailure, GateKind, GateStatus, RawOutput};

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
            b"sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                GateStatus::Failed(GateFailure::Unclassified)
            }
            b"clock" => GateStatus::Failed(GateFailure::CargoTest(CargoTestFailure {
                failed_count: 0,
                first_failed: Some(readings()),
            })),
            _ => GateStatus::Failed(GateFailure::Unclassified),
        }
    }
}

/// The wall clock, the monotonic clock and a random number, as the guest
/// sees them.
fn readings() -> String {
    use std::hash::{BuildHasher, Hasher};
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let start = std::time::Instant::now();
    let elapsed = start.elapsed().as_nanos();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(1);
    format!("wall={wall} elapsed={elapsed} random={}", hasher.finish())
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
