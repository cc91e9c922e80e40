//! The HTTP and WebSocket API (BRIEF.md contract 6): state, events, rebuild, confirm, backup fetch, logs.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::components::ComponentError;
use super::events::{Event, EventEnvelope};
use super::reload;
use super::websocket::{self, Client};
use super::{Daemon, FetchError, Trigger, plan};
use crate::domain::CancelRequest;
use crate::domain::{
    AuditEntry, AuditPage, BackupRow, ComponentPart, ComponentRecord, ComponentState,
    ComponentVerdict, ConfirmRequest, Confirmation, Decision, ErrorBody, GateComponents, GateKind,
    GateRunId, GateRunSummary, GatesResponse, GitSha, LeaderState, RebuildRequest,
    ReclassifyRequest, ReclassifyResponse, RecordedCase, RejectRequest, RerunRequest,
    RerunResponse, RunState, StateResponse, TierState, Version,
};
use crate::identity::{Identity, Role};
use crate::store::NewAudit;
use crate::store::{RunRecord, Standing, StoreError};

/// Gate components are small (the shipped ones are under 200 KiB); this
/// leaves room for debug builds without letting a request fill memory.
const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// Bodies of the JSON routes are small; a larger one is refused unread.
const MAX_JSON_BYTES: usize = 64 << 10;

pub fn router(daemon: Arc<Daemon>) -> Router {
    // Every route that changes anything: the token is checked, and the
    // caller's identity made from it, by one layer per role, before any
    // body is read, so no handler can forget it or take a name from a body.
    let operating = Router::new()
        .route("/api/builds/{sha}/cancel", post(cancel_build))
        .route("/api/gate-runs/{run_id}/confirm", post(confirm))
        .route("/api/gate-runs/{run_id}/reject", post(reject))
        .route("/api/gate-runs/{run_id}/rerun", post(rerun))
        .route("/api/gate-runs/{run_id}/cancel", post(cancel_run))
        .route("/api/freezes", post(super::tier_control::freeze))
        .route("/api/freezes/{id}/lift", post(super::tier_control::lift))
        .route("/api/tiers/{tier}/rollback", post(super::tier_control::rollback))
        .route_layer(middleware::from_fn_with_state((daemon.clone(), Role::Operator), require_role))
        // Outermost: a standby sends a write on before reading anything.
        .route_layer(middleware::from_fn_with_state(daemon.clone(), to_leader));
    let administering = Router::new()
        .route("/api/rebuild", post(rebuild))
        .route("/api/backup/fetch", post(fetch_backup))
        .route(
            "/api/gates/{kind}",
            post(push_component).layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES)),
        )
        .route("/api/gates/{kind}/accept", post(accept_component))
        .route("/api/gates/{kind}/reject", post(reject_component))
        .route("/api/gates/{kind}/rollback", post(rollback_component))
        .route("/api/reclassify", post(reclassify))
        .route("/api/retention/sweep", post(sweep))
        .route("/api/tiers/{tier}/override", post(super::tier_control::override_freeze))
        .route_layer(middleware::from_fn_with_state((daemon.clone(), Role::Admin), require_role))
        .route_layer(middleware::from_fn_with_state(daemon.clone(), to_leader));
    // Who did what names people: a token is needed whatever `public_read` says.
    let auditing = Router::new()
        .route("/api/audit", get(audit_trail))
        .route("/api/whoami", get(whoami))
        .route_layer(middleware::from_fn_with_state((daemon.clone(), Role::Viewer), require_role));
    let reading = Router::new()
        .route("/api/state", get(state))
        .route("/api/freezes", get(super::tier_control::freezes))
        .route("/api/events", get(events))
        .route("/api/gate-runs", get(gate_runs))
        .route("/api/gate-runs/{run_id}", get(gate_run))
        .route("/api/gate-runs/{run_id}/log", get(gate_run_log))
        .route("/api/gate-runs/{run_id}/case", get(gate_run_case))
        .route("/api/gates", get(gates))
        .route("/logs/{version}/{gate}", get(logs))
        .route("/api/notifications", get(notifications))
        .route("/", get(super::page::overview))
        .route("/runs/{run_id}", get(super::page::run))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(daemon.clone(), require_read_access));
    Router::new()
        .merge(operating)
        .merge(administering)
        .merge(auditing)
        .merge(reading)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(middleware::map_response(json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(daemon)
}

/// A JSON body that may be left out (then `T::default()`); anything sent
/// must parse, and a refusal is an `ApiError` like every other.
struct OptionalJson<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Default> axum::extract::FromRequest<S>
    for OptionalJson<T>
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|e| {
            let message = format!("request body: {}", e.body_text());
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(message)
            } else {
                ApiError::BadRequest(message)
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::BadRequest(format!("request body: {e}")))
    }
}

/// Whatever an extractor refuses (a path that does not decode, a method
/// the route lacks, a body over its limit) is answered in the API's one
/// error form, `{"error": "..."}` on one line.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("request refused");
    let body = serde_json::to_vec(&ErrorBody { error: line.to_owned() }).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The caller's identity, from its token, with at least `needed`: put in
/// the request's extensions for the handler (`Extension<Identity>`).
async fn require_role(
    State((daemon, needed)): State<(Arc<Daemon>, Role)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let identity = authenticate(&daemon, request.headers())?;
    if identity.role < needed {
        return Err(ApiError::Forbidden(format!(
            "{} has the {} role; {} {} needs {needed}",
            identity.name,
            identity.role,
            request.method(),
            request.uri().path()
        )));
    }
    request.extensions_mut().insert(identity);
    Ok(next.run(request).await)
}

/// A standby answers a write with `307` to the leader's advertised URL
/// (the same path and query): the client sends it again there, with its
/// token. Redirecting rather than proxying keeps a standby from ever
/// holding an operator's request in flight across a takeover.
async fn to_leader(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if daemon.store.standing().acts() {
        return Ok(next.run(request).await);
    }
    match daemon.store.leader().await? {
        // A leader whose lease has run out is being replaced.
        Some(leader)
            if (Utc::now() - leader.renewed_at).to_std().unwrap_or_default()
                < daemon.config.leadership.lease =>
        {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            Err(ApiError::ToLeader(format!("{}{path}", leader.url)))
        }
        _ => Err(ApiError::Unavailable(
            "no daemon leads this store right now (a takeover is under way): try again in a few seconds"
                .into(),
        )),
    }
}

