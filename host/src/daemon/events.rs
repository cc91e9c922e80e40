//! The event bus: every state change as a typed `EventEnvelope` (defined in `sando-wire`), broadcast to WebSocket subscribers.
//!
//! Sending never waits: a subscriber that falls behind loses the oldest
//! events and is told how many (`lagged`), then resyncs from `/api/state`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use tokio::sync::broadcast;

pub use crate::domain::{Event, EventEnvelope};

/// An event as it was sent: the envelope, and its JSON, serialised once
/// however many clients receive it. A log chunk's bytes are kept only in
/// the JSON (the envelope's `data` is emptied): the ring holds its last
/// values whoever has read them, and chunks are most of its memory.
#[derive(Debug)]
pub struct Published {
    pub envelope: EventEnvelope,
    pub json: axum::extract::ws::Utf8Bytes,
}

impl std::ops::Deref for Published {
    type Target = EventEnvelope;
    fn deref(&self) -> &EventEnvelope {
        &self.envelope
    }
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
    seq: Arc<AtomicU64>,
}

impl EventBus {
    /// `capacity` events are kept for slow subscribers before they lag.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender, seq: Arc::new(AtomicU64::new(1)) }
    }

    pub fn send(&self, event: Event) {
        let envelope =
            EventEnvelope { seq: self.seq.fetch_add(1, Ordering::Relaxed), at: Utc::now(), event };
        // No subscribers is fine: events are also reflected in /api/state.
        if self.sender.receiver_count() == 0 {
            return;
        }
        let json = serde_json::to_string(&envelope).expect("events serialise").into();
        let mut envelope = envelope;
        if let Event::GateLogChunk { data, .. } = &mut envelope.event {
            *data = String::new();
        }
        let _ = self.sender.send(Arc::new(Published { envelope, json }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}
