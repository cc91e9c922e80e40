"""A migration_dry_run classifier (world `classifier-only` of the Sando gate
contract), made by `sando gate new migration_dry_run --lang python`: it
reads what `sqlx migrate run` printed (errors go to stdout) as the shipped
one does. Change what you need, then build it and run `sando gate test` on
the fixtures (README.md says how)."""

import re
from typing import Optional

from wit_world import exports
from wit_world.imports.types import (
    GateBlocker_ScratchDbUnreachable,
    GateBlocker_ScratchDbUrlUnset,
    GateFailure_MigrationDirty,
    GateFailure_MigrationDrift,
    GateFailure_MigrationModified,
    GateFailure_MigrationSqlError,
    GateFailure_SpawnFailed,
    GateFailure_Timeout,
    GateFailure_Unclassified,
    GateKind,
    GateStatus,
    GateStatus_Blocked,
    GateStatus_Failed,
    GateStatus_Passed,
    Migrated,
    MigrationRef,
    MigrationSqlError,
    PassNote_Migrated,
    ProcessEnd_Exited,
    ProcessEnd_SpawnError,
    ProcessEnd_StillRunning,
    RawOutput,
    SpawnFailed,
    Timeout,
)

ANSI = re.compile(r"\x1b(?:\[[\x20-\x3f]*[\x40-\x7e]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.?)")


def plain(data: bytes) -> str:
    return ANSI.sub("", data.decode("utf-8", errors="replace"))


def secs(ms):
    return 0 if ms is None else (ms + 500) // 1000


def migration(line: str) -> Optional[str]:
    at = line.find("migration ")
    if at < 0:
        return None
    digits = re.match(r"[0-9]*", line[at + len("migration "):]).group(0)
    return digits or None


def sqlstate(line: str) -> Optional[str]:
    for marker in ("SQLSTATE ", "SQLSTATE: ", "(code: "):
        at = line.find(marker)
        if at >= 0:
            code = re.match(r"[A-Za-z0-9]*", line[at + len(marker):]).group(0)
            if len(code) == 5:
                return code
    return None


def error_line(line: str) -> Optional[GateStatus]:
    """One line of sqlx-cli's error output, if it is one we know."""
    for text, failure in (
        ("was previously applied but is missing", GateFailure_MigrationDrift),
        ("was previously applied but has been modified", GateFailure_MigrationModified),
        ("is partially applied", GateFailure_MigrationDirty),
    ):
        if text in line:
            found = migration(line)
            return GateStatus_Failed(failure(MigrationRef(found))) if found else None
    if "while executing migration" in line:
        found = migration(line)
        if not found:
            return None
        return GateStatus_Failed(
            GateFailure_MigrationSqlError(MigrationSqlError(found, sqlstate(line)))
        )
    if (
        "error communicating with database" in line
        or "unable to open database file" in line
        or "Connection refused" in line
        or ('error returned from database: database "' in line and '" does not exist' in line)
    ):
        return GateStatus_Blocked(GateBlocker_ScratchDbUnreachable())
    if "--database-url <DATABASE_URL>" in line or "`--database-url` or `DATABASE_URL` must be set" in line:
        return GateStatus_Blocked(GateBlocker_ScratchDbUrlUnset())
    return None


class Classifier(exports.Classifier):
    def kind(self) -> GateKind:
        return GateKind.MIGRATION_DRY_RUN

    def classify(self, kind: GateKind, output: RawOutput) -> GateStatus:
        unclassified = GateStatus_Failed(GateFailure_Unclassified())
        if kind != GateKind.MIGRATION_DRY_RUN:
            return unclassified
        end = output.end
        if isinstance(end, ProcessEnd_SpawnError):
            return GateStatus_Failed(GateFailure_SpawnFailed(SpawnFailed(end.value)))
        if isinstance(end, ProcessEnd_StillRunning):
            return GateStatus_Failed(
                GateFailure_Timeout(Timeout(GateKind.MIGRATION_DRY_RUN, secs(output.duration_ms)))
            )
        stdout, stderr = plain(output.stdout), plain(output.stderr)
        applied = 0
        for line in stdout.splitlines() + stderr.splitlines():
            line = line.strip()
            if line.startswith("Applied "):
                applied += 1
                continue
            status = error_line(line)
            if status is not None:
                return status
        if isinstance(end, ProcessEnd_Exited) and end.value == 0 and not stderr.strip():
            return GateStatus_Passed(PassNote_Migrated(Migrated(None, applied)))
        return unclassified
