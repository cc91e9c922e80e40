//! Benchmarks for issue "gate contract": the component against the same
//! classifier compiled natively, and instantiate + classify through the
//! host's normal path. Ratios and medians, measured in one process.
//!
//! Run with `./x bench` (builds the components first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sando::domain::{GateKind, ProcessEnd, RawOutput};
use sando::fixtures::{self, Case};
use sando::sandbox::{Limits, Sandbox};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    exe.ancestors().nth(3).expect("target/<profile>/deps/<exe>").to_owned()
}

fn fixtures_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures")
}

fn cases(kind: GateKind) -> Vec<Case> {
    let dirs = fixtures::discover(&fixtures_root().join(kind.as_str())).expect("fixtures");
    dirs.iter().map(|d| Case::load(d).expect("case")).collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn to_sdk(output: &RawOutput) -> sando_gate_sdk::RawOutput {
    sando_gate_sdk::RawOutput {
        stdout: output.stdout.clone(),
        stderr: output.stderr.clone(),
        end: match output.end {
            ProcessEnd::Exited(c) => sando_gate_sdk::ProcessEnd::Exited(c),
            ProcessEnd::Signaled(s) => sando_gate_sdk::ProcessEnd::Signaled(s),
            ProcessEnd::SpawnError(e) => sando_gate_sdk::ProcessEnd::SpawnError(e),
            ProcessEnd::StillRunning => sando_gate_sdk::ProcessEnd::StillRunning,
        },
        duration_ms: output.duration_ms,
    }
}

fn main() {
    let sandbox = Sandbox::new(Limits::default(), None).expect("sandbox");
    let path = target_dir().join("wasm32-wasip2/gates/gate_cargo_test.wasm");
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run ./x build)", path.display()));
    let component = sandbox.load(&bytes).expect("load gate_cargo_test");

    let all = cases(GateKind::CargoTest);
    let size = |c: &Case| c.output.stdout.len() + c.output.stderr.len();
    let largest = all.iter().max_by_key(|c| size(c)).expect("a cargo_test case");
    let smallest = all
        .iter()
        .filter(|c| size(c) > 0 && matches!(c.output.end, ProcessEnd::Exited(_)))
        .min_by_key(|c| size(c))
        .expect("a small case that is read");

    // 1. wasm vs native on the largest cargo_test fixture, interleaved so both
    //    see the same machine load.
    let native_input = to_sdk(&largest.output);
    let expected = component.classify(&sandbox, GateKind::CargoTest, &largest.output).status;
    assert_eq!(expected, largest.expected, "component disagrees with the fixture");
    let rounds = 40;
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    let mut fuel = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let classification = component.classify(&sandbox, GateKind::CargoTest, &largest.output);
        wasm.push(start.elapsed());
        fuel = classification.usage.fuel;
        let start = Instant::now();
        std::hint::black_box(gate_cargo_test::classify(std::hint::black_box(&native_input)));
        native.push(start.elapsed());
    }
    // The part of the component's time that is not classifying: instantiate,
    // copy the same bytes in, reset the instance (the classifier returns at once
    // for a process that is still running).
    let mut fixed = Vec::new();
    let unread = RawOutput { end: ProcessEnd::StillRunning, ..largest.output.clone() };
    for _ in 0..rounds {
        let start = Instant::now();
        std::hint::black_box(component.classify(&sandbox, GateKind::CargoTest, &unread));
        fixed.push(start.elapsed());
    }
    let (wasm_median, native_median) = (median(wasm), median(native));
    println!("largest cargo_test fixture: {} ({} KiB)", largest.name, size(largest) / 1024);
    println!(
        "  component (instantiate + copy in + classify): median {:?}, fuel {fuel}",
        wasm_median
    );
    println!("  of which instantiate + copy in + reset:       median {:?}", median(fixed));
    println!("  native (same classifier code):                median {:?}", native_median);
    println!(
        "  ratio wasm/native: {:.2} (target <= 2.0)",
        wasm_median.as_secs_f64() / native_median.as_secs_f64()
    );

    // 2. instantiate + classify a small fixture through the normal path.
    let iterations = 5000;
    for _ in 0..200 {
        component.classify(&sandbox, GateKind::CargoTest, &smallest.output);
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        std::hint::black_box(component.classify(&sandbox, GateKind::CargoTest, &smallest.output));
        samples.push(start.elapsed());
    }
    println!("small cargo_test fixture: {} ({} bytes)", smallest.name, size(smallest));
    println!(
        "  instantiate + classify: median {:.1} µs, p90 {:.1} µs, p99 {:.1} µs over {iterations} calls (target median <= 25 µs)",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.9).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
}
