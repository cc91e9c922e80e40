//! The `cargo_test` gate: runs the version's test suite and reads what libtest or cargo-nextest printed.

use std::borrow::Cow;

use sando_gate_sdk::host::{self, GateParams};
use sando_gate_sdk::outcome::{common_end, unclassified};
use sando_gate_sdk::text::{lines, secs_from_ms};
use sando_gate_sdk::types::{CargoTestFailure, DependencyUnavailable, TestsPassed};
use sando_gate_sdk::{
    GateBlocker, GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput, Verdict,
};

/// Runs the configured test command (`cargo test` unless configured) and
/// hands its output to the classifier in service.
pub fn run() -> Verdict {
    let GateParams::CargoTest(params) = host::context().params else {
        return sando_gate_sdk::decided(unclassified());
    };
    sando_gate_sdk::spawn(&params.command, None);
    sando_gate_sdk::judge()
}

sando_gate_sdk::gate!(kind: GateKind::CargoTest, classify: classify, run: run);

pub fn classify(output: &RawOutput) -> GateStatus {
    if let Some(status) = common_end(GateKind::CargoTest, output) {
        return status;
    }
    let report = Report::read(lines(&output.stdout).chain(lines(&output.stderr)));
    let exited_ok = output.end == ProcessEnd::Exited(0);
    if let Some(name) = report.dependency_unavailable.filter(|_| !exited_ok) {
        return GateStatus::Blocked(GateBlocker::DependencyUnavailable(DependencyUnavailable {
            name,
        }));
    }

    if let Some(nextest) = report.nextest {
        return if nextest.failed == 0 && exited_ok {
            passed(nextest.passed, report.flaky, output)
        } else if nextest.failed > 0 {
            failed(nextest.failed, report.nextest_first_failed.or(report.first_failed))
        } else {
            unclassified()
        };
    }
    // A harness = false target prints no libtest lines of its own, so cargo's
    // rerun hint is the only trace of it; the hint alone also follows a
    // libtest binary that exited mid-run, told apart by its `running N tests`
    // with no result after it.
    let custom_harness_failed = report.headers == report.results
        && report.failed + report.crashed == 0
        && !report.compile_error
        && !exited_ok;
    if custom_harness_failed && let Some(target) = report.rerun_target {
        return failed(1, Some(target));
    }
    if report.results > 0 {
        let failed_count = report.failed + report.crashed;
        return match (failed_count, exited_ok) {
            (0, true) => passed(report.passed, Vec::new(), output),
            (0, false) if report.compile_error => failed(0, None),
            (0, false) => unclassified(),
            (n, _) => failed(n, report.first_failed.or(report.overflowed).or(report.unfinished)),
        };
    }
    if report.crashed > 0 && !exited_ok {
        return failed(report.crashed, report.overflowed.or(report.unfinished));
    }
    if report.compile_error && !exited_ok {
        return failed(0, None);
    }
    unclassified()
}

fn passed(count: u32, flaky: Vec<String>, output: &RawOutput) -> GateStatus {
    GateStatus::Passed(PassNote::TestsPassed(TestsPassed {
        count,
        duration_s: secs_from_ms(output.duration_ms),
        flaky,
    }))
}

fn failed(failed_count: u32, first_failed: Option<String>) -> GateStatus {
    GateStatus::Failed(GateFailure::CargoTest(CargoTestFailure { failed_count, first_failed }))
}

#[derive(Default)]
struct Nextest {
    passed: u32,
    failed: u32,
}

/// What one pass over the output found.
#[derive(Default)]
struct Report {
    /// Number of libtest `test result:` lines.
    results: u32,
    /// Number of libtest `running N tests` lines: one more than `results`
    /// when a test binary ended before its summary.
    headers: u32,
    passed: u32,
    failed: u32,
    /// Test binaries that died (cargo: "process didn't exit successfully … signal").
    crashed: u32,
    first_failed: Option<String>,
    /// A test that started and never reported a result (single-threaded runs
    /// print the name first), the best name for a crashed binary.
    unfinished: Option<String>,
    /// The thread the runtime said overflowed its stack (a test's thread
    /// bears the test's name): the binary aborts before any failures list.
    overflowed: Option<String>,
    /// The target named by cargo's rerun hint ("to rerun pass `--test NAME`").
    rerun_target: Option<String>,
    /// Cargo could not build the tests (compiler error or failed build script).
    compile_error: bool,
    nextest: Option<Nextest>,
    /// nextest's own name (binary id and test): the libtest output it embeds
    /// names a test without its binary.
    nextest_first_failed: Option<String>,
    /// nextest's `FLAKY` lines: passed only on a retry.
    flaky: Vec<String>,
    /// Cargo could not get a dependency (`Some(None)`: it did not say which).
    dependency_unavailable: Option<Option<String>>,
    /// Cargo said "no matching package named `x`": a dependency that does
    /// not exist, unless cargo also says it was offline.
    no_matching_package: Option<String>,
}

