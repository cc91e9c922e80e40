"""A {kind} classifier (world `classifier-only` of the Sando gate
contract), made by `sando gate new {kind} --lang python`. A {kind} gate
is decided by its runner (a clock, an operator), never by a process's
output, so whatever it is asked to read is `unclassified`: never a guess."""

from wit_world import exports
from wit_world.imports.types import (
    GateFailure_Unclassified,
    GateKind,
    GateStatus,
    GateStatus_Failed,
    RawOutput,
)


class Classifier(exports.Classifier):
    def kind(self) -> GateKind:
        return GateKind.{KIND}

    def classify(self, kind: GateKind, output: RawOutput) -> GateStatus:
        return GateStatus_Failed(GateFailure_Unclassified())
