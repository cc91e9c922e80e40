//! Talking to the daemon: the typed HTTP client (also used by `sando gate push` and friends), the TUI's worker thread that runs its requests, and the `/api/events` WebSocket on another thread that reconnects by itself. Both threads report to the UI as `Msg`s.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use sando_wire::{
    AuditEntry, AuditPage, BackupRow, CancelRequest, ComponentPart, ComponentRecord,
    ComponentVerdict, ConfirmRequest, Confirmation, ErrorBody, EventEnvelope, FrameError,
    FreezeRequest, FreezeState, GateKind, GateRunId, GateRunSummary, GatesResponse,
    OverrideRequest, ReclassifyRequest, ReclassifyResponse, RecordedCase, RerunRequest,
    RerunResponse, RollbackRequest, RollbackState, StateResponse, SweepResponse, TierId, Version,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tungstenite::Message;

use crate::app::{Command, Msg};

/// A persisted log can be large; the full-log view keeps only its end anyway.
const MAX_LOG_DOWNLOAD: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("daemon: {message} (HTTP {status})")]
    Refused { status: u16, message: String },
    #[error("unexpected answer from {path}: {reason}")]
    Unexpected { path: String, reason: String },
    #[error("{url:?} is not an http:// URL (like http://127.0.0.1:7878)")]
    BadUrl { url: String },
}

