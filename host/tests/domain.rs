//! Domain types: built only by parsing, and every one round-trips through its
//! string, JSON and SQLite forms.

use std::fmt::Debug;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use sando::domain::{
    ComponentFault, DeployId, GateBlocker, GateFailure, GateKind, GateOutcome, GateRunId,
    GateStatus, GitSha, LogRef, NodeId, PassNote, RestoreFailureKind, TierId, Version,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{Sqlite, SqlitePool};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
});

static POOL: LazyLock<SqlitePool> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory sqlite");
        sqlx::query("CREATE TABLE t (v)").execute(&pool).await.expect("create table");
        pool
    })
});

/// Writes `value` to a real SQLite column and reads it back.
fn sqlite_roundtrip<T>(value: &T) -> T
where
    T: for<'q> sqlx::Encode<'q, Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + Send
        + Sync
        + Unpin,
{
    let pool: &SqlitePool = &POOL;
    RUNTIME.block_on(async {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM t").execute(&mut *tx).await.unwrap();
        sqlx::query("INSERT INTO t (v) VALUES (?)").bind(value).execute(&mut *tx).await.unwrap();
        let back: T = sqlx::query_scalar("SELECT v FROM t").fetch_one(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        back
    })
}

fn json_roundtrip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

fn string_roundtrip<T: FromStr + ToString>(value: &T) -> T
where
    T::Err: Debug,
{
    value.to_string().parse().unwrap()
}

/// Every form at once: string, JSON, SQLite.
fn assert_roundtrips<T>(value: T)
where
    T: FromStr + ToString + Serialize + DeserializeOwned + PartialEq + Debug,
    T: for<'q> sqlx::Encode<'q, Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + Send
        + Sync
        + Unpin,
    T::Err: Debug,
{
    assert_eq!(string_roundtrip(&value), value);
    assert_eq!(json_roundtrip(&value), value);
    assert_eq!(sqlite_roundtrip(&value), value);
}

const NAME: &str = "[a-z0-9][a-z0-9_-]{0,62}";

proptest! {
    // Failures print their minimal case; nothing is persisted next to the tests.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tier_and_node_names_roundtrip(name in NAME) {
        assert_roundtrips(name.parse::<TierId>().unwrap());
        assert_roundtrips(name.parse::<NodeId>().unwrap());
    }

    #[test]
    fn names_with_other_characters_are_refused(name in "[a-z]{0,5}[A-Z ./:][a-z]{0,5}") {
        prop_assert!(name.parse::<TierId>().is_err());
        let quoted = format!("{name:?}");
        prop_assert!(serde_json::from_str::<NodeId>(&quoted).is_err());
    }

    #[test]
    fn versions_roundtrip(major in 0u64..1000, minor in 0u64..1000, patch in 0u64..1000, pre in proptest::option::of("[a-z]{1,6}\\.(0|[1-9][0-9]{0,2})")) {
        let text = match pre {
            Some(pre) => format!("{major}.{minor}.{patch}-{pre}"),
            None => format!("{major}.{minor}.{patch}"),
        };
        let version: Version = text.parse().unwrap();
        prop_assert_eq!(version.to_string(), text);
        assert_roundtrips(version);
    }

    #[test]
    fn git_shas_have_one_canonical_form(sha in "[0-9a-fA-F]{7}|[0-9a-fA-F]{40}") {
        let parsed: GitSha = sha.parse().unwrap();
        prop_assert_eq!(parsed.as_str(), sha.to_ascii_lowercase());
        prop_assert_eq!(&parsed, &sha.to_ascii_uppercase().parse::<GitSha>().unwrap());
        assert_roundtrips(parsed);
    }

    #[test]
    fn shas_of_other_lengths_are_refused(sha in "[0-9a-f]{0,6}|[0-9a-f]{8,39}|[0-9a-f]{41,50}") {
        prop_assert!(sha.parse::<GitSha>().is_err());
    }

    #[test]
    fn row_ids_roundtrip(id in 1i64..=i64::MAX) {
        assert_roundtrips(GateRunId::try_from(id).unwrap());
        assert_roundtrips(DeployId::try_from(id).unwrap());
    }

    #[test]
    fn non_positive_row_ids_are_refused(id in i64::MIN..=0) {
        prop_assert!(GateRunId::try_from(id).is_err());
        prop_assert!(serde_json::from_str::<DeployId>(&id.to_string()).is_err());
    }

    #[test]
    fn log_refs_roundtrip(parts in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._+-]{0,12}", 1..4)) {
        let text = parts.join("/");
        prop_assume!(!parts.iter().any(|p| p == "." || p == ".."));
        assert_roundtrips(text.parse::<LogRef>().unwrap());
    }

    #[test]
    fn gate_statuses_roundtrip_through_json_and_sqlite(status in gate_status()) {
        prop_assert_eq!(&json_roundtrip(&status), &status);
        prop_assert_eq!(&sqlite_roundtrip(&status), &status);
        let outcome = GateOutcome { status, log_ref: Some("0.8.12/cargo_test/7.log".parse().unwrap()) };
        prop_assert_eq!(json_roundtrip(&outcome), outcome);
    }
}