/// With `public_read = false`, reading needs the token too.
async fn require_read_access(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !daemon.config.public_read {
        authenticate(&daemon, request.headers())?;
    }
    Ok(next.run(request).await)
}

/// Every error the API answers with: a status and one sentence saying what
/// is wrong, as `{"error": "..."}`. Internal failures never leak details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// A write sent to a standby: where the leader takes it.
    #[error("this daemon is a standby: the leading daemon takes writes at {0}")]
    ToLeader(String),
    #[error(transparent)]
    Handshake(websocket::HandshakeError),
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            // Lost the lead between the check and the write: nothing was
            // written, and the client may send it again to the new leader.
            StoreError::Standby | StoreError::Deposed { .. } => {
                ApiError::Unavailable(format!("{error}; send it again"))
            }
            error => {
                tracing::error!(%error, "api");
                ApiError::Internal
            }
        }
    }
}

impl From<ComponentError> for ApiError {
    fn from(error: ComponentError) -> Self {
        match error {
            ComponentError::Store(e) => e.into(),
            ComponentError::Load { .. } | ComponentError::Task(_) => {
                tracing::error!(%error, "api");
                ApiError::Internal
            }
            ComponentError::LegacyIsDryRun => ApiError::BadRequest(error.to_string()),
            other => ApiError::Conflict(other.to_string()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge(format!("request body: {}", rejection.body_text()));
        }
        ApiError::BadRequest(format!("request body: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::ToLeader(_) => StatusCode::TEMPORARY_REDIRECT,
            ApiError::Handshake(ref error) => error.status(),
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let extra = match &self {
            ApiError::Handshake(error) => error.headers(),
            ApiError::ToLeader(url) => header::HeaderValue::from_str(url)
                .map(|url| vec![(header::LOCATION, url)])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut response = (status, Json(ErrorBody { error: self.to_string() })).into_response();
        response.headers_mut().extend(extra);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Who the bearer token is (its digest compared in constant time with
/// every operator's), or 401.
fn authenticate(daemon: &Daemon, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    daemon.operators.authenticate(given.trim()).ok_or(ApiError::Unauthorized)
}

/// Appends one act to the audit trail. The act is done already: a trail
/// that cannot be written is logged, and the request still answered as done.
pub(super) async fn audit(
    daemon: &Daemon,
    who: &Identity,
    action: &str,
    target: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) {
    audit_as(daemon, who.name.as_str(), action, target, before, after).await;
}

/// Appends an act of `actor` (an operator, or a policy acting on its own)
/// to the audit trail.
pub(super) async fn audit_as(
    daemon: &Daemon,
    actor: &str,
    action: &str,
    target: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) {
    let entry = NewAudit {
        at: Utc::now(),
        actor,
        action,
        target,
        before: before.map(|v| v.to_string()),
        after: after.map(|v| v.to_string()),
    };
    if let Err(error) = daemon.store.append_audit(&entry).await {
        tracing::error!(%error, action, "the audit trail could not be written");
    }
}

async fn state(State(daemon): State<Arc<Daemon>>) -> Result<Json<StateResponse>, ApiError> {
    state_of(&daemon).await.map(Json)
}

/// Notifications not delivered yet (oldest first, at most 500), each with
/// its tries and why the last one failed.
async fn notifications(
    State(daemon): State<Arc<Daemon>>,
) -> Result<Json<Vec<super::notify::PendingNotification>>, ApiError> {
    let pending = daemon.store.pending_notifications(500).await?;
    Ok(Json(pending.into_iter().map(Into::into).collect()))
}

/// What `/api/state` answers (and the status page shows).
pub(crate) async fn state_of(daemon: &Daemon) -> Result<StateResponse, ApiError> {
    let rows = daemon.store.tiers().await?;
    let mut tiers = Vec::new();
    let controls = super::tier_control::Controls::load(daemon).await?;
    for tier in &daemon.config.tiers {
        let row = rows.iter().find(|r| r.name == tier.name);
        let current = row.and_then(|r| r.current_version.clone());
        let candidate = row.and_then(|r| r.candidate_version.clone());
        let approvals = match &candidate {
            Some(version) => {
                super::approvals::standing(daemon, tier, version, false).await?.map(|s| s.view())
            }
            None => None,
        };
        let (gates, confirmation, previous_runs) = match candidate.as_ref().or(current.as_ref()) {
            Some(version) => (
                daemon
                    .store
                    .latest_runs(&tier.name, version)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                daemon.store.confirmation(&tier.name, version).await?,
                daemon.store.previous_runs(&tier.name, version).await?,
            ),
            None => (Vec::new(), None, Vec::new()),
        };
        let gates_passed = candidate.is_some()
            && tier.gates.iter().all(|spec| {
                gates.iter().any(|g: &GateRunSummary| {
                    g.gate == spec.kind()
                        && matches!(g.outcome, Some(crate::domain::GateStatus::Passed { .. }))
                })
            });
        let control = super::tier_control::view(
            daemon,
            &controls,
            tier,
            current.as_ref(),
            candidate.as_ref(),
            gates_passed,
        )
        .await?;
        tiers.push(TierState {
            name: tier.name.clone(),
            canary: tier.canary,
            current_version: current,
            candidate_version: candidate,
            pipeline: tier.gates.iter().map(|g| g.kind()).collect(),
            gates,
            confirmation,
            previous_runs,
            approvals,
            frozen: control.frozen,
            promotion_blocked: control.promotion_blocked,
            override_version: control.override_version,
            rollback_to: control.rollback_to,
            rollback: control.rollback,
        });
    }
    Ok(StateResponse {
        tiers,
        versions: daemon.store.recent_versions(20).await?.into_iter().map(Into::into).collect(),
        deploys: daemon.store.recent_deploys(20).await?,
        pending_components: daemon.store.pending_components().await?,
        // A standby plans nothing: the leader's decision loop is not its own.
        scheduler: daemon.store.standing().acts().then(|| daemon.work.status()),
        warnings: daemon.warnings.clone(),
        builds: daemon.store.recent_builds(10).await?,
        leader: daemon.store.leader().await?.map(|leader| LeaderState {
            this_daemon: daemon.store.standing() == Standing::Leads(leader.epoch),
            epoch: leader.epoch,
            holder: leader.holder,
            url: leader.url,
            since: leader.since,
        }),
    })
}

/// The metrics, in the OpenMetrics text format (`metrics.rs`); what the
/// store knows now (the versions waiting) read for this scrape.
async fn metrics(State(daemon): State<Arc<Daemon>>) -> Result<Response, ApiError> {
    let rows = daemon.store.tiers().await?;
    let now = Utc::now();
    let mut waiting = Vec::new();
    let mut before: Option<&crate::domain::TierId> = None;
    for tier in &daemon.config.tiers {
        let candidate =
            rows.iter().find(|r| r.name == tier.name).and_then(|r| r.candidate_version.clone());
        let since = match (&candidate, before) {
            (None, _) => None,
            (Some(version), Some(previous)) => daemon.store.arrival(previous, version).await?,
            (Some(version), None) => daemon.store.version(version).await?.map(|v| v.registered_at),
        };
        let seconds = candidate.map(|_| since.map_or(0, |at| (now - at).num_seconds().max(0)));
        waiting.push((tier.name.clone(), seconds));
        before = Some(&tier.name);
    }
    let status = daemon.work.status();
    let workers = if daemon.store.standing().acts() { status.workers.len() } else { 0 };
    let busy = status.workers.iter().filter(|w| w.doing.is_some()).count();
    let clients = daemon.config.max_event_clients - daemon.event_clients.available_permits();
    let text = super::metrics::global().encode(super::metrics::Now {
        workers,
        workers_busy: busy,
        event_clients: clients,
        waiting: &waiting,
    });
    Ok((
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        text,
    )
        .into_response())
}

/// The event stream. A browser page of another origin cannot open it (a
/// present `Origin` must be this daemon's own, or one `allowed_origins`
/// names), and the number of clients at once is bounded.
async fn events(State(daemon): State<Arc<Daemon>>, request: Request) -> Result<Response, ApiError> {
    let Query(asked) = Query::<EventsQuery>::try_from_uri(request.uri())?;
    let newest = daemon.bus.newest();
    if let Some(since) = asked.since
        && since > newest
    {
        return Err(ApiError::BadRequest(format!(
            "since={since} is beyond the newest event ({newest}): resume from a seq this daemon sent"
        )));
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let own = [format!("http://{host}"), format!("https://{host}")];
        let allowed = own.iter().any(|o| o == origin)
            || daemon.config.allowed_origins.iter().any(|o| o == origin);
        if !allowed {
            return Err(ApiError::Forbidden(format!(
                "origin {origin} may not open the event stream (allowed_origins in the config)"
            )));
        }
    }
    let Ok(permit) = daemon.event_clients.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable(format!(
            "too many event stream clients ({} connected); try again later",
            daemon.config.max_event_clients
        )));
    };
    let connection = request
        .extensions()
        .get::<axum::extract::ConnectInfo<websocket::Connection>>()
        .map(|info| info.0);
    let accepted = websocket::accept(request).map_err(ApiError::Handshake)?;
    // Subscribed before the handshake is answered: every event from the
    // moment the client sees the upgrade reaches it; with `since`, every
    // one before it is in the copy of the newest or in the store.
    let (events, recent, newest) = daemon.bus.subscribe_since();
    let send_timeout = daemon.config.event_send_timeout;
    let text_chunks = asked.chunks == Some(ChunkFrames::Text);
    tokio::spawn(async move {
        let mut client = match Client::open(accepted.upgrade, connection).await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "event stream client left during the upgrade");
                return;
            }
        };
        if let Some(since) = asked.since {
            match replay(&daemon, since, newest, recent).await {
                Ok(missed) => {
                    for wire in missed {
                        if !send_within(&mut client, &wire, send_timeout).await {
                            return;
                        }
                    }
                }
                Err(error) => {
                    // Told as a lag: the client resyncs from /api/state.
                    tracing::warn!(%error, "reading the event backlog");
                    let lagged = EventEnvelope {
                        seq: 0,
                        at: Utc::now(),
                        event: Event::Lagged { missed: newest.saturating_sub(since) },
                    };
                    let text = serde_json::to_string(&lagged).expect("events serialise");
                    if !send_within(&mut client, &websocket::text(&text), send_timeout).await {
                        return;
                    }
                }
            }
        }
        let stream = Stream { send_timeout, text_chunks, after: newest };
        stream_events(client, events, permit, stream).await
    });
    // Events up to this `seq` came before the subscription: with `since`,
    // the replay; every later one is live.
    let mut response = accepted.response;
    response.headers_mut().insert("sando-replayed-to", header::HeaderValue::from(newest));
    Ok(response)
}

/// `/api/events`' query: `since` (the last `seq` the client has) and
/// `chunks=text` (log chunks as text frames).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<u64>,
    chunks: Option<ChunkFrames>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChunkFrames {
    Binary,
    Text,
}

/// The events after `since` up to `newest`, as they were sent: from the
/// store's backlog, and from `recent` (the newest in memory, which has
/// those the backlog does not have yet), each once, in `seq` order. First
/// a `lagged` if the backlog let go of some of them. Log chunks are not
/// replayed: the client resumes a log by offset.
async fn replay(
    daemon: &Daemon,
    since: u64,
    newest: u64,
    recent: Vec<Arc<super::events::Published>>,
) -> Result<Vec<websocket::Wire>, crate::store::StoreError> {
    use std::collections::BTreeMap;
    let mut missed: BTreeMap<u64, websocket::Wire> = BTreeMap::new();
    let floor = u64::try_from(daemon.store.event_marks().await?.floor).unwrap_or(0);
    let since_i64 = i64::try_from(since).unwrap_or(i64::MAX);
    let stored = daemon.store.events_since(since_i64, super::events::BACKLOG_EVENTS).await?;
    for row in stored {
        let seq = u64::try_from(row.seq).unwrap_or(0);
        if seq <= newest {
            missed.insert(seq, websocket::text(&row.envelope));
        }
    }
    for published in recent {
        let seq = published.envelope.seq;
        if seq > since
            && seq <= newest
            && let Some(wire) = published.message()
        {
            missed.insert(seq, wire);
        }
    }
    let mut out = Vec::with_capacity(missed.len() + 1);
    if since < floor {
        let lagged = EventEnvelope {
            seq: 0,
            at: Utc::now(),
            event: Event::Lagged { missed: floor - since },
        };
        out.push(websocket::text(&serde_json::to_string(&lagged).expect("events serialise")));
    }
    out.extend(missed.into_values());
    Ok(out)
}

/// How one client is sent the live events.
struct Stream {
    send_timeout: std::time::Duration,
    /// Log chunks as text frames (`?chunks=text`).
    text_chunks: bool,
    /// Events up to this `seq` were sent already (replayed).
    after: u64,
}

/// A log chunk as a text frame: its envelope's JSON with `data`, its bytes
/// as UTF-8, or as base64 with `"encoding": "base64"` when they are not
/// UTF-8 (a chunk may end inside a character: that one is base64 too).
fn chunk_text(envelope: &EventEnvelope, bytes: &[u8]) -> websocket::Wire {
    use base64::Engine as _;
    let mut json = serde_json::to_value(envelope).expect("events serialise");
    let event = json["event"].as_object_mut().expect("an event is an object");
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            event.insert("data".into(), text.into());
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            event.insert("data".into(), encoded.into());
            event.insert("encoding".into(), "base64".into());
        }
    }
    websocket::text(&json.to_string())
}

