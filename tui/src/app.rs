//! The TUI's model: what the daemon last said (state, events, log tails), where the operator is (screen, selection, filter, dialog), and how keys and daemon messages change it.
//!
//! Nothing here does I/O or draws. Keys and messages go in; `Command`s for
//! the client come out. That keeps every screen reproducible in tests.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use sando_wire::{
    AuditEntry, ComponentRecord, Event, EventEnvelope, FreezeSource, FreezeState, GateFailure,
    GateKind, GateRunId, GateRunSummary, GateStatus, Role, RunState, StateResponse, TierId,
    TierState, Version, WhoAmI,
};

use crate::describe::{Tone, describe};
use crate::tail::{Continuity, LogTail};

/// Bounds of one run's live tail: enough to read a failure in context,
/// small enough that a dozen noisy runs stay well under 100 MiB.
pub const TAIL_BYTES: usize = 4 << 20;
pub const TAIL_LINES: usize = 50_000;
/// The persisted log on request is kept within larger bounds.
pub const FULL_LOG_BYTES: usize = 32 << 20;
pub const FULL_LOG_LINES: usize = 500_000;
/// Live tails kept at once; the oldest finished run's is dropped first.
const MAX_TAILS: usize = 16;
const MAX_EVENT_LINES: usize = 200;
/// Audit entries kept for the audit view: the newest this many.
pub const AUDIT_KEPT: usize = 1000;
/// A reason is one line of at most 1 KiB: the daemon refuses longer.
const MAX_REASON: usize = 1024;

/// The state of the connection to the daemon, as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    /// Lost; the client is retrying. `error` says why it was lost.
    Reconnecting {
        error: String,
    },
}

/// What the client is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    /// Fetch `/api/state` again.
    Resync,
    /// Ask the daemon who this TUI's token is (`/api/whoami`).
    WhoAmI,
    Confirm {
        run_id: GateRunId,
        by: String,
    },
    Rerun {
        run_id: GateRunId,
        by: String,
    },
    /// Stop a running gate.
    Cancel {
        run_id: GateRunId,
        by: String,
    },
    FetchBackup,
    /// Fetch one run's summary (provenance of a run not in the state).
    FetchRun(GateRunId),
    /// Fetch a page of past runs (`/api/gate-runs`).
    FetchHistory(HistoryOf),
    /// Fetch one run's persisted log.
    FetchLog(GateRunId),
    /// Fetch a run's persisted log from byte `from` on, to fill a live
    /// tail's gap (connected mid-run, or fell behind).
    FetchLogFrom {
        run_id: GateRunId,
        from: u64,
    },
    /// Accept or reject the updated component waiting for `kind`.
    SettleComponent {
        kind: GateKind,
        accept: bool,
        digest: String,
    },
    /// `POST /api/freezes`: freeze `tier`, or every tier when `None`.
    Freeze {
        tier: Option<TierId>,
        reason: String,
    },
    /// `POST /api/freezes/{id}/lift`.
    LiftFreeze {
        id: i64,
    },
    /// `POST /api/tiers/{tier}/rollback` to the version the operator was
    /// shown (named, so a state that moved meanwhile cannot change it).
    Rollback {
        tier: TierId,
        to: Version,
        reason: String,
    },
    /// The audit trail's entries after entry `since` (0: from the start).
    FetchAudit {
        since: i64,
    },
}

/// What the client reports back.
#[derive(Debug)]
pub enum Msg {
    /// The event stream is (re)connecting to this daemon, one of several.
    Attached(String),
    Connected,
    Disconnected(String),
    State(StateResponse),
    Event(EventEnvelope),
    /// An event from the daemon's backlog, sent on connecting: it happened
    /// while this TUI was not connected, and the state has its result.
    Replayed(EventEnvelope),
    /// A frame that is not an `EventEnvelope` this TUI understands.
    Undecodable(String),
    Run(GateRunSummary),
    /// A page of past runs, or why it could not be read.
    History {
        of: HistoryOf,
        runs: Result<Vec<GateRunSummary>, String>,
    },
    Log {
        run_id: GateRunId,
        text: String,
    },
    /// A run's persisted log from byte `from` on, or why it could not be read.
    LogFrom {
        run_id: GateRunId,
        from: u64,
        bytes: Result<Vec<u8>, String>,
    },
    /// Who the token is: actions are sent as them, and a viewer is shown none.
    Identity(WhoAmI),
    /// Audit entries after `since`, oldest first (at most the newest
    /// `AUDIT_KEPT`), or why they could not be read; `more`: the trail
    /// goes on after them (the client reads a bounded number of pages at
    /// a time, so other requests are not held up behind a long trail).
    Audit {
        since: i64,
        entries: Result<Vec<AuditEntry>, String>,
        more: bool,
    },
    /// An action or fetch finished: what to tell the operator.
    Done {
        ok: bool,
        text: String,
    },
}

/// A gate row's identity: it survives resyncs and new runs of the gate, so
/// the selection does not jump when the daemon restarts or a gate re-runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GateRef {
    pub tier: TierId,
    pub gate: GateKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Detail(Detail),
    History(History),
    Audit(AuditView),
}

/// Where the operator is in the audit view (`A`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditView {
    /// Index into the entries newest first.
    pub selected: usize,
    /// The selected entry's before/after shown below the list.
    pub open: bool,
}