/// The daemon's HTTP API, typed; over one daemon, or several sharing a
/// store (a leader and its standbys), whichever answers.
#[derive(Clone)]
pub struct Client {
    daemons: Arc<[String]>,
    /// Which of `daemons` answered last: asked first next time.
    current: Arc<AtomicUsize>,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        Client::over(&[base.to_owned()], token)
    }

    /// A client of the daemons at `bases` (at least one): a request goes to
    /// the one that answered last, and to the next when it cannot be
    /// reached; a write a standby sends on (`307`) goes to the leader, but
    /// only when the leader is one of `bases`: the token goes nowhere else.
    pub fn over(bases: &[String], token: Option<String>) -> Result<Self, ClientError> {
        let daemons: Vec<String> =
            bases.iter().map(|b| b.trim_end_matches('/').to_owned()).collect();
        for base in &daemons {
            authority(base)?;
        }
        if daemons.is_empty() {
            return Err(ClientError::BadUrl { url: String::new() });
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Self { daemons: daemons.into(), current: Arc::default(), token, agent })
    }

    /// The daemon that answered last (the first given, before any did).
    pub fn base(&self) -> &str {
        &self.daemons[self.current.load(Ordering::Relaxed) % self.daemons.len()]
    }

    /// Every daemon this client may ask.
    pub fn daemons(&self) -> &[String] {
        &self.daemons
    }

    pub fn state(&self) -> Result<StateResponse, ClientError> {
        self.get_json("/api/state")
    }

    pub fn run(&self, id: GateRunId) -> Result<GateRunSummary, ClientError> {
        self.get_json(&format!("/api/gate-runs/{id}"))
    }

    /// The newest past runs (one page) of a gate at a tier, or of a version.
    pub fn history(&self, of: &crate::app::HistoryOf) -> Result<Vec<GateRunSummary>, ClientError> {
        let query = match of {
            crate::app::HistoryOf::Gate { tier, gate } => format!("tier={tier}&gate={gate}"),
            crate::app::HistoryOf::Version(version) => format!("version={version}"),
        };
        let page: sando_wire::GateRunsPage =
            self.get_json(&format!("/api/gate-runs?{query}&limit={HISTORY_PAGE}"))?;
        Ok(page.runs)
    }

    /// A fixture case made from the run's recorded classifier input.
    pub fn recorded_case(&self, id: GateRunId) -> Result<RecordedCase, ClientError> {
        self.get_json(&format!("/api/gate-runs/{id}/case"))
    }

    pub fn log(&self, id: GateRunId) -> Result<String, ClientError> {
        let path = format!("/api/gate-runs/{id}/log");
        let mut response = self.get(&path)?;
        let status = response.status().as_u16();
        let text =
            response.body_mut().with_config().limit(MAX_LOG_DOWNLOAD).read_to_string().map_err(
                |e| ClientError::Unexpected { path: path.clone(), reason: e.to_string() },
            )?;
        refused(status, &text)?;
        Ok(text)
    }

    /// One run's persisted log from byte `from` on, exactly as written.
    pub fn log_from(&self, id: GateRunId, from: u64) -> Result<Vec<u8>, ClientError> {
        let path = format!("/api/gate-runs/{id}/log?from={from}");
        let mut response = self.get(&path)?;
        let status = response.status().as_u16();
        let bytes =
            response.body_mut().with_config().limit(MAX_LOG_DOWNLOAD).read_to_vec().map_err(
                |e| ClientError::Unexpected { path: path.clone(), reason: e.to_string() },
            )?;
        refused(status, &String::from_utf8_lossy(&bytes))?;
        Ok(bytes)
    }

    pub fn confirm(&self, id: GateRunId, by: &str) -> Result<Confirmation, ClientError> {
        let body = ConfirmRequest { by: Some(by.to_owned()) };
        self.post_json(&format!("/api/gate-runs/{id}/confirm"), &body)
    }

    pub fn rerun(&self, id: GateRunId, by: &str) -> Result<RerunResponse, ClientError> {
        let body = RerunRequest { by: Some(by.to_owned()) };
        self.post_json(&format!("/api/gate-runs/{id}/rerun"), &body)
    }

    pub fn cancel(&self, id: GateRunId, by: &str) -> Result<serde_json::Value, ClientError> {
        let body = CancelRequest { by: Some(by.to_owned()) };
        self.post_json(&format!("/api/gate-runs/{id}/cancel"), &body)
    }

    pub fn whoami(&self) -> Result<sando_wire::WhoAmI, ClientError> {
        self.get_json("/api/whoami")
    }

    pub fn fetch_backup(&self) -> Result<BackupRow, ClientError> {
        self.post_json("/api/backup/fetch", &serde_json::json!({}))
    }

    /// Submits a component for `kind`. Held and rejected components are
    /// answers, not errors: the verdict says which, with its diff.
    pub fn push_component(
        &self,
        kind: GateKind,
        bytes: &[u8],
        accept_changes: bool,
        part: Option<ComponentPart>,
    ) -> Result<ComponentVerdict, ClientError> {
        let path = format!("/api/gates/{kind}?accept_changes={accept_changes}{}", part_query(part));
        verdict(&path, self.post(&path, Some("application/wasm"), bytes)?)
    }

    pub fn rollback_component(
        &self,
        kind: GateKind,
        accept_changes: bool,
        part: Option<ComponentPart>,
    ) -> Result<ComponentVerdict, ClientError> {
        let path = format!(
            "/api/gates/{kind}/rollback?accept_changes={accept_changes}{}",
            part_query(part)
        );
        verdict(&path, self.post(&path, None, &[])?)
    }

    /// Accepts (or rejects) the candidate waiting for `kind`; with `digest`,
    /// only if that is the candidate still waiting.
    pub fn settle_component(
        &self,
        kind: GateKind,
        accept: bool,
        digest: Option<&str>,
    ) -> Result<ComponentRecord, ClientError> {
        let action = if accept { "accept" } else { "reject" };
        let only = digest.map(|d| format!("?digest={d}")).unwrap_or_default();
        self.post_json(&format!("/api/gates/{kind}/{action}{only}"), &serde_json::json!({}))
    }

    /// Freezes `tier`, or every tier when `None`, until lifted.
    pub fn freeze(&self, tier: Option<&TierId>, reason: &str) -> Result<FreezeState, ClientError> {
        let body = FreezeRequest { tier: tier.cloned(), reason: reason.to_owned(), until: None };
        self.post_json("/api/freezes", &body)
    }

    /// Lifts the manual freeze `id`.
    pub fn lift_freeze(&self, id: i64) -> Result<FreezeState, ClientError> {
        decode(
            &format!("/api/freezes/{id}/lift"),
            self.post(&format!("/api/freezes/{id}/lift"), None, &[])?,
        )
    }

    /// Rolls `tier` back to `to` (absent: the version current before).
    pub fn rollback(
        &self,
        tier: &TierId,
        to: Option<&Version>,
        reason: &str,
    ) -> Result<RollbackState, ClientError> {
        let body = RollbackRequest { to: to.cloned(), reason: reason.to_owned() };
        self.post_json(&format!("/api/tiers/{tier}/rollback"), &body)
    }

    /// Lets `version` into the frozen `tier` (admins only).
    pub fn override_freeze(
        &self,
        tier: &TierId,
        version: &Version,
        reason: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let body = OverrideRequest { version: version.clone(), reason: reason.to_owned() };
        self.post_json(&format!("/api/tiers/{tier}/override"), &body)
    }

    /// One page of the audit trail after entry `since`, oldest first.
    pub fn audit(&self, since: i64, limit: u32) -> Result<AuditPage, ClientError> {
        self.get_json(&format!("/api/audit?since={since}&limit={limit}"))
    }

    /// The audit entries after `since`, up to `AUDIT_PAGES` pages, keeping
    /// the newest `AUDIT_KEPT`; and whether the trail goes on after them.
    pub fn audit_after(&self, since: i64) -> Result<(Vec<AuditEntry>, bool), ClientError> {
        let mut kept = std::collections::VecDeque::new();
        let mut cursor = since;
        for _ in 0..AUDIT_PAGES {
            let page = self.audit(cursor, AUDIT_PAGE)?;
            kept.extend(page.entries);
            let over = kept.len().saturating_sub(crate::app::AUDIT_KEPT);
            kept.drain(..over);
            match page.next {
                Some(next) => cursor = next,
                None => return Ok((kept.into(), false)),
            }
        }
        Ok((kept.into(), true))
    }

    pub fn gates(&self) -> Result<GatesResponse, ClientError> {
        self.get_json("/api/gates")
    }

    pub fn reclassify(
        &self,
        request: &ReclassifyRequest,
    ) -> Result<ReclassifyResponse, ClientError> {
        self.post_json("/api/reclassify", request)
    }

    /// Applies the retention policy now (`sando gc`); with `dry_run`, only says.
    pub fn sweep(&self, dry_run: bool) -> Result<SweepResponse, ClientError> {
        let path =
            if dry_run { "/api/retention/sweep?dry_run=true" } else { "/api/retention/sweep" };
        self.post_json(path, &serde_json::json!({}))
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        decode(path, self.get(path)?)
    }

    fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_string(body).expect("request bodies serialize");
        decode(path, self.post(path, Some("application/json"), body.as_bytes())?)
    }

    fn get(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        self.call(path, true, &|base| {
            let url = format!("{base}{path}");
            // A GET is safe to repeat, and the first may have gone out on a
            // kept-alive connection the daemon closed (it restarted: the
            // resync on reconnecting is the first request after), which
            // ureq reports as an error instead of trying a new connection.
            // The token goes with reads too: a daemon may need one for
            // them (`read_requires_token`), and `/api/whoami` always does.
            let get = || {
                let mut request = self.agent.get(&url);
                if let Some(token) = &self.token {
                    request = request.header("Authorization", format!("Bearer {token}"));
                }
                request.call()
            };
            match get() {
                Err(error) if !matches!(error, ureq::Error::Timeout(_)) => get(),
                first => first,
            }
        })
    }

    fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        self.call(path, false, &|base| {
            let mut request = self.agent.post(format!("{base}{path}"));
            if let Some(token) = &self.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            match content_type {
                Some(content_type) => request.content_type(content_type).send(body),
                None => request.send_empty(),
            }
        })
    }

    /// Sends a request by `send` to the daemon that answered last; to the
    /// next when one cannot be reached (a write only when nothing was sent:
    /// it is never sent twice); once on to the leader when a standby says
    /// so.
    fn call(
        &self,
        path: &str,
        repeatable: bool,
        send: &dyn Fn(&str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let first = self.current.load(Ordering::Relaxed);
        let mut unreachable = None;
        for step in 0..self.daemons.len() {
            let index = (first + step) % self.daemons.len();
            let base = &self.daemons[index];
            match send(base) {
                Ok(response) if response.status().as_u16() == 307 => {
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .unwrap_or_default();
                    let Some(leader) = self
                        .daemons
                        .iter()
                        .position(|d| location.strip_prefix(d.as_str()) == Some(path))
                    else {
                        return Err(ClientError::Refused {
                            status: 307,
                            message: format!(
                                "{base} is a standby and the leading daemon is at {location:?}, not one of the daemons given (add it with --url)"
                            ),
                        });
                    };
                    self.current.store(leader, Ordering::Relaxed);
                    return send(&self.daemons[leader])
                        .map_err(|e| unreachable_at(&self.daemons[leader], e));
                }
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(e) if repeatable || not_sent(&e) => unreachable = Some(unreachable_at(base, e)),
                Err(e) => return Err(unreachable_at(base, e)),
            }
        }
        Err(unreachable.expect("at least one daemon"))
    }
}