/// Forwards the bus to one client. A client too slow to keep up is skipped
/// ahead and told how much it missed; it never slows the gates or others.
/// One that takes no message in `send_timeout` has stopped reading, and is
/// let go. The permit is its place among the clients, given back when it
/// leaves.
async fn stream_events(
    mut client: Client,
    mut events: tokio::sync::broadcast::Receiver<Arc<super::events::Published>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    stream: Stream,
) {
    let send_timeout = stream.send_timeout;
    loop {
        tokio::select! {
            received = events.recv() => {
                let (missed, next) = match received {
                    // Sent already, in the replay.
                    Ok(published) if published.envelope.seq <= stream.after => continue,
                    Ok(published)
                        if stream.text_chunks
                            && matches!(published.event, Event::GateLogChunk { .. }) =>
                    {
                        match published.chunk_bytes() {
                            Some(bytes) => (0, Some(chunk_text(&published.envelope, &bytes))),
                            None => skip_missed(&mut events, 1),
                        }
                    }
                    // Built once, by the first client to send it: a clone
                    // here is a refcount.
                    Ok(published) => match published.message() {
                        Some(message) => (0, Some(message)),
                        None => skip_missed(&mut events, 1),
                    },
                    Err(RecvError::Lagged(missed)) => skip_missed(&mut events, missed),
                    Err(RecvError::Closed) => return,
                };
                if missed > 0 {
                    super::metrics::global().lagged(missed);
                    let lagged =
                        EventEnvelope { seq: 0, at: Utc::now(), event: Event::Lagged { missed } };
                    let Ok(text) = serde_json::to_string(&lagged) else { continue };
                    if !send_within(&mut client, &websocket::text(&text), send_timeout).await {
                        return;
                    }
                }
                if let Some(message) = next
                    && !send_within(&mut client, &message, send_timeout).await
                {
                    return;
                }
            }
            () = client.closed() => return,
        }
    }
}

