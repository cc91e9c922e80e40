"""A cargo_test classifier written in Python: a classifier-only component
(world `classifier-only` of wit/gate.wit) built with componentize-py.

It reads what libtest and cargo-nextest print the way the shipped Rust
classifier does (gates/cargo_test), and it also recognises a test binary
that exits before libtest's summary ("process didn't exit successfully"),
which the shipped one leaves unclassified. It never guesses a pass.

Build (see ./x): componentize-py -d wit -w classifier-only componentize app
-p examples/python_cargo_test -o target/python/python_cargo_test.wasm
"""

import re
from typing import List, Optional

from wit_world import exports
from wit_world.imports.types import (
    CargoTestFailure,
    DependencyUnavailable,
    GateBlocker_DependencyUnavailable,
    GateFailure_CargoTest,
    GateFailure_SpawnFailed,
    GateFailure_Timeout,
    GateFailure_Unclassified,
    GateKind,
    GateStatus,
    GateStatus_Blocked,
    GateStatus_Failed,
    GateStatus_Passed,
    PassNote_TestsPassed,
    ProcessEnd_Exited,
    ProcessEnd_SpawnError,
    ProcessEnd_StillRunning,
    RawOutput,
    SpawnFailed,
    TestsPassed,
    Timeout,
)

# ANSI escapes (colours, cursor moves, titles): removed so lines read as a
# person sees them on a terminal.
ANSI = re.compile(r"\x1b(?:\[[\x20-\x3f]*[\x40-\x7e]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)")
ASCII_SPACE = " \t\n\r\x0b\x0c"
CRASHED_BINARY = "process didn't exit successfully"


def lines(data: bytes) -> List[str]:
    text = data.decode("utf-8", errors="replace")
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    out = []
    for line in parts:
        if line.endswith("\r"):
            line = line[:-1]
        if "\x1b" in line:
            line = ANSI.sub("", line)
        out.append(line)
    return out


def secs(ms: Optional[int]) -> int:
    return 0 if ms is None else (ms + 500) // 1000


def count_before(text: str, label: str) -> int:
    at = text.find(label)
    if at < 0:
        return 0
    start = at
    while start > 0 and text[start - 1].isdigit() and text[start - 1].isascii():
        start -= 1
    return int(text[start:at]) if start < at else 0


def nextest_test_name(rest: str) -> Optional[str]:
    """The full name after a status's `[ duration]` and `(n/m)`."""
    if "]" not in rest:
        return None
    rest = rest.split("]", 1)[1].strip(ASCII_SPACE)
    if rest.startswith("("):
        if ")" not in rest:
            return None
        rest = rest.split(")", 1)[1].strip(ASCII_SPACE)
    return rest or None


NEXTEST_FAILURES = ("FAIL", "FAIL + LEAK", "FL+LK", "LEAK-FAIL", "LKFAIL", "XFAIL", "TIMEOUT", "TMT")
TRY = re.compile(r"TRY [0-9]+ ")


def nextest_failure(line: str) -> Optional[str]:
    """The full name on a line of a test nextest failed: `FAIL`, a signal
    (`SIGABRT`, `ABORT SIG 6`), a leak, its own slow-timeout (`TIMEOUT`),
    `XFAIL`, `FLKY-FL 2/3`; with retries `TRY n` and a short form (`TMT`)."""
    try_prefix = TRY.match(line)
    if try_prefix:
        line = line[try_prefix.end() :]
    if " [" not in line:
        return None
    status, rest = line.split(" [", 1)
    if not (
        status in NEXTEST_FAILURES
        or status.startswith(("SIG", "ABORT", "FLKY-FL "))
    ):
        return None
    # An attempt nextest will retry has a counter without numbers (`(───)`):
    # the test is not over, and may yet pass.
    if "]" in rest:
        after = rest.split("]", 1)[1].lstrip(ASCII_SPACE)
        if after.startswith("(") and ")" in after:
            counter = after.split(")", 1)[0]
            if not any("0" <= c <= "9" for c in counter):
                return None
    return nextest_test_name(rest)


