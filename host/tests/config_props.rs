//! Property tests of the topology config parser, the outside input `sando check` and `sando serve` read: it never panics, every refusal names file, line and column, and whatever it accepts is bounded so the decision loop can plan with it at the extremes of time.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use sando::config::{Config, Gate, MAX_DURATION};
use sando::daemon::plan::{self, CandidateSnap, GateSnap, RunSnap, Snapshot, TierSnap};
use sando::domain::{Canary, GateBlocker, GateRunId, GateStatus};

/// A topology with a value of every kind the config takes; the strategies
/// below put outside input in its holes.
fn topology(duration: &str, stay_up: &str, attempts: &str, backoff: &str, clients: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "data"
max_event_clients = {clients}

[defaults]
gate_timeout = "{stay_up}"
retry = {{ attempts = {attempts}, backoff = "{backoff}" }}

[project]
repo = "repo"
build = "cargo build"
artifact = "target/debug/app"

[[tiers]]
name = "staging"
[[tiers.gates]]
kind = "boot_smoke"
stay_up = "{stay_up}"

[[tiers]]
name = "prod"
deploy_retry = {{ attempts = {attempts}, backoff = "{backoff}" }}
[[tiers.gates]]
kind = "burn_in"
duration = "{duration}"
timeout = "{duration}"
"#
    )
}

/// Durations as people (and fuzzers) write them: plausible, huge, odd.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000, prop::sample::select(vec!["ms", "s", "m", "h", "d"]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (any::<u64>(), prop::sample::select(vec!["ms", "s", "m", "h", "d", ""]))
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        "[0-9a-z ]{0,12}",
        Just("213503982334601d".to_owned()),
        Just("100000000d".to_owned()),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..200).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1e400".to_owned()),
        Just("\"3\"".to_owned()),
    ]
}

/// The config's error form: `path:line:column: key: message`, one line.
fn assert_located(error: &str) {
    let rest = error.strip_prefix("/etc/sando/sando.toml:").unwrap_or_else(|| panic!("{error}"));
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().unwrap_or_default();
    let column = parts.next().unwrap_or_default();
    assert!(line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok(), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
}

/// Plans with every duration the config accepted, at the ends of time.
fn plan_at_the_extremes(config: &Config) {
    let run = |id: i64, blocker| RunSnap {
        id: GateRunId::try_from(id).unwrap(),
        status: Some(GateStatus::Blocked { blocker }),
        attempt: 1,
        evaluated_at: DateTime::<Utc>::MAX_UTC,
        rerun_requested: false,
    };
    for now in [
        DateTime::<Utc>::MIN_UTC,
        DateTime::from_timestamp(0, 0).unwrap(),
        DateTime::<Utc>::MAX_UTC,
    ] {
        let tiers = config
            .tiers
            .iter()
            .map(|tier| TierSnap {
                name: tier.name.clone(),
                canary: Canary::AllAtOnce,
                nodes: Vec::new(),
                deploy_retry: tier.deploy_retry.clone(),
                current: None,
                busy: None,
                freezes: Vec::new(),
                windows: tier.freeze.clone(),
                auto_rollback: tier.auto_rollback,
                rollback: None,
                rolled_back: Vec::new(),
                candidate: Some(CandidateSnap {
                    version: "1.0.0".parse().unwrap(),
                    deploys: Vec::new(),
                    overridden_at: None,
                    gates: tier
                        .gates
                        .iter()
                        .map(|spec| GateSnap {
                            kind: spec.kind(),
                            retry: spec.retry.clone(),
                            latest: Some(run(
                                1,
                                GateBlocker::BurnInRemaining { seconds: 1, total_seconds: 1 },
                            )),
                            burn_in: match &spec.gate {
                                Gate::BurnIn { duration, .. } => Some((Some(now), *duration)),
                                _ => None,
                            },
                            inputs_changed: Some(now),
                        })
                        .collect(),
                }),
            })
            .collect();
        let snapshot =
            Snapshot { tiers, build_retry: config.defaults.retry.clone(), ..Snapshot::default() };
        plan::plan(&snapshot, now);
    }
}

/// Cases per property: `default` in CI, more with `SANDO_PROPTEST_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("SANDO_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_config_parser_never_panics_and_bounds_what_it_accepts(
        burn_in in duration(),
        stay_up in duration(),
        backoff in duration(),
        attempts in number(),
        clients in number(),
    ) {
        let text = topology(&burn_in, &stay_up, &attempts, &backoff, &clients);
        match Config::parse(Path::new("/etc/sando/sando.toml"), &text) {
            Err(error) => assert_located(&error.to_string()),
            Ok(config) => {
                let d = &config.defaults;
                for bound in [d.build_timeout, d.git_timeout, d.gate_timeout, d.deploy_timeout, d.health_timeout, d.kill_grace, d.retry.backoff] {
                    prop_assert!(bound <= MAX_DURATION);
                }
                for tier in &config.tiers {
                    prop_assert!((1..=100).contains(&tier.deploy_retry.attempts));
                    for spec in &tier.gates {
                        prop_assert!(spec.timeout <= MAX_DURATION && !spec.timeout.is_zero());
                        prop_assert!((1..=100).contains(&spec.retry.attempts));
                        if let Gate::BurnIn { duration, .. } | Gate::BootSmoke { stay_up: duration, .. } = &spec.gate {
                            prop_assert!(*duration <= MAX_DURATION);
                        }
                    }
                }
                prop_assert!((1..=10_000).contains(&config.max_event_clients));
                plan_at_the_extremes(&config);
            }
        }
    }

    #[test]
    fn a_mangled_config_is_refused_with_its_place(
        cut in 0usize..1200,
        insert in "[\\[\\]{}=\"'a-z0-9 \n.#]{0,8}",
    ) {
        let text = topology("168h", "3s", "3", "30s", "64");
        let cut = (0..=cut.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let mangled = format!("{}{insert}{}", &text[..cut], &text[cut..]);
        if let Err(error) = Config::parse(Path::new("/etc/sando/sando.toml"), &mangled) {
            assert_located(&error.to_string());
        }
    }
}

#[test]
fn the_extremes_accepted_still_plan() {
    let text = topology("3660d", "3660d", "100", "3660d", "10000");
    let config = Config::parse(Path::new("/etc/sando/sando.toml"), &text).unwrap();
    assert_eq!(config.tiers[1].gates[0].timeout, Duration::from_secs(3660 * 86_400));
    plan_at_the_extremes(&config);
}