impl Report {
    fn read<'a>(lines: impl Iterator<Item = Cow<'a, [u8]>>) -> Report {
        let mut report = Report::default();
        let mut in_failure_list = false;
        for line in lines {
            let line: &[u8] = &line;
            let trimmed = line.trim_ascii();
            if in_failure_list {
                if line.starts_with(b"    ") && !trimmed.is_empty() {
                    if report.first_failed.is_none() {
                        report.first_failed = Some(text(trimmed));
                    }
                    continue;
                }
                in_failure_list = false;
            }
            // Almost every line is a passing test (`PASS [..]`, `test x ... ok`
            // with a result): rule out the uninteresting ones on one byte.
            if !matches!(
                trimmed.first(),
                Some(b't' | b'f' | b'p' | b'e' | b'r' | b'S' | b'F' | b'T' | b'A' | b'L' | b'X')
            ) {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix(b"test result: ") {
                report.results += 1;
                report.passed += count_before(rest, b" passed");
                report.failed += count_before(rest, b" failed");
            } else if trimmed == b"failures:" {
                in_failure_list = true;
            } else if trimmed.starts_with(b"running ")
                && (trimmed.ends_with(b" test") || trimmed.ends_with(b" tests"))
            {
                report.headers += 1;
            } else if let Some(name) = overflowed_thread(trimmed)
                && report.overflowed.is_none()
            {
                report.overflowed = Some(text(name));
            } else if let Some(rest) = trimmed.strip_prefix(b"test ") {
                // `test name ... ok` / `... FAILED` / `... ignored`; a bare
                // `test name ...` is a test still running when output stopped.
                if let Some(name) = rest.strip_suffix(b" ...") {
                    report.unfinished = Some(text(name));
                } else if let Some((name, _)) = split_once(rest, b" ... ")
                    && report.unfinished.as_deref().is_some_and(|u| u.as_bytes() == name)
                {
                    report.unfinished = None;
                }
            } else if trimmed.starts_with(b"process didn't exit successfully")
                && find(trimmed, b"(signal: ").is_some()
            {
                report.crashed += 1;
            } else if trimmed.starts_with(b"error: could not compile")
                || trimmed.starts_with(b"error[E")
                || trimmed.starts_with(b"error: failed to run custom build command for")
            {
                report.compile_error = true;
            } else if let Some(rest) = trimmed.strip_prefix(b"error: test failed, to rerun pass `")
                && report.rerun_target.is_none()
            {
                let args = rest.split(|b| *b == b'`').next().unwrap_or_default();
                report.rerun_target = Some(text(rerun_target(args)));
            } else if let Some(rest) = nextest_summary(trimmed) {
                report.nextest = Some(Nextest {
                    passed: count_before(rest, b" passed"),
                    failed: count_before(rest, b" failed")
                        + count_before(rest, b" exec failed")
                        + count_before(rest, b" timed out"),
                });
            } else if let Some(name) = nextest_failure(trimmed)
                && report.nextest_first_failed.is_none()
            {
                report.nextest_first_failed = Some(text(name));
            } else if let Some(rest) = trimmed.strip_prefix(b"FLAKY ")
                && let Some(name) = nextest_test_name(rest)
                && !report.flaky.iter().any(|f| f.as_bytes() == name)
            {
                report.flaky.push(text(name));
            } else if let Some(rest) = trimmed.strip_prefix(b"error: no matching package named `") {
                report.no_matching_package = rest.split(|b| *b == b'`').next().map(text);
            } else if trimmed.starts_with(b"As a reminder, you're using offline mode")
                && report.no_matching_package.is_some()
            {
                report.dependency_unavailable = Some(report.no_matching_package.take());
            } else if let Some(rest) = trimmed
                .strip_prefix(b"error: failed to download `")
                .or_else(|| trimmed.strip_prefix(b"error: failed to get `"))
            {
                // `itoa v1.0.15`, or `itoa` as a dependency of a package.
                let quoted = rest.split(|b| *b == b'`').next().unwrap_or_default();
                let name = quoted.split(|b| *b == b' ').next().filter(|n| !n.is_empty());
                report.dependency_unavailable = Some(name.map(text));
            }
        }
        report
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn split_once<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = find(haystack, needle)?;
    Some((&haystack[..at], &haystack[at + needle.len()..]))
}

/// `Summary [   0.006s] 7 tests run: 5 passed, 2 failed, 0 skipped` → the part after `run:`.
fn nextest_summary(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"Summary [")?;
    let (_, rest) = split_once(rest, b"]")?;
    let (_, counts) = split_once(rest, b" run: ")?;
    Some(counts)
}

