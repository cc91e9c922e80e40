//! The `sando` command line through the real binary: contract 2 (`classify`),
//! contract 4 (`gate test`), and one clear line for every kind of bad input.

mod util;

use util::{Sando, stderr, stdout};

const PASSING: &str = "running 1 test\ntest t ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";

/// Asserts a failed run said exactly one line on stderr, containing `needle`.
fn assert_one_line_error(output: &std::process::Output, needle: &str) {
    assert!(!output.status.success(), "expected failure, stdout: {}", stdout(output));
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "one line expected, got: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn classify_prints_one_json_line_using_the_shipped_component() {
    let sando = Sando::new();
    sando.write("out", PASSING);
    sando.write("err", "");
    let output = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--stdout",
        "out",
        "--stderr",
        "err",
        "--exit-code",
        "0",
        "--duration-ms",
        "2400",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "{\"kind\":\"passed\",\"note\":{\"kind\":\"tests_passed\",\"count\":1,\"duration_s\":2}}\n"
    );
}

#[test]
fn classify_with_an_explicit_component_and_each_process_end() {
    let sando = Sando::new();
    sando.write("out", "");
    sando.write("err", "");
    let component = util::component("gate_boot_smoke");
    let component = component.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--still-running", "--duration-ms", "3000"],
            r#"{"kind":"passed","note":{"kind":"stayed_up","duration_s":3}}"#,
        ),
        (
            &["--exit-code", "0"],
            r#"{"kind":"failed","failure":{"kind":"boot_exited_early","exit_code":0}}"#,
        ),
        (&["--signal", "9"], r#"{"kind":"failed","failure":{"kind":"boot_killed","signal":9}}"#),
        (
            &["--spawn-error", "13"],
            r#"{"kind":"failed","failure":{"kind":"spawn_failed","os_error":13}}"#,
        ),
    ];
    for (end, expected) in cases {
        let mut args = vec![
            "classify",
            "--gate",
            "boot_smoke",
            "--component",
            component,
            "--stdout",
            "out",
            "--stderr",
            "err",
        ];
        args.extend_from_slice(end);
        let output = sando.run(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output).trim_end(), expected);
    }
}

#[test]
fn missing_input_file_is_named() {
    let sando = Sando::new();
    sando.write("err", "");
    let output = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--stdout",
        "nope.txt",
        "--stderr",
        "err",
        "--exit-code",
        "0",
    ]);
    assert_one_line_error(&output, "--stdout nope.txt: no such file");
}

#[test]
fn missing_component_file_is_named() {
    let sando = Sando::new();
    sando.write("out", "");
    let output = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--component",
        "missing.wasm",
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "0",
    ]);
    assert_one_line_error(&output, "component missing.wasm: no such file");
}

#[test]
fn unknown_gate_kind_lists_the_known_ones() {
    let sando = Sando::new();
    sando.write("out", "");
    let output = sando.run(&[
        "classify",
        "--gate",
        "unit_test",
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "0",
    ]);
    assert_one_line_error(
        &output,
        "invalid gate kind \"unit_test\": expected one of cargo_test, migration_dry_run",
    );
}

#[test]
fn a_file_that_is_not_a_component_says_what_it_is() {
    let sando = Sando::new();
    sando.write("out", "");
    sando.write("notes.wasm", "just text");
    sando.write("core.wasm", b"\0asm\x01\0\0\0");
    let base = [
        "classify",
        "--gate",
        "cargo_test",
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "0",
        "--component",
    ];
    let text = sando.run(&[&base[..], &["notes.wasm"]].concat());
    assert_one_line_error(&text, "component notes.wasm: not a WebAssembly file");
    let core = sando.run(&[&base[..], &["core.wasm"]].concat());
    assert_one_line_error(&core, "component core.wasm: a core WebAssembly module, not a component");
    let gate_test = sando.run(&["gate", "test", "notes.wasm", "."]);
    assert_one_line_error(&gate_test, "component notes.wasm: not a WebAssembly file");
}

