//! `GET /metrics`: the daemon's counters, gauges and histograms in the OpenMetrics text format, through `prometheus-client`.
//!
//! Every label set is bounded by the configuration or the gate contract:
//! tiers, gate kinds, statuses and failure or blocker classes, outcomes.
//! No version, sha or run id is ever a label (each would be a new series
//! forever). Counters count from the daemon's start, as Prometheus
//! counters do: `rate()` and `increase()` take a restart as a reset, so
//! nothing is seeded from the store (a seeded counter would jump at every
//! restart and every takeover, which alerts read as a burst of failures).
//! What the store knows now (versions waiting, how long) is read at each
//! scrape instead.
//!
//! The metrics are the process's ([`global`]): one `sando serve` is one
//! process, and the pipe readers and logs that count bytes need no handle
//! on the daemon.

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::domain::{BuildOutcome, DeployOutcome, GateKind, GateStatus, TierId};
use crate::store::RunRecord;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric the daemon keeps.
pub struct Metrics {
    registry: Registry,
    pub gate_runs: Family<Labels, Counter>,
    gate_run_seconds: Histograms,
    gate_run_fuel: Histograms,
    gate_run_peak_memory: Histograms,
    component_faults: Family<Labels, Counter>,
    builds: Family<Labels, Counter>,
    build_seconds: Histograms,
    deploys: Family<Labels, Counter>,
    versions_waiting: Family<Labels, Gauge>,
    version_waiting_seconds: Family<Labels, Gauge>,
    planner_passes: Counter,
    planner_seconds: Histogram,
    workers_busy: Gauge,
    workers: Gauge,
    event_clients: Gauge,
    lagged_events: Counter,
    component_loads: Family<Labels, Counter>,
    log_bytes: Counter,
    retention_sweeps: Family<Labels, Counter>,
}

/// Seconds from 0.1 s to about 14 h: a gate's, a build's or a deploy's.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 20))
}

/// A planner pass: from 100 µs to about 3 s.
fn pass_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// Wasm fuel: 10^5 to about 10^12.
fn fuel() -> Histogram {
    Histogram::new(exponential_buckets(1e5, 4.0, 12))
}

/// Bytes: 1 MiB to 4 GiB.
fn bytes() -> Histogram {
    Histogram::new(exponential_buckets(1048576.0, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sando");
        let m = Metrics {
            gate_runs: Family::default(),
            gate_run_seconds: Family::new_with_constructor(seconds),
            gate_run_fuel: Family::new_with_constructor(fuel),
            gate_run_peak_memory: Family::new_with_constructor(bytes),
            component_faults: Family::default(),
            builds: Family::default(),
            build_seconds: Family::new_with_constructor(seconds),
            deploys: Family::default(),
            versions_waiting: Family::default(),
            version_waiting_seconds: Family::default(),
            planner_passes: Counter::default(),
            planner_seconds: pass_seconds(),
            workers_busy: Gauge::default(),
            workers: Gauge::default(),
            event_clients: Gauge::default(),
            lagged_events: Counter::default(),
            component_loads: Family::default(),
            log_bytes: Counter::default(),
            retention_sweeps: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "gate_runs",
            "Finished gate runs, by tier, gate kind, status and failure or blocker class",
            m.gate_runs.clone(),
        );
        registry.register_with_unit(
            "gate_run_duration",
            "How long finished gate runs took, by gate kind and status",
            Unit::Seconds,
            m.gate_run_seconds.clone(),
        );
        registry.register(
            "gate_run_fuel",
            "Wasm fuel the gate components spent per run, by gate kind",
            m.gate_run_fuel.clone(),
        );
        registry.register_with_unit(
            "gate_run_peak_memory",
            "Peak linear memory of the gate components per run, by gate kind",
            Unit::Bytes,
            m.gate_run_peak_memory.clone(),
        );
        registry.register(
            "component_faults",
            "Gate runs ended by a fault of their component (a trap, a limit), by gate kind",
            m.component_faults.clone(),
        );
        registry.register("builds", "Finished builds, by outcome", m.builds.clone());
        registry.register_with_unit(
            "build_duration",
            "How long finished builds took, by outcome",
            Unit::Seconds,
            m.build_seconds.clone(),
        );
        registry.register(
            "deploys",
            "Finished deploys to a node, by tier and outcome",
            m.deploys.clone(),
        );
        registry.register(
            "versions_waiting",
            "Versions offered to a tier and not yet promoted there (0 or 1), by tier",
            m.versions_waiting.clone(),
        );
        registry.register_with_unit(
            "version_waiting",
            "How long the version waiting at a tier has waited since it reached the tier before (since it was registered, at the first), by tier; 0 when none waits",
            Unit::Seconds,
            m.version_waiting_seconds.clone(),
        );
        registry.register(
            "planner_passes",
            "Passes of the decision loop's planner",
            m.planner_passes.clone(),
        );
        registry.register_with_unit(
            "planner_pass_duration",
            "How long a planner pass took, the store's snapshot included",
            Unit::Seconds,
            m.planner_seconds.clone(),
        );
        registry.register(
            "workers_busy",
            "Workers of the decision loop doing something",
            m.workers_busy.clone(),
        );
        registry.register("workers", "Workers of the decision loop", m.workers.clone());
        registry.register(
            "event_clients",
            "Clients of /api/events connected now",
            m.event_clients.clone(),
        );
        registry.register(
            "event_lagged_events",
            "Events /api/events clients missed by falling behind (each told `lagged`)",
            m.lagged_events.clone(),
        );
        registry.register(
            "component_loads",
            "Updated gate components settled, by gate kind and outcome (loaded, pending, rejected)",
            m.component_loads.clone(),
        );
        registry.register_with_unit(
            "log_written",
            "Bytes written to gate, build and deploy logs",
            Unit::Bytes,
            m.log_bytes.clone(),
        );
        registry.register(
            "retention_sweeps",
            "Retention sweeps, by outcome (ok, failed)",
            m.retention_sweeps.clone(),
        );
        Metrics { registry, ..m }
    }
}

static GLOBAL: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A status's failure or blocker class; `none` for a pass.
fn class(status: &GateStatus) -> &'static str {
    match status {
        GateStatus::Passed { .. } => "none",
        GateStatus::Failed { failure } => failure.class(),
        GateStatus::Blocked { blocker } => blocker.class(),
    }
}