#[test]
fn gate_kinds_roundtrip() {
    for kind in GateKind::ALL {
        assert_roundtrips(kind);
    }
    assert_eq!(GateKind::MigrationDryRun.to_string(), "migration_dry_run");
    let err = "cargo-test".parse::<GateKind>().unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid gate kind \"cargo-test\": expected one of cargo_test, migration_dry_run, boot_smoke, burn_in, manual_confirm"
    );
}

#[test]
fn log_refs_cannot_escape_the_logs_directory() {
    for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b", "a\\b", "a b"] {
        assert!(bad.parse::<LogRef>().is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn parse_errors_say_what_and_why() {
    assert_eq!(
        "abc".parse::<GitSha>().unwrap_err().to_string(),
        "invalid git sha \"abc\": must be 7 or 40 hex digits, got 3 characters"
    );
    assert_eq!(
        "Prod".parse::<TierId>().unwrap_err().to_string(),
        "invalid tier name \"Prod\": must start with a lowercase letter or a digit"
    );
    assert!(
        "1.2".parse::<Version>().unwrap_err().to_string().starts_with("invalid version \"1.2\": ")
    );
}

/// The exact wire forms BRIEF.md contract 1 gives as examples.
#[test]
fn gate_status_json_matches_the_contract_examples() {
    let examples = [
        (
            GateStatus::Failed {
                failure: GateFailure::CargoTest {
                    failed_count: 3,
                    first_failed: Some("tests::parse".into()),
                },
            },
            r#"{"kind":"failed","failure":{"kind":"cargo_test","failed_count":3,"first_failed":"tests::parse"}}"#,
        ),
        (
            GateStatus::Passed {
                note: PassNote::TestsPassed { count: 7, duration_s: 2, flaky: Vec::new() },
            },
            r#"{"kind":"passed","note":{"kind":"tests_passed","count":7,"duration_s":2}}"#,
        ),
        (
            GateStatus::Passed {
                note: PassNote::TestsPassed {
                    count: 2,
                    duration_s: 1,
                    flaky: vec!["retry_once tests::passes_on_retry".into()],
                },
            },
            r#"{"kind":"passed","note":{"kind":"tests_passed","count":2,"duration_s":1,"flaky":["retry_once tests::passes_on_retry"]}}"#,
        ),
        (
            GateStatus::Blocked {
                blocker: GateBlocker::BurnInRemaining { seconds: 169_920, total_seconds: 604_800 },
            },
            r#"{"kind":"blocked","blocker":{"kind":"burn_in_remaining","seconds":169920,"total_seconds":604800}}"#,
        ),
        (
            GateStatus::Blocked {
                blocker: GateBlocker::DependencyUnavailable { name: Some("itoa".into()) },
            },
            r#"{"kind":"blocked","blocker":{"kind":"dependency_unavailable","name":"itoa"}}"#,
        ),
    ];
    for (status, json) in examples {
        assert_eq!(serde_json::to_string(&status).unwrap(), json);
        assert_eq!(serde_json::from_str::<GateStatus>(json).unwrap(), status);
    }
}

#[test]
fn malformed_status_json_is_refused() {
    for bad in [
        r#"{"kind":"passed"}"#,
        r#"{"kind":"exploded","failure":{"kind":"unclassified"}}"#,
        r#"{"kind":"failed","failure":{"kind":"cargo_test","failed_count":-1,"first_failed":null}}"#,
        r#"{"kind":"blocked","blocker":{"kind":"burn_in_remaining","seconds":1,"total_seconds":2,"extra":3}}"#,
        // Contract 0.1's whole hours are not read as seconds by accident.
        r#"{"kind":"blocked","blocker":{"kind":"burn_in_remaining","hours":47,"total":168}}"#,
    ] {
        assert!(serde_json::from_str::<GateStatus>(bad).is_err(), "{bad} must be refused");
    }
}

#[test]
fn summaries_read_as_an_operator_would_say_them() {
    let cases = [
        (
            GateStatus::Failed {
                failure: GateFailure::CargoTest {
                    failed_count: 3,
                    first_failed: Some("tests::parse".into()),
                },
            },
            "tests failed: 3 (first: tests::parse)",
        ),
        (
            GateStatus::Blocked {
                blocker: GateBlocker::BurnInRemaining { seconds: 169_920, total_seconds: 604_800 },
            },
            "burn-in: 47h 12m of 168h left",
        ),
        (
            GateStatus::Blocked {
                blocker: GateBlocker::BurnInRemaining { seconds: 45, total_seconds: 60 },
            },
            "burn-in: 45s of 60s left",
        ),
        (
            GateStatus::Passed { note: PassNote::BurnInElapsed { seconds: 61 } },
            "burn-in done: 61s elapsed",
        ),
        (
            GateStatus::Passed { note: PassNote::BurnInElapsed { seconds: 750 } },
            "burn-in done: 12m 30s elapsed",
        ),
        (
            GateStatus::Passed {
                note: PassNote::TestsPassed {
                    count: 2,
                    duration_s: 1,
                    flaky: vec!["retry_once tests::passes_on_retry".into()],
                },
            },
            "2 tests passed in 1s (flaky: retry_once tests::passes_on_retry)",
        ),
        (
            GateStatus::Blocked {
                blocker: GateBlocker::DependencyUnavailable { name: Some("itoa".into()) },
            },
            "dependency itoa could not be fetched (network or offline cache)",
        ),
        (
            GateStatus::Failed {
                failure: GateFailure::MigrationModified { migration: "20250301120100".into() },
            },
            "migration 20250301120100 modified",
        ),
        (
            GateStatus::Blocked { blocker: GateBlocker::AwaitingOperatorConfirmation },
            "awaiting operator confirmation",
        ),
    ];
    for (status, summary) in cases {
        assert_eq!(status.to_string(), summary);
    }
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9:_ ()./-]{0,24}"
}

fn at() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
}