def overflowed_thread(line: str) -> Optional[str]:
    """`thread 'tests::deep' (8064) has overflowed its stack` -> `tests::deep`;
    a thread without a test's name (`main`, `<unnamed>`) names no test."""
    if not line.startswith("thread '"):
        return None
    rest = line[len("thread '") :]
    if "'" not in rest:
        return None
    name, after = rest.split("'", 1)
    if not after.endswith(" has overflowed its stack") or name in ("main", "<unnamed>"):
        return None
    return name


def rerun_target(args: str) -> str:
    """`--test golden` -> `golden`; a target without a name of its own
    (`--lib`) is named by the whole hint."""
    last = args.split(" ")[-1]
    return last if last and not last.startswith("-") else args


def nextest_summary(line: str) -> Optional[str]:
    if not line.startswith("Summary [") or "]" not in line:
        return None
    rest = line[len("Summary [") :].split("]", 1)[1]
    if " run: " not in rest:
        return None
    return rest.split(" run: ", 1)[1]


class Report:
    def __init__(self) -> None:
        self.results = 0
        # `running N tests` lines: one more than results when a test binary
        # ended before its summary.
        self.headers = 0
        self.passed = 0
        self.failed = 0
        self.crashed = 0
        self.first_failed: Optional[str] = None
        self.unfinished: Optional[str] = None
        self.overflowed: Optional[str] = None
        self.rerun_target: Optional[str] = None
        self.compile_error = False
        self.nextest: Optional[tuple] = None
        # nextest's own name (binary id and test): the libtest output it
        # embeds names a test without its binary.
        self.nextest_first_failed: Optional[str] = None
        self.flaky: List[str] = []
        self.dependency_unavailable: Optional[tuple] = None
        self.no_matching_package: Optional[str] = None

    def read(self, all_lines: List[str]) -> "Report":
        in_failure_list = False
        for line in all_lines:
            trimmed = line.strip(ASCII_SPACE)
            if in_failure_list:
                if line.startswith("    ") and trimmed:
                    if self.first_failed is None:
                        self.first_failed = trimmed
                    continue
                in_failure_list = False
            if not trimmed or trimmed[0] not in "tfperSFTALX":
                continue
            if trimmed.startswith("test result: "):
                rest = trimmed[len("test result: ") :]
                self.results += 1
                self.passed += count_before(rest, " passed")
                self.failed += count_before(rest, " failed")
            elif trimmed == "failures:":
                in_failure_list = True
            elif trimmed.startswith("running ") and trimmed.endswith((" test", " tests")):
                self.headers += 1
            elif overflowed_thread(trimmed) is not None and self.overflowed is None:
                self.overflowed = overflowed_thread(trimmed)
            elif trimmed.startswith("test "):
                rest = trimmed[len("test ") :]
                if rest.endswith(" ..."):
                    self.unfinished = rest[: -len(" ...")]
                elif " ... " in rest and rest.split(" ... ", 1)[0] == self.unfinished:
                    self.unfinished = None
            elif trimmed.startswith(CRASHED_BINARY) and "(signal: " in trimmed:
                self.crashed += 1
            elif trimmed.startswith(
                ("error: could not compile", "error[E", "error: failed to run custom build command for")
            ):
                self.compile_error = True
            elif (
                trimmed.startswith("error: test failed, to rerun pass `")
                and self.rerun_target is None
            ):
                args = trimmed[len("error: test failed, to rerun pass `") :].split("`")[0]
                self.rerun_target = rerun_target(args)
            elif nextest_summary(trimmed) is not None:
                counts = nextest_summary(trimmed)
                failed_count = (
                    count_before(counts, " failed")
                    + count_before(counts, " exec failed")
                    + count_before(counts, " timed out")
                )
                self.nextest = (count_before(counts, " passed"), failed_count)
            elif nextest_failure(trimmed) is not None and self.nextest_first_failed is None:
                self.nextest_first_failed = nextest_failure(trimmed)
            elif trimmed.startswith("FLAKY "):
                name = nextest_test_name(trimmed[len("FLAKY ") :])
                if name is not None and name not in self.flaky:
                    self.flaky.append(name)
            elif trimmed.startswith("error: no matching package named `"):
                self.no_matching_package = trimmed[len("error: no matching package named `") :].split("`")[0]
            elif (
                trimmed.startswith("As a reminder, you're using offline mode")
                and self.no_matching_package is not None
            ):
                self.dependency_unavailable = (self.no_matching_package,)
                self.no_matching_package = None
            elif trimmed.startswith("error: failed to download `") or trimmed.startswith(
                "error: failed to get `"
            ):
                quoted = trimmed.split("`", 2)[1] if trimmed.count("`") >= 1 else ""
                name = quoted.split(" ")[0]
                self.dependency_unavailable = (name or None,)
        return self


