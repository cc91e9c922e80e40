//! The Slurm executor against the local one, in the same run, on the cluster `./x bench` starts (`SLURM_CONF`):
//! 1. per-process overhead: a sandboxed `true`, started and waited for, `RUNS` times on each (median and spread);
//! 2. live-log throughput: a sandboxed process writing `FLOOD_BYTES` to stdout, every byte through the sink, read from the pipe locally and from the job's output file on Slurm; also net of the per-process median.
//!
//! Run with `./x bench` (or `cargo bench -p sando --bench slurm` with `SLURM_CONF` set).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sando::config::SlurmResources;
use sando::domain::ProcessEnd;
use sando::executor::{
    CancellationToken, Executor, Isolation, JobHook, LocalExecutor, LogSink, Mount, Mounted,
    ProcessSpec, RecordJob, SlurmExecutor, Stream, block_on,
};

const RUNS: usize = 15;
const FLOOD_BYTES: u64 = 1 << 30;

#[derive(Default)]
struct Count(AtomicU64);

impl LogSink for Count {
    fn chunk(&self, _stream: Stream, bytes: Bytes) {
        self.0.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

fn spec(tree: &Path, script: &str) -> ProcessSpec {
    ProcessSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: Some(tree.to_owned()),
        isolation: Some(Isolation {
            mounts: vec![Mount::new(Mounted::Tree, tree)],
            ..Isolation::default()
        }),
        ..ProcessSpec::default()
    }
}

/// Seconds for one run of `script` on `executor`, and the bytes its sink got.
fn once(executor: &dyn Executor, tree: &Path, script: &str) -> (f64, u64) {
    once_as(executor, spec(tree, script))
}

/// `spec` as a gate's process is: a job submitted held, its handle
/// recorded (here: nowhere), then released.
fn held(spec: ProcessSpec) -> ProcessSpec {
    let record: RecordJob = Arc::new(|_handle| Box::pin(async { Ok(()) }));
    ProcessSpec { job: Some(JobHook { record, resume: None }), ..spec }
}

fn once_as(executor: &dyn Executor, spec: ProcessSpec) -> (f64, u64) {
    let sink = Arc::new(Count::default());
    let started = Instant::now();
    let out = block_on(executor.run(
        spec,
        Some(sink.clone() as Arc<dyn LogSink>),
        CancellationToken::new(),
    ));
    let took = started.elapsed().as_secs_f64();
    assert_eq!(out.output.end, ProcessEnd::Exited(0), "{out:?}");
    (took, sink.0.load(Ordering::Relaxed))
}

fn median(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn main() {
    std::env::var("SLURM_CONF").expect("SLURM_CONF: run with ./x bench, which starts Slurm");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/slurm-bench");
    let base =
        std::env::var_os("CARGO_TARGET_DIR").map_or(base, |t| Path::new(&t).join("slurm-bench"));
    std::fs::create_dir_all(&base).unwrap();
    let shared = tempfile::tempdir_in(&base).unwrap();
    let tree = shared.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let local = LocalExecutor::detect(Duration::from_secs(2));
    assert!(local.isolates(), "bubblewrap is needed");
    let resources =
        SlurmResources { partition: Some("gates".parse().unwrap()), ..SlurmResources::default() };
    let slurm = SlurmExecutor::new(local.clone(), resources, shared.path(), shared.path());

    // Warm both up once (page cache, the node's first job).
    once(&local, &tree, "true");
    once(&slurm, &tree, "true");
    let (mut here, mut there, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        here.push(once(&local, &tree, "true").0);
        there.push(once(&slurm, &tree, "true").0);
        kept.push(once_as(&slurm, held(spec(&tree, "true"))).0);
    }
    let (l, l_lo, l_hi) = median(here);
    let (s, s_lo, s_hi) = median(there);
    let (h, h_lo, h_hi) = median(kept);
    println!(
        "per gate process (held, recorded, released, {RUNS} runs): {h:.3} s ({h_lo:.3}–{h_hi:.3}), \
         held / plain {:.2}",
        h / s
    );
    println!(
        "per process (sandboxed `true`, {RUNS} runs each): slurm {s:.3} s ({s_lo:.3}–{s_hi:.3}), \
         local {l:.3} s ({l_lo:.3}–{l_hi:.3}), ratio {:.1}, overhead {:.3} s",
        s / l,
        s - l
    );

    let flood = format!("head -c {FLOOD_BYTES} /dev/zero");
    let (lt, lb) = once(&local, &tree, &flood);
    let (st, sb) = once(&slurm, &tree, &flood);
    assert_eq!((lb, sb), (FLOOD_BYTES, FLOOD_BYTES), "every byte through the sink");
    let mib = (FLOOD_BYTES >> 20) as f64;
    // Net of each side's median cost of a process that writes nothing.
    let (st_net, lt_net) = ((st - s).max(1e-3), (lt - l).max(1e-3));
    println!(
        "live log, {} MiB to stdout, every byte through the sink: slurm {:.0} MiB/s ({st:.2} s, \
         {st_net:.2} s net of a job's start), local {:.0} MiB/s ({lt:.2} s, {lt_net:.2} s net), \
         slurm / local {:.2} net",
        FLOOD_BYTES >> 20,
        mib / st_net,
        mib / lt_net,
        lt_net / st_net
    );
}