fn gate_kind() -> impl Strategy<Value = GateKind> {
    proptest::sample::select(GateKind::ALL.to_vec())
}

fn pass_note() -> impl Strategy<Value = PassNote> {
    prop_oneof![
        any::<u32>().prop_map(|duration_s| PassNote::StayedUp { duration_s }),
        any::<u64>().prop_map(|seconds| PassNote::BurnInElapsed { seconds }),
        (proptest::option::of(any::<i64>()), any::<u32>())
            .prop_map(|(backup, count)| PassNote::Migrated { backup, count }),
        (any::<u32>(), any::<u32>(), proptest::collection::vec(text(), 0..3)).prop_map(
            |(count, duration_s, flaky)| PassNote::TestsPassed { count, duration_s, flaky }
        ),
        at().prop_map(|at| PassNote::OperatorConfirmed { at }),
        proptest::option::of(".*").prop_map(|text| PassNote::Legacy { text }),
    ]
}

fn blocker() -> impl Strategy<Value = GateBlocker> {
    prop_oneof![
        Just(GateBlocker::BurnInClockNotStarted),
        (any::<u64>(), any::<u64>()).prop_map(|(seconds, total_seconds)| {
            GateBlocker::BurnInRemaining { seconds, total_seconds }
        }),
        Just(GateBlocker::AwaitingOperatorConfirmation),
        Just(GateBlocker::NoBackupAvailable),
        Just(GateBlocker::ScratchDbUrlUnset),
        Just(GateBlocker::ScratchDbUnreachable),
        text().prop_map(|version| GateBlocker::ArtifactMissing { version }),
        proptest::option::of(text()).prop_map(|name| GateBlocker::DependencyUnavailable { name }),
    ]
}