/// The audit trail as fetched so far: the newest `AUDIT_KEPT` entries,
/// oldest first, and whether a fetch is under way or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTrail {
    pub entries: VecDeque<AuditEntry>,
    pub loading: bool,
    pub error: Option<String>,
}

impl AuditTrail {
    /// Where the next fetch starts: after the newest entry held.
    pub fn cursor(&self) -> i64 {
        self.entries.back().map_or(0, |e| e.id)
    }

    /// The entry `index` places from the newest.
    pub fn newest(&self, index: usize) -> Option<&AuditEntry> {
        self.entries.len().checked_sub(index + 1).and_then(|i| self.entries.get(i))
    }
}

/// An act on a tier that asks a reason (except lifting) and then y/n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierAction {
    /// Freeze one tier, or every tier when `None`.
    Freeze {
        tier: Option<TierId>,
    },
    /// Lift the manual freeze `freeze` in force on `tier`.
    Lift {
        tier: TierId,
        id: i64,
        freeze: FreezeState,
    },
    Rollback {
        tier: TierId,
        from: Option<Version>,
        to: Version,
    },
}

impl TierAction {
    /// What it is, for the dialog's title.
    pub fn title(&self) -> String {
        match self {
            TierAction::Freeze { tier: Some(tier) } => format!("Freeze {tier}"),
            TierAction::Freeze { tier: None } => "Freeze every tier".into(),
            TierAction::Lift { tier, .. } => format!("Lift the freeze on {tier}"),
            TierAction::Rollback { tier, .. } => format!("Roll back {tier}"),
        }
    }
}

/// Past runs, newest first: a gate's at a tier (`h`), or a version's walk
/// through the tiers (`v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub of: HistoryOf,
    /// `None` while loading; the runs, or why they could not be read.
    pub runs: Option<Result<Vec<GateRunSummary>, String>>,
}

/// Whose history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOf {
    Gate { tier: TierId, gate: GateKind },
    Version(Version),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub run_id: GateRunId,
    /// Follow the end of the log as it grows.
    pub follow: bool,
    /// First log line shown when not following.
    pub top: u64,
    pub log: LogSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The live tail from `gate_log_chunk` events.
    Live,
    Loading,
    /// The persisted log, fetched on request (or because the run is over).
    Full,
}

/// A question asked before anything that changes state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    Help,
    Confirm {
        run: GateRunSummary,
    },
    Rerun {
        run: GateRunSummary,
    },
    Cancel {
        run: GateRunSummary,
    },
    FetchBackup,
    /// An updated component waiting for an operator: its verdict diff,
    /// scrolled down by `scroll` changes.
    Component {
        record: ComponentRecord,
        scroll: usize,
    },
    /// The reason for `action`, being typed; Enter goes on to `Tier`.
    Reason {
        action: TierAction,
        text: String,
    },
    /// The y/n before a tier action, with the reason given.
    Tier {
        action: TierAction,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub at: DateTime<Utc>,
    pub text: String,
    pub tone: Tone,
}

pub struct App {
    pub url: String,
    /// Who actions are recorded as: the token's operator once the daemon
    /// said (`$USER` until then; the daemon records the token's anyway).
    pub operator: String,
    pub has_token: bool,
    /// The token's operator and role, once known.
    pub identity: Option<WhoAmI>,
    pub connection: Connection,
    pub state: Option<StateResponse>,
    pub screen: Screen,
    pub dialog: Option<Dialog>,
    pub selected: Option<GateRef>,
    pub filter: String,
    pub filter_editing: bool,
    pub status: Option<StatusLine>,
    pub events: VecDeque<EventLine>,
    /// Live tails by run, and the order runs started in (for eviction).
    pub tails: HashMap<GateRunId, LogTail>,
    tail_order: VecDeque<GateRunId>,
    /// Persisted logs fetched on request.
    pub full_logs: HashMap<GateRunId, LogTail>,
    /// Live tails with a fetch of their gap under way (one at a time each).
    filling: HashSet<GateRunId>,
    /// Runs fetched one by one (a detail screen on a run no longer latest).
    pub runs: HashMap<GateRunId, GateRunSummary>,
    /// The audit trail, fetched when the audit view opens.
    pub audit: AuditTrail,
    /// Advanced by the clock; drives the spinner.
    pub tick: u64,
    /// Rows the log pane had when last drawn, so paging moves by a screen.
    pub log_height: Cell<u16>,
    pub undecodable: u64,
}

impl App {
    pub fn new(url: impl Into<String>, operator: impl Into<String>, has_token: bool) -> Self {
        Self {
            url: url.into(),
            operator: operator.into(),
            has_token,
            identity: None,
            connection: Connection::Connecting,
            state: None,
            screen: Screen::Overview,
            dialog: None,
            selected: None,
            filter: String::new(),
            filter_editing: false,
            status: None,
            events: VecDeque::new(),
            tails: HashMap::new(),
            tail_order: VecDeque::new(),
            full_logs: HashMap::new(),
            filling: HashSet::new(),
            runs: HashMap::new(),
            audit: AuditTrail::default(),
            tick: 0,
            log_height: Cell::new(10),
            undecodable: 0,
        }
    }

    // ---- what the screens show ---------------------------------------------

