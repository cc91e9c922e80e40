//! Fixture cases (BRIEF.md contract 3): `fixtures/<gate_kind>/<case>/` with
//! `stdout`, `stderr`, `case.toml` and `expected.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{GateKind, GateStatus, ProcessEnd, RawOutput};

/// A problem with one case's files; the message names the file (and, for
/// TOML and JSON, the line) so it can be fixed without guessing.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    At { path: PathBuf, line: usize, column: usize, message: String },
}

impl FixtureError {
    fn file(path: &Path, message: impl Into<String>) -> Self {
        FixtureError::File { path: path.to_owned(), message: message.into() }
    }
}

/// `case.toml`, as written by the capture scripts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseToml {
    /// What was run to capture the output; informational.
    #[allow(dead_code)]
    command: String,
    #[allow(dead_code)]
    cwd: Option<String>,
    #[allow(dead_code)]
    env: Option<BTreeMap<String, String>>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    spawn_error: Option<i32>,
    still_running: Option<bool>,
    duration_ms: Option<u64>,
}

/// One parsed case.
#[derive(Debug, Clone)]
pub struct Case {
    /// `<gate_kind>/<case>`, for reports.
    pub name: String,
    pub kind: GateKind,
    pub output: RawOutput,
    pub expected: GateStatus,
}