fn fault() -> impl Strategy<Value = ComponentFault> {
    prop_oneof![
        text().prop_map(|message| ComponentFault::Trap { message }),
        any::<u64>().prop_map(|budget| ComponentFault::FuelExhausted { budget }),
        any::<u64>().prop_map(|limit_bytes| ComponentFault::MemoryExhausted { limit_bytes }),
        (text(), text())
            .prop_map(|(expected, found)| ComponentFault::ContractMismatch { expected, found }),
        text().prop_map(|capability| ComponentFault::CapabilityDenied { capability }),
        (gate_kind(), gate_kind())
            .prop_map(|(expected, found)| ComponentFault::WrongGateKind { expected, found }),
        text().prop_map(|message| ComponentFault::Invalid { message }),
    ]
}

fn failure() -> impl Strategy<Value = GateFailure> {
    prop_oneof![
        (any::<u32>(), proptest::option::of(text())).prop_map(|(failed_count, first_failed)| {
            GateFailure::CargoTest { failed_count, first_failed }
        }),
        text().prop_map(|migration| GateFailure::MigrationDrift { migration }),
        text().prop_map(|migration| GateFailure::MigrationModified { migration }),
        (text(), proptest::option::of("[0-9A-Z]{5}")).prop_map(|(migration, sqlstate)| {
            GateFailure::MigrationSqlError { migration, sqlstate }
        }),
        text().prop_map(|migration| GateFailure::MigrationDirty { migration }),
        prop_oneof![
            Just(RestoreFailureKind::BackupUnreadable),
            Just(RestoreFailureKind::RestoreCommandFailed)
        ]
        .prop_map(|reason| GateFailure::RestoreFailed { reason }),
        proptest::option::of(any::<i32>())
            .prop_map(|exit_code| GateFailure::BootPanic { exit_code }),
        proptest::option::of(any::<i32>())
            .prop_map(|exit_code| GateFailure::BootExitedEarly { exit_code }),
        any::<i32>().prop_map(|signal| GateFailure::BootKilled { signal }),
        any::<i32>().prop_map(|os_error| GateFailure::SpawnFailed { os_error }),
        (gate_kind(), any::<u32>())
            .prop_map(|(gate, after_s)| GateFailure::Timeout { gate, after_s }),
        proptest::option::of(".*")
            .prop_map(|legacy_detail| GateFailure::Unclassified { legacy_detail }),
        Just(GateFailure::Interrupted),
        fault().prop_map(|fault| GateFailure::ComponentFault { fault }),
    ]
}

fn gate_status() -> impl Strategy<Value = GateStatus> {
    prop_oneof![
        pass_note().prop_map(|note| GateStatus::Passed { note }),
        failure().prop_map(|failure| GateStatus::Failed { failure }),
        blocker().prop_map(|blocker| GateStatus::Blocked { blocker }),
    ]
}
