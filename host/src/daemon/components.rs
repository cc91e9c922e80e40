//! The component serving each gate kind, and candidates held for an operator; `reload.rs` decides how a candidate gets here.
//!
//! A swap replaces one `Arc` under a lock: a run in flight keeps the
//! component it started with; the next run gets the new one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;

use crate::domain::{ComponentState, GateKind};
use crate::sandbox::{GateComponent, Sandbox, shipped_component};
use crate::store::{Store, StoreError};

/// The components serving now, and candidates waiting for an operator.
pub struct Components {
    /// Held through every submit, settle and rollback, so each candidate is
    /// judged against the component it would replace, and the database and
    /// the serving map change together.
    pub(super) changes: tokio::sync::Mutex<()>,
    pub(super) serving: RwLock<HashMap<GateKind, Arc<GateComponent>>>,
    pub(super) pending: Mutex<HashMap<GateKind, Candidate>>,
    /// Every component ever loaded, as `<digest>.wasm`, for rollbacks.
    pub(super) dir: PathBuf,
}

pub(super) struct Candidate {
    pub(super) id: i64,
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
        let mut serving = HashMap::new();
        for kind in GateKind::ALL {
            let history = store.components_of(kind).await?;
            let kept = history.iter().find(|r| r.state == ComponentState::Serving);
            let operator_chosen = kept.filter(|r| r.source != "shipped").and_then(|record| {
                let path = dir.join(format!("{}.wasm", record.digest));
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        tracing::warn!(
                            %kind, path = %path.display(), error = %e,
                            "a kept component cannot be read; using the shipped one"
                        );
                        return None;
                    }
                };
                match sandbox.load(&bytes) {
                    Ok(component) if component.kind() == kind => Some(component),
                    _ => {
                        tracing::warn!(
                            %kind, digest = record.digest,
                            "a kept component no longer loads; using the shipped one"
                        );
                        None
                    }
                }
            });
            let component = match operator_chosen {
                Some(component) => component,
                None => {
                    let (component, bytes) = load_shipped(sandbox, kind)?;
                    let digest = component.digest().to_string();
                    save(&dir, &digest, &bytes);
                    if kept.is_none_or(|r| r.digest != digest) {
                        store
                            .insert_component(
                                kind,
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
            serving.insert(kind, Arc::new(component));
        }
        // A candidate pending before the restart is gone from memory: say so.
        for record in store.pending_components().await? {
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

    /// The component new runs of `kind` use.
    pub fn get(&self, kind: GateKind) -> Arc<GateComponent> {
        self.serving.read().expect("serving lock")[&kind].clone()
    }

    pub(super) fn swap(&self, kind: GateKind, component: Arc<GateComponent>) {
        self.serving.write().expect("serving lock").insert(kind, component);
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