/// Sends one message to a client, unless it takes none in `timeout`;
/// whether it went.
async fn send_within(
    client: &mut Client,
    wire: &websocket::Wire,
    timeout: std::time::Duration,
) -> bool {
    match tokio::time::timeout(timeout, client.send(wire)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!(
                timeout = %humantime::format_duration(timeout),
                "an event stream client took no message in event_send_timeout; let go"
            );
            false
        }
    }
}

/// After `missed` events were lost to a subscriber: skips whatever else it
/// has lost among the events waiting, so one `lagged` says it all, and
/// returns the count with the first event it can still send. Log chunks
/// waiting are skipped too: each was written to its log before it was
/// sent, so the resume the subscriber makes on `lagged` brings their bytes,
/// and sending them as well would only give it more to discard and more
/// to fall behind on.
fn skip_missed(
    events: &mut tokio::sync::broadcast::Receiver<Arc<super::events::Published>>,
    mut missed: u64,
) -> (u64, Option<websocket::Wire>) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        match events.try_recv() {
            Ok(published) if matches!(published.event, Event::GateLogChunk { .. }) => missed += 1,
            Ok(published) => match published.message() {
                Some(message) => return (missed, Some(message)),
                None => missed += 1,
            },
            Err(TryRecvError::Lagged(more)) => missed += more,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (missed, None),
        }
    }
}

async fn rebuild(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<RebuildRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(request) = body?;
    daemon.rebuild(request.sha.clone()).await?;
    audit(&daemon, &who, "rebuild", format!("commit {}", request.sha), None, None).await;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sha": request.sha }))))
}

/// Stops a running gate: its process tree is ended and the run becomes
/// `failed{cancelled, by}`, which is never retried on its own.
async fn cancel_run(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(run_id): Path<String>,
    OptionalJson(_body): OptionalJson<CancelRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let run = find_run(&daemon, &run_id).await?;
    let by = who.name.to_string();
    if !daemon.work.cancel_run(run.run_id, &by) {
        return Err(ApiError::Conflict(format!(
            "gate run {} is {}, not running; nothing to cancel",
            run.run_id, run.status
        )));
    }
    tracing::info!(run_id = %run.run_id, by, "cancel requested");
    daemon.bus.send(Event::CancelRequested {
        target: format!("gate run {}", run.run_id),
        by: by.clone(),
    });
    let before = serde_json::json!({ "status": run.status });
    let after = serde_json::json!({ "cancel_requested": true });
    let target = format!("gate run {} ({} {} {})", run.run_id, run.tier, run.version, run.gate);
    audit(&daemon, &who, "cancel_run", target, Some(before), Some(after)).await;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "run_id": run.run_id, "by": by }))))
}

/// Stops a build in flight, or a requested build not yet started.
async fn cancel_build(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(sha): Path<String>,
    OptionalJson(_body): OptionalJson<CancelRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let sha: GitSha =
        sha.parse().map_err(|e: crate::domain::ParseError| ApiError::BadRequest(e.to_string()))?;
    let by = who.name.to_string();
    let cancelled = match daemon.work.cancel_build(&sha, &by) {
        Some(_request) => true,
        None => match daemon.store.open_rebuild_for(&sha).await? {
            Some(request) => daemon.store.settle_rebuild(request, Some(&by), Utc::now()).await?,
            None => false,
        },
    };
    if !cancelled {
        return Err(ApiError::NotFound(format!("no build of {sha} is requested or running")));
    }
    tracing::info!(%sha, by, "build cancel requested");
    daemon.bus.send(Event::CancelRequested { target: format!("build of {sha}"), by: by.clone() });
    audit(&daemon, &who, "cancel_build", format!("build of {sha}"), None, None).await;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "sha": sha, "by": by }))))
}

