//! One line per event for the events pane, with the tone it is shown in; outcomes read through their `Display`.

use sando_wire::{BuildOutcome, DeployOutcome, Event, GateStatus};

/// How an event line or gate is coloured: green, yellow, red, or neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Waiting,
    Bad,
    Neutral,
}

impl Tone {
    pub fn of(status: &GateStatus) -> Tone {
        match status {
            GateStatus::Passed { .. } => Tone::Good,
            GateStatus::Blocked { .. } => Tone::Waiting,
            GateStatus::Failed { .. } => Tone::Bad,
        }
    }
}

/// `None` for events that are not worth a line (log chunks).
pub fn describe(event: &Event) -> Option<(String, Tone)> {
    Some(match event {
        Event::RebuildRequested { sha } => (format!("rebuild requested for {sha}"), Tone::Neutral),
        Event::BuildStarted { sha } => (format!("building {sha}"), Tone::Neutral),
        Event::BuildDone { sha, outcome: BuildOutcome::Ok { version } } => {
            (format!("built {sha} as {version}"), Tone::Good)
        }
        Event::BuildDone { sha, outcome: BuildOutcome::Failed { failure } } => {
            (format!("build of {sha} failed: {failure}"), Tone::Bad)
        }
        Event::VersionRegistered { version, sha } => {
            (format!("version {version} registered ({sha})"), Tone::Neutral)
        }
        Event::GateStart { tier, version, gate, .. } => {
            (format!("{tier} {version} {gate} started"), Tone::Neutral)
        }
        Event::GateLogChunk { .. } => return None,
        Event::GateDone { tier, version, gate, outcome, .. } => {
            (format!("{tier} {version} {gate}: {}", outcome.status), Tone::of(&outcome.status))
        }
        Event::GateUpdated { tier, version, gate, outcome, .. } => {
            (format!("{tier} {version} {gate}: {}", outcome.status), Tone::of(&outcome.status))
        }
        Event::CancelRequested { target, by } => {
            (format!("{target}: cancel requested by {by}"), Tone::Waiting)
        }
        Event::Confirmed { tier, version, by, .. } => {
            (format!("{tier} {version} confirmed by {by}"), Tone::Good)
        }
        Event::DeployStart { tier, version, node, .. } => {
            (format!("deploying {version} to {node} ({tier})"), Tone::Neutral)
        }
        Event::DeployDone { version, node, outcome, .. } => {
            let tone = match outcome {
                DeployOutcome::Ok => Tone::Good,
                DeployOutcome::InProgress => Tone::Neutral,
                DeployOutcome::Failed { .. } => Tone::Bad,
            };
            (format!("{version} on {node}: {outcome}"), tone)
        }
        Event::Promoted { tier, version } => (format!("{version} promoted to {tier}"), Tone::Good),
        Event::Superseded { tier, version, by } => {
            (format!("{version} superseded by {by} at {tier}"), Tone::Neutral)
        }
        Event::RerunRequested { tier, version, gate, by, .. } => {
            (format!("{tier} {version} {gate}: run again, asked by {by}"), Tone::Neutral)
        }
        Event::BackupFetched { backup_id, source } => {
            (format!("backup {backup_id} fetched from {source}"), Tone::Good)
        }
        Event::ComponentLoaded { gate, digest, source, .. } => {
            (format!("{gate} component {} now serves ({source})", short(digest)), Tone::Good)
        }
        Event::ComponentPending { gate, digest, diff } => (
            format!(
                "{gate} component {} changes {} verdict(s): waiting for an operator (p)",
                short(digest),
                diff.len()
            ),
            Tone::Waiting,
        ),
        Event::ComponentRejected { gate, digest, reason, .. } => {
            (format!("{gate} component {} rejected: {reason}", short(digest)), Tone::Bad)
        }
        Event::Reclassified { gate, runs } => {
            (format!("{} {gate} run(s) reclassified", runs.len()), Tone::Neutral)
        }
        Event::FreezeChanged { tier, frozen, by, reason } => {
            let what = tier.as_ref().map_or("every tier".to_owned(), |t| t.to_string());
            match frozen {
                true => (format!("{what} frozen by {by}: {reason}"), Tone::Waiting),
                false => (format!("{what} thawed by {by}"), Tone::Neutral),
            }
        }
        Event::RollbackStarted { tier, from, to, by } => {
            (format!("rolling back {tier} from {from} to {to} ({by})"), Tone::Waiting)
        }
        Event::RolledBack { tier, from, to, by, done: true } => {
            (format!("{tier} rolled back from {from} to {to} ({by})"), Tone::Good)
        }
        Event::RolledBack { tier, from, to, by, done: false } => {
            (format!("rollback of {tier} from {from} to {to} failed ({by})"), Tone::Bad)
        }
        Event::Lagged { missed } => (format!("missed {missed} events; resynced"), Tone::Waiting),
    })
}

/// The first 12 hex digits of a sha256, as the screens show digests.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
