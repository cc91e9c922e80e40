//! The components serving each gate kind (a whole gate, and a classifier-only part beside it), and candidates held for an operator; `reload.rs` decides how a candidate gets here.
//!
//! A swap replaces one `Arc` under a lock: a run in flight keeps the
//! components it started with; the next run gets the new ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;

use crate::domain::{ComponentPart, ComponentState, GateKind};
use crate::sandbox::{GateComponent, Sandbox, shipped_component};
use crate::store::{Store, StoreError};

/// The components serving now, and candidates waiting for an operator.
pub struct Components {
    /// Held through every submit, settle and rollback, so each candidate is
    /// judged against the component it would replace, and the database and
    /// the serving map change together.
    pub(super) changes: tokio::sync::Mutex<()>,
    pub(super) serving: RwLock<HashMap<GateKind, Serving>>,
    pub(super) pending: Mutex<HashMap<GateKind, Candidate>>,
    /// Every component ever loaded, as `<digest>.wasm`, for rollbacks.
    pub(super) dir: PathBuf,
}

/// What serves one kind.
#[derive(Clone)]
pub(super) struct Serving {
    /// The whole gate: the kind's runner.
    gate: Arc<GateComponent>,
    /// A classifier-only part, judging in the gate's place.
    classifier: Option<Arc<GateComponent>>,
}

pub(super) struct Candidate {
    pub(super) id: i64,
    pub(super) part: ComponentPart,
    pub(super) component: Arc<GateComponent>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("gate component for {kind}: {message}")]
    Load { kind: GateKind, message: String },
    #[error("no {kind} component is waiting for acceptance")]
    NothingPending { kind: GateKind },
    #[error("the {kind} component waiting is {pending}, not {given}: review it first")]
    PendingChanged { kind: GateKind, pending: String, given: String },
    #[error("reclassifying: {0}")]
    Task(String),
    #[error(
        "legacy reclassification is a dry run only: the old daemon kept a tail of each output, not the output"
    )]
    LegacyIsDryRun,
    #[error("no earlier {kind} component to roll back to")]
    NothingToRollBackTo { kind: GateKind },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Components {
    /// Loads what served each kind when the daemon last ran: an operator's
    /// update is kept across restarts; the shipped component otherwise (a
    /// newer Sando's shipped gates replace the older shipped ones).
    pub async fn load(
        sandbox: &Sandbox,
        store: &Store,
        dir: PathBuf,
    ) -> Result<Components, ComponentError> {
        // A standby records nothing: the leader does, and will again when
        // this daemon takes over (`refresh`).
        let acts = store.standing().acts();
        let mut serving = HashMap::new();
        for kind in GateKind::ALL {
            let history = store.components_of(kind).await?;
            let serving_part = |part: ComponentPart| {
                history.iter().find(|r| r.state == ComponentState::Serving && r.part == part)
            };
            let kept = serving_part(ComponentPart::Gate);
            let operator_chosen = kept
                .filter(|r| r.source != "shipped")
                .and_then(|record| load_kept(sandbox, &dir, kind, &record.digest));
            let classifier = serving_part(ComponentPart::Classifier)
                .and_then(|record| load_kept(sandbox, &dir, kind, &record.digest))
                .map(Arc::new);
            let component = match operator_chosen {
                Some(component) => component,
                None => {
                    let (component, bytes) = load_shipped(sandbox, kind)?;
                    let digest = component.digest().to_string();
                    save(&dir, &digest, &bytes);
                    if acts && kept.is_none_or(|r| r.digest != digest) {
                        store
                            .insert_component(
                                kind,
                                ComponentPart::Gate,
                                &digest,
                                component.contract(),
                                "shipped",
                                ComponentState::Serving,
                                None,
                                &[],
                                Utc::now(),
                            )
                            .await?;
                    }
                    component
                }
            };
            serving.insert(kind, Serving { gate: Arc::new(component), classifier });
        }
        // A candidate pending before the restart is gone from memory: say so.
        for record in store.pending_components().await?.into_iter().filter(|_| acts) {
            store
                .settle_pending(record.id, false, "the daemon restarted before it was accepted")
                .await?;
        }
        Ok(Components {
            changes: tokio::sync::Mutex::new(()),
            serving: RwLock::new(serving),
            pending: Mutex::new(HashMap::new()),
            dir,
        })
    }

    /// Loads again what serves each kind, from the store: a standby taking
    /// over serves what the last leader served, and records it as `load`
    /// does.
    pub async fn refresh(&self, sandbox: &Sandbox, store: &Store) -> Result<(), ComponentError> {
        let _changes = self.changes.lock().await;
        let fresh = Components::load(sandbox, store, self.dir.clone()).await?;
        *self.serving.write().expect("serving lock") =
            fresh.serving.into_inner().expect("serving lock");
        self.pending.lock().expect("pending lock").clear();
        Ok(())
    }

    /// The whole gate new runs of `kind` use: their runner.
    pub fn get(&self, kind: GateKind) -> Arc<GateComponent> {
        self.serving.read().expect("serving lock")[&kind].gate.clone()
    }

    /// The classifier in service for `kind`: a classifier-only part if one
    /// serves, else the whole gate's own.
    pub fn classifier(&self, kind: GateKind) -> Arc<GateComponent> {
        self.for_run(kind).1
    }

    /// The runner and the classifier of one run, read together so a swap
    /// between the two reads cannot pair a runner with a classifier that
    /// never served beside it.
    pub fn for_run(&self, kind: GateKind) -> (Arc<GateComponent>, Arc<GateComponent>) {
        let serving = &self.serving.read().expect("serving lock")[&kind];
        let classifier = serving.classifier.clone().unwrap_or_else(|| serving.gate.clone());
        (serving.gate.clone(), classifier)
    }

    /// Puts `component` in service as `part`: a whole gate brings its own
    /// classifier, so it also ends a classifier-only part.
    pub(super) fn swap(&self, kind: GateKind, part: ComponentPart, component: Arc<GateComponent>) {
        let mut serving = self.serving.write().expect("serving lock");
        let entry = serving.get_mut(&kind).expect("every kind serves");
        match part {
            ComponentPart::Gate => *entry = Serving { gate: component, classifier: None },
            ComponentPart::Classifier => entry.classifier = Some(component),
        }
    }
}