fn run_id(text: &str) -> Result<GateRunId, ApiError> {
    text.parse().map_err(|e: crate::domain::ParseError| ApiError::BadRequest(e.to_string()))
}

/// The run a path names: 400 if the id does not parse, 404 if there is none.
pub(crate) async fn find_run(daemon: &Daemon, text: &str) -> Result<RunRecord, ApiError> {
    let id = run_id(text)?;
    daemon.store.gate_run(id).await?.ok_or_else(|| ApiError::NotFound(format!("no gate run {id}")))
}

/// The most runs a page of `GET /api/gate-runs` holds; a larger `limit`
/// is a 400 rather than clamped, so a client never mistakes a short page
/// for the end.
pub const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

/// `GET /api/gate-runs`' query, every field parsed below.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    tier: Option<String>,
    gate: Option<String>,
    version: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

/// Past gate runs, newest first, a page at a time: each filter given must
/// match, `before` (a run id, exclusive) is where the page starts, and
/// `next_before` in the answer is the next page's.
async fn gate_runs(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<crate::domain::GateRunsPage>, ApiError> {
    let Query(query) = query?;
    let bad = |what: &str, e: crate::domain::ParseError| {
        ApiError::BadRequest(format!("query parameter {what}: {e}"))
    };
    let filter = crate::store::RunFilter {
        tier: query.tier.as_deref().map(str::parse).transpose().map_err(|e| bad("tier", e))?,
        gate: query.gate.as_deref().map(str::parse).transpose().map_err(|e| bad("gate", e))?,
        version: query
            .version
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| bad("version", e))?,
        before: query
            .before
            .as_deref()
            .map(str::parse::<GateRunId>)
            .transpose()
            .map_err(|e| bad("before", e))?
            .map(|id| id.get()),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<u64>() {
            Ok(n @ 1..) if n <= u64::from(MAX_PAGE) => n as u32,
            Ok(0) => {
                return Err(ApiError::BadRequest(
                    "query parameter limit: 0 runs is no page; ask for 1 to 500".into(),
                ));
            }
            Ok(_) => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter limit: {text} is over the most a page holds ({MAX_PAGE})"
                )));
            }
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter limit: {text:?} is not a number of runs (1 to {MAX_PAGE})"
                )));
            }
        },
    };
    // One more than asked: whether an older page follows.
    let mut runs = daemon.store.gate_runs_page(&filter, i64::from(limit) + 1).await?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_before = more.then(|| runs.last().map(|r| r.run_id)).flatten();
    Ok(Json(crate::domain::GateRunsPage {
        runs: runs.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// One gate run, with its provenance.
async fn gate_run(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<GateRunSummary>, ApiError> {
    Ok(Json(find_run(&daemon, &id).await?.into()))
}

/// A fixture case made from what the run's classifier was given.
async fn gate_run_case(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> Result<Json<RecordedCase>, ApiError> {
    use base64::Engine as _;
    let run = find_run(&daemon, &id).await?;
    let (Some(raw), Some(outcome)) = (daemon.store.raw_run(run.run_id).await?, &run.outcome) else {
        return Err(ApiError::NotFound(format!(
            "gate run {} has no recorded classifier input (it spawned nothing, or is running)",
            run.run_id
        )));
    };
    let what = format!("run {} ({} {} {})", run.run_id, run.tier, run.version, run.gate);
    let (case_toml, expected_json) =
        crate::fixtures::recorded_case_files(&what, &raw.output, outcome);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Json(RecordedCase {
        run_id: run.run_id,
        gate: run.gate,
        case_toml,
        expected_json,
        stdout_base64: b64.encode(&raw.output.stdout),
        stderr_base64: b64.encode(&raw.output.stderr),
    }))
}

/// A confirmation: without an approval policy, it passes the run; under
/// one, it is one approval by the caller, bound to the evidence as it is
/// now, and the run passes once the policy is met. Recorded as the token's
/// operator: a `by` in the body is ignored.
async fn confirm(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(run_id): Path<String>,
    OptionalJson(_body): OptionalJson<ConfirmRequest>,
) -> Result<Json<Confirmation>, ApiError> {
    let run = waiting_confirmation(&daemon, &run_id, "confirmed").await?;
    let run_id = run.run_id;
    let by = who.name.to_string();
    let now = Utc::now();
    let tier = daemon.config.tier(&run.tier);
    let standing = match tier {
        Some(tier) => super::approvals::standing(&daemon, tier, &run.version, true).await?,
        None => None,
    };
    let (evidence, before) = match &standing {
        Some(standing) => {
            if standing.author_unknown {
                return Err(ApiError::Conflict(format!(
                    "the author of {} could not be read from the repository, so forbid_author cannot be checked; nothing was approved",
                    run.version
                )));
            }
            plan::may_approve(
                &standing.policy,
                &by,
                &run.tier,
                &run.version,
                &standing.approvals,
                &standing.evidence,
                standing.author.as_deref(),
            )
            .map_err(|refusal| match refusal {
                plan::Refusal::Already { .. } => ApiError::Conflict(refusal.to_string()),
                _ => ApiError::Forbidden(refusal.to_string()),
            })?;
            let have = standing.tally.have();
            let before = serde_json::json!({ "have": have, "need": standing.tally.need });
            (Some(standing.evidence.as_str()), Some(before))
        }
        None => (None, None),
    };
    daemon.store.insert_confirmation(&run, &by, evidence, now).await?;
    daemon.bus.send(Event::Confirmed {
        run_id,
        tier: run.tier.clone(),
        version: run.version.clone(),
        by: by.clone(),
    });
    daemon.trigger(Trigger::Evaluate);
    let after = match &standing {
        Some(standing) => {
            let have = standing.tally.have() + 1;
            Some(serde_json::json!({ "have": have, "need": standing.tally.need }))
        }
        None => Some(serde_json::json!({ "confirmed": true })),
    };
    let target = format!("gate run {run_id} ({} {} manual_confirm)", run.tier, run.version);
    audit(&daemon, &who, "approve", target, before, after).await;
    Ok(Json(Confirmation { run_id, confirmed_by: by, confirmed_at: now }))
}

/// The run a confirmation or rejection names: a `manual_confirm` run that
/// waits.
async fn waiting_confirmation(
    daemon: &Daemon,
    run_id: &str,
    what: &str,
) -> Result<RunRecord, ApiError> {
    let run = find_run(daemon, run_id).await?;
    let run_id = run.run_id;
    if run.gate != GateKind::ManualConfirm {
        return Err(ApiError::Conflict(format!(
            "gate run {run_id} is a {} run; only manual_confirm runs can be {what}",
            run.gate
        )));
    }
    if run.status != RunState::Blocked {
        return Err(ApiError::Conflict(format!(
            "gate run {run_id} is {}, not waiting for confirmation",
            run.status
        )));
    }
    Ok(run)
}

/// The longest reason a rejection keeps.
const MAX_REASON_BYTES: usize = 1024;

/// A reason an operator gives (a rejection, a freeze, a rollback): one
/// line of at most 1 KiB; `missing` says what to write when it is empty.
pub(super) fn reason_line(reason: &str, missing: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::BadRequest(format!("reason: {missing}")));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(ApiError::BadRequest(format!(
            "reason: {} bytes; at most {MAX_REASON_BYTES} (1 KiB)",
            reason.len()
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("reason: one line, without control characters".into()));
    }
    Ok(reason.to_owned())
}

/// Ends a waiting confirmation `failed { rejected { by, reason } }`: the
/// version goes no further at that tier.
async fn reject(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(run_id): Path<String>,
    body: Result<Json<RejectRequest>, JsonRejection>,
) -> Result<Json<GateRunSummary>, ApiError> {
    let Json(request) = body?;
    let reason = reason_line(&request.reason, "say why the version is rejected")?;
    let run = waiting_confirmation(&daemon, &run_id, "rejected").await?;
    let status = crate::domain::GateStatus::failed(crate::domain::GateFailure::Rejected {
        by: who.name.to_string(),
        reason,
    });
    if !daemon.store.end_blocked_run(run.run_id, &status, Utc::now()).await? {
        return Err(ApiError::Conflict(format!(
            "gate run {} is no longer waiting for confirmation",
            run.run_id
        )));
    }
    tracing::info!(run_id = %run.run_id, by = %who.name, "rejected");
    let record = daemon.store.gate_run(run.run_id).await?;
    if let Some(record) = &record {
        super::metrics::global().gate_run(record);
    }
    daemon.bus.send(Event::GateDone {
        run_id: run.run_id,
        tier: run.tier.clone(),
        version: run.version.clone(),
        gate: run.gate,
        outcome: crate::domain::GateOutcome {
            status: status.clone(),
            log_ref: run.log_ref.clone(),
        },
        summary: record.map(|r| Box::new(r.into())),
    });
    daemon.trigger(Trigger::Evaluate);
    let target = format!("gate run {} ({} {} manual_confirm)", run.run_id, run.tier, run.version);
    let before = serde_json::json!({ "status": run.outcome });
    let after = serde_json::json!({ "status": status });
    audit(&daemon, &who, "reject", target, Some(before), Some(after)).await;
    let run = find_run(&daemon, &run.run_id.to_string()).await?;
    Ok(Json(run.into()))
}

/// Runs a gate again. Allowed for the latest run of a gate whose version
/// is still the tier's candidate: a failed run, or, where the tier's
/// confirmation waits on an approval policy, a passed one (fresh evidence
/// before approving; it voids the approvals given). A rejection is final.
async fn rerun(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(run_id): Path<String>,
    OptionalJson(_body): OptionalJson<RerunRequest>,
) -> Result<(StatusCode, Json<RerunResponse>), ApiError> {
    let run = find_run(&daemon, &run_id).await?;
    let run_id = run.run_id;
    let latest = daemon.store.latest_runs(&run.tier, &run.version).await?;
    let refreshes_evidence = run.status == RunState::Passed
        && run.gate != GateKind::ManualConfirm
        && daemon.config.tier(&run.tier).is_some_and(|t| t.approvals.is_some())
        && latest
            .iter()
            .any(|r| r.gate == GateKind::ManualConfirm && r.status == RunState::Blocked);
    if let Some(crate::domain::GateStatus::Failed {
        failure: crate::domain::GateFailure::Rejected { by, .. },
    }) = &run.outcome
    {
        return Err(ApiError::Conflict(format!(
            "gate run {run_id} was rejected by {by}; a rejection is final for {} at {}",
            run.version, run.tier
        )));
    }
    if run.status != RunState::Failed && !refreshes_evidence {
        return Err(ApiError::Conflict(format!(
            "gate run {run_id} is {}; only failed runs (or, while an approval policy's confirmation waits, passed ones) can be run again",
            run.status
        )));
    }
    let tiers = daemon.store.tiers().await?;
    let candidate =
        tiers.iter().find(|t| t.name == run.tier).and_then(|t| t.candidate_version.as_ref());
    if candidate != Some(&run.version) {
        return Err(ApiError::Conflict(format!(
            "version {} is no longer the candidate at {}; nothing to run again",
            run.version, run.tier
        )));
    }
    if let Some(newer) = latest.iter().find(|r| r.gate == run.gate && r.run_id != run_id) {
        return Err(ApiError::Conflict(format!(
            "gate run {run_id} is not the latest {} run at {} (run {} is)",
            run.gate, run.tier, newer.run_id
        )));
    }
    let by = who.name.to_string();
    let now = Utc::now();
    daemon.store.request_rerun(run_id, &by, now).await?;
    daemon.bus.send(Event::RerunRequested {
        run_id,
        tier: run.tier.clone(),
        version: run.version.clone(),
        gate: run.gate,
        by: by.clone(),
    });
    daemon.trigger(Trigger::Evaluate);
    let target = format!("gate run {run_id} ({} {} {})", run.tier, run.version, run.gate);
    let before = serde_json::json!({ "status": run.outcome });
    audit(&daemon, &who, "rerun", target, Some(before), None).await;
    Ok((StatusCode::ACCEPTED, Json(RerunResponse { run_id, requested_by: by, requested_at: now })))
}

async fn fetch_backup(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
) -> Result<Json<BackupRow>, ApiError> {
    match daemon.fetch_backup().await {
        Ok(backup) => {
            let after = serde_json::json!({ "backup": backup.id, "path": backup.path });
            audit(&daemon, &who, "backup_fetch", "backups".into(), None, Some(after)).await;
            Ok(Json(backup))
        }
        Err(FetchError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Conflict(e.to_string())),
    }
}

/// `/logs/{version}/{gate}`: the log of the latest run; `{version}` may also
/// be the version's git sha (7 or 40 hex digits).
async fn logs(
    State(daemon): State<Arc<Daemon>>,
    Path((version, gate)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let gate: GateKind =
        gate.parse().map_err(|e: crate::domain::ParseError| ApiError::BadRequest(e.to_string()))?;
    let version = match version.parse::<Version>() {
        Ok(version) => version,
        Err(_) => {
            let sha: GitSha = version.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{version:?} is neither a version (like 0.8.12) nor a git sha"
                ))
            })?;
            daemon
                .store
                .version_by_sha(&sha)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no version built from {sha}")))?
                .version
        }
    };
    let run = daemon
        .store
        .latest_run_of(&version, gate)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no {gate} run for version {version}")))?;
    log_of(&daemon, run, None, false).await
}

/// The full log of one run, as persisted so far (a running run's log grows).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    /// The byte offset to start at (a live chunk's `offset`).
    from: Option<u64>,
}

