//! A gate for the sandbox tests: its classifier reaches for `spawn` (which must be denied) and its runner spawns the program named by its `program` parameter.

// The component type is only used by the wasm32 export.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use sando_gate_sdk::host::{self, SpawnRequest};
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::{GateKind, GateStatus, RawOutput};

struct Component;

fn spawn(program: &str) -> RawOutput {
    host::spawn(&SpawnRequest {
        program: program.to_owned(),
        args: vec!["capability-probe".to_owned()],
        env: Vec::new(),
        stop_after_ms: None,
    })
}

impl sando_gate_sdk::Classifier for Component {
    fn kind() -> GateKind {
        GateKind::BootSmoke
    }

    fn classify(_kind: GateKind, _output: RawOutput) -> GateStatus {
        spawn("/bin/echo");
        unclassified()
    }
}

impl sando_gate_sdk::Runner for Component {
    fn run() -> GateStatus {
        let context = host::context();
        let program = sando_gate_sdk::param(&context, "program").unwrap_or("/bin/echo");
        let output = spawn(program);
        if output.stdout.starts_with(b"capability-probe") {
            GateStatus::Passed(sando_gate_sdk::PassNote::StayedUp(
                sando_gate_sdk::types::StayedUp { duration_s: 0 },
            ))
        } else {
            unclassified()
        }
    }
}

// Natively (tests, benchmarks) there is nothing to export to, and the
// component export names are not valid native symbol names.
#[cfg(target_arch = "wasm32")]
sando_gate_sdk::export!(Component with_types_in sando_gate_sdk);
