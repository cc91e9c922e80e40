//! The vocabulary every other module speaks. The shared part (newtypes, outcomes, API bodies, events) lives in `sando-wire` so the TUI can use it without the host; `RawOutput` is the host's alone.

mod raw_output;

pub use raw_output::{ProcessEnd, RawOutput};
pub use sando_wire::*;
