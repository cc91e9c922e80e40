//! Hot reload operations: a candidate component validated, shadow-tested against the fixtures and the recorded outputs of past runs next to the component in service, then swapped in, held for an operator, or rejected; rollback and reclassify.

use std::sync::Arc;

use chrono::Utc;

use super::components::{Candidate, ComponentError, save};
use super::events::Event;
use super::shared::{Daemon, Trigger};
use crate::domain::{
    ComponentPart, ComponentRecord, ComponentState, ComponentVerdict, Decision, GateFailure,
    GateKind, GateStatus, ProcessEnd, RawOutput, Reclassified, ReclassifyRequest,
    ReclassifyResponse, VerdictChange,
};
use crate::fixtures::Case;
use crate::sandbox::{Digest, GateComponent, Sandbox};
use crate::store::{RawRun, RecordedTranscript, StoreError};

/// What replaying the cases found.
struct Shadow {
    cases: u32,
    diff: Vec<VerdictChange>,
    fixture_failures: Vec<String>,
}

/// What a submission asks a component to serve as, and whether an operator
/// already accepts changed verdicts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Submission {
    /// `None`: a whole gate if it exports a runner, else a classifier.
    pub part: Option<ComponentPart>,
    pub accept_changes: bool,
}

/// Validates `bytes` as a `kind` component and shadow-tests it (its runner,
/// for a whole gate, is reviewed too); then swaps it in, holds it for
/// acceptance, or rejects it, and says which as an event.
pub async fn submit(
    daemon: &Arc<Daemon>,
    kind: GateKind,
    bytes: Vec<u8>,
    source: String,
    submission: Submission,
) -> Result<ComponentVerdict, StoreError> {
    let _changing = daemon.components.changes.lock().await;
    submit_locked(daemon, kind, bytes, source, submission).await
}

