//! Contract 0.1 (`wit/0.1/gate.wit`): its bindings, its conversions and its `host` imports, kept so components built against it still load, serve and can be rolled back to.
//!
//! A 0.1 component is a whole gate: its runner calls its own classifier and
//! returns the status, so the host takes a 0.1 runner's status as it is.

pub mod from_guest;
mod host;
pub mod to_guest;

wasmtime::component::bindgen!({
    path: "../wit/0.1",
    world: "gate",
    // Every `host` import may trap: that is how the sandbox refuses a
    // capability (a classifier calling `spawn`, a runner spawning a program
    // its configuration does not name).
    imports: { default: trappable },
    // Outputs run to hundreds of KB: let `classify` take them borrowed
    // instead of cloning them before the copy into the guest.
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub use self::sando::gate::host as wit_host;
pub use self::sando::gate::types;

/// The contract version, from the WIT package.
pub const CONTRACT: &str = "0.1.0";
