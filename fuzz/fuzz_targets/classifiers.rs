//! Fuzzes every shipped classifier's text parsing, natively: any stdout, stderr and process end gives a verdict, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sando_gate_sdk::{ProcessEnd, RawOutput};

fuzz_target!(|data: &[u8]| {
    // First byte: how the process ended; then stdout and stderr, split at the
    // first 0xff (a byte no UTF-8 text holds).
    let Some((&first, rest)) = data.split_first() else { return };
    let (stdout, stderr) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (rest[..at].to_vec(), rest[at + 1..].to_vec()),
        None => (rest.to_vec(), Vec::new()),
    };
    let end = match first % 4 {
        0 => ProcessEnd::Exited(i32::from(first) - 128),
        1 => ProcessEnd::Signaled(i32::from(first % 32)),
        2 => ProcessEnd::SpawnError(i32::from(first)),
        _ => ProcessEnd::StillRunning,
    };
    let duration_ms = data.last().map(|&b| u64::from(b) * 1000);
    let output = RawOutput { stdout, stderr, end, duration_ms };
    let _ = gate_cargo_test::classify(&output);
    let _ = gate_migration_dry_run::classify(&output);
    let _ = gate_boot_smoke::classify(&output);
    let _ = gate_burn_in::classify(&output);
    let _ = gate_manual_confirm::classify(&output);
});
