//! Property tests of the other files Sando reads from outside: a fixture case's `case.toml` and `expected.json` (what `sando gate test` and the shadow test load), and component files (what `sando classify --component`, `POST /api/gates/{kind}` and the watched directory load). None panics; each refusal is one line that names the file, or says what the bytes are not.

mod util;

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use sando::fixtures::Case;
use sando::sandbox::{Limits, Sandbox};

/// Cases per property: `default` in CI, more with `SANDO_PROPTEST_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("SANDO_PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// A real case's files, to mutate.
fn shipped(case: &str) -> (String, String) {
    let dir = util::fixtures_dir().join(case);
    (
        std::fs::read_to_string(dir.join("case.toml")).unwrap(),
        std::fs::read_to_string(dir.join("expected.json")).unwrap(),
    )
}

/// Text as an editor or a fuzzer leaves it: a real file with a few bytes
/// replaced, inserted or cut, or something else altogether.
fn mangled(original: String) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6);
    prop_oneof![
        4 => (Just(original.clone()), edits).prop_map(|(text, edits)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, op, c) in edits {
                let i = at.index(chars.len() + 1);
                match op {
                    0 if i < chars.len() => chars[i] = c,
                    1 => chars.insert(i, c),
                    _ => chars.truncate(i),
                }
            }
            chars.into_iter().collect()
        }),
        1 => ".{0,200}",
        1 => (0usize..5000).prop_map(|depth| "[".repeat(depth) + &"]".repeat(depth)),
    ]
}

/// Fields of `case.toml` with values of every shape.
fn case_toml() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[^\"\\\\]{0,12}\"",
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
    ];
    let key = prop::sample::select(vec![
        "command",
        "cwd",
        "exit_code",
        "signal",
        "spawn_error",
        "still_running",
        "duration_ms",
        "unknown",
    ]);
    prop::collection::vec((key, value), 0..6).prop_map(|fields| {
        let mut seen = std::collections::HashSet::new();
        fields
            .into_iter()
            .filter(|(k, _)| seen.insert(*k))
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    })
}

/// Loads a case written from these files; a refusal must name the file.
fn load(dir: &Path, case_toml: &str, expected: &str) -> Result<(), TestCaseError> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("case.toml"), case_toml).unwrap();
    std::fs::write(dir.join("expected.json"), expected).unwrap();
    std::fs::write(dir.join("stdout"), b"test result: ok. 1 passed\n").unwrap();
    std::fs::write(dir.join("stderr"), b"").unwrap();
    if let Err(e) = Case::load(dir) {
        let message = e.to_string();
        prop_assert!(!message.contains('\n'), "one line: {message:?}");
        prop_assert!(
            message.contains("case.toml") || message.contains("expected.json"),
            "names its file: {message}"
        );
    }
    Ok(())
}

fn case_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn a_mangled_case_toml_is_refused_naming_it(
        text in mangled(shipped("cargo_test/libtest_one_failure").0),
    ) {
        let expected = shipped("cargo_test/libtest_one_failure").1;
        load(&case_dir().join("cargo_test/mangled_toml"), &text, &expected)?;
    }

    #[test]
    fn any_case_toml_fields_are_loaded_or_refused_naming_it(text in case_toml()) {
        let expected = shipped("boot_smoke/exits_three_early").1;
        load(&case_dir().join("boot_smoke/fields"), &text, &expected)?;
    }

    #[test]
    fn a_mangled_expected_json_is_refused_naming_it(
        text in mangled(shipped("migration_dry_run/sqlite_applied_then_modified").1),
    ) {
        let case = shipped("migration_dry_run/sqlite_applied_then_modified").0;
        load(&case_dir().join("migration_dry_run/mangled_json"), &case, &text)?;
    }
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(Limits::default(), None).unwrap())
}

/// A shipped gate component's bytes with a few bytes changed, cut or added:
/// mostly in the headers and type sections, where a change is structural.
fn mutated_component() -> impl Strategy<Value = Vec<u8>> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| util::component_bytes("gate_manual_confirm")).clone();
    let len = bytes.len();
    let near_start = 0..len.min(4096);
    prop_oneof![
        3 => (Just(bytes.clone()), prop::collection::vec((near_start.clone(), any::<u8>()), 1..8))
            .prop_map(|(mut b, flips)| {
                for (i, v) in flips {
                    b[i] = v;
                }
                b
            }),
        2 => (Just(bytes.clone()), 0..len).prop_map(|(mut b, at)| {
            b.truncate(at);
            b
        }),
        1 => (Just(bytes.clone()), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(mut b, tail)| {
                b.extend(tail);
                b
            }),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(|tail| {
            let mut b = b"\0asm\x0d\0\x01\0".to_vec();
            b.extend(tail);
            b
        }),
    ]
}

proptest! {
    // Each case that still parses is compiled, which takes a while: fewer.
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_component_is_loaded_or_refused_in_one_line(bytes in mutated_component()) {
        if let Err(e) = sandbox().load(&bytes) {
            let message = e.to_string();
            prop_assert!(!message.is_empty());
            prop_assert!(!message.contains('\n'), "one line: {message:?}");
        }
    }
}