    /// Gate rows in display order (tier order, then the daemon's gate
    /// order), with the filter applied.
    pub fn visible_rows(&self) -> Vec<(&TierState, &GateRunSummary)> {
        let Some(state) = &self.state else { return Vec::new() };
        let needle = self.filter.to_lowercase();
        state
            .tiers
            .iter()
            .flat_map(|tier| tier.gates.iter().map(move |run| (tier, run)))
            .filter(|(tier, run)| needle.is_empty() || row_text(tier, run).contains(&needle))
            .collect()
    }

    pub fn selected_row(&self) -> Option<(&TierState, &GateRunSummary)> {
        let selected = self.selected.as_ref()?;
        self.visible_rows()
            .into_iter()
            .find(|(tier, run)| tier.name == selected.tier && run.gate == selected.gate)
    }

    /// The run a detail screen shows: the newest word on it we have.
    pub fn run(&self, run_id: GateRunId) -> Option<&GateRunSummary> {
        let in_state = self.state.as_ref().and_then(|s| {
            s.tiers.iter().flat_map(|t| t.gates.iter()).find(|run| run.run_id == run_id)
        });
        in_state.or_else(|| self.runs.get(&run_id))
    }

    pub fn tier(&self, name: &TierId) -> Option<&TierState> {
        self.state.as_ref()?.tiers.iter().find(|t| &t.name == name)
    }

    /// The log a detail screen shows.
    pub fn log_for(&self, detail: &Detail) -> Option<&LogTail> {
        match detail.log {
            LogSource::Full => self.full_logs.get(&detail.run_id),
            LogSource::Live | LogSource::Loading => self.tails.get(&detail.run_id),
        }
    }

    /// Where the run's version stands against its tier's approval policy,
    /// if the tier has one and the run is of its candidate.
    pub fn approvals(&self, run: &GateRunSummary) -> Option<&sando_wire::ApprovalState> {
        let tier = self.tier(&run.tier)?;
        (tier.candidate_version.as_ref() == Some(&run.version)).then_some(())?;
        tier.approvals.as_ref()
    }

    /// Who confirmed the version a run belongs to, if that is known.
    pub fn confirmed_by(&self, run: &GateRunSummary) -> Option<&str> {
        let confirmation = self.tier(&run.tier)?.confirmation.as_ref()?;
        let same_version = self.tier(&run.tier).is_some_and(|t| {
            t.candidate_version.as_ref().or(t.current_version.as_ref()) == Some(&run.version)
        });
        same_version.then_some(confirmation.confirmed_by.as_str())
    }

    // ---- messages from the daemon ------------------------------------------

    pub fn on_msg(&mut self, msg: Msg) -> Vec<Command> {
        match msg {
            Msg::Identity(who) => {
                self.operator = who.name.clone();
                self.identity = Some(who);
                Vec::new()
            }
            Msg::Attached(url) => {
                self.url = url;
                Vec::new()
            }
            Msg::Connected => {
                self.connection = Connection::Live;
                // Whatever happened while away is in the state, not the stream.
                vec![Command::Resync]
            }
            Msg::Disconnected(error) => {
                self.connection = Connection::Reconnecting { error };
                Vec::new()
            }
            Msg::State(state) => {
                let shown = self.detail_run();
                self.apply_state(state);
                let mut commands = self.follow_detail(shown);
                // Whatever changed the state may have been an act: an open
                // audit view fetches what came after what it shows.
                if matches!(self.screen, Screen::Audit(_)) {
                    commands.extend(self.fetch_audit());
                }
                commands
            }
            Msg::Event(envelope) => {
                let shown = self.detail_run();
                let mut commands = self.apply_event(envelope);
                commands.extend(self.follow_detail(shown));
                commands
            }
            Msg::Replayed(envelope) => {
                self.note_event(&envelope);
                Vec::new()
            }
            Msg::Undecodable(_) => {
                self.undecodable += 1;
                Vec::new()
            }
            Msg::Run(run) => {
                self.runs.insert(run.run_id, run);
                Vec::new()
            }
            Msg::Audit { since, entries, more } => {
                self.audit.loading = false;
                match entries {
                    // An answer for a cursor no longer ours would repeat entries.
                    Ok(entries) if since == self.audit.cursor() => {
                        self.audit.error = None;
                        // Newer entries go above: a selection below the
                        // newest (or an entry open) stays on its entry.
                        if let Screen::Audit(view) = &mut self.screen
                            && (view.selected > 0 || view.open)
                        {
                            view.selected += entries.len();
                        }
                        self.audit.entries.extend(entries);
                        let over = self.audit.entries.len().saturating_sub(AUDIT_KEPT);
                        self.audit.entries.drain(..over);
                        if more && matches!(self.screen, Screen::Audit(_)) {
                            return self.fetch_audit().into_iter().collect();
                        }
                    }
                    Ok(_) => {}
                    Err(e) => self.audit.error = Some(e),
                }
                Vec::new()
            }
            Msg::History { of, runs } => {
                if let Screen::History(history) = &mut self.screen
                    && history.of == of
                {
                    history.runs = Some(runs);
                }
                Vec::new()
            }
            Msg::LogFrom { run_id, from, bytes } => {
                self.filling.remove(&run_id);
                match bytes {
                    Ok(bytes) => {
                        let tail = self.tail_mut(run_id);
                        tail.skip_to(from);
                        let _ = tail.push_at(from, &bytes);
                    }
                    Err(text) => self.status = Some(StatusLine { ok: false, text }),
                }
                Vec::new()
            }
            Msg::Log { run_id, text } => {
                // One full log at a time: each may be tens of MiB.
                self.full_logs.clear();
                self.full_logs
                    .insert(run_id, LogTail::from_text(&text, FULL_LOG_BYTES, FULL_LOG_LINES));
                if let Screen::Detail(detail) = &mut self.screen
                    && detail.run_id == run_id
                {
                    detail.log = LogSource::Full;
                }
                Vec::new()
            }
            Msg::Done { ok, text } => {
                if !ok && let Screen::Detail(detail) = &mut self.screen {
                    // A failed log fetch falls back to the live tail.
                    if detail.log == LogSource::Loading {
                        detail.log = LogSource::Live;
                    }
                }
                self.status = Some(StatusLine { ok, text });
                Vec::new()
            }
        }
    }