async fn submit_locked(
    daemon: &Arc<Daemon>,
    kind: GateKind,
    bytes: Vec<u8>,
    source: String,
    submission: Submission,
) -> Result<ComponentVerdict, StoreError> {
    let accept_changes = submission.accept_changes;
    let digest = Digest::of(&bytes).to_string();
    // Verdicts are compared with the classifier in service, whichever part
    // replaces it; a runner with the runner in service.
    let (serving_runner, serving) = daemon.components.for_run(kind);
    let is = |component: &GateComponent| component.digest().to_string() == digest;
    let unchanged = match submission.part {
        Some(ComponentPart::Gate) => is(&serving_runner).then_some(ComponentPart::Gate),
        Some(ComponentPart::Classifier) => is(&serving).then_some(ComponentPart::Classifier),
        None if is(&serving_runner) => Some(ComponentPart::Gate),
        None => is(&serving).then_some(ComponentPart::Classifier),
    };
    if let Some(part) = unchanged {
        return Ok(ComponentVerdict {
            kind,
            digest,
            part,
            decision: Decision::Unchanged,
            reason: None,
            cases: 0,
            diff: Vec::new(),
        });
    }
    let fixtures = fixture_cases(daemon, kind);
    // Ids only: each output is read when it is replayed and dropped after,
    // so a review's memory does not grow with `shadow_runs`.
    let runs = daemon.store.recent_raw_run_ids(kind, daemon.config.shadow_runs).await?;
    let transcripts = daemon.store.recent_transcript_ids(kind, daemon.config.shadow_runs).await?;
    let shared = daemon.clone();
    let handle = tokio::runtime::Handle::current();
    // Errors carry the contract the component declares, once it is known.
    let checked = tokio::task::spawn_blocking(move || {
        let (candidate, part) = validate(&shared.sandbox, kind, &bytes, submission.part)?;
        // A run whose output cannot be read now is left out, as one
        // recorded without an output is.
        let runs = runs
            .into_iter()
            .filter_map(|id| handle.block_on(shared.store.raw_run(id)).ok().flatten());
        let mut shadow = shadow(&shared.sandbox, kind, &serving, &candidate, &fixtures, runs)
            .map_err(|reason| (reason, candidate.contract().to_owned()))?;
        // A classifier-only part brings no runner to review.
        let mut unreviewed = None;
        if part == ComponentPart::Gate {
            let transcripts = transcripts
                .into_iter()
                .filter_map(|id| handle.block_on(shared.store.transcript(id)).ok().flatten());
            let runner =
                review_runner(&shared, kind, &serving_runner, &candidate, &fixtures, transcripts);
            shadow.cases += runner.cases;
            shadow.diff.extend(runner.diff);
            // Behaving otherwise with nothing recorded to show what it would
            // have decided: only an operator can judge it.
            unreviewed = (runner.changed && runner.replayed == 0).then(|| {
                format!(
                    "its runner behaves otherwise than the serving one's and no recorded {kind} \
                     run exists to replay it against"
                )
            });
        }
        Ok::<_, (String, String)>((candidate, part, shadow, bytes, unreviewed))
    })
    .await
    .unwrap_or_else(|e| Err((format!("the check itself failed: {e}"), String::new())));

    let now = Utc::now();
    let (candidate, part, shadow, bytes, unreviewed) = match checked {
        Ok(checked) => checked,
        Err((reason, contract)) => {
            let part = submission.part.unwrap_or(ComponentPart::Gate);
            let rejection = Rejection { reason, contract, part, cases: 0, diff: Vec::new() };
            return reject(daemon, kind, digest, &source, rejection).await;
        }
    };
    let contract = candidate.contract().to_owned();
    if let Some(first) = shadow.fixture_failures.first() {
        let reason = format!(
            "{} fixture case(s) would now fail; first: {first}",
            shadow.fixture_failures.len()
        );
        let rejection =
            Rejection { reason, contract, part, cases: shadow.cases, diff: shadow.diff };
        return reject(daemon, kind, digest, &source, rejection).await;
    }
    save(&daemon.components.dir, &digest, &bytes);
    // A gate decided by its runner alone (a confirmation, a clock) changes
    // nothing on its own: any change in its verdicts waits for an operator.
    let decided_by_runner = matches!(kind, GateKind::ManualConfirm | GateKind::BurnIn);
    let needs_operator = !shadow.diff.iter().all(VerdictChange::only_classifies_the_unclassified)
        || (decided_by_runner && !shadow.diff.is_empty())
        || unreviewed.is_some();
    if needs_operator && !accept_changes {
        let id = daemon
            .store
            .insert_component(
                kind,
                part,
                &digest,
                &contract,
                &source,
                ComponentState::Pending,
                unreviewed.as_deref(),
                &shadow.diff,
                now,
            )
            .await?;
        daemon
            .components
            .pending
            .lock()
            .expect("pending lock")
            .insert(kind, Candidate { id, part, component: Arc::new(candidate) });
        daemon.bus.send(Event::ComponentPending {
            gate: kind,
            digest: digest.clone(),
            diff: shadow.diff.clone(),
        });
        return Ok(ComponentVerdict {
            kind,
            digest,
            part,
            decision: Decision::Pending,
            reason: unreviewed,
            cases: shadow.cases,
            diff: shadow.diff,
        });
    }
    daemon
        .store
        .insert_component(
            kind,
            part,
            &digest,
            &contract,
            &source,
            ComponentState::Serving,
            None,
            &shadow.diff,
            now,
        )
        .await?;
    daemon.components.swap(kind, part, Arc::new(candidate));
    // A candidate still waiting was judged against the component just replaced.
    let waiting = daemon.components.pending.lock().expect("pending lock").remove(&kind);
    if let Some(waiting) = waiting {
        daemon.store.settle_pending(waiting.id, false, "replaced by a newer component").await?;
    }
    daemon.bus.send(Event::ComponentLoaded {
        gate: kind,
        digest: digest.clone(),
        contract,
        source,
    });
    Ok(ComponentVerdict {
        kind,
        digest,
        part,
        decision: Decision::Loaded,
        reason: None,
        cases: shadow.cases,
        diff: shadow.diff,
    })
}

/// What the runner review found: how many situations were replayed, where
/// the candidate's runner decides or asks otherwise than the serving one's,
/// and whether it behaves differently at all.
struct RunnerReview {
    cases: u32,
    diff: Vec<VerdictChange>,
    /// Its runner makes other host calls, or decides otherwise, somewhere.
    changed: bool,
    /// Recorded runs it was replayed against.
    replayed: usize,
}

