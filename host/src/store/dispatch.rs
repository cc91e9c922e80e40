//! `Store`: the one store the daemon, the legacy import and the command line use, over SQLite (the embedded default) or PostgreSQL (several daemons on one database). Nothing above it knows which.

use crate::store::{
    FreezeRecord, NewRollback, NotificationRecord, OverrideRecord, RollbackRecord, RunFilter,
    RunJob, RunRecord, VersionRecord,
};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::leadership::{Candidacy, Leader, Standing};
use super::postgres::{PgStore, Role};
use super::{
    ApprovalRecord, Attempt, AuditRecord, BacklogBound, BackloggedEvent, BackupAge, EventMarks,
    Imported, LegacyHistory, LegacySource, NewAudit, OpenRebuild, PlanDeploy, PlanRun, RawRun,
    RecordedTranscript, Result, RunComponents, RunCost, SqliteStore, StoreError, TierRow,
    VersionAge,
};
use crate::config::StoreLocation;
use crate::domain::{
    BackupRow, BackupSource, BuildOutcome, BuildSummary, ComponentPart, ComponentRecord,
    ComponentState, Confirmation, DeployId, DeployOutcome, DeploySummary, GateKind, GateRunId,
    GateStatus, GitSha, LogRef, NodeId, PreviousRun, RawOutput, RollbackProgress, TierId,
    VerdictChange, Version,
};
use crate::sandbox::transcript::Transcript;

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The SQLite history's serve lock, held for the daemon's life.
    _serving: Option<Arc<std::fs::File>>,
}

