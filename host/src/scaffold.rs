//! `sando gate new`: a classifier project for one gate kind, in Rust or Python, that builds and passes `sando gate test` on the shipped fixtures of its kind as it is written.
//!
//! The project starts from the shipped classifier of the kind, so its first
//! `sando gate test` is green and every change an author makes shows as a
//! fixture that changes.

use std::path::{Path, PathBuf};

use crate::domain::GateKind;

/// The contract a Python project generates its types from.
const CONTRACT_WIT: &str = include_str!("../../wit/gate.wit");

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A crate built on `sando-gate-sdk` and the shipped gate crate of the
    /// kind (path dependencies into a Sando source tree).
    Rust,
    /// A componentize-py project (world `classifier-only`).
    Python,
}

impl std::str::FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            other => Err(format!("unknown language {other:?}: expected rust or python")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{0} already exists and is not empty: choose a new directory")]
    NotEmpty(PathBuf),
    #[error(
        "a Rust classifier builds on Sando's gate crates: pass --sando-source with a Sando \
         source tree (no gates/sdk in {0})"
    )]
    NoSource(PathBuf),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// The Python module a project of `kind` starts from.
fn python_source(kind: GateKind) -> String {
    // The kinds decided by their runner share one classifier: it never
    // recognises an output.
    let decided_by_runner = |kind: GateKind| {
        include_str!("../templates/python/decided_by_runner.py")
            .replace("{kind}", kind.as_str())
            .replace("{KIND}", &kind.as_str().to_ascii_uppercase())
    };
    match kind {
        GateKind::CargoTest => include_str!("../../examples/python_cargo_test/app.py").to_owned(),
        GateKind::MigrationDryRun => {
            include_str!("../templates/python/migration_dry_run.py").to_owned()
        }
        GateKind::BootSmoke => include_str!("../templates/python/boot_smoke.py").to_owned(),
        GateKind::BurnIn | GateKind::ManualConfirm => decided_by_runner(kind),
    }
}

/// The Sando source tree this binary was built from, if it is still there.
pub fn built_from() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("gates/sdk/Cargo.toml").is_file().then(|| root.to_owned())
}

/// Writes the project into `dir` (created; refused if it holds anything)
/// and returns the files written.
pub fn scaffold(
    kind: GateKind,
    lang: Lang,
    dir: &Path,
    sando_source: Option<&Path>,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| ScaffoldError::Io {
            path,
            message: crate::fixtures::io_message(&e),
        }
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(ScaffoldError::NotEmpty(dir.to_owned()));
    }
    let files: Vec<(PathBuf, String)> = match lang {
        Lang::Python => python(kind, dir),
        Lang::Rust => {
            let source = match sando_source {
                Some(source) => source.to_owned(),
                None => built_from().ok_or_else(|| ScaffoldError::NoSource(PathBuf::from(".")))?,
            };
            if !source.join("gates/sdk/Cargo.toml").is_file() {
                return Err(ScaffoldError::NoSource(source));
            }
            let source = source.canonicalize().map_err(io(&source))?;
            rust(kind, dir, &source)
        }
    };
    let mut written = Vec::new();
    for (path, text) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn python(kind: GateKind, dir: &Path) -> Vec<(PathBuf, String)> {
    let readme = format!(
        "# A {kind} classifier in Python\n\n\
         Made by `sando gate new {kind} --lang python`. `app.py` starts as the shipped\n\
         classifier; `wit/gate.wit` is the gate contract it is built against.\n\n\
         ```sh\n\
         python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1\n\
         .venv/bin/componentize-py -d wit -w classifier-only componentize app -p . -o {kind}.wasm\n\
         sando gate test {kind}.wasm <sando>/fixtures/{kind}\n\
         sando gate push {kind}.wasm --url http://127.0.0.1:7878 --token-file <token file>\n\
         ```\n"
    );
    vec![
        (dir.join("app.py"), python_source(kind)),
        (dir.join("wit/gate.wit"), CONTRACT_WIT.to_owned()),
        (dir.join("README.md"), readme),
    ]
}

fn rust(kind: GateKind, dir: &Path, source: &Path) -> Vec<(PathBuf, String)> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>();
    let name = if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
        name
    } else {
        format!("classifier-{kind}").replace('_', "-")
    };
    let gate_crate = format!("gate-{}", kind.as_str().replace('_', "-"));
    let gate_module = format!("gate_{kind}");
    let variant = match kind {
        GateKind::CargoTest => "CargoTest",
        GateKind::MigrationDryRun => "MigrationDryRun",
        GateKind::BootSmoke => "BootSmoke",
        GateKind::BurnIn => "BurnIn",
        GateKind::ManualConfirm => "ManualConfirm",
    };
    let cargo_toml = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
         [features]\ndefault = [\"component\"]\ncomponent = []\n\n\
         [dependencies]\n\
         sando-gate-sdk = {{ path = \"{sdk}\" }}\n\
         {gate_crate} = {{ path = \"{gate}\", default-features = false }}\n\n\
         # Its own workspace, outside Sando's.\n[workspace]\n\n\
         [profile.release]\nstrip = true\ncodegen-units = 1\n",
        sdk = source.join("gates/sdk").display(),
        gate = source.join("gates").join(kind.as_str()).display(),
    );
    let lib_rs = format!(
        "//! A {kind} classifier, made by `sando gate new {kind} --lang rust`: the\n\
         //! shipped runner, and a classifier that starts as the shipped one.\n\n\
         use sando_gate_sdk::{{GateKind, GateStatus, RawOutput}};\n\n\
         sando_gate_sdk::gate!(kind: GateKind::{variant}, classify: classify, run: {gate_module}::run);\n\n\
         /// Change what you need. Anything you do not recognise is `unclassified`:\n\
         /// never a guess, never `passed`.\n\
         pub fn classify(output: &RawOutput) -> GateStatus {{\n    {gate_module}::classify(output)\n}}\n"
    );
    let readme = format!(
        "# A {kind} classifier in Rust\n\n\
         Made by `sando gate new {kind} --lang rust`. `src/lib.rs` starts as the shipped\n\
         classifier, with the shipped runner.\n\n\
         ```sh\n\
         cargo build --release --target wasm32-wasip2\n\
         sando gate test target/wasm32-wasip2/release/{module}.wasm {fixtures}\n\
         sando gate push target/wasm32-wasip2/release/{module}.wasm --part classifier \\\n    \
         --url http://127.0.0.1:7878 --token-file <token file>\n\
         ```\n",
        module = name.replace('-', "_"),
        fixtures = source.join("fixtures").join(kind.as_str()).display(),
    );
    vec![
        (dir.join("Cargo.toml"), cargo_toml),
        (dir.join("src/lib.rs"), lib_rs),
        (dir.join("README.md"), readme),
        (dir.join(".gitignore"), "target/\n".to_owned()),
    ]
}