/// Reviews a candidate's runner three ways, each time next to the serving
/// one's:
/// - **replays** of the newest recorded runs of the kind, with a host that
///   answers from each run's transcript: a divergent call (another program,
///   other arguments, another order) or a verdict the classifiers' view of
///   the same evidence does not explain goes into the diff as the runner's;
/// - **probes** with every fixture of the kind as what any spawned program
///   prints: which calls the runner makes;
/// - for gates decided by their runner (`manual_confirm`, `burn_in`), the
///   **situations** they meet: no confirmation and one; a clock not
///   started, running and elapsed. Any changed verdict is the runner's.
///
/// A runner that tries to start a real process is refused (a review starts
/// none) and shows as a fault.
fn review_runner(
    daemon: &Daemon,
    kind: GateKind,
    serving: &GateComponent,
    candidate: &GateComponent,
    fixtures: &[Case],
    transcripts: impl Iterator<Item = RecordedTranscript>,
) -> RunnerReview {
    use crate::sandbox::transcript::Replay;
    use crate::sandbox::{BurnInClock, Confirmation, RunnerEnv};
    let sandbox = &daemon.sandbox;
    let at = |seconds: i64| chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
    let env = |configure: &dyn Fn(&mut RunnerEnv)| {
        let mut env = RunnerEnv::new(
            "review".parse().expect("a valid tier name"),
            "0.0.0".parse().expect("a valid version"),
            review_params(kind),
            daemon.executors.gates.clone(),
        );
        configure(&mut env);
        env
    };
    let mut review = RunnerReview { cases: 0, diff: Vec::new(), changed: false, replayed: 0 };
    let label = |what: &str| format!("runner: {kind}, {what}");

    for recorded in transcripts {
        let recorded = &recorded;
        let replay = |component: &GateComponent| {
            let mut env = env(&|_| {});
            recorded.transcript.replay_into(&mut env, recorded.outputs.clone());
            let (classification, env) = component.run(sandbox, env, component);
            let divergence = env.replay.as_ref().and_then(|r| r.divergence());
            // How the component's classifier judges the last evidence.
            let judged =
                recorded.outputs.last().map(|o| component.classify(sandbox, kind, o).status);
            (classification.status, divergence, judged)
        };
        review.cases += 1;
        review.replayed += 1;
        let (old, _, old_judged) = replay(serving);
        let (new, divergence, new_judged) = replay(candidate);
        let what = format!(
            "run {} ({} {})",
            recorded.run_id, recorded.transcript.tier, recorded.transcript.version
        );
        if let Some(divergence) = divergence {
            review.changed = true;
            review.diff.push(VerdictChange {
                case: label(&format!("{what}, {divergence}")),
                old,
                new,
            });
        } else if old != new && old_judged == new_judged {
            review.changed = true;
            review.diff.push(VerdictChange { case: label(&what), old, new });
        }
    }

    for case in fixtures {
        let probe = |component: &GateComponent| {
            let mut env = env(&|_| {});
            env.replay = Some(Replay::answering(case.output.clone()));
            let (classification, env) = component.run(sandbox, env, component);
            (classification.status, env.calls)
        };
        review.cases += 1;
        let (old, old_calls) = probe(serving);
        let (new, new_calls) = probe(candidate);
        let judged_alike = serving.classify(sandbox, kind, &case.output).status
            == candidate.classify(sandbox, kind, &case.output).status;
        if old_calls == new_calls && old != new && judged_alike {
            review.changed = true;
            let what = format!("probe with fixture {}", case.name);
            review.diff.push(VerdictChange { case: label(&what), old, new });
        } else if old_calls != new_calls {
            review.changed = true;
            let first = old_calls.iter().zip(&new_calls).position(|(a, b)| a != b);
            let at = first.unwrap_or(old_calls.len().min(new_calls.len()));
            let shown = |calls: &[crate::sandbox::transcript::Call]| {
                calls.get(at).map_or_else(|| "no call".to_owned(), ToString::to_string)
            };
            let what = format!(
                "probe with fixture {}, call {} was {}, now {}",
                case.name,
                at + 1,
                shown(&old_calls),
                shown(&new_calls)
            );
            review.diff.push(VerdictChange { case: label(&what), old, new });
        }
    }

    let situations: Vec<(&str, RunnerEnv)> = match kind {
        GateKind::ManualConfirm => vec![
            ("no confirmation yet", env(&|_| {})),
            (
                "confirmed by an operator",
                env(&|e| {
                    e.confirmation = Some(Confirmation { by: "ops".into(), at: at(1_800_000_000) })
                }),
            ),
        ],
        GateKind::BurnIn => {
            let clock = |elapsed: i64| {
                move |e: &mut RunnerEnv| {
                    e.burn_in_clock = Some(BurnInClock {
                        started_at: at(1_800_000_000),
                        now: at(1_800_000_000 + elapsed),
                    });
                }
            };
            vec![
                ("burn-in clock not started", env(&|_| {})),
                ("burn-in half way", env(&clock(1800))),
                ("burn-in elapsed", env(&clock(7200))),
            ]
        }
        _ => Vec::new(),
    };
    for (situation, env) in situations {
        review.cases += 1;
        let (old, old_env) = serving.run(sandbox, env.clone(), serving);
        let (new, new_env) = candidate.run(sandbox, env, candidate);
        if old_env.calls != new_env.calls {
            review.changed = true;
        }
        if old.status != new.status {
            review.changed = true;
            review.diff.push(VerdictChange {
                case: label(situation),
                old: old.status,
                new: new.status,
            });
        }
    }
    review
}