/// The run's log, exactly as written: whole, from `?from=N`, or from an
/// HTTP `Range: bytes=N-` (206, with `Content-Range`).
async fn gate_run_log(
    State(daemon): State<Arc<Daemon>>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Range: only `bytes=N-` (from byte N on) is served".into())
                })?,
        ),
    };
    if range.is_some() && query.from.is_some() {
        return Err(ApiError::BadRequest("give either ?from= or a Range header, not both".into()));
    }
    let run = find_run(&daemon, &id).await?;
    log_of(&daemon, run, query.from.or(range), range.is_some()).await
}

async fn log_of(
    daemon: &Daemon,
    run: RunRecord,
    from: Option<u64>,
    ranged: bool,
) -> Result<Response, ApiError> {
    let Some(log_ref) = run.log_ref else {
        // A run imported from the old daemon without a log file opens on
        // the old daemon's text.
        let text = legacy_text(run.outcome.as_ref())
            .ok_or_else(|| ApiError::NotFound(format!("run {} has no log", run.run_id)))?;
        let length = text.len() as u64;
        let from = from.unwrap_or(0);
        if from > length {
            return Err(ApiError::RangeNotSatisfiable(format!(
                "the log of run {} has {length} bytes; {from} is past its end",
                run.run_id
            )));
        }
        let bytes = text.as_bytes()[from as usize..].to_vec();
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response());
    };
    let gone = |_| ApiError::NotFound(format!("the log of run {} is gone", run.run_id));
    let file = tokio::fs::File::open(daemon.logs.path(&log_ref)).await.map_err(gone)?;
    let length = file.metadata().await.map_err(gone)?.len();
    let from = from.unwrap_or(0);
    if from > length {
        let mut response = ApiError::RangeNotSatisfiable(format!(
            "the log of run {} has {length} bytes; {from} is past its end",
            run.run_id
        ))
        .into_response();
        if let Ok(value) = format!("bytes */{length}").parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        return Ok(response);
    }
    // Streamed as read, up to the length it had when opened (a running
    // run's log grows): a resume of a large log costs no more memory than
    // a read buffer.
    let file = file.into_std().await;
    let body = axum::body::Body::from_stream(super::logs::read_from(file, from, length - from));
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_LENGTH, (length - from).to_string()),
        ],
        body,
    )
        .into_response();
    if ranged {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let last = length.saturating_sub(1).max(from);
        if let Ok(value) = format!("bytes {from}-{last}/{length}").parse() {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// The old daemon's text an imported run's outcome keeps.
fn legacy_text(outcome: Option<&crate::domain::GateStatus>) -> Option<&str> {
    use crate::domain::{GateFailure, GateStatus, PassNote};
    match outcome? {
        GateStatus::Passed { note: PassNote::Legacy { text } } => text.as_deref(),
        GateStatus::Failed { failure: GateFailure::Unclassified { legacy_detail } } => {
            legacy_detail.as_deref()
        }
        _ => None,
    }
}

fn gate_kind(text: &str) -> Result<GateKind, ApiError> {
    text.parse().map_err(|e: crate::domain::ParseError| ApiError::NotFound(e.to_string()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    /// Swap in even if verdicts change (other than unclassified becoming typed).
    #[serde(default)]
    accept_changes: bool,
    /// What the component serves as (`gate` or `classifier`); by default a
    /// whole gate if it exports a runner, else a classifier.
    #[serde(default)]
    part: Option<ComponentPart>,
}

impl ChangesQuery {
    fn submission(&self) -> reload::Submission {
        reload::Submission { part: self.part, accept_changes: self.accept_changes }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SweepQuery {
    /// Only say what would go.
    #[serde(default)]
    dry_run: bool,
}

/// Applies `[retention]` now (it also runs on its own): what went, or with
/// `dry_run` what would go.
async fn sweep(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    query: Result<Query<SweepQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query?;
    let sweep = super::retention::sweep(&daemon, query.dry_run).await?;
    if !query.dry_run {
        let after = serde_json::json!({
            "versions": sweep.versions, "backups": sweep.backups, "cache_units": sweep.cache_units.len(),
        });
        audit(&daemon, &who, "retention_sweep", "retention".into(), None, Some(after)).await;
    }
    Ok(Json(serde_json::json!(crate::domain::SweepResponse {
        dry_run: query.dry_run,
        versions: sweep.versions,
        backups: sweep.backups,
        cache_units: sweep.cache_units,
        cache_bytes: sweep.cache_bytes,
    })))
}

/// 200 loaded or unchanged, 202 held for an operator, 422 rejected: the
/// verdict (with its diff) is the body either way.
fn verdict_response(verdict: ComponentVerdict) -> Response {
    let status = match verdict.decision {
        Decision::Loaded | Decision::Unchanged => StatusCode::OK,
        Decision::Pending => StatusCode::ACCEPTED,
        Decision::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(verdict)).into_response()
}

async fn gates(State(daemon): State<Arc<Daemon>>) -> Result<Json<GatesResponse>, ApiError> {
    let mut gates = Vec::new();
    for kind in GateKind::ALL {
        let history = daemon.store.components_of(kind).await?;
        let find = |state: ComponentState, part: Option<ComponentPart>| {
            history.iter().find(|r| r.state == state && part.is_none_or(|p| r.part == p)).cloned()
        };
        gates.push(GateComponents {
            kind,
            serving: find(ComponentState::Serving, Some(ComponentPart::Gate)),
            classifier: find(ComponentState::Serving, Some(ComponentPart::Classifier)),
            pending: find(ComponentState::Pending, None),
            history,
        });
    }
    Ok(Json(GatesResponse { gates }))
}

/// A new component for `kind`: the body is the `.wasm` file.
async fn push_component(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(kind): Path<String>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let kind = gate_kind(&kind)?;
    let Query(query) = query?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("the body must be the component (.wasm) file".into()));
    }
    let verdict =
        reload::submit(&daemon, kind, body.to_vec(), "api".into(), query.submission()).await?;
    audit_verdict(&daemon, &who, "component_push", kind, &verdict).await;
    Ok(verdict_response(verdict))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettleQuery {
    /// The digest the operator reviewed; refused if another candidate waits now.
    digest: Option<String>,
}

async fn accept_component(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(kind): Path<String>,
    query: Result<Query<SettleQuery>, QueryRejection>,
) -> Result<Json<ComponentRecord>, ApiError> {
    settle(daemon, who, kind, query, true).await
}

async fn reject_component(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(kind): Path<String>,
    query: Result<Query<SettleQuery>, QueryRejection>,
) -> Result<Json<ComponentRecord>, ApiError> {
    settle(daemon, who, kind, query, false).await
}

async fn settle(
    daemon: Arc<Daemon>,
    who: Identity,
    kind: String,
    query: Result<Query<SettleQuery>, QueryRejection>,
    accept: bool,
) -> Result<Json<ComponentRecord>, ApiError> {
    let kind = gate_kind(&kind)?;
    let Query(query) = query?;
    let record = reload::settle(&daemon, kind, accept, query.digest.as_deref()).await?;
    let action = if accept { "component_accept" } else { "component_reject" };
    let after = serde_json::json!({ "digest": record.digest, "state": record.state });
    audit(&daemon, &who, action, format!("gate {kind}"), None, Some(after)).await;
    Ok(Json(record))
}

async fn rollback_component(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    Path(kind): Path<String>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let kind = gate_kind(&kind)?;
    let Query(query) = query?;
    let verdict = reload::rollback(&daemon, kind, query.submission()).await?;
    audit_verdict(&daemon, &who, "component_rollback", kind, &verdict).await;
    Ok(verdict_response(verdict))
}

/// A component act's verdict, in the audit trail.
async fn audit_verdict(
    daemon: &Daemon,
    who: &Identity,
    action: &str,
    kind: GateKind,
    verdict: &ComponentVerdict,
) {
    let after = serde_json::to_value(verdict).ok().map(|mut v| {
        // The diff can be long; the trail keeps what was decided.
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, _| matches!(k.as_str(), "decision" | "digest" | "part" | "contract"));
        }
        v
    });
    audit(daemon, who, action, format!("gate {kind}"), None, after).await;
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// An entry id (the page after it) or an RFC 3339 time (entries from then on).
    since: Option<String>,
    /// At most this many entries (default 100, at most 1000).
    limit: Option<u32>,
}

/// Who the token is: clients (the TUI) show only the actions its role may take.
async fn whoami(Extension(who): Extension<Identity>) -> Json<crate::domain::WhoAmI> {
    Json(crate::domain::WhoAmI { name: who.name.to_string(), role: who.role })
}

/// The audit trail, oldest first, a bounded page at a time.
async fn audit_trail(
    State(daemon): State<Arc<Daemon>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query?;
    let (after, since) = match query.since.as_deref().map(str::trim) {
        None | Some("") => (0, None),
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id >= 0 => (id, None),
            _ => match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(at) => (0, Some(at.with_timezone(&Utc))),
                Err(_) => {
                    return Err(ApiError::BadRequest(format!(
                        "since: {text:?} is neither an entry id nor an RFC 3339 time (2026-12-05T10:00:00Z)"
                    )));
                }
            },
        },
    };
    let limit = match query.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(n) => {
            return Err(ApiError::BadRequest(format!("limit: {n} is out of range (1 to 1000)")));
        }
    };
    let rows = daemon.store.audit_page(after, since, i64::from(limit) + 1).await?;
    let more = rows.len() > limit as usize;
    let entries: Vec<AuditEntry> = rows.into_iter().take(limit as usize).map(Into::into).collect();
    let next = if more { entries.last().map(|e| e.id) } else { None };
    Ok(Json(AuditPage { entries, next }))
}