/// Every case directory (one holding a `case.toml`) below `root`, sorted.
/// Hidden directories are skipped: `gate test --record` writes a case in
/// one and renames it into place, so one left behind is a record cut short.
pub fn discover(root: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    if !root.is_dir() {
        return Err(FixtureError::file(root, "not a directory"));
    }
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        if dir.join("case.toml").is_file() {
            found.push(dir);
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).map_err(|e| FixtureError::file(&dir, e.to_string()))?;
        for entry in entries {
            let entry = entry.map_err(|e| FixtureError::file(&dir, e.to_string()))?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !hidden {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The gate kind a case belongs to: the name of its parent directory.
pub fn kind_of(case_dir: &Path) -> Result<GateKind, FixtureError> {
    let parent =
        case_dir.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).ok_or_else(
            || FixtureError::file(case_dir, "a case must sit in a <gate_kind>/ directory"),
        )?;
    parent.parse().map_err(|e: crate::domain::ParseError| {
        FixtureError::file(case_dir, format!("parent directory is not a gate kind: {e}"))
    })
}

/// A case compiled into the binary (`host/build.rs` writes the list).
pub struct ShippedCase {
    /// `<gate_kind>/<case>`, below `fixtures/`.
    pub dir: &'static str,
    pub case_toml: &'static str,
    pub stdout: &'static [u8],
    pub stderr: &'static [u8],
    pub expected: &'static str,
}

/// Every shipped fixture case, in the repository's `fixtures/` order.
pub static SHIPPED: &[ShippedCase] = include!(concat!(env!("OUT_DIR"), "/shipped_fixtures.rs"));

/// The shipped cases of `kind`, parsed: the floor every updated component
/// of that kind is shadow-tested against, whatever else is configured.
pub fn shipped(kind: GateKind) -> Vec<Case> {
    SHIPPED
        .iter()
        .filter(|c| Path::new(c.dir).parent().is_some_and(|p| p == Path::new(kind.as_str())))
        .filter_map(|c| {
            let dir = Path::new("fixtures").join(c.dir);
            let files = CaseFiles {
                case_toml: c.case_toml.to_owned(),
                stdout: c.stdout.to_vec(),
                stderr: c.stderr.to_vec(),
                expected: c.expected.to_owned(),
            };
            // Every shipped case parses: `shipped_fixtures` tests say so.
            Case::parse(&dir, files).ok()
        })
        .collect()
}

/// A case's four files, read.
struct CaseFiles {
    case_toml: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    expected: String,
}

impl Case {
    pub fn load(dir: &Path) -> Result<Case, FixtureError> {
        let files = CaseFiles {
            case_toml: read_text(&dir.join("case.toml"))?,
            expected: read_text(&dir.join("expected.json"))?,
            stdout: read_bytes(&dir.join("stdout"))?,
            stderr: read_bytes(&dir.join("stderr"))?,
        };
        Case::parse(dir, files)
    }

    /// A case from its files' contents; `dir` names it and its errors.
    fn parse(dir: &Path, files: CaseFiles) -> Result<Case, FixtureError> {
        let kind = kind_of(dir)?;
        let name =
            format!("{kind}/{}", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
        let toml_path = dir.join("case.toml");
        let text = files.case_toml;
        let case: CaseToml = toml::from_str(&text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            FixtureError::At {
                path: toml_path.clone(),
                line,
                column,
                message: crate::text::one_line(e.message()),
            }
        })?;
        let end = process_end(&case).map_err(|m| FixtureError::file(&toml_path, m))?;
        let expected_path = dir.join("expected.json");
        let expected: GateStatus = serde_json::from_str(&files.expected).map_err(|e| {
            // serde_json says line 0 when the error has no place in the text.
            let message = crate::text::one_line(&e.to_string());
            match e.line() {
                0 => FixtureError::file(&expected_path, message),
                line => FixtureError::At {
                    path: expected_path.clone(),
                    line,
                    column: e.column(),
                    message,
                },
            }
        })?;
        let output = RawOutput {
            stdout: files.stdout,
            stderr: files.stderr,
            end,
            duration_ms: case.duration_ms,
        };
        Ok(Case { name, kind, output, expected })
    }
}

/// A case's files made from a real run's recorded classifier input, in the
/// capture scripts' format: `case.toml` names the run it came from, and
/// `expected.json` starts as the outcome the run got (the author changes it
/// to what the output should mean).
pub fn recorded_case_files(
    what: &str,
    output: &RawOutput,
    outcome: &GateStatus,
) -> (String, String) {
    let end = match output.end {
        ProcessEnd::Exited(code) => format!("exit_code = {code}"),
        ProcessEnd::Signaled(signal) => format!("signal = {signal}"),
        ProcessEnd::SpawnError(errno) => format!("spawn_error = {errno}"),
        ProcessEnd::StillRunning => "still_running = true".to_owned(),
    };
    let mut case_toml = format!(
        "command = {}\n{end}\n",
        toml::Value::String(format!("recorded by sando from {what}"))
    );
    if let Some(ms) = output.duration_ms {
        case_toml.push_str(&format!("duration_ms = {ms}\n"));
    }
    let expected = serde_json::to_string(outcome).expect("a status serializes") + "\n";
    (case_toml, expected)
}

fn process_end(case: &CaseToml) -> Result<ProcessEnd, String> {
    if case.still_running == Some(false) {
        return Err("`still_running` may only be `true` (leave it out otherwise)".into());
    }
    let ends: Vec<(&str, ProcessEnd)> = [
        case.exit_code.map(|c| ("exit_code", ProcessEnd::Exited(c))),
        case.signal.map(|s| ("signal", ProcessEnd::Signaled(s))),
        case.spawn_error.map(|e| ("spawn_error", ProcessEnd::SpawnError(e))),
        case.still_running.map(|_| ("still_running", ProcessEnd::StillRunning)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match ends.as_slice() {
        [(_, end)] => Ok(*end),
        [] => Err("needs exactly one of exit_code, signal, spawn_error, still_running = true (found none)".into()),
        many => Err(format!(
            "needs exactly one of exit_code, signal, spawn_error, still_running = true (found {})",
            many.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" and ")
        )),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, column)
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, FixtureError> {
    std::fs::read(path).map_err(|e| FixtureError::file(path, io_message(&e)))
}

fn read_text(path: &Path) -> Result<String, FixtureError> {
    std::fs::read_to_string(path).map_err(|e| FixtureError::file(path, io_message(&e)))
}

/// std's messages carry "(os error 2)"; operators want the plain words.
pub fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