impl Metrics {
    /// A gate run that finished (a blocked run evaluated again counts once
    /// more: each evaluation is a verdict).
    pub fn gate_run(&self, run: &RunRecord) {
        let Some(status) = &run.outcome else { return };
        let gate = run.gate.to_string();
        let (label, class) = (status.label(), class(status));
        self.gate_runs
            .get_or_create(&labels(&[
                ("tier", run.tier.as_str()),
                ("gate", &gate),
                ("status", label),
                ("class", class),
            ]))
            .inc();
        if let Some(finished) = run.finished_at {
            let took = (finished - run.started_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.gate_run_seconds
                .get_or_create(&labels(&[("gate", &gate), ("status", label)]))
                .observe(took);
        }
        let kind = labels(&[("gate", &gate)]);
        if let Some(fuel) = run.fuel.filter(|f| *f > 0) {
            self.gate_run_fuel.get_or_create(&kind).observe(fuel as f64);
        }
        if let Some(peak) = run.peak_memory.filter(|p| *p > 0) {
            self.gate_run_peak_memory.get_or_create(&kind).observe(peak as f64);
        }
        if class == "component_fault" {
            self.component_faults.get_or_create(&kind).inc();
        }
    }

    pub fn build(&self, outcome: &BuildOutcome, took: std::time::Duration) {
        let outcome = match outcome {
            BuildOutcome::Ok { .. } => "ok",
            BuildOutcome::Failed { .. } => "failed",
        };
        self.builds.get_or_create(&labels(&[("outcome", outcome)])).inc();
        self.build_seconds
            .get_or_create(&labels(&[("outcome", outcome)]))
            .observe(took.as_secs_f64());
    }

    pub fn deploy(&self, tier: &TierId, outcome: &DeployOutcome) {
        let outcome = match outcome {
            DeployOutcome::InProgress => return,
            DeployOutcome::Ok => "ok",
            DeployOutcome::Failed { .. } => "failed",
        };
        self.deploys.get_or_create(&labels(&[("tier", tier.as_str()), ("outcome", outcome)])).inc();
    }

    pub fn planner_pass(&self, took: std::time::Duration) {
        self.planner_passes.inc();
        self.planner_seconds.observe(took.as_secs_f64());
    }

    pub fn lagged(&self, missed: u64) {
        self.lagged_events.inc_by(missed);
    }

    pub fn component(&self, gate: GateKind, outcome: &'static str) {
        self.component_loads
            .get_or_create(&labels(&[("gate", &gate.to_string()), ("outcome", outcome)]))
            .inc();
    }

    pub fn log_bytes(&self, bytes: usize) {
        self.log_bytes.inc_by(bytes as u64);
    }

    pub fn retention_sweep(&self, ok: bool) {
        self.retention_sweeps
            .get_or_create(&labels(&[("outcome", if ok { "ok" } else { "failed" })]))
            .inc();
    }

    /// The exposition, with what is read at the scrape set first.
    pub fn encode(&self, now: Now<'_>) -> String {
        self.workers.set(now.workers as i64);
        self.workers_busy.set(now.workers_busy as i64);
        self.event_clients.set(now.event_clients as i64);
        for (tier, waiting) in now.waiting {
            let tier = labels(&[("tier", tier.as_str())]);
            self.versions_waiting.get_or_create(&tier).set(i64::from(waiting.is_some()));
            self.version_waiting_seconds.get_or_create(&tier).set(waiting.unwrap_or(0));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("a String takes every write");
        out
    }
}

/// What a scrape reads from the daemon as it is now.
pub struct Now<'a> {
    pub workers: usize,
    pub workers_busy: usize,
    pub event_clients: usize,
    /// Each configured tier, and how many seconds its candidate has waited.
    pub waiting: &'a [(TierId, Option<i64>)],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_openmetrics_and_names_each_label() {
        let metrics = Metrics::default();
        metrics.lagged(3);
        metrics.retention_sweep(true);
        let tier: TierId = "prod".parse().unwrap();
        metrics.deploy(&tier, &DeployOutcome::Ok);
        let text = metrics.encode(Now {
            workers: 3,
            workers_busy: 1,
            event_clients: 2,
            waiting: &[(tier, Some(12))],
        });
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in [
            "sando_event_lagged_events_total 3",
            "sando_retention_sweeps_total{outcome=\"ok\"} 1",
            "sando_deploys_total{tier=\"prod\",outcome=\"ok\"} 1",
            "sando_workers_busy 1",
            "sando_versions_waiting{tier=\"prod\"} 1",
            "sando_version_waiting_seconds{tier=\"prod\"} 12",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
