//! Sando's host library: the domain vocabulary, the sandbox gate components run in, fixture cases, and process running.
//!
//! The `sando` binary (`main.rs`) is a thin command-line edge over this crate.

pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod executor;
pub mod fixtures;
pub mod identity;
pub mod legacy;
pub mod memory;
pub mod migrate;
pub mod read_into;
pub mod run_as;
pub mod sandbox;
pub mod scaffold;
pub mod store;
pub mod text;
