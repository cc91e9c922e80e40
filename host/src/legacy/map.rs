//! The rules that turn the old daemon's strings into typed values: a gate run's `passed` and `detail`, a deploy's `outcome` and `error`, a tier's canary text. Pure functions, one per column family.
//!
//! A text no rule recognises is never read as a pass: a gate run becomes
//! `failed` / `unclassified` and a deploy `failed` / `unclassified`, each
//! keeping the old text.

use crate::domain::{
    Canary, DeployFailure, DeployOutcome, GateBlocker, GateFailure, GateKind, GateStatus, PassNote,
};

/// What an old gate run concluded, from `passed` (1, 0 or NULL while in
/// flight) and its `detail` prose.
pub fn gate_status(kind: GateKind, passed: Option<i64>, detail: Option<&str>) -> GateStatus {
    match passed {
        Some(1) => {
            GateStatus::Passed { note: PassNote::Legacy { text: detail.map(str::to_owned) } }
        }
        // The old daemon died with the run in flight: it never decided.
        None => GateStatus::Failed { failure: GateFailure::Interrupted },
        Some(_) => match detail.and_then(|d| blocker(kind, d)) {
            Some(blocker) => GateStatus::Blocked { blocker },
            None => GateStatus::Failed {
                failure: GateFailure::Unclassified { legacy_detail: detail.map(str::to_owned) },
            },
        },
    }
}

/// The precondition an old `detail` names, when it is one the gate's kind
/// can have; a blocker's text under another kind is not trusted.
fn blocker(kind: GateKind, detail: &str) -> Option<GateBlocker> {
    let detail = detail.trim();
    match kind {
        GateKind::BurnIn => {
            if detail.starts_with("burn-in clock not started") {
                return Some(GateBlocker::BurnInClockNotStarted);
            }
            // `47 hours remaining of 168`, and the newer `burn-in: 47 hours remaining of 168`.
            let clock = detail.strip_prefix("burn-in:").map_or(detail, str::trim_start);
            let (hours_left, total) = clock.split_once(" hours remaining of ")?;
            let hours = |text: &str| text.parse::<u64>().ok().map(|h| h * 3600);
            Some(GateBlocker::BurnInRemaining {
                seconds: hours(hours_left)?,
                total_seconds: hours(total)?,
            })
        }
        GateKind::MigrationDryRun if detail.starts_with("scratch_db_url unset") => {
            Some(GateBlocker::ScratchDbUrlUnset)
        }
        GateKind::MigrationDryRun if detail.starts_with("no backup fetched") => {
            Some(GateBlocker::NoBackupAvailable)
        }
        GateKind::ManualConfirm if detail.starts_with("waiting on operator") => {
            Some(GateBlocker::AwaitingOperatorConfirmation)
        }
        _ => None,
    }
}

/// How an old deploy ended, from `outcome` ('ok', 'failed', 'in_progress'),
/// whether it has an end, and its freeform `error`.
pub fn deploy_outcome(outcome: Option<&str>, error: Option<&str>) -> DeployOutcome {
    match outcome {
        Some("ok") => DeployOutcome::Ok,
        Some("failed") => DeployOutcome::Failed { failure: deploy_failure(error.unwrap_or("")) },
        // Left in progress by a crash (with or without an end time): the
        // old daemon never learnt how it went.
        Some("in_progress") | None => DeployOutcome::Failed { failure: DeployFailure::Interrupted },
        Some(_) => DeployOutcome::Failed { failure: DeployFailure::Unclassified },
    }
}

/// The failure kind an old deploy `error` describes.
fn deploy_failure(error: &str) -> DeployFailure {
    let error = error.trim();
    if error.starts_with("spawn failed") {
        return match os_error(error) {
            Some(os_error) => DeployFailure::Spawn { os_error },
            None => DeployFailure::Unclassified,
        };
    }
    if error.starts_with("health check failed") {
        return DeployFailure::HealthCheck { exit_code: exit_status(error) };
    }
    let transport = ["rsync", "ssh", "scp"]
        .iter()
        .any(|tool| error.strip_prefix(tool).is_some_and(|rest| rest.starts_with([':', ' '])));
    if transport {
        return DeployFailure::Transport { exit_code: exit_status(error) };
    }
    DeployFailure::Unclassified
}

/// `N` from `... (os error N)`.
fn os_error(text: &str) -> Option<i32> {
    let at = text.rfind("(os error ")?;
    text[at + "(os error ".len()..].strip_suffix(')')?.parse().ok()
}