    /// The run a detail screen shows, as known now.
    fn detail_run(&self) -> Option<GateRunSummary> {
        let Screen::Detail(detail) = &self.screen else { return None };
        self.run(detail.run_id).cloned()
    }

    /// After the state changed under a detail screen whose run it no
    /// longer holds (a newer run of the gate replaced it: a retry after an
    /// interruption or a takeover, a rerun): a screen following its log
    /// moves on to the newer run, live; any other keeps its run, fetched
    /// as it is now.
    fn follow_detail(&mut self, shown: Option<GateRunSummary>) -> Vec<Command> {
        let (Screen::Detail(detail), Some(shown)) = (&self.screen, shown) else {
            return Vec::new();
        };
        if self.run(detail.run_id).is_some() {
            return Vec::new();
        }
        let follow = detail.follow;
        let newer = self.tier(&shown.tier).and_then(|tier| {
            tier.gates
                .iter()
                .find(|r| {
                    r.gate == shown.gate && r.version == shown.version && r.run_id > shown.run_id
                })
                .cloned()
        });
        let run_id = shown.run_id;
        self.runs.insert(run_id, shown);
        match newer {
            Some(newer) if follow => self.open_detail(&newer),
            _ => vec![Command::FetchRun(run_id)],
        }
    }

    fn apply_state(&mut self, state: StateResponse) {
        self.state = Some(state);
        let rows = self.visible_rows();
        let still_there = self
            .selected
            .as_ref()
            .is_some_and(|s| rows.iter().any(|(t, r)| t.name == s.tier && r.gate == s.gate));
        if !still_there {
            self.selected =
                rows.first().map(|(t, r)| GateRef { tier: t.name.clone(), gate: r.gate });
        }
    }

    fn apply_event(&mut self, envelope: EventEnvelope) -> Vec<Command> {
        let mut commands = Vec::new();
        match &envelope.event {
            Event::GateLogChunk { run_id, offset, bytes, .. } => {
                // Bytes past what the tail holds (this TUI connected mid-run,
                // or fell behind): fetch what is missing, then go on live.
                if let Continuity::Gap { from } = self.tail_mut(*run_id).push_at(*offset, bytes) {
                    commands.extend(self.fill(*run_id, from, *offset));
                }
                return commands;
            }
            Event::GateStart { run_id, summary: Some(summary), .. } => {
                self.tail_mut(*run_id);
                self.upsert_run((**summary).clone());
            }
            Event::GateStart { run_id, tier, version, gate, summary: None } => {
                self.tail_mut(*run_id);
                self.upsert_run(GateRunSummary {
                    run_id: *run_id,
                    tier: tier.clone(),
                    version: version.clone(),
                    gate: *gate,
                    status: RunState::Running,
                    outcome: None,
                    started_at: envelope.at,
                    finished_at: None,
                    log_ref: None,
                    component_digest: String::new(),
                    contract: String::new(),
                    classifier_digest: None,
                    classifier_contract: None,
                    fuel: None,
                    peak_memory: None,
                    attempt: 1,
                    max_attempts: 1,
                });
                // The daemon's row has the provenance the event does not carry.
                commands.push(Command::Resync);
            }
            Event::GateDone { run_id, outcome, summary, .. }
            | Event::GateUpdated { run_id, outcome, summary, .. } => {
                let mut known = false;
                for run in self.runs_mut(*run_id) {
                    known = true;
                    match summary {
                        // The run as the daemon has it: updated in place.
                        Some(summary) => *run = (**summary).clone(),
                        None => {
                            run.status = RunState::of(&outcome.status);
                            run.outcome = Some(outcome.status.clone());
                            run.finished_at = Some(envelope.at);
                            run.log_ref = outcome.log_ref.clone();
                        }
                    }
                }
                match summary {
                    Some(summary) if !known => self.upsert_run((**summary).clone()),
                    Some(_) => {}
                    // A daemon before summaries: its row has what the event lacks.
                    None => commands.push(Command::Resync),
                }
                if let Screen::Detail(detail) = &self.screen
                    && detail.run_id == *run_id
                    && is_unclassified(&outcome.status)
                {
                    commands.push(Command::FetchLog(*run_id));
                }
            }
            Event::Lagged { missed } => {
                self.status = Some(StatusLine {
                    ok: false,
                    text: format!("fell behind the daemon ({missed} events missed); resynced"),
                });
                commands.push(Command::Resync);
                // Every running run's tail resumes where it stopped.
                let running: Vec<(GateRunId, u64)> = self
                    .tails
                    .iter()
                    .filter(|(id, _)| self.run(**id).is_some_and(|r| r.status == RunState::Running))
                    .map(|(id, tail)| (*id, tail.next()))
                    .collect();
                for (run_id, from) in running {
                    commands.extend(self.fill(run_id, from, from));
                }
            }
            // Anything else moves versions between tiers or records an
            // action: the state has the result.
            _ => commands.push(Command::Resync),
        }
        self.note_event(&envelope);
        commands
    }