/// What a reviewed runner is configured with when no recorded run says:
/// the defaults an operator's configuration starts from.
fn review_params(kind: GateKind) -> crate::sandbox::GateParams {
    use crate::sandbox::{GateParams, Invocation};
    let invocation = |program: &str, args: &[&str]| Invocation {
        program: program.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    };
    match kind {
        GateKind::CargoTest => GateParams::CargoTest { command: invocation("cargo", &["test"]) },
        GateKind::MigrationDryRun => GateParams::MigrationDryRun {
            scratch_db_url: Some("sqlite:///review/scratch.db".to_owned()),
            migrations: "migrations".to_owned(),
            migrate: invocation("sqlx", &[]),
            restore: None,
        },
        GateKind::BootSmoke => {
            GateParams::BootSmoke { command: invocation("app", &[]), stay_up_ms: 10_000 }
        }
        GateKind::BurnIn => GateParams::BurnIn { duration_ms: 3_600_000 },
        GateKind::ManualConfirm => GateParams::ManualConfirm,
    }
}

/// Why a candidate was refused, and what was known of it by then.
struct Rejection {
    reason: String,
    /// Empty when it did not load far enough to say.
    contract: String,
    part: ComponentPart,
    cases: u32,
    diff: Vec<VerdictChange>,
}

async fn reject(
    daemon: &Daemon,
    kind: GateKind,
    digest: String,
    source: &str,
    rejection: Rejection,
) -> Result<ComponentVerdict, StoreError> {
    let Rejection { reason, contract, part, cases, diff } = rejection;
    daemon
        .store
        .insert_component(
            kind,
            part,
            &digest,
            &contract,
            source,
            ComponentState::Rejected,
            Some(&reason),
            &diff,
            Utc::now(),
        )
        .await?;
    daemon.bus.send(Event::ComponentRejected {
        gate: kind,
        digest: digest.clone(),
        reason: reason.clone(),
        diff: diff.clone(),
    });
    Ok(ComponentVerdict {
        kind,
        digest,
        part,
        decision: Decision::Rejected,
        reason: Some(reason),
        cases,
        diff,
    })
}

/// An operator's answer to a pending candidate. With `digest`, only that
/// candidate: one pushed after the operator looked is not accepted unseen.
pub async fn settle(
    daemon: &Daemon,
    kind: GateKind,
    accept: bool,
    digest: Option<&str>,
) -> Result<ComponentRecord, ComponentError> {
    let _changing = daemon.components.changes.lock().await;
    let candidate = {
        let mut pending = daemon.components.pending.lock().expect("pending lock");
        let waiting = pending.get(&kind).ok_or(ComponentError::NothingPending { kind })?;
        let waiting_digest = waiting.component.digest().to_string();
        if let Some(given) = digest
            && given != waiting_digest
        {
            return Err(ComponentError::PendingChanged {
                kind,
                pending: waiting_digest,
                given: given.to_owned(),
            });
        }
        pending.remove(&kind).expect("checked above")
    };
    if !daemon.store.settle_pending(candidate.id, accept, "rejected by an operator").await? {
        return Err(ComponentError::NothingPending { kind });
    }
    let digest = candidate.component.digest().to_string();
    if accept {
        let contract = candidate.component.contract().to_owned();
        daemon.components.swap(kind, candidate.part, candidate.component);
        daemon.bus.send(Event::ComponentLoaded {
            gate: kind,
            digest: digest.clone(),
            contract,
            source: "accepted by an operator".into(),
        });
    } else {
        daemon.bus.send(Event::ComponentRejected {
            gate: kind,
            digest: digest.clone(),
            reason: "rejected by an operator".into(),
            diff: Vec::new(),
        });
    }
    let records = daemon.store.components_of(kind).await?;
    Ok(records.into_iter().find(|r| r.id == candidate.id).expect("the settled row exists"))
}

