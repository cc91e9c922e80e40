//! Notifications that arrive: events a `[[notify]]` target asked for go into a durable outbox (a store table), and one sender per target posts them oldest first, signed, retried with backoff until taken, across restarts, never in the decision loop's way.
//!
//! What is promised: every event a target asked for that the daemon saw
//! is delivered at least once, in order, however long the receiver is
//! down (each delivery's id, `X-Sando-Delivery`, lets it drop a repeat).
//! The outbox row is written by a subscriber of the event bus, so a
//! daemon killed between an event and its row (milliseconds) loses that
//! notification; a subscriber that falls more than the bus's 1,024 events
//! behind loses those it skipped, and says so in the log.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Notify;

use super::StartError;
use super::events::{Event, EventEnvelope, Published};
use super::shared::Daemon;
use crate::config::{NotifyEvent, NotifyFormat, NotifyTarget};
use crate::domain::{BuildOutcome, DeployOutcome, GateBlocker, GateStatus};
use crate::store::NotificationRecord;

/// How long one post may take before it counts as failed.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between two tries of one delivery.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How long a taken delivery is kept (shown nowhere; pruned).
const KEEP_DELIVERED: chrono::Duration = chrono::Duration::days(7);

/// A target as the daemon runs it: its config, its secret (read at start)
/// and what wakes its sender.
pub(crate) struct Target {
    pub config: NotifyTarget,
    secret: Option<Vec<u8>>,
    wake: Notify,
}

/// The daemon's targets, with their secrets read from the environment:
/// a `secret_env` that is not set stops the start, as a missing token does.
pub(crate) fn targets(config: &[NotifyTarget]) -> Result<Vec<Arc<Target>>, StartError> {
    config
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let secret = match &t.secret_env {
                None => None,
                Some(var) => match std::env::var(var) {
                    Ok(value) if !value.is_empty() => Some(value.into_bytes()),
                    _ => {
                        return Err(StartError::Notify(format!(
                            "notify[{i}].secret_env: environment variable {var} is not set (or empty)"
                        )));
                    }
                },
            };
            Ok(Arc::new(Target { config: t.clone(), secret, wake: Notify::new() }))
        })
        .collect()
}

/// Starts the outbox's writer and one sender per target (the daemon that
/// acts on the store only).
pub(crate) fn start(daemon: Arc<Daemon>) {
    if daemon.notify.is_empty() {
        return;
    }
    tokio::spawn(enqueue(daemon.clone()));
    for target in &daemon.notify {
        tokio::spawn(send(daemon.clone(), target.clone()));
    }
}

/// Writes a row for every event a target asked for.
async fn enqueue(daemon: Arc<Daemon>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = daemon.subscribe();
    loop {
        let published: Arc<Published> = match events.recv().await {
            Ok(published) => published,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "notifications fell behind the event bus; those events are not notified"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(what) = classify(&published.envelope.event) else { continue };
        for target in daemon.notify.iter().filter(|t| t.config.events.contains(&what)) {
            let body = body(&daemon, target.config.format, what, &published.envelope);
            match daemon
                .store
                .enqueue_notification(target.config.url.as_str(), what.name(), &body, Utc::now())
                .await
            {
                Ok(_) => target.wake.notify_one(),
                Err(e) => {
                    tracing::error!(error = %e, event = what.name(), "a notification could not be put in the outbox")
                }
            }
        }
    }
}

/// Which notification an event is, if any.
pub(crate) fn classify(event: &Event) -> Option<NotifyEvent> {
    match event {
        // A blocked run evaluated again (`gate_updated`) says so each time;
        // only its first verdict is news.
        Event::GateDone { outcome, .. } => match &outcome.status {
            GateStatus::Failed { .. } => Some(NotifyEvent::GateFailed),
            GateStatus::Blocked { blocker: GateBlocker::AwaitingOperatorConfirmation } => {
                Some(NotifyEvent::AwaitingApproval)
            }
            GateStatus::Blocked { .. } => Some(NotifyEvent::GateBlocked),
            GateStatus::Passed { .. } => None,
        },
        Event::Promoted { .. } => Some(NotifyEvent::Promoted),
        Event::DeployDone { outcome: DeployOutcome::Failed { .. }, .. } => {
            Some(NotifyEvent::DeployFailed)
        }
        Event::BuildDone { outcome: BuildOutcome::Failed { .. }, .. } => {
            Some(NotifyEvent::BuildFailed)
        }
        Event::ComponentPending { .. } => Some(NotifyEvent::ComponentPending),
        Event::RolledBack { .. } => Some(NotifyEvent::Rollback),
        _ => None,
    }
}

/// A JSON delivery: what happened, the event as the stream carries it, and
/// where to look.
#[derive(Serialize)]
struct JsonBody<'a> {
    event: &'static str,
    text: &'a str,
    link: Option<&'a str>,
    envelope: &'a EventEnvelope,
}

/// What is posted for `envelope` in `format`.
fn body(
    daemon: &Daemon,
    format: NotifyFormat,
    what: NotifyEvent,
    envelope: &EventEnvelope,
) -> String {
    let link = link(daemon, &envelope.event);
    let text = line(what, &envelope.event);
    match format {
        NotifyFormat::Json => serde_json::to_string(&JsonBody {
            event: what.name(),
            text: &text,
            link: link.as_deref(),
            envelope,
        }),
        NotifyFormat::Slack => {
            let text = match &link {
                Some(link) => format!("{text} <{link}|the run>"),
                None => text,
            };
            serde_json::to_string(&serde_json::json!({ "text": text }))
        }
    }
    .expect("notification bodies serialize")
}