    /// The fetch that fills a tail's gap from `from`, unless one is under
    /// way. Only the end is fetched (`TAIL_BYTES` before `upto`, the
    /// offset live bytes arrive at): the tail shows no more.
    fn fill(&mut self, run_id: GateRunId, from: u64, upto: u64) -> Option<Command> {
        if !self.filling.insert(run_id) {
            return None;
        }
        let from = from.max(upto.saturating_sub(TAIL_BYTES as u64));
        Some(Command::FetchLogFrom { run_id, from })
    }

    fn tail_mut(&mut self, run_id: GateRunId) -> &mut LogTail {
        if !self.tails.contains_key(&run_id) {
            if self.tails.len() >= MAX_TAILS {
                let open = match &self.screen {
                    Screen::Detail(d) => Some(d.run_id),
                    Screen::Overview | Screen::History(_) | Screen::Audit(_) => None,
                };
                // The oldest finished run's tail goes first; a running
                // one's only if every kept tail is still running.
                let finished =
                    |id: &GateRunId| self.run(*id).is_none_or(|r| r.status != RunState::Running);
                let position = self
                    .tail_order
                    .iter()
                    .position(|id| Some(*id) != open && finished(id))
                    .or_else(|| self.tail_order.iter().position(|id| Some(*id) != open));
                if let Some(position) = position
                    && let Some(old) = self.tail_order.remove(position)
                {
                    self.tails.remove(&old);
                }
            }
            self.tail_order.push_back(run_id);
        }
        self.tails.entry(run_id).or_insert_with(|| LogTail::new(TAIL_BYTES, TAIL_LINES))
    }

    fn runs_mut(&mut self, run_id: GateRunId) -> impl Iterator<Item = &mut GateRunSummary> {
        let in_state = self
            .state
            .iter_mut()
            .flat_map(|s| s.tiers.iter_mut())
            .flat_map(|t| t.gates.iter_mut())
            .filter(move |r| r.run_id == run_id);
        in_state.chain(self.runs.get_mut(&run_id))
    }

    /// An event's line in the events pane, if it has one.
    fn note_event(&mut self, envelope: &EventEnvelope) {
        if let Some((text, tone)) = describe(&envelope.event) {
            self.events.push_front(EventLine { at: envelope.at, text, tone });
            self.events.truncate(MAX_EVENT_LINES);
        }
    }

    /// A new run replaces its gate's row in its tier, if the tier shows that version.
    fn upsert_run(&mut self, run: GateRunSummary) {
        let Some(state) = &mut self.state else { return };
        let Some(tier) = state.tiers.iter_mut().find(|t| t.name == run.tier) else { return };
        let shown = tier.candidate_version.as_ref().or(tier.current_version.as_ref());
        if shown != Some(&run.version) {
            return;
        }
        match tier.gates.iter_mut().find(|g| g.gate == run.gate) {
            Some(row) => *row = run,
            None => tier.gates.push(run),
        }
    }