def passed(count: int, flaky: List[str], output: RawOutput) -> GateStatus:
    note = TestsPassed(count=count, duration_s=secs(output.duration_ms), flaky=flaky)
    return GateStatus_Passed(PassNote_TestsPassed(note))


def failed(count: int, first: Optional[str]) -> GateStatus:
    return GateStatus_Failed(GateFailure_CargoTest(CargoTestFailure(count, first)))


def unclassified() -> GateStatus:
    return GateStatus_Failed(GateFailure_Unclassified())


def judge(output: RawOutput) -> GateStatus:
    end = output.end
    if isinstance(end, ProcessEnd_SpawnError):
        return GateStatus_Failed(GateFailure_SpawnFailed(SpawnFailed(end.value)))
    if isinstance(end, ProcessEnd_StillRunning):
        return GateStatus_Failed(
            GateFailure_Timeout(Timeout(GateKind.CARGO_TEST, secs(output.duration_ms)))
        )
    report = Report().read(lines(output.stdout) + lines(output.stderr))
    exited_ok = isinstance(end, ProcessEnd_Exited) and end.value == 0
    if report.dependency_unavailable is not None and not exited_ok:
        name = report.dependency_unavailable[0]
        return GateStatus_Blocked(GateBlocker_DependencyUnavailable(DependencyUnavailable(name)))
    if report.nextest is not None:
        nextest_passed, nextest_failed = report.nextest
        if nextest_failed == 0 and exited_ok:
            return passed(nextest_passed, report.flaky, output)
        if nextest_failed > 0:
            return failed(nextest_failed, report.nextest_first_failed or report.first_failed)
        return unclassified()
    # A harness = false target prints no libtest lines of its own, so cargo's
    # rerun hint is the only trace of it; the hint alone also follows a
    # libtest binary that exited mid-run, told apart by its `running N tests`
    # with no result after it.
    custom_harness_failed = (
        report.headers == report.results
        and report.failed + report.crashed == 0
        and not report.compile_error
        and not exited_ok
    )
    if custom_harness_failed and report.rerun_target is not None:
        return failed(1, report.rerun_target)
    if report.results > 0:
        failed_count = report.failed + report.crashed
        if failed_count == 0 and exited_ok:
            return passed(report.passed, [], output)
        if failed_count == 0 and report.compile_error:
            return failed(0, None)
        if failed_count == 0:
            return unclassified()
        return failed(
            failed_count, report.first_failed or report.overflowed or report.unfinished
        )
    if report.crashed > 0 and not exited_ok:
        return failed(report.crashed, report.overflowed or report.unfinished)
    if report.compile_error and not exited_ok:
        return failed(0, None)
    return unclassified()


class Classifier(exports.Classifier):
    def kind(self) -> GateKind:
        return GateKind.CARGO_TEST

    def classify(self, kind: GateKind, output: RawOutput) -> GateStatus:
        if kind != GateKind.CARGO_TEST:
            return unclassified()
        status = judge(output)
        # What the shipped classifier leaves unclassified: a test binary that
        # died before libtest could print its summary is a failed test run.
        stderr = output.stderr.decode("utf-8", errors="replace")
        if isinstance(status, GateStatus_Failed) and isinstance(
            status.value, GateFailure_Unclassified
        ) and CRASHED_BINARY in stderr:
            return failed(1, None)
        return status