#[test]
fn another_contract_major_is_refused_naming_both_versions() {
    let sando = Sando::new();
    sando.write("out", "");
    let component = util::component("test_component_next_major");
    let output = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--component",
        component.to_str().unwrap(),
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "0",
    ]);
    assert_one_line_error(
        &output,
        "built against gate contract sando:gate@1.0.0, but this Sando speaks sando:gate@0.2.0 (and still serves sando:gate@0.1)",
    );
}

#[test]
fn component_serving_another_gate_is_refused() {
    let sando = Sando::new();
    sando.write("out", "");
    let component = util::component("gate_burn_in");
    let output = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--component",
        component.to_str().unwrap(),
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "0",
    ]);
    assert_one_line_error(&output, "serves burn_in, not cargo_test");
}

#[test]
fn process_end_is_required_and_exclusive() {
    let sando = Sando::new();
    sando.write("out", "");
    let none =
        sando.run(&["classify", "--gate", "cargo_test", "--stdout", "out", "--stderr", "out"]);
    assert_one_line_error(&none, "the following required arguments were not provided");
    let two = sando.run(&[
        "classify",
        "--gate",
        "cargo_test",
        "--stdout",
        "out",
        "--stderr",
        "out",
        "--exit-code",
        "1",
        "--still-running",
    ]);
    assert_one_line_error(&two, "cannot be used with");
}

fn write_case(sando: &Sando, dir: &str, stdout: &str, case_toml: &str, expected: &str) {
    sando.write(&format!("{dir}/stdout"), stdout);
    sando.write(&format!("{dir}/stderr"), "");
    sando.write(&format!("{dir}/case.toml"), case_toml);
    sando.write(&format!("{dir}/expected.json"), expected);
}

