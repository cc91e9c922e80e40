//! A cargo_test component as a gate author would update it: the shipped runner, with a classifier changed as one feature says.
//!
//! - `improved`: also recognises a test binary that exits non-zero before
//!   libtest's summary (the shipped classifier calls that `unclassified`).
//! - `regressed`: forgets how passing runs look (a shipped fixture fails).
//! - `lenient`: waves any failing test named `flaky…` through as passed (a
//!   shipped fixture fails it).
//! - `forgiving`: waves exactly `tests::flaky` through (no fixture has it;
//!   only a history can show the change).
//! - `spin`, `hoard`: loop forever, or allocate until memory runs out.
//! - `forged`: the shipped classifier, but a runner that runs the tests and
//!   then decides a pass itself, whatever they printed (the host refuses a
//!   runner's own pass of cargo_test; a runner review must hold it).
//! - none: the shipped classifier, unchanged.

use sando_gate_sdk::types::CargoTestFailure;
use sando_gate_sdk::{GateFailure, GateKind, GateStatus, PassNote, RawOutput, Verdict};

sando_gate_sdk::gate!(kind: GateKind::CargoTest, classify: classify, run: run);

/// The shipped runner (its evidence is judged by the classifier in service).
pub fn run() -> Verdict {
    let verdict = gate_cargo_test::run();
    if cfg!(feature = "forged") {
        return sando_gate_sdk::decided(GateStatus::Passed(PassNote::TestsPassed(
            sando_gate_sdk::types::TestsPassed { count: 1, duration_s: 0, flaky: Vec::new() },
        )));
    }
    verdict
}

pub fn classify(output: &RawOutput) -> GateStatus {
    let shipped = gate_cargo_test::classify(output);
    if cfg!(feature = "spin") {
        spin(output.stdout.len());
    }
    if cfg!(feature = "hoard") {
        hoard(output.stdout.len());
    }
    if cfg!(feature = "improved")
        && shipped == GateStatus::Failed(GateFailure::Unclassified)
        && contains(&output.stderr, b"process didn't exit successfully")
    {
        return GateStatus::Failed(GateFailure::CargoTest(CargoTestFailure {
            failed_count: 1,
            first_failed: None,
        }));
    }
    if cfg!(feature = "regressed") && matches!(shipped, GateStatus::Passed(_)) {
        return GateStatus::Failed(GateFailure::Unclassified);
    }
    let waved_through = |name: &str| {
        (cfg!(feature = "lenient") && name.contains("flaky"))
            || (cfg!(feature = "forgiving") && name == "tests::flaky")
    };
    if let GateStatus::Failed(GateFailure::CargoTest(failure)) = &shipped
        && failure.first_failed.as_deref().is_some_and(waved_through)
    {
        return GateStatus::Passed(PassNote::TestsPassed(sando_gate_sdk::types::TestsPassed {
            count: 0,
            duration_s: 0,
            flaky: Vec::new(),
        }));
    }
    shipped
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
