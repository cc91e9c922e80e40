//! Contract 0.2 (`wit/gate.wit`, the current one): its bindings, its conversions and its `host` imports.
//!
//! A 0.2 runner returns a `verdict`: evidence for the classifier in service
//! to judge, or a status it decided without a process.

pub mod from_guest;
mod host;
pub mod to_guest;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gate",
    // Every `host` import may trap: that is how the sandbox refuses a
    // capability (a classifier calling `spawn`, a runner spawning a program
    // its configuration does not name).
    imports: { default: trappable },
    // Outputs run to hundreds of KB: let `classify` take them borrowed
    // instead of cloning them before the copy into the guest.
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub use self::exports::sando::gate::runner;
pub use self::sando::gate::host as wit_host;
pub use self::sando::gate::types;

/// The contract version, from the WIT package.
pub const CONTRACT: &str = "0.2.0";