/// Whether a request failed before anything reached a daemon.
fn not_sent(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(e) => {
            matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotConnected)
        }
        _ => false,
    }
}

fn unreachable_at(base: &str, error: ureq::Error) -> ClientError {
    ClientError::Unreachable { url: base.to_owned(), reason: error.to_string() }
}

fn decode<T: DeserializeOwned>(
    path: &str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<T, ClientError> {
    decode_also(path, response, None)
}

/// A component verdict: 200, 202 and 422 all carry one.
fn verdict(
    path: &str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<ComponentVerdict, ClientError> {
    decode_also(path, response, Some(422))
}

/// The body as `T`, for a 2xx answer or the one other status `also` names.
fn decode_also<T: DeserializeOwned>(
    path: &str,
    mut response: ureq::http::Response<ureq::Body>,
    also: Option<u16>,
) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let unexpected = |reason: String| ClientError::Unexpected { path: path.to_owned(), reason };
    let text = response.body_mut().read_to_string().map_err(|e| unexpected(e.to_string()))?;
    if also != Some(status) {
        refused(status, &text)?;
    }
    serde_json::from_str(&text).map_err(|e| unexpected(e.to_string()))
}

/// A non-2xx answer, with the daemon's own sentence when it sent one.
fn refused(status: u16, text: &str) -> Result<(), ClientError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = serde_json::from_str::<ErrorBody>(text)
        .map(|b| b.error)
        .unwrap_or_else(|_| text.trim().chars().take(200).collect());
    Err(ClientError::Refused { status, message })
}