/// Returns one part of `kind` to the component that served it before,
/// through the same checks as any update. Without a part: the
/// classifier-only part if one serves, else the whole gate. A
/// classifier-only part with nothing before it goes back to the gate's own
/// classifier.
pub async fn rollback(
    daemon: &Arc<Daemon>,
    kind: GateKind,
    submission: Submission,
) -> Result<ComponentVerdict, ComponentError> {
    let _changing = daemon.components.changes.lock().await;
    let (runner, classifier) = daemon.components.for_run(kind);
    let part = submission.part.unwrap_or(if classifier.digest() == runner.digest() {
        ComponentPart::Gate
    } else {
        ComponentPart::Classifier
    });
    let current = match part {
        ComponentPart::Gate => runner.digest().to_string(),
        ComponentPart::Classifier => classifier.digest().to_string(),
    };
    let history = daemon.store.components_of(kind).await?;
    let read = |digest: &str| std::fs::read(daemon.components.dir.join(format!("{digest}.wasm")));
    let earlier = history
        .iter()
        .filter(|r| r.state == ComponentState::Retired && r.part == part && r.digest != current)
        .find_map(|r| read(&r.digest).ok());
    let bytes = match (earlier, part) {
        (Some(bytes), _) => bytes,
        (None, ComponentPart::Classifier) if current != runner.digest().to_string() => {
            read(&runner.digest().to_string())
                .map_err(|_| ComponentError::NothingToRollBackTo { kind })?
        }
        (None, _) => return Err(ComponentError::NothingToRollBackTo { kind }),
    };
    let submission = Submission { part: Some(part), ..submission };
    Ok(submit_locked(daemon, kind, bytes, "rollback".into(), submission).await?)
}

/// The fixture cases of `kind`: the shipped ones compiled into the binary,
/// then those of `fixtures_dir`; a configured case that does not load is
/// reported and skipped (it is `sando gate test`'s to complain about).
fn fixture_cases(daemon: &Daemon, kind: GateKind) -> Vec<Case> {
    // The shipped cases are the floor: `fixtures_dir` adds to them.
    let mut cases = crate::fixtures::shipped(kind);
    let Some(root) = &daemon.config.fixtures_dir else { return cases };
    let dirs = crate::fixtures::discover(&root.join(kind.as_str())).unwrap_or_default();
    let added: Vec<Case> = dirs
        .iter()
        .filter_map(|dir| match Case::load(dir) {
            Ok(case) => Some(case),
            Err(e) => {
                tracing::warn!(error = %e, "shadow test: a fixture case cannot be read");
                None
            }
        })
        .collect();
    // A copy of a shipped case (fixtures_dir pointing at the repository's
    // fixtures/) is replayed once.
    for case in added {
        let copy = |c: &Case| {
            c.name == case.name && c.output == case.output && c.expected == case.expected
        };
        if !cases.iter().any(copy) {
            cases.push(case);
        }
    }
    cases
}

/// Is it a component, of a served contract, for this kind, with the
/// exports the part it is to serve as needs? Returns that part.
fn validate(
    sandbox: &Sandbox,
    kind: GateKind,
    bytes: &[u8],
    part: Option<ComponentPart>,
) -> Result<(GateComponent, ComponentPart), (String, String)> {
    let component = sandbox.load(bytes).map_err(|e| (e.to_string(), String::new()))?;
    let contract = || component.contract().to_owned();
    if component.kind() != kind {
        return Err((format!("serves {}, not {kind}", component.kind()), contract()));
    }
    let part = match part {
        Some(part) => part,
        None if component.has_runner() => ComponentPart::Gate,
        None => ComponentPart::Classifier,
    };
    if part == ComponentPart::Gate && !component.has_runner() {
        return Err((
            format!(
                "exports only a classifier; serving as the {kind} gate needs the runner too \
                 (world `gate`); push it as a classifier"
            ),
            contract(),
        ));
    }
    Ok((component, part))
}

fn fault(status: &GateStatus) -> Option<String> {
    match status {
        GateStatus::Failed { failure: GateFailure::ComponentFault { fault } } => {
            Some(fault.to_string())
        }
        _ => None,
    }
}