/// Each method once, as a signature: the same call on whichever backend
/// this store is.
macro_rules! delegate {
    ($( $(#[$meta:meta])* pub async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {$(
        $(#[$meta])*
        pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
            match &self.backend {
                Backend::Sqlite(store) => store.$name($($arg),*).await,
                Backend::Postgres(store) => store.$name($($arg),*).await,
            }
        }
    )*};
}

impl Store {
    /// Opens (creating if needed) the SQLite file at `path`.
    pub async fn open(path: &Path) -> Result<Store> {
        Ok(Store { backend: Backend::Sqlite(SqliteStore::open(path).await?), _serving: None })
    }

    /// Opens the store the config names, for a command: its SQLite file, or
    /// its PostgreSQL database (the URL read from the environment when it
    /// says so).
    pub async fn connect(location: &StoreLocation) -> Result<Store> {
        Store::open_as(location, Role::Command).await
    }

    /// Opens the store the config names for `sando serve`. A SQLite file
    /// is its data directory's alone (two daemons on one data directory are
    /// not guarded against yet). On PostgreSQL the daemon leads if the lead
    /// is free (taken before anything is read or migrated), else stands by:
    /// [`Store::lead`] waits for the lead.
    pub async fn serve(location: &StoreLocation, candidacy: Candidacy) -> Result<Store> {
        if let StoreLocation::Sqlite(path) = location {
            // Opened first: a file that is not a Sando history is refused
            // before anything (a lock file beside it too) is made.
            let mut store = Store::open(path).await?;
            store._serving = Some(Arc::new(serve_lock(path)?));
            return Ok(store);
        }
        Store::open_as(location, Role::Serve(candidacy)).await
    }

    async fn open_as(location: &StoreLocation, role: Role) -> Result<Store> {
        match location {
            StoreLocation::Sqlite(path) => Store::open(path).await,
            StoreLocation::Postgres(url) => {
                let url = url.resolve().map_err(StoreError::NotOurs)?;
                let store = PgStore::open(&url, role).await?;
                Ok(Store { backend: Backend::Postgres(store), _serving: None })
            }
        }
    }

    /// How this daemon stands: what the store lets it write.
    pub fn standing(&self) -> Standing {
        match &self.backend {
            Backend::Sqlite(_) => Standing::Alone,
            Backend::Postgres(store) => store.standing(),
        }
    }

    /// Waits until this daemon leads (at once if it does, or is alone).
    pub async fn lead(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(store) => store.lead().await.map(drop),
        }
    }

    /// Who leads the daemons sharing this store; `None` when it has one.
    pub async fn leader(&self) -> Result<Option<Leader>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(store) => store.leader().await,
        }
    }

    /// Sends an event (its JSON) to the daemons sharing this store.
    pub async fn publish(&self, event: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(store) => store.publish(event).await,
        }
    }

    /// The events the leader of a shared store publishes; `None` when this
    /// store has one daemon.
    pub async fn listen(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(store) => store.listen().await.map(Some),
        }
    }

    delegate! {
        /// Records the configured tiers (in order); tiers removed from the config
        /// keep their rows, so history is never lost.
        pub async fn sync_tiers(&self, tiers: &[TierId]) -> Result<()>;
        /// Gives every run, build and deploy left in flight by a previous daemon
        /// a typed outcome, but for runs whose process outlives the daemon (those
        /// are adopted, or let go of first). Returns how many gate runs were
        /// interrupted.
        pub async fn interrupt_unfinished(&self, now: DateTime<Utc>) -> Result<u64>;
        pub async fn version(&self, version: &Version) -> Result<Option<VersionRecord>>;
        pub async fn version_by_sha(&self, sha: &GitSha) -> Result<Option<VersionRecord>>;
        pub async fn insert_version(&self, row: &VersionRecord) -> Result<()>;
        /// The `limit` most recently registered versions, newest first.
        pub async fn recent_versions(&self, limit: i64) -> Result<Vec<VersionRecord>>;
        pub async fn tiers(&self) -> Result<Vec<TierRow>>;
        pub async fn arrival(&self, tier: &TierId, version: &Version) -> Result<Option<DateTime<Utc>>>;
        /// Inserts the run before it starts, so its id exists for every event,
        /// with the log path made from that id, in one transaction: nobody sees
        /// the run without its log.
        #[allow(clippy::too_many_arguments)]
        pub async fn insert_gate_run(&self, tier: &TierId, version: &Version, gate: GateKind, component: RunComponents<'_>, attempt: Attempt, now: DateTime<Utc>, log_ref: impl FnOnce(GateRunId) -> LogRef) -> Result<(GateRunId, LogRef)>;
        pub async fn finish_gate_run(&self, id: GateRunId, status: &GateStatus, cost: RunCost, now: DateTime<Utc>, evaluated_at: DateTime<Utc>) -> Result<()>;
        /// Records the process a running run started that outlives the daemon,
        /// before it may start. False when the run is no longer running.
        pub async fn record_run_job(&self, id: GateRunId, spawn: i64, handle: &str, log_at: i64) -> Result<bool>;
        /// Running runs whose process outlives the daemon, oldest first.
        pub async fn run_jobs(&self) -> Result<Vec<RunJob>>;
        /// Lets go of a run's process: the run is then interrupted like any other.
        pub async fn forget_run_job(&self, id: GateRunId) -> Result<()>;
        /// Puts a delivery in the outbox; its id.
        pub async fn enqueue_notification(&self, target: &str, event: &str, body: &str, now: DateTime<Utc>) -> Result<i64>;
        /// The oldest delivery `target` has not taken yet.
        pub async fn next_notification(&self, target: &str) -> Result<Option<NotificationRecord>>;
        /// Records a delivery's attempt: taken (`error` is `None`), or not, and when to try again.
        pub async fn notification_tried(&self, id: i64, error: Option<&str>, next_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<()>;
        /// Deliveries not taken yet, oldest first (at most `limit`).
        pub async fn pending_notifications(&self, limit: i64) -> Result<Vec<NotificationRecord>>;
        /// Forgets deliveries taken before `before`; how many.
        pub async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64>;
        pub async fn gate_run(&self, id: GateRunId) -> Result<Option<RunRecord>>;
        /// Runs matching every filter given, newest first, with ids below
        /// `before`, at most `limit`.
        pub async fn gate_runs_page(&self, filter: &RunFilter, limit: i64) -> Result<Vec<RunRecord>>;
        /// The latest run of each gate kind of `version` at `tier`.
        pub async fn latest_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<RunRecord>>;
        /// For each gate kind, its latest finished run at `tier` for a version
        /// other than `version`: what the shown runs are compared with.
        pub async fn previous_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<PreviousRun>>;
        /// The newest `limit` builds, each with the duration of the finished
        /// build before it.
        pub async fn recent_builds(&self, limit: i64) -> Result<Vec<BuildSummary>>;
        /// The latest run of a gate kind for a version, at any tier (for `/logs`).
        pub async fn latest_run_of(&self, version: &Version, gate: GateKind) -> Result<Option<RunRecord>>;
        pub async fn insert_deploy(&self, tier: &TierId, version: &Version, node: &NodeId, log_ref: &LogRef, now: DateTime<Utc>) -> Result<DeployId>;
        pub async fn finish_deploy(&self, id: DeployId, outcome: &DeployOutcome, now: DateTime<Utc>) -> Result<()>;
        pub async fn recent_deploys(&self, limit: i64) -> Result<Vec<DeploySummary>>;
        pub async fn insert_backup(&self, source: &BackupSource, path: &str, now: DateTime<Utc>) -> Result<i64>;
        pub async fn latest_backup(&self) -> Result<Option<BackupRow>>;
        pub async fn insert_confirmation(&self, run: &RunRecord, by: &str, evidence: Option<&str>, now: DateTime<Utc>) -> Result<()>;
        /// Every approval of `version` at `tier`, oldest first.
        pub async fn approvals(&self, tier: &TierId, version: &Version) -> Result<Vec<ApprovalRecord>>;
        /// Ends a blocked run with `status` (a rejection); false if it is no longer blocked.
        pub async fn end_blocked_run(&self, id: GateRunId, status: &GateStatus, now: DateTime<Utc>) -> Result<bool>;
        /// Appends one act to the audit trail; its id.
        pub async fn append_audit(&self, entry: &NewAudit<'_>) -> Result<i64>;
        /// Up to `limit` audit rows after row `after`, at or after `since`, oldest first.
        pub async fn audit_page(&self, after: i64, since: Option<DateTime<Utc>>, limit: i64) -> Result<Vec<AuditRecord>>;
        /// Freezes a tier (every tier with `None`) from now.
        pub async fn insert_freeze(&self, tier: Option<&TierId>, reason: &str, by: &str, until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<FreezeRecord>;
        /// Lifts freeze `id` if it is in force; the freeze it lifted.
        pub async fn lift_freeze(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<Option<FreezeRecord>>;
        /// The freezes made from the API that hold at `now`, oldest first.
        pub async fn freezes_in_force(&self, now: DateTime<Utc>) -> Result<Vec<FreezeRecord>>;
        /// Records an admin's override, replacing one given before for the same version and tier.
        pub async fn put_override(&self, entry: &OverrideRecord) -> Result<()>;
        /// The override for `version` at `tier`, if any.
        pub async fn freeze_override(&self, tier: &TierId, version: &Version) -> Result<Option<OverrideRecord>>;
        /// The versions promoted to `tier`, newest arrival first.
        pub async fn arrivals(&self, tier: &TierId) -> Result<Vec<(Version, DateTime<Utc>)>>;
        /// Asks for a rollback; `None` when the tier has one pending, or `from` is neither its current version, its candidate, nor (a retry) the `from` of its last rollback, which failed with the same `to`.
        pub async fn insert_rollback(&self, new: &NewRollback<'_>) -> Result<Option<RollbackRecord>>;
        /// Every rollback, oldest first.
        pub async fn rollbacks(&self) -> Result<Vec<RollbackRecord>>;
        /// The latest deploy of rollback `id` to each node.
        pub async fn rollback_deploys(&self, id: i64) -> Result<Vec<PlanDeploy>>;
        /// Settles a pending rollback; done makes its version current.
        pub async fn finish_rollback(&self, id: i64, progress: RollbackProgress, now: DateTime<Utc>) -> Result<()>;
        /// Records that `run` should run again. Asking twice is one request.
        pub async fn request_rerun(&self, run: GateRunId, by: &str, now: DateTime<Utc>) -> Result<()>;
        /// The first confirmation given for `version` at `tier`, if any.
        pub async fn confirmation(&self, tier: &TierId, version: &Version) -> Result<Option<Confirmation>>;
        pub async fn insert_rebuild_request(&self, sha: &GitSha, now: DateTime<Utc>) -> Result<i64>;
        /// Requests still needing a build, oldest first, with how many builds
        /// each has had.
        pub async fn open_rebuilds(&self) -> Result<Vec<OpenRebuild>>;
        /// Marks a request as needing no more builds.
        pub async fn settle_rebuild(&self, id: i64, cancelled_by: Option<&str>, now: DateTime<Utc>) -> Result<bool>;
        /// The open request for `sha` (full, or a 7-character prefix), if any.
        pub async fn open_rebuild_for(&self, sha: &GitSha) -> Result<Option<i64>>;
        pub async fn insert_build_for(&self, request_id: i64, sha: &GitSha, log_ref: &LogRef, now: DateTime<Utc>) -> Result<i64>;
        /// How build `build_id` used the build cache: whether its base had
        /// been fed, and by which version.
        pub async fn record_build_cache(&self, build_id: i64, warm: bool, from: Option<&Version>) -> Result<()>;
        /// Ends a build in one transaction: its outcome; the version it made and
        /// that version as the first tier's candidate (unless the tier already
        /// runs or waits for something newer); the request settled unless the
        /// outcome asks for another build. Returns the candidate it replaced.
        pub async fn finish_build_and_register(&self, build_id: i64, request_id: i64, outcome: &BuildOutcome, registered: Option<(&VersionRecord, Option<&str>, &TierId)>, settle: bool, now: DateTime<Utc>) -> Result<Option<Version>>;
        /// The latest run of each gate kind of `version` at `tier`, with what
        /// the planner needs: attempt, last evaluation, and a rerun request.
        pub async fn plan_runs(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanRun>>;
        /// Per node: the latest deploy of `version` at `tier`, and how many there were.
        pub async fn plan_deploys(&self, tier: &TierId, version: &Version) -> Result<Vec<PlanDeploy>>;
        /// When something a blocked gate of `version` at `tier` may wait for last
        /// changed: a confirmation, a fetched backup.
        pub async fn inputs_changed(&self, tier: &TierId, version: &Version) -> Result<Option<DateTime<Utc>>>;
        /// Every node of `tier` runs `version`: it becomes current there, its
        /// arrival starts the next tier's burn-in clock, and it is offered to the
        /// next tier, all in one transaction. Returns the next tier's candidate
        /// it replaced.
        pub async fn promote_to(&self, tier: &TierId, version: &Version, next: Option<&TierId>, now: DateTime<Utc>) -> Result<Option<Version>>;
        /// The sha256 (hex) recorded for a version's artifact when it was kept.
        pub async fn artifact_sha256(&self, version: &Version) -> Result<Option<String>>;
        /// Clears `tier`'s candidate if it is still `version`.
        pub async fn drop_candidate(&self, tier: &TierId, version: &Version) -> Result<()>;
        /// Records a deploy before its command runs, durably even across a power
        /// loss (`synchronous = FULL` for this one commit), so a restart knows a
        /// deploy may have half-happened and runs it again.
        pub async fn insert_deploy_durably(&self, tier: &TierId, version: &Version, node: &NodeId, log_ref: &LogRef, rollback: Option<i64>, now: DateTime<Utc>) -> Result<DeployId>;
        /// Gives a deploy a worker left unfinished its outcome.
        pub async fn finish_deploy_if_in_progress(&self, id: DeployId, outcome: &DeployOutcome, now: DateTime<Utc>) -> Result<()>;
        /// Gives a build a worker left unfinished its outcome.
        pub async fn finish_build_if_running(&self, id: i64, outcome: &BuildOutcome, now: DateTime<Utc>) -> Result<()>;
        pub async fn record_raw_output(&self, run: GateRunId, kind: GateKind, output: &RawOutput) -> Result<()>;
        /// The newest `limit` finished runs of `kind` with a recorded output,
        /// newest first: ids only, so a shadow test holds one output at a time.
        pub async fn recent_raw_run_ids(&self, kind: GateKind, limit: u32) -> Result<Vec<GateRunId>>;
        /// One run's recorded output, with where the run belongs.
        pub async fn raw_run(&self, run: GateRunId) -> Result<Option<RawRun>>;
        /// Finished runs of `kind` started at or after `since`, oldest first,
        /// each with its recorded output if there is one.
        pub async fn runs_to_reclassify(&self, kind: GateKind, since: DateTime<Utc>) -> Result<Vec<(GateRunId, Option<RawRun>)>>;
        /// Runs of `kind` imported from the old daemon, started at or after
        /// `since`, each with the text the old daemon kept standing in for its
        /// output: as stdout, ended as the old daemon recorded (exit 0 for a pass,
        /// 1 for anything else, the old code not being kept).
        pub async fn legacy_runs_to_reclassify(&self, kind: GateKind, since: DateTime<Utc>) -> Result<Vec<(GateRunId, Option<RawRun>)>>;
        /// Gives `run` a new outcome from another component, keeping the old
        /// outcome and the provenance of both.
        pub async fn reclassify(&self, run: &RunRecord, new: &GateStatus, digest: &str, contract: &str, now: DateTime<Utc>) -> Result<()>;
        /// How many times a run was classified again.
        pub async fn reclassification_count(&self, run: GateRunId) -> Result<i64>;
        #[allow(clippy::too_many_arguments)]
        pub async fn insert_component(&self, kind: GateKind, part: ComponentPart, digest: &str, contract: &str, source: &str, state: ComponentState, reason: Option<&str>, diff: &[VerdictChange], now: DateTime<Utc>) -> Result<i64>;
        /// Settles a pending component: serving (the one before retires) or
        /// rejected. Returns false if it was no longer pending.
        pub async fn settle_pending(&self, id: i64, accept: bool, reason: &str) -> Result<bool>;
        /// Whether `digest` was ever given to the daemon for `kind`.
        pub async fn component_known(&self, kind: GateKind, digest: &str) -> Result<bool>;
        /// Every component of `kind`, newest first.
        pub async fn components_of(&self, kind: GateKind) -> Result<Vec<ComponentRecord>>;
        pub async fn pending_components(&self) -> Result<Vec<ComponentRecord>>;
        /// Keeps a run's transcript (again, for a run evaluated again in place).
        pub async fn record_transcript(&self, run: GateRunId, kind: GateKind, transcript: &Transcript, outputs: &[RawOutput]) -> Result<()>;
        /// The newest `limit` transcripts of finished runs of `kind`, newest
        /// first: ids only, so a review holds one transcript at a time.
        pub async fn recent_transcript_ids(&self, kind: GateKind, limit: u32) -> Result<Vec<GateRunId>>;
        /// One run's transcript with its outputs. `None` when there is none, or
        /// it no longer parses or lost an output (skipped, not fatal).
        pub async fn transcript(&self, run: GateRunId) -> Result<Option<RecordedTranscript>>;
        /// Writes `history` in one transaction, committed only when `commit`.
        /// Ids of runs, deploys and backups are kept; a target that already uses
        /// one, or already holds one of the versions, refuses the import.
        pub async fn import_legacy(&self, history: &LegacyHistory, source: &LegacySource<'_>, now: DateTime<Utc>, commit: bool) -> Result<Imported>;
        /// Appends events to the event stream's backlog, moves its top mark
        /// up to `top`, and lets go of what `bound` does not keep.
        pub async fn append_events(&self, events: &[BackloggedEvent], top: i64, bound: BacklogBound) -> Result<()>;
        /// Backlogged events after `since`, oldest first, at most `limit`.
        pub async fn events_since(&self, since: i64, limit: i64) -> Result<Vec<BackloggedEvent>>;
        /// Where the event sequence stands in the store.
        pub async fn event_marks(&self) -> Result<EventMarks>;
        /// Versions whose files a sweep has not removed.
        pub async fn versions_with_files(&self) -> Result<Vec<VersionAge>>;
        /// Versions something needs now: a tier's current or candidate, or one
        /// with a gate run or a deploy in flight.
        pub async fn versions_in_use(&self) -> Result<HashSet<Version>>;
        /// Backups whose file a sweep has not removed.
        pub async fn backups_on_disk(&self) -> Result<Vec<BackupAge>>;
        /// Forgets a version's recorded outputs and transcripts and marks its
        /// files removed, in one transaction.
        pub async fn sweep_version(&self, version: &Version, now: DateTime<Utc>) -> Result<()>;
        /// Marks a backup's file removed; its path, if it was still kept.
        pub async fn remove_backup(&self, id: i64, now: DateTime<Utc>) -> Result<Option<String>>;
    }
}

/// Takes `<history>.lock` for the life of the process (the kernel lets go
/// when it ends, however it ends): a second `sando serve` on the same
/// SQLite history is refused, naming the first, before it plans anything.
fn serve_lock(history: &Path) -> Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    let mut name = history.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let failed = |e: std::io::Error| {
        StoreError::NotOurs(format!("{}: {}", path.display(), crate::fixtures::io_message(&e)))
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::NotOurs(format!(
                "{}: another sando serve ({}) is serving this history; stop it first (daemons share a history only on PostgreSQL)",
                history.display(),
                holder.trim()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    write!(file, "pid {}", std::process::id()).map_err(failed)?;
    Ok(file)
}