/// `host:port` of an `http://` base URL.
fn authority(base: &str) -> Result<&str, ClientError> {
    let bad = || ClientError::BadUrl { url: base.to_owned() };
    let rest = base.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.split('/').next().filter(|a| !a.is_empty()).ok_or_else(bad)?;
    Ok(authority)
}

/// Serves the UI's commands one at a time. Resyncs asked for while one is
/// pending are folded into one, so a burst of events costs one fetch.
pub fn serve_commands(client: Client, commands: Receiver<Command>, msgs: Sender<Msg>) {
    let mut pending: Vec<Command> = Vec::new();
    loop {
        if pending.is_empty() {
            match commands.recv() {
                Ok(command) => pending.push(command),
                Err(_) => return,
            }
        }
        while let Ok(command) = commands.try_recv() {
            if command != Command::Resync || !pending.contains(&Command::Resync) {
                pending.push(command);
            }
        }
        let command = pending.remove(0);
        let msg = match command {
            Command::Quit => return,
            Command::Resync => match client.state() {
                Ok(state) => Msg::State(state),
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::WhoAmI => match client.whoami() {
                Ok(who) => Msg::Identity(who),
                Err(e) => Msg::Done { ok: false, text: format!("who is this token: {e}") },
            },
            Command::Confirm { run_id, by } => match client.confirm(run_id, &by) {
                Ok(c) => Msg::Done {
                    ok: true,
                    text: format!("run {} confirmed by {}", c.run_id, c.confirmed_by),
                },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::Rerun { run_id, by } => match client.rerun(run_id, &by) {
                Ok(r) => Msg::Done {
                    ok: true,
                    text: format!("run {} will run again (asked by {})", r.run_id, r.requested_by),
                },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::Cancel { run_id, by } => match client.cancel(run_id, &by) {
                Ok(_) => Msg::Done { ok: true, text: format!("run {run_id} is being cancelled") },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::FetchBackup => match client.fetch_backup() {
                Ok(b) => Msg::Done {
                    ok: true,
                    text: format!("backup {} fetched from {}", b.id, b.source),
                },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::FetchRun(id) => match client.run(id) {
                Ok(run) => Msg::Run(run),
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::FetchHistory(of) => {
                let runs = client.history(&of).map_err(|e| e.to_string());
                Msg::History { of, runs }
            }
            Command::SettleComponent { kind, accept, digest } => {
                match client.settle_component(kind, accept, Some(&digest)) {
                    Ok(record) => Msg::Done {
                        ok: true,
                        text: format!(
                            "{} component {}: {}",
                            record.kind,
                            crate::describe::short(&record.digest),
                            record.state
                        ),
                    },
                    Err(e) => Msg::Done { ok: false, text: e.to_string() },
                }
            }
            Command::Freeze { tier, reason } => match client.freeze(tier.as_ref(), &reason) {
                Ok(f) => Msg::Done {
                    ok: true,
                    text: match &f.tier {
                        Some(tier) => format!("{tier} frozen by {}", f.by),
                        None => format!("every tier frozen by {}", f.by),
                    },
                },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::LiftFreeze { id } => match client.lift_freeze(id) {
                Ok(f) => Msg::Done {
                    ok: true,
                    text: match &f.tier {
                        Some(tier) => format!("freeze {id} on {tier} lifted"),
                        None => format!("freeze {id} on every tier lifted"),
                    },
                },
                Err(e) => Msg::Done { ok: false, text: e.to_string() },
            },
            Command::Rollback { tier, to, reason } => {
                match client.rollback(&tier, Some(&to), &reason) {
                    Ok(r) => Msg::Done {
                        ok: true,
                        text: format!(
                            "rolling {} back from {} to {} (asked by {})",
                            r.tier, r.from, r.to, r.by
                        ),
                    },
                    Err(e) => Msg::Done { ok: false, text: e.to_string() },
                }
            }
            Command::FetchAudit { since } => match client.audit_after(since) {
                Ok((entries, more)) => Msg::Audit { since, entries: Ok(entries), more },
                Err(e) => {
                    Msg::Audit { since, entries: Err(format!("audit trail: {e}")), more: false }
                }
            },
            Command::FetchLogFrom { run_id, from } => Msg::LogFrom {
                run_id,
                from,
                bytes: client
                    .log_from(run_id, from)
                    .map_err(|e| format!("log of run {run_id}: {e}")),
            },
            Command::FetchLog(run_id) => match client.log(run_id) {
                Ok(text) => Msg::Log { run_id, text },
                Err(e) => Msg::Done { ok: false, text: format!("log of run {run_id}: {e}") },
            },
        };
        if msgs.send(msg).is_err() {
            return;
        }
    }
}

/// Keeps a WebSocket on `/api/events` open for as long as the UI runs,
/// reconnecting with backoff, to the next of `daemons` each time (every
/// daemon sharing a store sends the leader's events); each (re)connection
/// is announced so the UI resyncs from `/api/state` and resumes its logs by
/// offset.
pub fn follow_events(daemons: Vec<String>, token: Option<String>, msgs: Sender<Msg>) {
    let mut backoff = Duration::from_millis(200);
    // The last event's `seq`: each connection asks for what came after it
    // (the first, for the backlog the daemon keeps).
    let mut since = 0;
    for base in daemons.iter().cycle() {
        let started = Instant::now();
        if daemons.len() > 1 && msgs.send(Msg::Attached(base.clone())).is_err() {
            return;
        }
        let error = match stream_events(base, token.as_deref(), &msgs, &mut since) {
            Ok(()) => "the daemon closed the event stream".to_owned(),
            Err(e) => e,
        };
        if msgs.send(Msg::Disconnected(error)).is_err() {
            return;
        }
        // A connection that lived a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(200);
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(3));
    }
}

/// How many past runs the history screens show: a page of the API's.
const HISTORY_PAGE: u32 = 50;
/// The audit trail is read in the API's largest pages, this many at a time.
const AUDIT_PAGE: u32 = 1000;
const AUDIT_PAGES: usize = 10;

/// One connection's life: `Ok` when the daemon closed it, `Err` with the
/// reason otherwise. `since` is the last event's `seq`, kept up to date.
fn stream_events(
    base: &str,
    token: Option<&str>,
    msgs: &Sender<Msg>,
    since: &mut u64,
) -> Result<(), String> {
    let authority = authority(base).map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(authority).map_err(|e| format!("connect: {e}"))?;
    // A silent peer is noticed: pings go out when nothing came for a while.
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let url = format!("ws://{authority}/api/events?since={since}");
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
        .map_err(|e| format!("handshake: {e}"))?;
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not a header value".to_owned())?;
        request.headers_mut().insert("Authorization", value);
    }
    let (mut socket, response) = match tungstenite::client(request, stream) {
        Ok(connected) => connected,
        // A daemon that never sent that `seq` (another history): the next
        // connection starts from its backlog.
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)))
            if response.status() == 400 && *since > 0 =>
        {
            *since = 0;
            return Err("the daemon does not know the last event seen; starting over".into());
        }
        Err(e) => return Err(format!("handshake: {e}")),
    };
    // Events up to this `seq` are the backlog replayed: history for the
    // events pane, already reflected in the state the UI fetches now.
    let replayed_to = response
        .headers()
        .get("sando-replayed-to")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if msgs.send(Msg::Connected).is_err() {
        return Ok(());
    }
    let mut quiet = 0;
    let mut forward = |decoded: Result<EventEnvelope, FrameError>| {
        let msg = match decoded {
            Ok(envelope) if envelope.seq <= replayed_to => Msg::Replayed(envelope),
            decoded => event_msg(decoded),
        };
        if let Msg::Event(envelope) | Msg::Replayed(envelope) = &msg {
            *since = (*since).max(envelope.seq);
        }
        msgs.send(msg).is_ok()
    };
    loop {
        match socket.read() {
            Ok(Message::Text(text)) => {
                quiet = 0;
                if !forward(EventEnvelope::from_text(text.as_str())) {
                    return Ok(());
                }
            }
            // A log chunk: its header, then its bytes exactly.
            Ok(Message::Binary(frame)) => {
                quiet = 0;
                if !forward(EventEnvelope::from_binary(frame)) {
                    return Ok(());
                }
            }
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => quiet = 0,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                quiet += 1;
                if quiet > 2 {
                    return Err("no answer to pings".into());
                }
                socket.send(Message::Ping(Default::default())).map_err(|e| e.to_string())?;
            }
            Err(tungstenite::Error::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn event_msg(decoded: Result<EventEnvelope, FrameError>) -> Msg {
    match decoded {
        Ok(envelope) => Msg::Event(envelope),
        Err(e) => Msg::Undecodable(e.to_string()),
    }
}

/// `&part=…` for a component request that names its part.
fn part_query(part: Option<ComponentPart>) -> String {
    part.map(|p| format!("&part={p}")).unwrap_or_default()
}