    // ---- keys --------------------------------------------------------------

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return vec![Command::Quit];
        }
        if let Some(dialog) = self.dialog.clone() {
            return self.on_dialog_key(dialog, key);
        }
        if self.filter_editing {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filter_editing = false;
                }
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.keep_selection_visible();
            return Vec::new();
        }
        if let Screen::Audit(view) = self.screen.clone()
            && key.code != KeyCode::Char('?')
        {
            return self.on_audit_key(view, key);
        }
        match key.code {
            KeyCode::Char('q') => return vec![Command::Quit],
            // A read: a viewer may open it too.
            KeyCode::Char('A') => {
                self.screen = Screen::Audit(AuditView::default());
                return self.fetch_audit().into_iter().collect();
            }
            KeyCode::Char('?') => {
                self.dialog = Some(Dialog::Help);
                return Vec::new();
            }
            KeyCode::Char('R') => {
                self.status = Some(StatusLine { ok: true, text: "resyncing".into() });
                return vec![Command::Resync];
            }
            KeyCode::Char('b') => return self.ask(Dialog::FetchBackup),
            KeyCode::Char('p') => {
                let pending = self.state.as_ref().and_then(|s| s.pending_components.first());
                match pending.cloned() {
                    Some(record) => return self.ask(Dialog::Component { record, scroll: 0 }),
                    None => {
                        self.status = Some(StatusLine {
                            ok: true,
                            text: "no updated component is waiting".into(),
                        });
                        return Vec::new();
                    }
                }
            }
            _ => {}
        }
        match self.screen.clone() {
            Screen::Overview => self.on_overview_key(key),
            Screen::Detail(detail) => self.on_detail_key(detail, key),
            Screen::History(history) => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('q')) {
                    self.screen = Screen::Overview;
                } else {
                    self.screen = Screen::History(history);
                }
                Vec::new()
            }
            Screen::Audit(_) => Vec::new(),
        }
    }

    fn on_audit_key(&mut self, mut view: AuditView, key: KeyEvent) -> Vec<Command> {
        let last = self.audit.entries.len().saturating_sub(1);
        match key.code {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('q') if view.open => {
                view.open = false;
            }
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('q') => {
                self.screen = Screen::Overview;
                return Vec::new();
            }
            KeyCode::Down | KeyCode::Char('j') => view.selected = (view.selected + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => view.selected = view.selected.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => {
                view.selected = (view.selected + 10).min(last);
            }
            KeyCode::PageUp => view.selected = view.selected.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => view.selected = 0,
            KeyCode::End | KeyCode::Char('G') => view.selected = last,
            KeyCode::Enter => view.open = !view.open,
            KeyCode::Char('R') => {
                self.screen = Screen::Audit(view);
                return self.fetch_audit().into_iter().collect();
            }
            _ => {}
        }
        self.screen = Screen::Audit(view);
        Vec::new()
    }

    /// The fetch of the audit entries after those held, unless one is under way.
    fn fetch_audit(&mut self) -> Option<Command> {
        if self.audit.loading {
            return None;
        }
        self.audit.loading = true;
        Some(Command::FetchAudit { since: self.audit.cursor() })
    }

    fn on_overview_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Char('/') => {
                self.filter_editing = true;
            }
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.keep_selection_visible();
            }
            KeyCode::Enter => {
                if let Some((_, run)) = self.selected_row() {
                    let run = run.clone();
                    return self.open_detail(&run);
                }
            }
            KeyCode::Char('h') | KeyCode::Char('v') => {
                if let Some((tier, run)) = self.selected_row() {
                    let of = match key.code {
                        KeyCode::Char('h') => {
                            HistoryOf::Gate { tier: tier.name.clone(), gate: run.gate }
                        }
                        _ => HistoryOf::Version(run.version.clone()),
                    };
                    self.screen = Screen::History(History { of: of.clone(), runs: None });
                    return vec![Command::FetchHistory(of)];
                }
            }
            KeyCode::Char('c') => {
                if let Some((_, run)) = self.selected_row() {
                    let run = run.clone();
                    return self.ask_confirm(run);
                }
            }
            KeyCode::Char('r') => {
                if let Some((_, run)) = self.selected_row() {
                    let run = run.clone();
                    return self.ask_rerun(run);
                }
            }
            KeyCode::Char('x') => {
                if let Some((_, run)) = self.selected_row() {
                    let run = run.clone();
                    return self.ask_cancel(run);
                }
            }
            KeyCode::Char('Z') => {
                return self.ask_reason(TierAction::Freeze { tier: None });
            }
            // Whether the tier can be lifted or rolled back is no
            // matter to a token that may do neither.
            KeyCode::Char('z') | KeyCode::Char('u') | KeyCode::Char('B') if self.may_act() => {
                if let Some((tier, _)) = self.selected_row() {
                    let tier = tier.clone();
                    return match key.code {
                        KeyCode::Char('z') => {
                            self.ask_reason(TierAction::Freeze { tier: Some(tier.name) })
                        }
                        KeyCode::Char('u') => self.ask_lift(tier),
                        _ => self.ask_rollback(tier),
                    };
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_detail_key(&mut self, mut detail: Detail, key: KeyEvent) -> Vec<Command> {
        let mut commands = Vec::new();
        let (first, end) =
            self.log_for(&detail).map_or((0, 0), |t| (t.first_line(), t.end_line_no()));
        let height = u64::from(self.log_height.get().max(1));
        let page = height.saturating_sub(1).max(1) as i64;
        match key.code {
            KeyCode::Esc | KeyCode::Backspace => {
                self.screen = Screen::Overview;
                return commands;
            }
            KeyCode::Char('f') => {
                detail.follow = !detail.follow;
                detail.top = end.saturating_sub(height).max(first);
            }
            KeyCode::Up | KeyCode::Char('k') => scroll(&mut detail, first, end, height, -1),
            KeyCode::Down | KeyCode::Char('j') => scroll(&mut detail, first, end, height, 1),
            KeyCode::PageUp => scroll(&mut detail, first, end, height, -page),
            KeyCode::PageDown | KeyCode::Char(' ') => scroll(&mut detail, first, end, height, page),
            KeyCode::Home | KeyCode::Char('g') => {
                detail.follow = false;
                detail.top = first;
            }
            KeyCode::End | KeyCode::Char('G') => detail.follow = true,
            KeyCode::Char('l') => {
                detail.log = LogSource::Loading;
                commands.push(Command::FetchLog(detail.run_id));
            }
            KeyCode::Char('t') => detail.log = LogSource::Live,
            KeyCode::Char('c') | KeyCode::Char('r') | KeyCode::Char('x') => {
                if let Some(run) = self.run(detail.run_id).cloned() {
                    self.screen = Screen::Detail(detail);
                    return match key.code {
                        KeyCode::Char('c') => self.ask_confirm(run),
                        KeyCode::Char('r') => self.ask_rerun(run),
                        _ => self.ask_cancel(run),
                    };
                }
            }
            _ => {}
        }
        self.screen = Screen::Detail(detail);
        commands
    }

    fn on_dialog_key(&mut self, dialog: Dialog, key: KeyEvent) -> Vec<Command> {
        if let Dialog::Component { record, scroll } = &dialog {
            let last = record.diff.len().saturating_sub(1);
            let scrolled = match key.code {
                KeyCode::Down | KeyCode::Char('j') => Some((scroll + 1).min(last)),
                KeyCode::Up | KeyCode::Char('k') => Some(scroll.saturating_sub(1)),
                KeyCode::PageDown | KeyCode::Char(' ') => Some((scroll + 10).min(last)),
                KeyCode::PageUp => Some(scroll.saturating_sub(10)),
                _ => None,
            };
            if let Some(scroll) = scrolled {
                self.dialog = Some(Dialog::Component { record: record.clone(), scroll });
                return Vec::new();
            }
            let accept = match key.code {
                KeyCode::Char('a') => true,
                KeyCode::Char('x') => false,
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('n') => {
                    self.dialog = None;
                    return Vec::new();
                }
                _ => return Vec::new(),
            };
            self.dialog = None;
            let verb = if accept { "accepting" } else { "rejecting" };
            self.status = Some(StatusLine {
                ok: true,
                text: format!("{verb} the {} component…", record.kind),
            });
            return vec![Command::SettleComponent {
                kind: record.kind,
                accept,
                digest: record.digest.clone(),
            }];
        }
        if let Dialog::Reason { action, mut text } = dialog {
            match key.code {
                KeyCode::Esc => {
                    self.dialog = None;
                    self.status = Some(StatusLine { ok: true, text: "cancelled".into() });
                    return Vec::new();
                }
                KeyCode::Enter if text.trim().is_empty() => {
                    self.status = Some(StatusLine {
                        ok: false,
                        text: "a reason is needed: it is recorded and shown to everyone".into(),
                    });
                }
                KeyCode::Enter => {
                    self.status = None;
                    self.dialog = Some(Dialog::Tier { action, reason: text.trim().to_owned() });
                    return Vec::new();
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if text.len() + c.len_utf8() <= MAX_REASON => {
                    // A complaint about an empty reason is answered.
                    self.status = None;
                    text.push(c);
                }
                _ => {}
            }
            self.dialog = Some(Dialog::Reason { action, text });
            return Vec::new();
        }
        if let Dialog::Help = dialog {
            if matches!(key.code, KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')) {
                self.dialog = None;
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                self.dialog = None;
                let by = self.operator.clone();
                let (command, doing) = match dialog {
                    Dialog::Confirm { run } => (
                        Command::Confirm { run_id: run.run_id, by },
                        format!("confirming {} {} at {}…", run.gate, run.version, run.tier),
                    ),
                    Dialog::Rerun { run } => (
                        Command::Rerun { run_id: run.run_id, by },
                        format!("asking to run {} again at {}…", run.gate, run.tier),
                    ),
                    Dialog::Cancel { run } => (
                        Command::Cancel { run_id: run.run_id, by },
                        format!("cancelling {} for {} at {}…", run.gate, run.version, run.tier),
                    ),
                    Dialog::FetchBackup => (Command::FetchBackup, "fetching a backup…".into()),
                    Dialog::Tier { action, reason } => tier_command(action, reason),
                    Dialog::Help | Dialog::Component { .. } | Dialog::Reason { .. } => {
                        unreachable!("handled above")
                    }
                };
                self.status = Some(StatusLine { ok: true, text: doing });
                vec![command]
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc | KeyCode::Char('q') => {
                self.dialog = None;
                self.status = Some(StatusLine { ok: true, text: "cancelled".into() });
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn open_detail(&mut self, run: &GateRunSummary) -> Vec<Command> {
        let mut commands = Vec::new();
        let finished = run.status != RunState::Running;
        let have_tail = self.tails.get(&run.run_id).is_some_and(|t| !t.is_empty());
        // A finished run's log is on the daemon; the tail would only have
        // what arrived while this TUI was open. An unclassified run is read
        // in its log first of all.
        let log = if finished && (!have_tail || run.outcome.as_ref().is_some_and(is_unclassified)) {
            commands.push(Command::FetchLog(run.run_id));
            LogSource::Loading
        } else {
            LogSource::Live
        };
        self.screen = Screen::Detail(Detail { run_id: run.run_id, follow: true, top: 0, log });
        commands
    }

    /// Whether this TUI's token may act (confirm, reject, rerun, cancel): it
    /// has one, and it is not a viewer's. Until the daemon says whose it
    /// is, actions are offered; the daemon refuses what the role may not.
    pub fn can_act(&self) -> bool {
        self.has_token && self.identity.as_ref().is_none_or(|who| who.role >= Role::Operator)
    }

    fn ask(&mut self, dialog: Dialog) -> Vec<Command> {
        if self.may_act() {
            self.dialog = Some(dialog);
        }
        Vec::new()
    }

    /// Whether this token may act; if not, the status line says why.
    fn may_act(&mut self) -> bool {
        if !self.has_token {
            self.status = Some(StatusLine {
                ok: false,
                text: "actions need the daemon's token: start with --token-file FILE".into(),
            });
        } else if let Some(who) = self.identity.as_ref().filter(|_| !self.can_act()) {
            self.status = Some(StatusLine {
                ok: false,
                text: format!("{} is a {}: this token reads only", who.name, who.role),
            });
        } else {
            return true;
        }
        false
    }

    /// Asks the reason for `action`, then y/n.
    fn ask_reason(&mut self, action: TierAction) -> Vec<Command> {
        self.ask(Dialog::Reason { action, text: String::new() })
    }

    fn ask_lift(&mut self, tier: TierState) -> Vec<Command> {
        let why_not = match &tier.frozen {
            None => format!("{} is not frozen", tier.name),
            Some(freeze @ FreezeState { source: FreezeSource::Manual { id }, .. }) => {
                let action =
                    TierAction::Lift { tier: tier.name.clone(), id: *id, freeze: freeze.clone() };
                return self.ask(Dialog::Tier { action, reason: String::new() });
            }
            Some(FreezeState { source: FreezeSource::Window, until, .. }) => format!(
                "{} is frozen by a window in the config{}: it thaws by the clock, and only an admin's override lets a version in",
                tier.name,
                until.map(|u| format!(" until {}", u.format("%a %H:%M UTC"))).unwrap_or_default()
            ),
        };
        self.status = Some(StatusLine { ok: false, text: why_not });
        Vec::new()
    }

    fn ask_rollback(&mut self, tier: TierState) -> Vec<Command> {
        let Some(to) = tier.rollback_to.clone() else {
            let text = match &tier.current_version {
                None => format!("{} runs no version yet: there is nothing to roll back", tier.name),
                Some(current) => format!(
                    "{} has no version to roll back to: none was current there before {current} with its artifact kept",
                    tier.name
                ),
            };
            self.status = Some(StatusLine { ok: false, text });
            return Vec::new();
        };
        self.ask_reason(TierAction::Rollback { tier: tier.name, from: tier.current_version, to })
    }

    fn ask_confirm(&mut self, run: GateRunSummary) -> Vec<Command> {
        let waiting = run.gate == GateKind::ManualConfirm && run.status == RunState::Blocked;
        if !waiting {
            self.status = Some(StatusLine {
                ok: false,
                text: format!(
                    "{} is {}: only a manual_confirm gate that is waiting can be confirmed",
                    run.gate, run.status
                ),
            });
            return Vec::new();
        }
        self.ask(Dialog::Confirm { run })
    }

    fn ask_rerun(&mut self, run: GateRunSummary) -> Vec<Command> {
        if run.status != RunState::Failed {
            self.status = Some(StatusLine {
                ok: false,
                text: format!("{} is {}: only a failed gate can run again", run.gate, run.status),
            });
            return Vec::new();
        }
        self.ask(Dialog::Rerun { run })
    }

    fn ask_cancel(&mut self, run: GateRunSummary) -> Vec<Command> {
        if run.status != RunState::Running {
            self.status = Some(StatusLine {
                ok: false,
                text: format!(
                    "{} is {}: only a running gate can be cancelled",
                    run.gate, run.status
                ),
            });
            return Vec::new();
        }
        self.ask(Dialog::Cancel { run })
    }

    fn move_selection(&mut self, by: isize) {
        let rows = self.visible_rows();
        if rows.is_empty() {
            return;
        }
        let current = self
            .selected
            .as_ref()
            .and_then(|s| rows.iter().position(|(t, r)| t.name == s.tier && r.gate == s.gate))
            .unwrap_or(0);
        let next = current.saturating_add_signed(by).min(rows.len() - 1);
        let (tier, run) = rows[next];
        self.selected = Some(GateRef { tier: tier.name.clone(), gate: run.gate });
    }

    fn keep_selection_visible(&mut self) {
        if self.selected_row().is_none() {
            let first = self.visible_rows().first().map(|(t, r)| (t.name.clone(), r.gate));
            self.selected = first.map(|(tier, gate)| GateRef { tier, gate });
        }
    }
}

/// The command a tier action's yes sends, and what the status line says meanwhile.
fn tier_command(action: TierAction, reason: String) -> (Command, String) {
    match action {
        TierAction::Freeze { tier } => {
            let doing = match &tier {
                Some(tier) => format!("freezing {tier}…"),
                None => "freezing every tier…".into(),
            };
            (Command::Freeze { tier, reason }, doing)
        }
        TierAction::Lift { tier, id, .. } => {
            (Command::LiftFreeze { id }, format!("lifting freeze {id} on {tier}…"))
        }
        TierAction::Rollback { tier, to, .. } => {
            let doing = format!("rolling {tier} back to {to}…");
            (Command::Rollback { tier, to, reason }, doing)
        }
    }
}

fn scroll(detail: &mut Detail, first: u64, end: u64, height: u64, by: i64) {
    if detail.follow {
        detail.follow = false;
        detail.top = end.saturating_sub(height).max(first);
    }
    detail.top = detail.top.saturating_add_signed(by).clamp(first, end.max(first + 1) - 1);
}

pub fn is_unclassified(status: &GateStatus) -> bool {
    matches!(status, GateStatus::Failed { failure: GateFailure::Unclassified { .. } })
}

/// What the filter matches against: tier, gate, state and summary.
fn row_text(tier: &TierState, run: &GateRunSummary) -> String {
    let summary = run.outcome.as_ref().map(ToString::to_string).unwrap_or_default();
    format!("{} {} {} {} {}", tier.name, run.gate, run.status, run.version, summary).to_lowercase()
}