/// Where the event can be seen: its run's page, else the status page.
fn link(daemon: &Daemon, event: &Event) -> Option<String> {
    let base = daemon.public_url.trim_end_matches('/');
    if base.is_empty() {
        return None;
    }
    Some(match event {
        Event::GateDone { run_id, .. } | Event::GateUpdated { run_id, .. } => {
            format!("{base}/runs/{run_id}")
        }
        _ => format!("{base}/"),
    })
}

/// One readable line saying what happened.
fn line(what: NotifyEvent, event: &Event) -> String {
    match event {
        Event::GateDone { tier, version, gate, outcome, .. }
        | Event::GateUpdated { tier, version, gate, outcome, .. } => {
            let class = match &outcome.status {
                GateStatus::Failed { failure } => format!(" ({})", failure.class()),
                GateStatus::Blocked { blocker } => format!(" ({})", blocker.class()),
                GateStatus::Passed { .. } => String::new(),
            };
            format!("sando: {what}: {gate} for {version} at {tier}{class}: {}", outcome.status)
        }
        Event::Promoted { tier, version } => format!("sando: {what}: {version} passed {tier}"),
        Event::DeployDone { tier, version, node, outcome, .. } => {
            format!("sando: {what}: {version} to {node} at {tier}: {outcome}")
        }
        Event::BuildDone { sha, outcome: BuildOutcome::Failed { failure } } => {
            format!("sando: {what}: {}: {failure}", sha.short())
        }
        Event::ComponentPending { gate, digest, .. } => {
            format!(
                "sando: {what}: an updated {gate} component ({}) waits for review",
                &digest[..digest.len().min(12)]
            )
        }
        Event::RolledBack { tier, from, to, by, done } => {
            let how = if *done { "done" } else { "failed" };
            format!("sando: {what}: {tier} from {from} to {to} by {by}: {how}")
        }
        _ => format!("sando: {what}"),
    }
}

/// Posts `target`'s deliveries oldest first, one at a time: the next only
/// once the last was taken, so they arrive in order.
async fn send(daemon: Arc<Daemon>, target: Arc<Target>) {
    let url = target.config.url.as_str().to_owned();
    let mut pruned_at = Utc::now() - chrono::Duration::hours(1);
    loop {
        if Utc::now() - pruned_at > chrono::Duration::hours(1) {
            pruned_at = Utc::now();
            if let Err(e) = daemon.store.prune_notifications(pruned_at - KEEP_DELIVERED).await {
                tracing::warn!(error = %e, "pruning delivered notifications");
            }
        }
        let next = match daemon.store.next_notification(&url).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "reading the notification outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(delivery) = next else {
            // Woken by a new row; a minute at most, for one written by a
            // daemon that led before.
            let _ = tokio::time::timeout(Duration::from_secs(60), target.wake.notified()).await;
            continue;
        };
        let wait = (delivery.next_at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let error = post(&target, &delivery).await.err();
        let now = Utc::now();
        let next_at =
            now + chrono::Duration::from_std(backoff(delivery.attempts)).unwrap_or_default();
        if let Some(error) = &error {
            tracing::info!(
                delivery = delivery.id,
                target = url,
                error,
                "a notification was not taken; trying again"
            );
        }
        if let Err(e) =
            daemon.store.notification_tried(delivery.id, error.as_deref(), next_at, now).await
        {
            tracing::warn!(error = %e, "recording a notification's delivery");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// 1 s, 2 s, 4 s, … up to `MAX_BACKOFF`.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// The signature header's value: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One post of a delivery; a refusal (not 2xx) or a failure, in one line.
async fn post(target: &Target, delivery: &NotificationRecord) -> Result<(), String> {
    let url = target.config.url.as_str().to_owned();
    let body = delivery.body.clone();
    let signature = target.secret.as_deref().map(|s| signature(s, body.as_bytes()));
    let (id, event) = (delivery.id.to_string(), delivery.event.clone());
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(POST_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("sando/", env!("CARGO_PKG_VERSION")))
            .header("X-Sando-Delivery", &id)
            .header("X-Sando-Event", &event);
        if let Some(signature) = &signature {
            request = request.header("X-Sando-Signature-256", signature);
        }
        match request.send(body.as_bytes()) {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("answered {}", response.status())),
            Err(e) => Err(crate::text::one_line(&e.to_string())),
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("the post's task failed: {e}")))
}

/// A delivery not taken yet, as `GET /api/notifications` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct PendingNotification {
    pub delivery: i64,
    pub target: String,
    pub event: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    pub next_at: DateTime<Utc>,
    /// Why the last try failed; `None` before the first.
    pub last_error: Option<String>,
}

impl From<NotificationRecord> for PendingNotification {
    fn from(r: NotificationRecord) -> Self {
        PendingNotification {
            delivery: r.id,
            target: r.target,
            event: r.event,
            created_at: r.created_at,
            attempts: r.attempts,
            next_at: r.next_at,
            last_error: r.last_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_form_of_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
