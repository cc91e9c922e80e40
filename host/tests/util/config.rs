//! Test configs for the tiny project (`daemon::Project`): the lines every daemon test's config starts with, and nodes that copy the artifact into a directory, so a test writes only the tiers, gates and tables it is about.

use std::path::{Path, PathBuf};

/// The tiny project's tests as a gate.
pub const CARGO_TEST: &str = "[[tiers.gates]]\nkind = \"cargo_test\"\nargs = \"test --offline\"";
/// A manual confirmation gate.
pub const CONFIRM: &str = "[[tiers.gates]]\nkind = \"manual_confirm\"";

/// The head of a config for the tiny project at `repo`: a free port,
/// `data/` beside the config, the test token, the project built offline.
/// `top` (top-level keys, a `[store]` table) goes before `[project]`.
pub fn head(repo: &Path, top: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
{top}

[project]
repo = "{repo}"
build = "cargo build --offline --quiet"
artifact = "target/debug/tiny"
"#,
        repo = repo.display(),
    )
}

/// A `[[tiers.nodes]]` table: node `name` takes the artifact into
/// `<nodes>/<name>/tiny` (the directory is made here); `extra` lines (a
/// health check) follow.
pub fn copy_node(nodes: &Path, name: &str, extra: &str) -> String {
    std::fs::create_dir_all(nodes.join(name)).unwrap();
    format!(
        "[[tiers.nodes]]\nname = \"{name}\"\ndeploy = \"cp {{artifact}} {}/{name}/tiny\"\n{extra}\n",
        nodes.display()
    )
}

/// Writes `parts`, one after another, as `<root>/sando.toml`.
pub fn write(root: &Path, parts: &[&str]) -> PathBuf {
    let path = root.join("sando.toml");
    std::fs::write(&path, parts.join("\n")).unwrap();
    path
}
