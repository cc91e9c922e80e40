//! The vocabulary every other module speaks: newtypes minted once, by parsing, at the edge where their string form enters the process.

mod gate_kind;
mod git_sha;
mod ids;
mod lifecycle;
mod outcome;
mod raw_output;
mod sql;
mod version;

pub use gate_kind::GateKind;
pub use git_sha::GitSha;
pub use ids::{DeployId, GateRunId, NodeId, TierId};
pub use lifecycle::{BuildFailure, BuildOutcome, DeployFailure, DeployOutcome};
pub use outcome::{
    ComponentFault, GateBlocker, GateFailure, GateOutcome, GateStatus, LogRef, PassNote,
    RestoreFailureKind,
};
pub use raw_output::{ProcessEnd, RawOutput};
pub use version::Version;

/// Why a string (or number) did not parse into a domain type. The message
/// names the type and the offending input so one line says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    reason: String,
}

impl ParseError {
    pub(crate) fn new(
        what: &'static str,
        input: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { what, input: input.into(), reason: reason.into() }
    }
}