/// How the serving component classifies past runs of a gate; with `apply`,
/// records the new outcomes next to the old ones.
async fn reclassify(
    State(daemon): State<Arc<Daemon>>,
    Extension(who): Extension<Identity>,
    body: Result<Json<ReclassifyRequest>, JsonRejection>,
) -> Result<Json<ReclassifyResponse>, ApiError> {
    let Json(request) = body?;
    let asked = serde_json::to_value(&request).ok();
    let answer = reload::reclassify(&daemon, request).await?;
    audit(&daemon, &who, "reclassify", "gate runs".into(), asked, None).await;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::events::EventBus;
    use crate::domain::{GateRunId, Stream};

    #[test]
    fn after_a_lag_the_chunks_waiting_are_skipped_and_other_events_kept() {
        let bus = EventBus::new(1024);
        let mut subscriber = bus.subscribe();
        let run_id = GateRunId::try_from(1).unwrap();
        for seq in 0..3u64 {
            let bytes = bytes::Bytes::from(vec![b'x'; 10]);
            bus.send(Event::GateLogChunk {
                run_id,
                seq,
                stream: Stream::Stdout,
                offset: seq * 10,
                bytes,
            });
        }
        bus.send(Event::Lagged { missed: 99 });
        let bytes = bytes::Bytes::from_static(b"later");
        bus.send(Event::GateLogChunk { run_id, seq: 3, stream: Stream::Stdout, offset: 30, bytes });
        let (missed, next) = skip_missed(&mut subscriber, 5);
        assert_eq!(missed, 8, "the five lost and the three chunks waiting");
        let (binary, text) =
            websocket::tests::read(next.expect("the next event not a chunk").bytes());
        assert!(!binary, "text");
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.contains(r#""missed":99"#), "{text}");
        // Chunks sent after the skip are sent as usual.
        let later = subscriber.try_recv().unwrap();
        assert!(matches!(later.event, Event::GateLogChunk { seq: 3, .. }));
    }
}
