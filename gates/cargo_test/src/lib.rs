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
            failed(nextest.failed, report.first_failed)
        } else {
            unclassified()
        };
    }
    if report.results > 0 {
        let failed_count = report.failed + report.crashed;
        return match (failed_count, exited_ok) {
            (0, true) => passed(report.passed, Vec::new(), output),
            (0, false) if report.compile_error => failed(0, None),
            (0, false) => unclassified(),
            (n, _) => failed(n, report.first_failed.or(report.unfinished)),
        };
    }
    if report.crashed > 0 && !exited_ok {
        return failed(report.crashed, report.unfinished);
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
    passed: u32,
    failed: u32,
    /// Test binaries that died (cargo: "process didn't exit successfully … signal").
    crashed: u32,
    first_failed: Option<String>,
    /// A test that started and never reported a result (single-threaded runs
    /// print the name first), the best name for a crashed binary.
    unfinished: Option<String>,
    compile_error: bool,
    nextest: Option<Nextest>,
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
                Some(b't' | b'f' | b'p' | b'e' | b'S' | b'F' | b'T' | b'A')
            ) {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix(b"test result: ") {
                report.results += 1;
                report.passed += count_before(rest, b" passed");
                report.failed += count_before(rest, b" failed");
            } else if trimmed == b"failures:" {
                in_failure_list = true;
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
            {
                report.compile_error = true;
            } else if let Some(rest) = nextest_summary(trimmed) {
                report.nextest = Some(Nextest {
                    passed: count_before(rest, b" passed"),
                    failed: count_before(rest, b" failed"),
                });
            } else if let Some(name) = nextest_failure(trimmed)
                && report.first_failed.is_none()
            {
                report.first_failed = Some(text(name));
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

/// `FAIL [   0.004s] ( 2/10) crate::bin tests::name` → `tests::name`; nextest
/// names a test killed by a signal by the signal (`SIGABRT [ … ]`) and one
/// that ran too long `TIMEOUT`.
fn nextest_failure(line: &[u8]) -> Option<&[u8]> {
    if !matches!(line.first(), Some(b'F' | b'S' | b'T')) {
        return None;
    }
    let (status, rest) = split_once(line, b" [")?;
    let is_signal = status.len() > 3
        && status.starts_with(b"SIG")
        && status[3..].iter().all(u8::is_ascii_uppercase);
    if !(status == b"FAIL" || status == b"TIMEOUT" || is_signal) {
        return None;
    }
    nextest_test_name(rest)
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

    #[test]
    fn counts_before_labels() {
        assert_eq!(count_before(b"5 passed, 12 failed, 0 skipped", b" failed"), 12);
        assert_eq!(count_before(b"nothing", b" failed"), 0);
    }
}