/// `FAIL [   0.004s] ( 2/10) crate::bin tests::name` → `crate::bin tests::name`.
/// Besides `FAIL`, nextest names a failure by the signal that killed the
/// test (`SIGABRT`, `ABORT SIG 6`), by a leak (`FAIL + LEAK`, `LEAK-FAIL`),
/// by its own slow-timeout (`TIMEOUT`), a test it could not start (`XFAIL`) and a
/// flaky test configured to fail (`FLKY-FL 2/3`); with retries an attempt
/// says `TRY n` and a short form (`FL+LK`, `LKFAIL`, `TMT`, `SIG 6`).
fn nextest_failure(line: &[u8]) -> Option<&[u8]> {
    let line = strip_try(line);
    let (status, rest) = split_once(line, b" [")?;
    let is_failure = matches!(
        status,
        b"FAIL"
            | b"FAIL + LEAK"
            | b"FL+LK"
            | b"LEAK-FAIL"
            | b"LKFAIL"
            | b"XFAIL"
            | b"TIMEOUT"
            | b"TMT"
    ) || status.starts_with(b"SIG")
        || status.starts_with(b"ABORT")
        || status.starts_with(b"FLKY-FL ");
    if !is_failure {
        return None;
    }
    // An attempt nextest will retry has a counter without numbers (`(───)`):
    // the test is not over, and may yet pass.
    let (_, after) = split_once(rest, b"]")?;
    let after = after.trim_ascii_start();
    if after.first() == Some(&b'(')
        && let Some((counter, _)) = split_once(after, b")")
        && !counter.iter().any(u8::is_ascii_digit)
    {
        return None;
    }
    nextest_test_name(rest)
}

/// `TRY 3 FAIL [ … ]` → `FAIL [ … ]`.
fn strip_try(line: &[u8]) -> &[u8] {
    let Some(rest) = line.strip_prefix(b"TRY ") else { return line };
    let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    match rest[digits..].strip_prefix(b" ") {
        Some(status) if digits > 0 => status,
        _ => line,
    }
}

/// `thread 'tests::deep' (8064) has overflowed its stack` → `tests::deep`;
/// a thread without a test's name (`main`, `<unnamed>`) names no test.
fn overflowed_thread(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"thread '")?;
    let (name, after) = split_once(rest, b"'")?;
    if !after.ends_with(b" has overflowed its stack") || name == b"main" || name == b"<unnamed>" {
        return None;
    }
    Some(name)
}

/// `--test golden` → `golden`; `-p report --test render` → `render`; a target
/// without a name of its own (`--lib`, `--doc`) is named by the whole hint.
fn rerun_target(args: &[u8]) -> &[u8] {
    match args.rsplit(|b| *b == b' ').next() {
        Some(last) if !last.is_empty() && !last.starts_with(b"-") => last,
        _ => args,
    }
}

/// The test's full name after a status's `[ duration]` and `(n/m)`:
/// `calc tests::adds` (binary id, then test path).
fn nextest_test_name(rest: &[u8]) -> Option<&[u8]> {
    let (_, rest) = split_once(rest, b"]")?;
    let mut rest = rest.trim_ascii();
    if rest.first() == Some(&b'(') {
        let (_, after) = split_once(rest, b")")?;
        rest = after.trim_ascii();
    }
    (!rest.is_empty()).then_some(rest)
}

