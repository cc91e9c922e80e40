//! A gate for the sandbox tests: its classifier reaches for `spawn` (which must be denied) and its runner spawns the program its boot_smoke parameters name, with the argument `capability-probe`.

use sando_gate_sdk::host::{self, GateParams, SpawnRequest};
use sando_gate_sdk::outcome::unclassified;
use sando_gate_sdk::types::ArtifactMissing;
use sando_gate_sdk::{GateBlocker, GateKind, GateStatus, RawOutput, Verdict};

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

/// Says what the spawned program printed, as a blocker a runner may decide
/// on its own (`artifact-missing` naming it).
fn run() -> Verdict {
    let program = match host::context().params {
        GateParams::BootSmoke(params) => params.command.program,
        _ => "/bin/echo".to_owned(),
    };
    let printed = String::from_utf8_lossy(&spawn(&program).stdout).trim().to_owned();
    sando_gate_sdk::decided(GateStatus::Blocked(GateBlocker::ArtifactMissing(ArtifactMissing {
        version: printed,
    })))
}

sando_gate_sdk::gate!(kind: GateKind::BootSmoke, classify: classify, run: run);
