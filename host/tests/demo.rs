//! The README's main job: `sando demo` on this machine, checked over its API
//! until both pushes have reached the outcomes the demo promises.

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// `sando` and its shipped gates copied under a temporary directory, as a
/// checkout cloned into `/tmp` and built has them: the sandbox replaces
/// `/tmp`, so this is where a program it does not bind disappears.
fn sando_under_tmp(dir: &Path) -> PathBuf {
    let release = dir.join("checkout/target/release");
    std::fs::create_dir_all(release.join("gates")).unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_sando"));
    let binary = release.join("sando");
    std::fs::copy(built, &binary).unwrap();
    let gates = built.parent().unwrap().join("gates");
    for entry in std::fs::read_dir(&gates).expect("target/release/gates: run ./x build").flatten() {
        std::fs::copy(entry.path(), release.join("gates").join(entry.file_name())).unwrap();
    }
    binary
}

#[test]
fn the_demo_from_a_checkout_in_tmp_shows_a_green_staging_a_yellow_prod_and_a_red_staging() {
    let dir = tempfile::tempdir().unwrap();
    assert!(dir.path().starts_with("/tmp"), "the point is a binary under /tmp");
    let binary = sando_under_tmp(dir.path());
    let demo = util::Demo::start_binary(&binary, &dir.path().join("demo"), "127.0.0.1:0");
    let url = demo.url.clone();
    assert!(demo.printed.contains("token:  demo-test-token"), "{}", demo.printed);
    assert!(demo.printed.contains("sando tui --url"), "{}", demo.printed);
    // Runs as printed: this binary is not on the PATH, so the demo names it
    // by its path.
    let operate = demo.printed.lines().find_map(|l| l.trim().strip_prefix("Operate:")).unwrap();
    let mut words = operate.split_whitespace();
    let program = words.next().unwrap();
    assert_eq!(std::path::Path::new(program), binary.canonicalize().unwrap(), "{operate}");
    assert_eq!(words.next(), Some("tui"));
    let help = std::process::Command::new(program).args(["tui", "--help"]).output().unwrap();
    assert!(help.status.success(), "{operate}: {}", String::from_utf8_lossy(&help.stderr));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(demo.dir.join("token")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is its owner's alone");

    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let (_, staging_red, prod_yellow) = demo.outcomes(Duration::from_secs(180));
    assert_eq!(
        staging_red["outcome"],
        serde_json::json!({"kind":"failed","failure":{"kind":"migration_modified","migration":"20260101000000"}})
    );
    assert_eq!(prod_yellow["outcome"]["blocker"]["kind"], "burn_in_remaining");
    assert!(dir.path().join("demo/nodes/staging-1/demo-service").is_file());

    // The demo sets no fixtures_dir, yet an update is shadow-tested against
    // the shipped fixtures: a classifier that regresses one is rejected, and
    // so is one that waves a failure through, each naming its fixture.
    for (candidate, fixture) in [
        ("candidate_regressed", "fixture cargo_test/"),
        ("candidate_lenient", "fixture cargo_test/libtest_flaky_named_failure: expected"),
    ] {
        let mut response = agent
            .post(format!("{url}/api/gates/cargo_test"))
            .header("Authorization", "Bearer demo-test-token")
            .content_type("application/wasm")
            .send(&util::component_bytes(candidate)[..])
            .unwrap();
        assert_eq!(response.status().as_u16(), 422, "{candidate}");
        let verdict: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(verdict["decision"], "rejected", "{candidate}: {verdict}");
        let reason = verdict["reason"].as_str().unwrap();
        assert!(reason.contains(&format!("would now fail; first: {fixture}")), "{reason}");
    }
    drop(demo);
}
