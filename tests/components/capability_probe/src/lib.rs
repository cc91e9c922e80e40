//! A gate for the sandbox tests: its classifier reaches for `spawn` (which must be denied) and its runner spawns the program named by its `program` parameter.

use sando_gate_sdk::host::{self, SpawnRequest};
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::StayedUp;
use sando_gate_sdk::{GateKind, GateStatus, PassNote, RawOutput};

fn spawn(program: &str) -> RawOutput {
    host::spawn(&SpawnRequest {
        program: program.to_owned(),
        args: vec!["capability-probe".to_owned()],
        env: Vec::new(),
        stop_after_ms: None,
    })
}

fn classify(_output: &RawOutput) -> GateStatus {
    spawn("/bin/echo");
    unclassified()
}

/// Passes when the spawned program echoed its argument back.
fn run() -> GateStatus {
    let context = host::context();
    let program = sando_gate_sdk::param(&context, "program").unwrap_or("/bin/echo");
    if spawn(program).stdout.starts_with(b"capability-probe") {
        GateStatus::Passed(PassNote::StayedUp(StayedUp { duration_s: 0 }))
    } else {
        unclassified()
    }
}

sando_gate_sdk::gate!(kind: GateKind::BootSmoke, classify: classify, run: run);
