//! The old daemon's databases (`tests/legacy/seed-N/`, captured by `capture.sh`) and a config to import them with.

use std::path::{Path, PathBuf};

use super::Sando;

pub fn seed_dir(seed: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy").join(format!("seed-{seed}"))
}

/// A temp dir with a config whose tiers are the old daemon's, and a copy of
/// seed `seed`'s database (the captured file itself is only read).
pub fn setup(seed: u32) -> (Sando, PathBuf) {
    let sando = Sando::new();
    sando.write(
        "sando.toml",
        r#"listen = "127.0.0.1:0"
data_dir = "data"
token_env = "SANDO_TEST_TOKEN"
[project]
repo = "no-such-repo"
build = "true"
artifact = "app"
[[tiers]]
name = "staging"
canary = "all_at_once"
[[tiers.nodes]]
name = "staging-1"
deploy = "true"
[[tiers.gates]]
kind = "cargo_test"
[[tiers]]
name = "prod"
canary = "one_then_rest"
[[tiers.nodes]]
name = "prod-1"
deploy = "true"
[[tiers.gates]]
kind = "manual_confirm"
"#,
    );
    let legacy = sando.path("old.sqlite");
    std::fs::copy(seed_dir(seed).join("legacy.sqlite"), &legacy).unwrap();
    (sando, legacy)
}
