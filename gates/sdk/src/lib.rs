//! Guest-side bindings of `wit/` plus the small text helpers every classifier needs.
//!
//! Gate crates depend on this crate and call [`export!`] with their component
//! type; the generated types are re-exported so a gate never writes them by hand.

wit_bindgen::generate!({
    path: "../../wit",
    world: "gate",
    pub_export_macro: true,
    default_bindings_module: "sando_gate_sdk",
    additional_derives: [PartialEq, Eq],
});

pub use exports::sando::gate::classifier::Guest as Classifier;
pub use exports::sando::gate::runner::Guest as Runner;
pub use sando::gate::host;
pub use sando::gate::types;
pub use sando::gate::types::{
    GateBlocker, GateFailure, GateKind, GateStatus, PassNote, ProcessEnd, RawOutput,
};

pub mod outcome;
pub mod text;

/// The value of one `key = value` gate parameter, if configured.
pub fn param<'a>(context: &'a host::GateContext, key: &str) -> Option<&'a str> {
    context.params.iter().find(|p| p.key == key).map(|p| p.value.as_str())
}