/// The number right before `label` in `3 passed; 1 failed; …` or `3 passed, 1 failed`.
fn count_before(text: &[u8], label: &[u8]) -> u32 {
    let Some(at) = find(text, label) else { return 0 };
    let digits = text[..at].iter().rev().take_while(|c| c.is_ascii_digit()).count();
    std::str::from_utf8(&text[at - digits..at]).ok().and_then(|d| d.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, stdout: &str) -> RawOutput {
        RawOutput {
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
            end: ProcessEnd::Exited(code),
            duration_ms: Some(1400),
        }
    }

    #[test]
    fn counts_libtest_results() {
        let out = exited(
            0,
            "running 2 tests\ntest a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert!(matches!(
            classify(&out),
            GateStatus::Passed(PassNote::TestsPassed(TestsPassed { count: 3, duration_s: 1, .. }))
        ));
    }

    #[test]
    fn names_the_first_failure() {
        let out = exited(
            101,
            "failures:\n\n---- b stdout ----\nboom\n\nfailures:\n    b\n    c\n\ntest result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        match classify(&out) {
            GateStatus::Failed(GateFailure::CargoTest(f)) => {
                assert_eq!(f.failed_count, 2);
                assert_eq!(f.first_failed.as_deref(), Some("b"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn success_without_results_is_not_a_pass() {
        assert!(matches!(
            classify(&exited(0, "hello\n")),
            GateStatus::Failed(GateFailure::Unclassified)
        ));
    }

    fn failure(status: GateStatus) -> (u32, Option<String>) {
        match status {
            GateStatus::Failed(GateFailure::CargoTest(f)) => (f.failed_count, f.first_failed),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_binary_that_exits_before_its_summary_stays_unclassified() {
        let mut out = exited(101, "\nrunning 1 test\n");
        out.stderr = b"error: test failed, to rerun pass `--lib`\n\nCaused by:\n  process didn't exit successfully: `/t/deps/tiny-1` (exit status: 3)\n".to_vec();
        assert_eq!(classify(&out), GateStatus::Failed(GateFailure::Unclassified));
    }

    #[test]
    fn a_failing_custom_harness_is_named_by_the_rerun_hint() {
        let mut out = exited(
            1,
            "\nrunning 1 test\ntest t ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\nmismatch\n",
        );
        out.stderr = b"error: test failed, to rerun pass `-p wire --test golden`\n".to_vec();
        assert_eq!(failure(classify(&out)), (1, Some("golden".to_owned())));
    }

    #[test]
    fn a_retried_attempt_is_not_the_failure() {
        let out = exited(
            100,
            "  TRY 1 FAIL [   0.009s] (───) calc tests::flaky\n        FAIL [   0.004s] (2/3) calc tests::broken\n  TRY 2 PASS [   0.009s] (3/3) calc tests::flaky\n     Summary [   0.021s] 3 tests run: 2 passed (1 flaky), 1 failed, 0 skipped\n",
        );
        assert_eq!(failure(classify(&out)), (1, Some("calc tests::broken".to_owned())));
    }

    #[test]
    fn nextest_counts_timeouts_and_exec_failures() {
        let out = exited(
            100,
            "     TIMEOUT [   2.003s] (1/4) calc tests::slow\n  TRY 2 TMT [   2.003s] (2/4) calc tests::slower\n     Summary [   4.0s] 4 tests run: 1 passed, 2 timed out, 1 exec failed, 0 skipped\n",
        );
        assert_eq!(failure(classify(&out)), (3, Some("calc tests::slow".to_owned())));
        assert_eq!(strip_try(b"TRY 2 TMT [ 1s]"), b"TMT [ 1s]");
        assert_eq!(strip_try(b"TRY x"), b"TRY x");
    }

    #[test]
    fn names_rerun_targets() {
        assert_eq!(rerun_target(b"--test golden"), b"golden");
        assert_eq!(rerun_target(b"-p report --lib"), b"-p report --lib");
    }

    #[test]
    fn counts_before_labels() {
        assert_eq!(count_before(b"5 passed, 12 failed, 0 skipped", b" failed"), 12);
        assert_eq!(count_before(b"nothing", b" failed"), 0);
    }
}