#[test]
fn gate_test_reports_each_case_and_a_closing_count() {
    let sando = Sando::new();
    write_case(
        &sando,
        "cases/cargo_test/passes",
        PASSING,
        "command = \"cargo test\"\nexit_code = 0\nduration_ms = 1000\n",
        r#"{"kind":"passed","note":{"kind":"tests_passed","count":1,"duration_s":1}}"#,
    );
    write_case(
        &sando,
        "cases/cargo_test/wrong_expectation",
        PASSING,
        "command = \"cargo test\"\nexit_code = 0\n",
        r#"{"kind":"failed","failure":{"kind":"unclassified"}}"#,
    );
    write_case(
        &sando,
        "cases/boot_smoke/other_kind",
        "",
        "command = \"app\"\nstill_running = true\n",
        "{}",
    );
    let component = util::component("gate_cargo_test");
    let output = sando.run(&["gate", "test", component.to_str().unwrap(), "cases"]);
    assert!(!output.status.success(), "a differing case must fail the run");
    let out = stdout(&output);
    assert!(out.contains("ok   cargo_test/passes"), "{out}");
    // Each case says what it cost the classifier.
    let passes = out.lines().find(|l| l.starts_with("ok   cargo_test/passes")).unwrap();
    let fuel = passes.split("[fuel ").nth(1).and_then(|r| r.split(',').next()).unwrap_or("");
    assert!(fuel.parse::<u64>().is_ok_and(|f| f > 0), "{passes}");
    assert!(
        out.contains("FAIL cargo_test/wrong_expectation: expected {\"kind\":\"failed\""),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("1 passed, 1 failed, 1 skipped"), "{out}");

    std::fs::remove_dir_all(sando.path("cases/cargo_test/wrong_expectation")).unwrap();
    let output = sando.run(&["gate", "test", component.to_str().unwrap(), "cases/cargo_test"]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(stdout(&output).lines().last(), Some("1 passed, 0 failed"));
}

#[test]
fn bad_case_files_name_the_file_and_line() {
    let sando = Sando::new();
    write_case(
        &sando,
        "cases/cargo_test/two_ends",
        PASSING,
        "command = \"cargo test\"\nexit_code = 0\nsignal = 9\n",
        r#"{"kind":"failed","failure":{"kind":"unclassified"}}"#,
    );
    write_case(
        &sando,
        "cases/cargo_test/typo",
        PASSING,
        "command = \"cargo test\"\nexit_cod = 0\n",
        r#"{"kind":"failed","failure":{"kind":"unclassified"}}"#,
    );
    let component = util::component("gate_cargo_test");
    let output = sando.run(&["gate", "test", component.to_str().unwrap(), "cases"]);
    assert!(!output.status.success());
    let out = stdout(&output);
    assert!(out.contains("two_ends/case.toml: needs exactly one of exit_code, signal, spawn_error, still_running = true (found exit_code and signal)"), "{out}");
    assert!(out.contains("typo/case.toml:2:1: unknown field `exit_cod`"), "{out}");
    assert_eq!(out.lines().last(), Some("0 passed, 2 failed"));
}

#[test]
fn gate_test_on_a_directory_without_cases_fails() {
    let sando = Sando::new();
    std::fs::create_dir_all(sando.path("empty")).unwrap();
    let component = util::component("gate_cargo_test");
    let output = sando.run(&["gate", "test", component.to_str().unwrap(), "empty"]);
    assert_one_line_error(&output, "no cargo_test fixture cases below empty");
}

#[test]
fn check_names_a_configured_program_the_sandbox_would_hide_and_cannot_bind() {
    use std::os::unix::fs::PermissionsExt as _;
    let sando = Sando::new();
    let tool = sando.write("data/tools/migrate", "#!/bin/sh\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Under /tmp is fine: it is bound at its own path when it starts.
    let elsewhere = sando.write("tools/restore", "#!/bin/sh\n");
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "data_dir = \"data\"\n\n[project]\nrepo = \"repo\"\nbuild = \"no-such-builder --release\"\nartifact = \"app\"\n\n[[tiers]]\nname = \"staging\"\n[[tiers.gates]]\nkind = \"migration_dry_run\"\nmigrate = \"'{}'\"\nrestore = \"'{}' {{backup}}\"\n",
        tool.display(),
        elsewhere.display()
    );
    sando.write("sando.toml", config);
    let output = sando.run(&["check", "--config", "sando.toml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let warnings: Vec<&str> = printed.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{printed}");
    assert!(
        warnings[0].starts_with("warning: project.build: program `no-such-builder` is not found"),
        "{printed}"
    );
    assert_eq!(
        warnings[1],
        format!(
            "warning: tiers.staging.gates.migration_dry_run.migrate: {} lies in the data directory {}, which the sandbox hides from code under test, so it cannot be bound; move it elsewhere",
            tool.display(),
            sando.path("data").display()
        )
    );
}

#[test]
fn check_validates_a_config_and_names_the_problem() {
    let sando = Sando::new();
    let good = "data_dir = \"data\"\n\n[project]\nrepo = \"repo\"\nbuild = \"cargo build\"\nartifact = \"target/debug/app\"\n\n[[tiers]]\nname = \"staging\"\n[[tiers.gates]]\nkind = \"burn_in\"\nduration = \"90s\"\n\n[[tiers]]\nname = \"prod\"\n";
    sando.write("sando.toml", good);
    let output = sando.run(&["check", "--config", "sando.toml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "sando.toml: ok (staging -> prod; 1 gates, 0 nodes)\n");

    sando.write("bad.toml", good.replace("\"90s\"", "\"90 seconds\""));
    let output = sando.run(&["check", "--config", "bad.toml"]);
    assert_one_line_error(
        &output,
        "bad.toml:12:12: tiers[0].gates[0].duration: \"90 seconds\" has an unknown unit",
    );
    let output = sando.run(&["check", "--config", "missing.toml"]);
    assert_one_line_error(&output, "missing.toml:1:1: (file): no such file");

    // Without bubblewrap, code under test cannot be sandboxed: not ok,
    // unless the operator says isolation = "none", which is then a warning.
    let no_bwrap = sando.path("empty-path");
    std::fs::create_dir_all(&no_bwrap).unwrap();
    let output = sando
        .command()
        .args(["check", "--config", "sando.toml"])
        .env("PATH", &no_bwrap)
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        "isolation: bubblewrap (bwrap) is not available here, so code under test cannot be sandboxed",
    );
    sando.write("none.toml", format!("isolation = \"none\"\n{good}"));
    let output = sando
        .command()
        .args(["check", "--config", "none.toml"])
        .env("PATH", &no_bwrap)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(printed.starts_with("none.toml: ok (staging -> prod; 1 gates, 0 nodes)\nwarning: isolation = \"none\": builds and gates run with the daemon's authority"), "{printed}");
    // Regression: a burn-in of 100000000d passed `check`, then panicked the
    // scheduler at its first evaluation (a date addition that overflowed).
    sando.write("huge.toml", good.replace("\"90s\"", "\"100000000d\""));
    let output = sando.run(&["check", "--config", "huge.toml"]);
    assert_one_line_error(
        &output,
        "huge.toml:12:12: tiers[0].gates[0].duration: \"100000000d\" is longer than the maximum of 10 years",
    );
    sando.write("typo.toml", format!("isolation = \"off\"\n{good}"));
    let output = sando.run(&["check", "--config", "typo.toml"]);
    assert_one_line_error(
        &output,
        "typo.toml:1:13: isolation: unknown isolation \"off\" (use sandbox or none)",
    );
}

#[test]
fn gate_new_writes_a_project_and_refuses_bad_input_in_one_line() {
    let sando = Sando::new();
    let output = sando.run(&["gate", "new", "boot_smoke", "--lang", "python", "mine"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let app = std::fs::read_to_string(sando.path("mine/app.py")).unwrap();
    assert!(app.contains("GateKind.BOOT_SMOKE"), "{app}");
    let wit = std::fs::read_to_string(sando.path("mine/wit/gate.wit")).unwrap();
    assert!(wit.contains("package sando:gate@0.2.0;"));
    assert!(stdout(&output).contains("wrote "), "{}", stdout(&output));

    let again = sando.run(&["gate", "new", "boot_smoke", "--lang", "python", "mine"]);
    assert_one_line_error(&again, "mine already exists and is not empty: choose a new directory");
    let bad_lang = sando.run(&["gate", "new", "boot_smoke", "--lang", "go", "other"]);
    assert_one_line_error(&bad_lang, "--lang: unknown language \"go\": expected rust or python");
    let bad_kind = sando.run(&["gate", "new", "smoke", "--lang", "python", "other"]);
    assert!(!bad_kind.status.success());
    assert!(stderr(&bad_kind).contains("smoke"), "{}", stderr(&bad_kind));
    assert!(!sando.path("other").exists(), "nothing written for bad input");
}

#[test]
fn a_bad_part_or_run_id_is_refused_in_one_line_before_any_request() {
    let sando = Sando::new();
    sando.write("token", "t");
    // Nothing listens at this address: each refusal comes before a request.
    let remote = ["--url", "http://127.0.0.1:9", "--token-file", "token"];
    let push = sando.run(&[&["gate", "push", "x.wasm", "--part", "nope"][..], &remote].concat());
    assert_one_line_error(&push, "invalid component part \"nope\": expected gate or classifier");
    let rollback =
        sando.run(&[&["gate", "rollback", "cargo_test", "--part", "runner"][..], &remote].concat());
    assert_one_line_error(
        &rollback,
        "invalid component part \"runner\": expected gate or classifier",
    );
    let record = sando.run(
        &[&["gate", "test", "x.wasm", "cases", "--record", "cases", "--run", "abc"][..], &remote]
            .concat(),
    );
    assert_one_line_error(
        &record,
        "--run \"abc\": invalid gate run id \"abc\": must be a positive integer",
    );
    assert!(!sando.path("cases").exists(), "nothing written for bad input");
}

#[test]
fn a_second_sando_serve_on_one_sqlite_history_is_refused_naming_the_first() {
    let (sando, _) = util::legacy::setup(1);
    let first = util::daemon::Daemon::start(&sando.path("sando.toml"));
    let second = sando
        .command()
        .args(["serve", "--config", "sando.toml"])
        .env("SANDO_TEST_TOKEN", util::daemon::TOKEN)
        .output()
        .unwrap();
    assert_one_line_error(&second, "another sando serve");
    let err = stderr(&second);
    assert!(err.contains(&format!("(pid {}) is serving this history", first.pid())), "{err}");
    assert!(err.contains("data/sando.sqlite"), "{err}");
    // Gone however it went (here: kill -9), the history is free again.
    first.kill();
    let again = util::daemon::Daemon::start(&sando.path("sando.toml"));
    assert_eq!(again.state()["tiers"].as_array().unwrap().len(), 2);
}
