//! Generates bindings from `wit/` with the package version bumped to the next
//! major, so the test component speaks a contract the host must refuse —
//! without keeping a hand-edited copy of the WIT in the repository.

use std::path::Path;

fn main() {
    // Read when the script runs, not baked in when it is compiled: cargo
    // reuses a compiled build script for a checkout at another path.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let wit_path = Path::new(&manifest_dir).join("../../../wit/gate.wit");
    println!("cargo:rerun-if-changed={}", wit_path.display());
    let wit = std::fs::read_to_string(&wit_path).expect("read wit/gate.wit");
    let current = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package sando:gate@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/gate.wit declares `package sando:gate@X.Y.Z;`");
    let major: u64 = current.split('.').next().and_then(|m| m.parse().ok()).expect("numeric major");
    let next = format!("{}.0.0", major + 1);
    let wit = wit
        .replace(&format!("package sando:gate@{current};"), &format!("package sando:gate@{next};"));
    let bindings = format!(
        "wit_bindgen::generate!({{ inline: r####\"{wit}\"####, world: \"classifier-only\" }});\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    std::fs::write(out, bindings).expect("write bindings.rs");
}
