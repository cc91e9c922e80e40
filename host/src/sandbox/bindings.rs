//! Host-side bindings generated from `wit/` — the only definition of the gate contract's types on this side.

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

pub use self::sando::gate::host;
pub use self::sando::gate::types;

/// The contract version this host speaks, from the WIT package.
pub const CONTRACT: &str = "0.1.0";
/// The package the version applies to.
pub const PACKAGE: &str = "sando:gate";
