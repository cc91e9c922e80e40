//! Guest-side bindings of `wit/` plus the small text helpers every classifier needs.
//!
//! A gate crate depends on this crate and declares itself with [`gate!`]; the
//! generated types are re-exported so a gate never writes them by hand.

wit_bindgen::generate!({
    path: "../../wit",
    world: "gate",
    pub_export_macro: true,
    default_bindings_module: "sando_gate_sdk",
    additional_derives: [PartialEq, Eq],
});

pub use exports::sando::gate::classifier::Guest as Classifier;
pub use exports::sando::gate::runner::Guest as Runner;
pub use exports::sando::gate::runner::{JudgeRequest, Verdict};
pub use sando::gate::host;
pub use sando::gate::types;
pub use sando::gate::types::{
    GateBlocker, GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput,
};

pub mod outcome;
pub mod text;

/// Hands the last spawned process's output to the classifier in service.
pub fn judge() -> Verdict {
    Verdict::Judge(JudgeRequest { restored_backup: None })
}

/// A verdict reached without a process to judge.
pub fn decided(status: GateStatus) -> Verdict {
    Verdict::Decided(status)
}

/// Runs `command` with no extra environment: its output streams to the
/// run's log and comes back for the runner to look at.
pub fn spawn(command: &host::Command, stop_after_ms: Option<u64>) -> RawOutput {
    host::spawn(&host::SpawnRequest {
        program: command.program.clone(),
        args: command.args.clone(),
        env: Vec::new(),
        stop_after_ms,
    })
}

/// Declares a gate component from its kind, its pure classifier and its
/// runner, and exports it (on wasm32 only: natively there is nothing to
/// export to, and the component's export names are not native symbol names).
///
/// ```text
/// sando_gate_sdk::gate!(kind: GateKind::CargoTest, classify: classify, run: run);
/// ```
///
/// `classify` is only called for the declared kind; asked about another
/// kind, the component answers `unclassified`.
#[macro_export]
macro_rules! gate {
    (kind: $kind:expr, classify: $classify:path, run: $run:path $(,)?) => {
        #[allow(dead_code)]
        struct Component;

        impl $crate::Classifier for Component {
            fn kind() -> $crate::GateKind {
                $kind
            }

            fn classify(kind: $crate::GateKind, output: $crate::RawOutput) -> $crate::GateStatus {
                if kind != $kind {
                    return $crate::outcome::unclassified();
                }
                $classify(&output)
            }
        }

        impl $crate::Runner for Component {
            fn run() -> $crate::Verdict {
                $run()
            }
        }

        // The calling gate crate's `component` feature: off when another
        // component links this gate as a library and exports its own.
        #[cfg(all(target_arch = "wasm32", feature = "component"))]
        $crate::export!(Component with_types_in $crate);

        // Natively nothing calls the component; keep the functions it wraps
        // from being reported as dead.
        #[cfg(not(target_arch = "wasm32"))]
        const _: (fn() -> $crate::Verdict, fn(&$crate::RawOutput) -> $crate::GateStatus) =
            ($run, $classify);
    };
}