/// Replays every case through the candidate and the serving component. A
/// fault ends it at once: a classifier that loops or hoards on one output
/// is not one to serve.
fn shadow(
    sandbox: &Sandbox,
    kind: GateKind,
    serving: &GateComponent,
    candidate: &GateComponent,
    fixtures: &[Case],
    runs: impl Iterator<Item = RawRun>,
) -> Result<Shadow, String> {
    let empty = RawOutput {
        stdout: Vec::new(),
        stderr: Vec::new(),
        end: ProcessEnd::Exited(0),
        duration_ms: None,
    };
    if let Some(fault) = fault(&candidate.classify(sandbox, kind, &empty).status) {
        return Err(format!("classifier fault on an empty output: {fault}"));
    }
    let mut shadow = Shadow { cases: 0, diff: Vec::new(), fixture_failures: Vec::new() };
    let mut replay = |case: String, output: &RawOutput, expected: Option<&GateStatus>| {
        shadow.cases += 1;
        let new = candidate.classify(sandbox, kind, output).status;
        if let Some(fault) = fault(&new) {
            return Err(format!("classifier fault on {case}: {fault}"));
        }
        if let Some(expected) = expected
            && new != *expected
        {
            shadow.fixture_failures.push(format!("{case}: expected `{expected}`, got `{new}`"));
        }
        let old = serving.classify(sandbox, kind, output).status;
        if old != new {
            shadow.diff.push(VerdictChange { case, old, new });
        }
        Ok(())
    };
    for case in fixtures {
        replay(format!("fixture {}", case.name), &case.output, Some(&case.expected))?;
    }
    for run in runs {
        replay(format!("run {} ({} {})", run.run_id, run.tier, run.version), &run.output, None)?;
    }
    Ok(shadow)
}

/// Replays recorded outputs of past runs through the serving component:
/// by default the `unclassified` ones. With `apply`, the changed runs get
/// the new outcome; the old one and both components' provenance are kept.
pub async fn reclassify(
    daemon: &Arc<Daemon>,
    request: ReclassifyRequest,
) -> Result<ReclassifyResponse, ComponentError> {
    let kind = request.gate;
    // The classifier in service judges: a classifier-only part if one serves.
    let component = daemon.components.classifier(kind);
    // No run is older than 1970; and PostgreSQL's times begin in 4713 BC,
    // long after chrono's earliest.
    let epoch = chrono::DateTime::<Utc>::UNIX_EPOCH;
    let since = request.since.unwrap_or(epoch).max(epoch);
    if request.legacy && request.apply {
        return Err(ComponentError::LegacyIsDryRun);
    }
    let runs = if request.legacy {
        daemon.store.legacy_runs_to_reclassify(kind, since).await?
    } else {
        daemon.store.runs_to_reclassify(kind, since).await?
    };
    let unclassified = |s: &Option<GateStatus>| {
        matches!(s, Some(GateStatus::Failed { failure: GateFailure::Unclassified { .. } }))
    };
    let mut without_output = 0;
    let mut replay = Vec::new();
    for (_, raw) in runs {
        match raw {
            Some(raw) if request.all || unclassified(&raw.outcome) => replay.push(raw),
            Some(_) => {}
            None => without_output += 1,
        }
    }
    let shared = daemon.clone();
    let serving = component.clone();
    let decided = tokio::task::spawn_blocking(move || {
        replay
            .into_iter()
            .map(|raw| {
                let new = serving.classify(&shared.sandbox, kind, &raw.output).status;
                (raw, new)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ComponentError::Task(e.to_string()))?;
    let digest = component.digest().to_string();
    let contract = component.contract().to_owned();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    let now = Utc::now();
    for (raw, new) in decided {
        let Some(old) = raw.outcome.clone() else { continue };
        if old == new || fault(&new).is_some() {
            unchanged += 1;
            continue;
        }
        if request.apply
            && let Some(run) = daemon.store.gate_run(raw.run_id).await?
        {
            daemon.store.reclassify(&run, &new, &digest, &contract, now).await?;
        }
        changed.push(Reclassified {
            run_id: raw.run_id,
            tier: raw.tier,
            version: raw.version,
            old,
            new,
        });
    }
    if request.apply && !changed.is_empty() {
        daemon.bus.send(Event::Reclassified {
            gate: kind,
            runs: changed.iter().map(|r| r.run_id).collect(),
        });
        // A candidate's gate may now be settled either way.
        daemon.trigger(Trigger::Evaluate);
    }
    Ok(ReclassifyResponse {
        gate: kind,
        digest,
        contract,
        applied: request.apply,
        changed,
        unchanged,
        without_output,
    })
}
