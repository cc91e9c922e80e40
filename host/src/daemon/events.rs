//! The event bus: every state change as a typed `EventEnvelope` (defined in `sando-wire`), broadcast to WebSocket subscribers.
//!
//! Sending never waits: a subscriber that falls behind loses the oldest
//! events and is told how many (`lagged`), then resyncs from `/api/state`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use tokio::sync::broadcast;

pub use crate::domain::{Event, EventEnvelope};

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<EventEnvelope>>,
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
        let _ = self.sender.send(Arc::new(envelope));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventEnvelope>> {
        self.sender.subscribe()
    }
}