/// A component kept from an earlier run of the daemon, if it still loads
/// as a `kind` component.
fn load_kept(sandbox: &Sandbox, dir: &Path, kind: GateKind, digest: &str) -> Option<GateComponent> {
    let path = dir.join(format!("{digest}.wasm"));
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(
                %kind, path = %path.display(), error = %e,
                "a kept component cannot be read; not serving it"
            );
            return None;
        }
    };
    match sandbox.load(&bytes) {
        Ok(component) if component.kind() == kind => Some(component),
        _ => {
            tracing::warn!(%kind, digest, "a kept component no longer loads; not serving it");
            None
        }
    }
}

fn load_shipped(
    sandbox: &Sandbox,
    kind: GateKind,
) -> Result<(GateComponent, Vec<u8>), ComponentError> {
    let err = |message: String| ComponentError::Load { kind, message };
    let path = shipped_component(kind).map_err(|missing| {
        err(format!("no component at {} (build the gates with `./x build`)", missing.display()))
    })?;
    let bytes = std::fs::read(&path)
        .map_err(|e| err(format!("{}: {}", path.display(), crate::fixtures::io_message(&e))))?;
    let component = sandbox.load(&bytes).map_err(|e| err(format!("{}: {e}", path.display())))?;
    if component.kind() != kind {
        return Err(err(format!("{} serves {}", path.display(), component.kind())));
    }
    Ok((component, bytes))
}

pub(super) fn save(dir: &Path, digest: &str, bytes: &[u8]) {
    let path = dir.join(format!("{digest}.wasm"));
    if !path.is_file()
        && let Err(e) = std::fs::write(&path, bytes)
    {
        // Only rollback to this component is lost.
        tracing::warn!(path = %path.display(), error = %e, "keeping a component for rollbacks");
    }
}
