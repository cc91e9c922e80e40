"""A boot_smoke classifier (world `classifier-only` of the Sando gate
contract), made by `sando gate new boot_smoke --lang python`: it judges the
booted binary as the shipped one does. Change what you need, then build it
and run `sando gate test` on the fixtures (README.md says how)."""

from wit_world import exports
from wit_world.imports.types import (
    ExitCode,
    GateFailure_BootExitedEarly,
    GateFailure_BootKilled,
    GateFailure_BootPanic,
    GateFailure_SpawnFailed,
    GateFailure_Unclassified,
    GateKind,
    GateStatus,
    GateStatus_Failed,
    GateStatus_Passed,
    PassNote_StayedUp,
    ProcessEnd_Exited,
    ProcessEnd_Signaled,
    ProcessEnd_SpawnError,
    ProcessEnd_StillRunning,
    RawOutput,
    SignalRef,
    SpawnFailed,
    StayedUp,
)


def secs(ms):
    return 0 if ms is None else (ms + 500) // 1000


def panicked(output: RawOutput) -> bool:
    stderr = output.stderr.decode("utf-8", errors="replace")
    return any(l.startswith("thread '") and "panicked at" in l for l in stderr.splitlines())


class Classifier(exports.Classifier):
    def kind(self) -> GateKind:
        return GateKind.BOOT_SMOKE

    def classify(self, kind: GateKind, output: RawOutput) -> GateStatus:
        if kind != GateKind.BOOT_SMOKE:
            return GateStatus_Failed(GateFailure_Unclassified())
        end = output.end
        # Still running when the window closed is the only pass.
        if isinstance(end, ProcessEnd_StillRunning):
            return GateStatus_Passed(PassNote_StayedUp(StayedUp(secs(output.duration_ms))))
        if isinstance(end, ProcessEnd_SpawnError):
            return GateStatus_Failed(GateFailure_SpawnFailed(SpawnFailed(end.value)))
        if isinstance(end, ProcessEnd_Exited):
            if panicked(output):
                return GateStatus_Failed(GateFailure_BootPanic(ExitCode(end.value)))
            return GateStatus_Failed(GateFailure_BootExitedEarly(ExitCode(end.value)))
        if isinstance(end, ProcessEnd_Signaled):
            if panicked(output):
                return GateStatus_Failed(GateFailure_BootPanic(ExitCode(None)))
            return GateStatus_Failed(GateFailure_BootKilled(SignalRef(end.value)))
        return GateStatus_Failed(GateFailure_Unclassified())
