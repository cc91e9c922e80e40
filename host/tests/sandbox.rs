//! The sandbox's failure modes: each misbehaviour is a typed outcome, and the
//! same sandbox keeps classifying correctly afterwards.

mod util;

use chrono::{TimeZone, Utc};
use sando::domain::{
    ComponentFault, GateBlocker, GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput,
};
use sando::executor::{Executor as _, LocalExecutor};
use sando::sandbox::{
    Backup, BurnInClock, ComponentCache, Confirmation, GateComponent, GateParams, Invocation,
    Limits, LoadError, RunnerEnv, Sandbox,
};

fn sandbox() -> Sandbox {
    Sandbox::new(Limits::default(), None).expect("sandbox")
}

fn load(sandbox: &Sandbox, name: &str) -> GateComponent {
    sandbox.load(&util::component_bytes(name)).unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// An output that makes the `misbehave` component do `what`.
fn ask_to(what: &str) -> RawOutput {
    RawOutput {
        stdout: what.into(),
        stderr: Vec::new(),
        end: ProcessEnd::Exited(0),
        duration_ms: None,
    }
}

fn passing_run() -> RawOutput {
    RawOutput {
        stdout: b"running 1 test\ntest t ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n".to_vec(),
        stderr: Vec::new(),
        end: ProcessEnd::Exited(0),
        duration_ms: Some(2000),
    }
}

fn fault_of(status: &GateStatus) -> &ComponentFault {
    match status {
        GateStatus::Failed { failure: GateFailure::ComponentFault { fault } } => fault,
        other => panic!("expected a component fault, got {other:?}"),
    }
}

/// After any fault the sandbox must still serve a healthy component.
fn assert_still_healthy(sandbox: &Sandbox, healthy: &GateComponent) {
    let status = healthy.classify(sandbox, GateKind::CargoTest, &passing_run()).status;
    assert_eq!(
        status,
        GateStatus::Passed {
            note: PassNote::TestsPassed { count: 1, duration_s: 2, flaky: Vec::new() }
        }
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let sandbox = Sandbox::new(Limits { fuel: 50_000_000, ..Limits::default() }, None).unwrap();
    let spin = load(&sandbox, "test_component_misbehave");
    let healthy = load(&sandbox, "gate_cargo_test");
    for _ in 0..2 {
        let classification = spin.classify(&sandbox, GateKind::CargoTest, &ask_to("spin"));
        assert_eq!(
            fault_of(&classification.status),
            &ComponentFault::FuelExhausted { budget: 50_000_000 }
        );
        assert_eq!(classification.usage.fuel, 50_000_000);
        assert_still_healthy(&sandbox, &healthy);
    }
}

#[test]
fn memory_bomb_hits_the_cap() {
    let sandbox = sandbox();
    let bomb = load(&sandbox, "test_component_misbehave");
    let healthy = load(&sandbox, "gate_cargo_test");
    for _ in 0..2 {
        let classification = bomb.classify(&sandbox, GateKind::CargoTest, &ask_to("hoard"));
        assert_eq!(
            fault_of(&classification.status),
            &ComponentFault::MemoryExhausted { limit_bytes: Limits::default().memory_bytes }
        );
        assert!(classification.usage.peak_memory_bytes <= Limits::default().memory_bytes);
        assert_still_healthy(&sandbox, &healthy);
    }
}

#[test]
fn trap_carries_the_panic_message() {
    let sandbox = sandbox();
    let trap = load(&sandbox, "test_component_misbehave");
    let healthy = load(&sandbox, "gate_cargo_test");
    let status = trap.classify(&sandbox, GateKind::CargoTest, &ask_to("panic")).status;
    match fault_of(&status) {
        ComponentFault::Trap { message } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(message.contains("classifier bug on an output of"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_still_healthy(&sandbox, &healthy);
}

#[test]
fn next_contract_major_is_rejected_with_both_versions() {
    let sandbox = sandbox();
    let err =
        sandbox.load(&util::component_bytes("test_component_next_major")).err().expect("rejected");
    let LoadError::ContractMismatch { expected, found } = &err else { panic!("got {err}") };
    assert_eq!(expected, "sando:gate@0.2.0");
    assert_eq!(found, "sando:gate@1.0.0");
    assert_eq!(
        err.fault(),
        ComponentFault::ContractMismatch { expected: expected.clone(), found: found.clone() }
    );
    assert_still_healthy(&sandbox, &load(&sandbox, "gate_cargo_test"));
}

#[test]
fn classifier_cannot_spawn() {
    let sandbox = sandbox();
    let probe = load(&sandbox, "test_component_capability_probe");
    let status = probe.classify(&sandbox, GateKind::BootSmoke, &passing_run()).status;
    match fault_of(&status) {
        ComponentFault::CapabilityDenied { capability } => {
            assert!(capability.contains("spawn"), "{capability}")
        }
        other => panic!("expected capability_denied, got {other:?}"),
    }
}

#[test]
fn files_that_are_not_components_are_refused() {
    let sandbox = sandbox();
    assert!(matches!(sandbox.load(b"hello"), Err(LoadError::NotWasm)));
    // The smallest valid core module: magic and version 1.
    assert!(matches!(sandbox.load(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
    let mut truncated = util::component_bytes("gate_cargo_test");
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(sandbox.load(&truncated), Err(LoadError::Invalid(_))));
}

#[test]
fn asking_a_component_for_another_kind_is_typed() {
    let sandbox = sandbox();
    let cargo_test = load(&sandbox, "gate_cargo_test");
    assert_eq!(cargo_test.kind(), GateKind::CargoTest);
    let status = cargo_test.classify(&sandbox, GateKind::BootSmoke, &passing_run()).status;
    assert_eq!(
        fault_of(&status),
        &ComponentFault::WrongGateKind {
            expected: GateKind::BootSmoke,
            found: GateKind::CargoTest
        }
    );
}

#[test]
fn compiled_components_are_cached_across_sandboxes() {
    let cache_dir = tempfile::tempdir().unwrap();
    let bytes = util::component_bytes("gate_boot_smoke");
    let first = Sandbox::new(Limits::default(), Some(ComponentCache::new(cache_dir.path().into())))
        .unwrap();
    let loaded = first.load(&bytes).unwrap();
    assert!(!loaded.from_cache());
    assert_eq!(std::fs::read_dir(cache_dir.path()).unwrap().count(), 1);
    // A new sandbox stands for a restarted daemon.
    let second =
        Sandbox::new(Limits::default(), Some(ComponentCache::new(cache_dir.path().into())))
            .unwrap();
    let reloaded = second.load(&bytes).unwrap();
    assert!(reloaded.from_cache());
    assert_eq!(reloaded.digest(), loaded.digest());
    let still_up = RawOutput {
        stdout: vec![],
        stderr: vec![],
        end: ProcessEnd::StillRunning,
        duration_ms: Some(5000),
    };
    assert_eq!(
        reloaded.classify(&second, GateKind::BootSmoke, &still_up).status,
        GateStatus::Passed { note: PassNote::StayedUp { duration_s: 5 } }
    );
}

fn runner_env(gate: GateKind, params: &[(&str, &str)], allowed: &[&str]) -> RunnerEnv {
    let executor = LocalExecutor::detect(std::time::Duration::from_secs(2));
    let pairs: Vec<(String, String)> =
        params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut env = RunnerEnv::new(
        "staging".parse().unwrap(),
        "0.8.12".parse().unwrap(),
        GateParams::from_pairs(gate, &pairs),
        std::sync::Arc::new(executor),
    );
    env.allowed_programs = allowed.iter().map(|p| p.to_string()).collect();
    env
}

#[test]
fn boot_smoke_runner_watches_a_real_process() {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_boot_smoke");
    let stays_up = runner_env(
        GateKind::BootSmoke,
        &[("binary", "/bin/sleep"), ("args", "30"), ("seconds", "1")],
        &["/bin/sleep"],
    );
    let (classification, env) = gate.run(&sandbox, stays_up, &gate);
    assert_eq!(
        classification.status,
        GateStatus::Passed { note: PassNote::StayedUp { duration_s: 1 } }
    );
    assert_eq!(env.spawned.len(), 1);
    assert_eq!(env.spawned[0].end, ProcessEnd::StillRunning);

    let exits = runner_env(
        GateKind::BootSmoke,
        &[("binary", "/bin/false"), ("seconds", "5")],
        &["/bin/false"],
    );
    let (classification, _) = gate.run(&sandbox, exits, &gate);
    assert_eq!(
        classification.status,
        GateStatus::Failed { failure: GateFailure::BootExitedEarly { exit_code: Some(1) } }
    );

    let missing = runner_env(
        GateKind::BootSmoke,
        &[("binary", "/nonexistent/app"), ("seconds", "5")],
        &["/nonexistent/app"],
    );
    let (classification, _) = gate.run(&sandbox, missing, &gate);
    assert_eq!(
        classification.status,
        GateStatus::Failed { failure: GateFailure::SpawnFailed { os_error: 2 } }
    );
}

/// A boot smoke run of `program` in a sandbox, by an executor that starts
/// programs through the real `sando` binary as its exec shim, or not.
fn sandboxed_boot_smoke(program: &std::path::Path, shim: bool) -> GateStatus {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_boot_smoke");
    let mut executor = LocalExecutor::detect(std::time::Duration::from_secs(2));
    assert!(executor.isolates(), "these tests need bubblewrap");
    if shim {
        executor = executor.with_exec_shim(env!("CARGO_BIN_EXE_sando").into());
    }
    let program = program.to_str().unwrap();
    let params = [("binary", program), ("seconds", "1")].map(|(k, v)| (k.into(), v.into()));
    let mut env = RunnerEnv::new(
        "staging".parse().unwrap(),
        "0.8.12".parse().unwrap(),
        GateParams::from_pairs(GateKind::BootSmoke, &params),
        std::sync::Arc::new(executor),
    );
    env.allowed_programs = vec![program.to_owned()];
    env.isolation = Some(sando::executor::Isolation::default());
    gate.run(&sandbox, env, &gate).0.status
}

#[test]
fn a_program_under_tmp_starts_in_the_sandbox_and_one_that_cannot_start_is_a_spawn_failure() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    assert!(dir.path().starts_with("/tmp"), "the sandbox gives code under test its own /tmp");
    let script = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    // Under /tmp, bound at its own path: it starts and stays up.
    let stays = script("stays", "#!/bin/sh\nexec sleep 30\n".into());
    assert_eq!(
        sandboxed_boot_smoke(&stays, true),
        GateStatus::Passed { note: PassNote::StayedUp { duration_s: 1 } }
    );
    // Its interpreter is under /tmp too, which is not bound (only what the
    // process is started with is): the exec fails inside the sandbox.
    let interpreter = dir.path().join("venv-python");
    std::fs::copy("/bin/sh", &interpreter).unwrap();
    let needs = script("needs-venv", format!("#!{}\nexec sleep 30\n", interpreter.display()));
    assert_eq!(
        sandboxed_boot_smoke(&needs, true),
        GateStatus::Failed { failure: GateFailure::SpawnFailed { os_error: libc::ENOENT } },
        "the shim knows the exec failed, whatever bubblewrap printed"
    );
    // Without the shim, bubblewrap's own exit status 1 reads as the program's.
    assert_eq!(
        sandboxed_boot_smoke(&needs, false),
        GateStatus::Failed { failure: GateFailure::BootExitedEarly { exit_code: Some(1) } }
    );
}

#[test]
fn runner_may_spawn_only_allowed_programs() {
    let sandbox = sandbox();
    let probe = load(&sandbox, "test_component_capability_probe");
    let (allowed, _) = probe.run(
        &sandbox,
        runner_env(GateKind::BootSmoke, &[("binary", "/bin/echo")], &["/bin/echo"]),
        &probe,
    );
    assert_eq!(
        allowed.status,
        GateStatus::Blocked {
            blocker: GateBlocker::ArtifactMissing { version: "capability-probe".into() }
        }
    );
    let (denied, env) = probe.run(
        &sandbox,
        runner_env(GateKind::BootSmoke, &[("binary", "/bin/sh")], &["/bin/echo"]),
        &probe,
    );
    match fault_of(&denied.status) {
        ComponentFault::CapabilityDenied { capability } => {
            assert!(capability.contains("/bin/sh"), "{capability}")
        }
        other => panic!("expected capability_denied, got {other:?}"),
    }
    assert!(env.spawned.is_empty(), "nothing was started");
}

#[test]
fn burn_in_runner_reads_the_clock() {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_burn_in");
    let params = [("duration_s", "604800")];
    let (not_started, _) = gate.run(&sandbox, runner_env(GateKind::BurnIn, &params, &[]), &gate);
    assert_eq!(
        not_started.status,
        GateStatus::Blocked { blocker: GateBlocker::BurnInClockNotStarted }
    );

    let started_at = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let mut running = runner_env(GateKind::BurnIn, &params, &[]);
    running.burn_in_clock =
        Some(BurnInClock { started_at, now: started_at + chrono::Duration::hours(121) });
    let (remaining, _) = gate.run(&sandbox, running, &gate);
    assert_eq!(
        remaining.status,
        GateStatus::Blocked {
            blocker: GateBlocker::BurnInRemaining { seconds: 47 * 3600, total_seconds: 168 * 3600 }
        }
    );
}

#[test]
fn manual_confirm_runner_waits_for_the_operator() {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_manual_confirm");
    let (waiting, _) = gate.run(&sandbox, runner_env(GateKind::ManualConfirm, &[], &[]), &gate);
    assert_eq!(
        waiting.status,
        GateStatus::Blocked { blocker: GateBlocker::AwaitingOperatorConfirmation }
    );
    let at = Utc.with_ymd_and_hms(2026, 11, 26, 12, 30, 0).unwrap();
    let mut confirmed = runner_env(GateKind::ManualConfirm, &[], &[]);
    confirmed.confirmation = Some(Confirmation { by: "ops".into(), at });
    let (passed, _) = gate.run(&sandbox, confirmed, &gate);
    assert_eq!(passed.status, GateStatus::Passed { note: PassNote::OperatorConfirmed { at } });
}

#[test]
fn migration_runner_reports_missing_preconditions_as_blocked() {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_migration_dry_run");
    let (no_url, _) =
        gate.run(&sandbox, runner_env(GateKind::MigrationDryRun, &[], &["sqlx"]), &gate);
    assert_eq!(no_url.status, GateStatus::Blocked { blocker: GateBlocker::ScratchDbUrlUnset });
    let with_url = [("scratch_db_url", "sqlite:///tmp/scratch.db")];
    let (no_backup, _) =
        gate.run(&sandbox, runner_env(GateKind::MigrationDryRun, &with_url, &["sqlx"]), &gate);
    assert_eq!(no_backup.status, GateStatus::Blocked { blocker: GateBlocker::NoBackupAvailable });

    let mut failing_restore = runner_env(
        GateKind::MigrationDryRun,
        &[("scratch_db_url", "sqlite:///tmp/scratch.db"), ("restore_program", "/bin/false")],
        &["/bin/false"],
    );
    failing_restore.latest_backup =
        Some(Backup { id: 3, path: "/tmp/backup.db".into(), fetched_at: Utc::now() });
    let (restore, env) = gate.run(&sandbox, failing_restore, &gate);
    assert_eq!(
        restore.status,
        GateStatus::Failed {
            failure: GateFailure::RestoreFailed {
                reason: sando::domain::RestoreFailureKind::RestoreCommandFailed
            }
        }
    );
    assert_eq!(env.spawned.len(), 1);
}

#[test]
fn a_classifier_may_not_sleep() {
    let sandbox = sandbox();
    let sleeper = load(&sandbox, "test_component_misbehave");
    let healthy = load(&sandbox, "gate_cargo_test");
    let started = std::time::Instant::now();
    let status = sleeper.classify(&sandbox, GateKind::CargoTest, &ask_to("sleep")).status;
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    match fault_of(&status) {
        ComponentFault::CapabilityDenied { capability } => {
            assert!(capability.contains("may not sleep"), "{capability}");
        }
        other => panic!("expected capability_denied, got {other:?}"),
    }
    assert_still_healthy(&sandbox, &healthy);
}

#[test]
fn a_classifier_sees_fixed_clocks_and_randomness() {
    let sandbox = sandbox();
    let reader = load(&sandbox, "test_component_misbehave");
    let read = || match reader.classify(&sandbox, GateKind::CargoTest, &ask_to("clock")).status {
        GateStatus::Failed { failure: GateFailure::CargoTest { first_failed: Some(seen), .. } } => {
            seen
        }
        other => panic!("expected the readings, got {other:?}"),
    };
    let first = read();
    // 2026-01-01T00:00:00Z, a clock that never moves, a fixed seed.
    assert!(first.starts_with("wall=1767225600000000000 elapsed=0 random="), "{first}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read(), first, "the same readings on every call");
    let other = Sandbox::new(Limits::default(), None).unwrap();
    let again = load(&other, "test_component_misbehave");
    match again.classify(&other, GateKind::CargoTest, &ask_to("clock")).status {
        GateStatus::Failed { failure: GateFailure::CargoTest { first_failed: Some(seen), .. } } => {
            assert_eq!(seen, first, "and in another sandbox");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn contract_0_1_components_load_classify_and_run() {
    let sandbox = sandbox();
    let old = sandbox.load(&util::contract_0_1_gate("cargo_test")).expect("a 0.1 gate loads");
    assert_eq!(old.contract(), "0.1.0");
    assert!(old.has_runner());
    assert_still_healthy(&sandbox, &old);

    // A 0.1 burn-in counted whole hours; the host reads them as seconds.
    let burn_in = sandbox.load(&util::contract_0_1_gate("burn_in")).expect("loads");
    let started_at = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let mut running = runner_env(GateKind::BurnIn, &[("duration_s", "604800")], &[]);
    running.burn_in_clock =
        Some(BurnInClock { started_at, now: started_at + chrono::Duration::hours(121) });
    let (remaining, env) = burn_in.run(&sandbox, running, &burn_in);
    assert_eq!(
        remaining.status,
        GateStatus::Blocked {
            blocker: GateBlocker::BurnInRemaining { seconds: 47 * 3600, total_seconds: 168 * 3600 }
        }
    );
    assert!(env.calls.len() >= 2, "it asked for its context and the clock: {:?}", env.calls);

    // A 0.1 boot_smoke runner reads `binary`/`args`/`seconds` strings.
    let boot = sandbox.load(&util::contract_0_1_gate("boot_smoke")).expect("loads");
    let stays_up = runner_env(
        GateKind::BootSmoke,
        &[("binary", "/bin/sleep"), ("args", "30"), ("seconds", "1")],
        &["/bin/sleep"],
    );
    let (classification, _) = boot.run(&sandbox, stays_up, &boot);
    assert_eq!(
        classification.status,
        GateStatus::Passed { note: PassNote::StayedUp { duration_s: 1 } }
    );
}

#[test]
fn a_0_2_runner_hands_its_arguments_over_intact() {
    let sandbox = sandbox();
    let gate = load(&sandbox, "gate_cargo_test");
    let mut env = runner_env(GateKind::CargoTest, &[], &["/bin/sh"]);
    let script = r#"printf '%s\n' "$#"; for a; do printf '[%s]\n' "$a"; done"#;
    env.params = GateParams::CargoTest {
        command: Invocation {
            program: "/bin/sh".into(),
            args: ["-c", script, "sh", "test", "--", "a b"].map(String::from).to_vec(),
        },
    };
    let (_, env) = gate.run(&sandbox, env, &gate);
    assert_eq!(env.spawned.len(), 1);
    assert_eq!(String::from_utf8_lossy(&env.spawned[0].stdout), "3\n[test]\n[--]\n[a b]\n");
}

#[test]
fn the_classifier_in_service_judges_a_0_2_runners_evidence() {
    let sandbox = sandbox();
    let runner = load(&sandbox, "gate_cargo_test");
    // The `regressed` classifier calls every passing run unclassified: given
    // as the classifier in service, it decides the run, not the runner's own.
    let classifier = load(&sandbox, "candidate_regressed");
    let script = "printf 'test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\\n'";
    let env = || {
        let mut env = runner_env(GateKind::CargoTest, &[], &["/bin/sh"]);
        env.params = GateParams::CargoTest {
            command: Invocation {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), script.into()],
            },
        };
        env
    };
    let (own, _) = runner.run(&sandbox, env(), &runner);
    assert!(matches!(own.status, GateStatus::Passed { .. }), "{:?}", own.status);
    let (judged, _) = runner.run(&sandbox, env(), &classifier);
    assert_eq!(judged.status, GateStatus::unclassified());
}

#[test]
fn a_0_2_runner_may_not_decide_a_pass_of_a_judged_gate() {
    let sandbox = sandbox();
    // Runs the tests, then decides a pass itself.
    let forged = load(&sandbox, "candidate_forged");
    let mut env = runner_env(GateKind::CargoTest, &[], &["/bin/true"]);
    env.params = GateParams::CargoTest {
        command: Invocation { program: "/bin/true".into(), args: Vec::new() },
    };
    let (status, _) = forged.run(&sandbox, env, &forged);
    match fault_of(&status.status) {
        ComponentFault::CapabilityDenied { capability } => {
            assert!(capability.contains("cargo_test pass"), "{capability}")
        }
        other => panic!("expected capability_denied, got {other:?}"),
    }
}