/// `N` from `... exit status: N`.
fn exit_status(text: &str) -> Option<i32> {
    let at = text.find("exit status: ")?;
    let digits: String = text[at + "exit status: ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// The typed canary policy of an old `tiers.canary` (`CanaryPolicy::as_str()`).
pub fn canary(text: &str) -> Option<Canary> {
    match text {
        "all-at-once" | "all_at_once" => Some(Canary::AllAtOnce),
        "one-then-rest" | "one_then_rest" => Some(Canary::OneThenRest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(kind: GateKind, detail: &str) -> Option<GateBlocker> {
        match gate_status(kind, Some(0), Some(detail)) {
            GateStatus::Blocked { blocker } => Some(blocker),
            _ => None,
        }
    }

    #[test]
    fn passes_keep_their_text_and_runs_in_flight_never_pass() {
        assert_eq!(
            gate_status(GateKind::BootSmoke, Some(1), Some("stayed up for 10s")),
            GateStatus::Passed {
                note: PassNote::Legacy { text: Some("stayed up for 10s".into()) }
            }
        );
        assert_eq!(
            gate_status(GateKind::CargoTest, Some(1), None),
            GateStatus::Passed { note: PassNote::Legacy { text: None } }
        );
        assert_eq!(
            gate_status(GateKind::BootSmoke, None, None),
            GateStatus::Failed { failure: GateFailure::Interrupted }
        );
    }

    #[test]
    fn known_preconditions_become_blockers_of_their_own_kind_only() {
        assert_eq!(
            blocked(GateKind::BurnIn, "47 hours remaining of 168"),
            Some(GateBlocker::BurnInRemaining { seconds: 47 * 3600, total_seconds: 168 * 3600 })
        );
        assert_eq!(
            blocked(GateKind::BurnIn, "burn-in clock not started: staging has no current version"),
            Some(GateBlocker::BurnInClockNotStarted)
        );
        assert_eq!(
            blocked(GateKind::MigrationDryRun, "scratch_db_url unset in daemon config"),
            Some(GateBlocker::ScratchDbUrlUnset)
        );
        assert_eq!(
            blocked(GateKind::MigrationDryRun, "no backup fetched; call /backup/fetch first"),
            Some(GateBlocker::NoBackupAvailable)
        );
        assert_eq!(
            blocked(GateKind::ManualConfirm, "waiting on operator"),
            Some(GateBlocker::AwaitingOperatorConfirmation)
        );
        assert_eq!(blocked(GateKind::CargoTest, "waiting on operator"), None);
        assert_eq!(blocked(GateKind::BurnIn, "many hours remaining of 168"), None);
    }

    #[test]
    fn everything_else_failed_is_unclassified_with_its_text() {
        let detail = "cargo test failed: exit status: 101\n==== stdout ====\n";
        assert_eq!(
            gate_status(GateKind::CargoTest, Some(0), Some(detail)),
            GateStatus::Failed {
                failure: GateFailure::Unclassified { legacy_detail: Some(detail.into()) }
            }
        );
        assert_eq!(
            gate_status(GateKind::CargoTest, Some(7), None),
            GateStatus::Failed { failure: GateFailure::Unclassified { legacy_detail: None } }
        );
    }

    #[test]
    fn deploy_errors_become_failure_kinds() {
        let failed = |error: &str| match deploy_outcome(Some("failed"), Some(error)) {
            DeployOutcome::Failed { failure } => failure,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            failed("spawn failed: No such file or directory (os error 2)"),
            DeployFailure::Spawn { os_error: 2 }
        );
        assert_eq!(
            failed("rsync exited with exit status: 12"),
            DeployFailure::Transport { exit_code: Some(12) }
        );
        assert_eq!(
            failed("ssh: connect to host prod-2 port 22: Connection timed out"),
            DeployFailure::Transport { exit_code: None }
        );
        assert_eq!(
            failed("health check failed: exit status: 22"),
            DeployFailure::HealthCheck { exit_code: Some(22) }
        );
        assert_eq!(failed("sshd is sad"), DeployFailure::Unclassified);
        assert_eq!(failed("spawn failed: who knows"), DeployFailure::Unclassified);
        assert_eq!(deploy_outcome(Some("ok"), None), DeployOutcome::Ok);
        for left in [None, Some("in_progress")] {
            assert_eq!(
                deploy_outcome(left, None),
                DeployOutcome::Failed { failure: DeployFailure::Interrupted }
            );
        }
        assert_eq!(
            deploy_outcome(Some("rolled_back"), None),
            DeployOutcome::Failed { failure: DeployFailure::Unclassified }
        );
    }

    #[test]
    fn canary_texts_map_to_policies() {
        assert_eq!(canary("all-at-once"), Some(Canary::AllAtOnce));
        assert_eq!(canary("one-then-rest"), Some(Canary::OneThenRest));
        assert_eq!(canary("half"), None);
    }
}
