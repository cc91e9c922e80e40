//! The event bus: every state change as a typed `EventEnvelope` (defined in `sando-wire`), broadcast to WebSocket subscribers.
//!
//! Sending never waits: a subscriber that falls behind (by more events than
//! the ring holds, or by more than `LIVE_BYTES` of log chunks) loses the
//! oldest and is told how many (`lagged`), then resyncs from `/api/state`
//! and resumes its logs by offset.
//!
//! Every event but a log chunk is also kept: the newest in memory
//! ([`EventBus::subscribe_since`]), and, written by a task of its own so
//! sending never waits on the store, in the store's backlog
//! ([`keep_backlog`]), from which `/api/events?since=` replays. `seq`
//! goes on across restarts and takeovers from the store's `top` mark.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use chrono::Utc;
use tokio::sync::broadcast;

use super::websocket::{self, FromLog, Wire};
pub use crate::domain::{Event, EventEnvelope, Frame, Unframed};
use crate::domain::{GateRunId, Stream};

/// The most bytes of live log chunks the bus holds for subscribers that
/// have not sent them yet. Reading a gate's output never waits on a
/// subscriber, so a subscriber slower than the gate falls behind; past
/// this much, its oldest chunks are let go and it is told it lagged (it
/// resumes from the log by offset). This bounds the daemon's memory
/// however fast a gate prints. 16 MiB, not 8: more than a WebSocket
/// connection holds in its socket buffers (up to about 10 MiB on
/// loopback), so a subscriber back from a resume can read through the
/// frames queued meanwhile without lagging again at once (with 8 MiB, a
/// subscriber reading at full speed lagged 30 to 50 times per 512 MiB).
pub const LIVE_BYTES: usize = 16 << 20;

/// An event as it was sent: the envelope, and its WebSocket message as it
/// goes on the wire, built once however many clients receive it (a clone
/// is a refcount). A chunk a
/// pipe reader hands over comes with room before its bytes, and its frame
/// is made around them where they lie (`send_chunk`): its bytes are never
/// copied on the way to the socket but by the socket's writer. Any other
/// chunk (the host's own lines, longer pieces) is framed by the first
/// subscriber that sends it, on that subscriber's task, and not at all if
/// none does. A chunk's bytes (the envelope's are empty) are held, unbuilt
/// or built, until every subscriber has taken them or the bus needs the
/// room.
#[derive(Debug)]
pub struct Published {
    pub envelope: EventEnvelope,
    message: Mutex<Slot>,
    /// A chunk's share of `LIVE_BYTES`, given back when its bytes go.
    held: Option<(Arc<AtomicUsize>, usize)>,
}

#[derive(Debug)]
enum Slot {
    /// A chunk no subscriber has sent yet: its envelope, bytes and all.
    Unbuilt(EventEnvelope),
    /// The message on the wire (`websocket`).
    Built(Wire),
    /// A chunk the bus let go of.
    Released,
}

impl Published {
    /// What to send; `None` for a chunk the bus let go of: whoever gets
    /// here has fallen `LIVE_BYTES` behind, and lagged.
    pub fn message(&self) -> Option<Wire> {
        let mut slot = self.message.lock().expect("not poisoned");
        match &*slot {
            Slot::Built(message) => Some(message.clone()),
            Slot::Released => None,
            Slot::Unbuilt(envelope) => {
                let message = message_of(envelope);
                *slot = Slot::Built(message.clone());
                Some(message)
            }
        }
    }

    /// A log chunk's bytes, unless the bus let go of them.
    pub fn chunk_bytes(&self) -> Option<Bytes> {
        let slot = self.message.lock().expect("not poisoned");
        match (&*slot, &self.held) {
            (Slot::Unbuilt(envelope), _) => match &envelope.event {
                Event::GateLogChunk { bytes, .. } => Some(bytes.clone()),
                _ => None,
            },
            // The frame ends with the bytes.
            (Slot::Built(wire), Some((_, len))) => {
                let all = wire.bytes();
                all.len().checked_sub(*len).map(|at| all.slice(at..))
            }
            _ => None,
        }
    }

    fn release(&self) {
        let released =
            std::mem::replace(&mut *self.message.lock().expect("not poisoned"), Slot::Released);
        if let (Slot::Unbuilt(_) | Slot::Built(_), Some((held, len))) = (released, &self.held) {
            held.fetch_sub(*len, Ordering::Relaxed);
        }
    }
}

fn message_of(envelope: &EventEnvelope) -> Wire {
    match &envelope.event {
        // Copied once, behind room for its headers, and framed as a pipe
        // read is.
        Event::GateLogChunk { bytes, .. } => {
            let mut buf = BytesMut::with_capacity(Unframed::ROOM + bytes.len());
            buf.put_bytes(0, Unframed::ROOM);
            buf.extend_from_slice(bytes);
            Wire::new(Unframed::new(buf).frame(envelope, |len| websocket::header(true, len)).0)
        }
        _ => match envelope.to_frame() {
            Frame::Text(json) => websocket::text(&json),
            Frame::Binary(_) => unreachable!("only a chunk is binary"),
        },
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        self.release();
    }
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
    /// Bytes of chunks held, and the chunks in the order they were sent.
    held: Arc<AtomicUsize>,
    chunks: Arc<Mutex<VecDeque<Weak<Published>>>>,
    /// Where events go on to the other daemons of a shared store (set
    /// while this daemon leads one). Log chunks do not: standbys read logs
    /// from their files.
    forward: Arc<OnceLock<tokio::sync::mpsc::Sender<Forwarded>>>,
    /// The newest events but chunks. Its lock is held while an event gets
    /// its `seq` and is broadcast, so every subscriber receives events in
    /// `seq` order, and a subscription taken with a copy of it
    /// (`subscribe_since`) misses nothing and repeats nothing.
    recent: Arc<Mutex<Recent>>,
    /// Where events go to be written to the store's backlog (set while
    /// this daemon acts on its store).
    backlog: Arc<OnceLock<tokio::sync::mpsc::UnboundedSender<ToBacklog>>>,
}

/// The newest events but chunks, oldest first: at least those the store's
/// backlog does not have yet, and the last `RECENT`.
#[derive(Default)]
struct Recent {
    events: VecDeque<Arc<Published>>,
    /// The highest `seq` the store's backlog has (or, relayed, the leader's).
    persisted: u64,
}

/// How far past the store's `top` mark a daemon starts: more log chunks
/// than a daemon sends in the second the mark may lag behind.
pub const SEQ_MARGIN: u64 = 1_000_000;

/// How many events but chunks are kept in memory besides those not yet in
/// the store: what a client resuming within a moment is sent from.
const RECENT: usize = 1024;

/// What the backlog's writer is given: an event to keep, or (a log chunk)
/// only its `seq`, so the sequence goes on after it in the next daemon.
#[derive(Debug)]
pub enum ToBacklog {
    Event(crate::store::BackloggedEvent),
    Seq(u64),
}

/// What a leader sends the standbys of a shared store: an event, or where
/// a log chunk's bytes are in its run's log file (which every daemon
/// reaches in the data directory they share), so the bytes themselves never
/// go through the database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarded {
    /// The event with its envelope: standbys send it with the leader's `seq`.
    Event(EventEnvelope),
    /// `event_seq` is the chunk's envelope's `seq`.
    Chunk { run_id: GateRunId, seq: u64, stream: Stream, offset: u64, len: u64, event_seq: u64 },
}

impl EventBus {
    /// `capacity` events are kept for slow subscribers before they lag.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            seq: Arc::new(AtomicU64::new(1)),
            held: Arc::default(),
            chunks: Arc::default(),
            forward: Arc::default(),
            recent: Arc::default(),
            backlog: Arc::default(),
        }
    }

    /// The `seq` of the newest event sent; 0 before any.
    pub fn newest(&self) -> u64 {
        self.seq.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// Events from now on get a `seq` above `top` (the store's mark) and
    /// `SEQ_MARGIN` more: the sequence goes on across restarts and
    /// takeovers, past the log chunks of the last daemon's last second,
    /// whose numbers the store may not have (see [`keep_backlog`]).
    pub fn continue_after(&self, top: u64) {
        let top = if top > 0 { top + SEQ_MARGIN } else { 0 };
        let _recent = self.recent.lock().expect("not poisoned");
        self.seq.fetch_max(top + 1, Ordering::Relaxed);
    }

    /// A standby's: the leader has sent events up to `seq`.
    pub fn follow(&self, seq: u64) {
        let _recent = self.recent.lock().expect("not poisoned");
        self.seq.fetch_max(seq + 1, Ordering::Relaxed);
    }

    /// From now on, every event also goes to the returned receiver, to be
    /// written to the store's backlog ([`keep_backlog`]).
    pub fn keep(&self) -> tokio::sync::mpsc::UnboundedReceiver<ToBacklog> {
        let (send, receive) = tokio::sync::mpsc::unbounded_channel();
        if self.backlog.set(send).is_err() {
            tracing::error!("the event backlog is kept once");
        }
        receive
    }

    /// The store's backlog has every event up to `seq`: older ones need
    /// not be kept in memory beyond the last `RECENT`.
    pub fn persisted(&self, seq: u64) {
        let mut recent = self.recent.lock().expect("not poisoned");
        recent.persisted = recent.persisted.max(seq);
        recent.trim();
    }

    /// A subscription, with every event but chunks sent before it that is
    /// still in memory (oldest first) and the `seq` of the newest event
    /// sent before it: every event after that one reaches the receiver.
    pub fn subscribe_since(
        &self,
    ) -> (broadcast::Receiver<Arc<Published>>, Vec<Arc<Published>>, u64) {
        let recent = self.recent.lock().expect("not poisoned");
        let receiver = self.sender.subscribe();
        (receiver, recent.events.iter().cloned().collect(), self.newest())
    }

    /// An event a leader sent, to this standby's clients, with its `seq`.
    pub fn relay(&self, envelope: EventEnvelope) {
        let mut recent = self.recent.lock().expect("not poisoned");
        self.seq.fetch_max(envelope.seq + 1, Ordering::Relaxed);
        match &envelope.event {
            Event::GateLogChunk { bytes, .. } => {
                if self.sender.receiver_count() == 0 {
                    return;
                }
                let len = bytes.len();
                let mut bare = envelope.clone();
                if let Event::GateLogChunk { bytes, .. } = &mut bare.event {
                    *bytes = Bytes::new();
                }
                self.publish(bare, Slot::Unbuilt(envelope), Some(len));
            }
            _ => {
                let seq = envelope.seq;
                let message = message_of(&envelope);
                let published = self.publish(envelope, Slot::Built(message), None);
                recent.events.push_back(published);
                // The leader keeps it in the store.
                recent.persisted = recent.persisted.max(seq);
                recent.trim();
            }
        }
    }

    /// From now on, every event also goes to the returned receiver, a log
    /// chunk as where it is (at most 4096 behind: past that, the others
    /// miss some and their clients resync from `/api/state` and resume
    /// logs by offset).
    pub fn forward(&self) -> tokio::sync::mpsc::Receiver<Forwarded> {
        let (send, receive) = tokio::sync::mpsc::channel(4096);
        if self.forward.set(send).is_err() {
            tracing::error!("events are forwarded once");
        }
        receive
    }

    pub fn send(&self, event: Event) {
        let metrics = super::metrics::global();
        match &event {
            Event::ComponentLoaded { gate, .. } => metrics.component(*gate, "loaded"),
            Event::ComponentPending { gate, .. } => metrics.component(*gate, "pending"),
            Event::ComponentRejected { gate, .. } => metrics.component(*gate, "rejected"),
            _ => {}
        }
        let mut recent = self.recent.lock().expect("not poisoned");
        let envelope = self.envelope(event);
        if let Some(forward) = self.forward.get() {
            let _ = forward.try_send(match &envelope.event {
                Event::GateLogChunk { run_id, seq, stream, offset, bytes } => Forwarded::Chunk {
                    run_id: *run_id,
                    seq: *seq,
                    stream: *stream,
                    offset: *offset,
                    len: bytes.len() as u64,
                    event_seq: envelope.seq,
                },
                _ => Forwarded::Event(envelope.clone()),
            });
        }
        // A chunk's bytes live in its slot only; any other event is built
        // now (it is small, every subscriber sends it, and it is kept).
        match &envelope.event {
            Event::GateLogChunk { bytes, .. } => {
                self.to_backlog(ToBacklog::Seq(envelope.seq));
                // No subscribers is fine: the log file has the bytes.
                if self.sender.receiver_count() == 0 {
                    return;
                }
                let len = bytes.len();
                // Cloning the bytes is a refcount; the bare copy drops them.
                let mut bare = envelope.clone();
                if let Event::GateLogChunk { bytes, .. } = &mut bare.event {
                    *bytes = Bytes::new();
                }
                self.publish(bare, Slot::Unbuilt(envelope), Some(len));
            }
            _ => {
                let message = message_of(&envelope);
                if self.backlog.get().is_some() {
                    let json = serde_json::to_string(&envelope).expect("events serialise");
                    self.to_backlog(ToBacklog::Event(crate::store::BackloggedEvent {
                        seq: i64::try_from(envelope.seq).unwrap_or(i64::MAX),
                        at: envelope.at,
                        envelope: json,
                    }));
                }
                let published = self.publish(envelope, Slot::Built(message), None);
                recent.events.push_back(published);
                recent.trim();
            }
        }
    }

    fn to_backlog(&self, what: ToBacklog) {
        if let Some(backlog) = self.backlog.get() {
            let _ = backlog.send(what);
        }
    }

    /// A log chunk read with room for its frame's header: the frame is
    /// made around its bytes, on the caller's thread, without copying
    /// them. `log` is the file they were written to, whole, at `offset`:
    /// clients send them from there. Returns the bytes.
    pub fn send_chunk(
        &self,
        run_id: GateRunId,
        seq: u64,
        stream: Stream,
        offset: u64,
        chunk: Unframed,
        log: Option<&Arc<File>>,
    ) -> Bytes {
        let _recent = self.recent.lock().expect("not poisoned");
        let bare =
            self.envelope(Event::GateLogChunk { run_id, seq, stream, offset, bytes: Bytes::new() });
        if let Some(forward) = self.forward.get() {
            let len = chunk.bytes().len() as u64;
            let event_seq = bare.seq;
            let _ =
                forward.try_send(Forwarded::Chunk { run_id, seq, stream, offset, len, event_seq });
        }
        self.to_backlog(ToBacklog::Seq(bare.seq));
        if self.sender.receiver_count() == 0 {
            return chunk.into_bytes();
        }
        let (wire, bytes) = chunk.frame(&bare, |len| websocket::header(true, len));
        let wire = match log {
            Some(file) => Wire::from_log(wire, FromLog::new(file.clone(), offset, bytes.len())),
            None => Wire::new(wire),
        };
        self.publish(bare, Slot::Built(wire), Some(bytes.len()));
        bytes
    }

    fn envelope(&self, event: Event) -> EventEnvelope {
        EventEnvelope { seq: self.seq.fetch_add(1, Ordering::Relaxed), at: Utc::now(), event }
    }

    /// Sends one event to every subscriber; `len` is a chunk's bytes, held
    /// against `LIVE_BYTES` until they are sent or let go.
    fn publish(&self, envelope: EventEnvelope, slot: Slot, len: Option<usize>) -> Arc<Published> {
        let held = len.map(|len| (self.held.clone(), len));
        let published = Arc::new(Published { envelope, message: Mutex::new(slot), held });
        if let Some(len) = len {
            self.hold(&published, len);
        }
        let _ = self.sender.send(published.clone());
        published
    }

    /// Counts a chunk's bytes against `LIVE_BYTES`, letting go of the
    /// oldest held chunks while over.
    fn hold(&self, published: &Arc<Published>, len: usize) {
        let mut chunks = self.chunks.lock().expect("not poisoned");
        self.held.fetch_add(len, Ordering::Relaxed);
        chunks.push_back(Arc::downgrade(published));
        while self.held.load(Ordering::Relaxed) > LIVE_BYTES {
            let Some(oldest) = chunks.pop_front() else { break };
            if let Some(oldest) = oldest.upgrade() {
                oldest.release();
            }
        }
        // Chunks every subscriber has taken are gone already.
        while chunks.front().is_some_and(|c| c.strong_count() == 0) {
            chunks.pop_front();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}

impl Recent {
    fn trim(&mut self) {
        while self.events.len() > RECENT
            && self.events.front().is_some_and(|e| e.envelope.seq <= self.persisted)
        {
            self.events.pop_front();
        }
    }
}

/// How much of the backlog the store keeps: the newest `BACKLOG_EVENTS`
/// events, none older than `BACKLOG_FOR`.
pub const BACKLOG_EVENTS: i64 = 10_000;
pub const BACKLOG_FOR: chrono::Duration = chrono::Duration::hours(24);

/// Takes what is waiting, up to a batch of events.
fn drain(
    from: &mut tokio::sync::mpsc::UnboundedReceiver<ToBacklog>,
    events: &mut Vec<crate::store::BackloggedEvent>,
    top: &mut u64,
) {
    while events.len() < 512 {
        match from.try_recv() {
            Ok(ToBacklog::Event(event)) => events.push(event),
            Ok(ToBacklog::Seq(seq)) => *top = (*top).max(seq),
            Err(_) => break,
        }
    }
}

/// Writes what the bus sends to the store's backlog, a batch at a time,
/// for as long as this daemon acts on its store. Never in the sender's
/// way: the channel is unbounded, and the events that go in it (all but
/// chunks, which send only their number) follow store writes of the
/// decision loop's own, so they come no faster than the store takes
/// writes. A failed write is tried again a second later; on a store this
/// daemon no longer leads, it stops.
pub async fn keep_backlog(
    bus: EventBus,
    store: crate::store::Store,
    mut from: tokio::sync::mpsc::UnboundedReceiver<ToBacklog>,
) {
    use crate::store::{BacklogBound, StoreError};
    let mut events = Vec::new();
    let mut top = 0u64;
    let mut written_top = 0u64;
    loop {
        if events.is_empty() && top == written_top {
            match from.recv().await {
                Some(ToBacklog::Event(event)) => events.push(event),
                Some(ToBacklog::Seq(seq)) => top = top.max(seq),
                None => return,
            }
        }
        drain(&mut from, &mut events, &mut top);
        // Only log chunks: their numbers are written once a second at
        // most (or with the next event), so a gate printing fast costs the
        // store nothing more.
        let quiet = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while events.is_empty() {
            match tokio::time::timeout_at(quiet, from.recv()).await {
                Ok(Some(ToBacklog::Event(event))) => events.push(event),
                Ok(Some(ToBacklog::Seq(seq))) => top = top.max(seq),
                Ok(None) | Err(_) => break,
            }
        }
        drain(&mut from, &mut events, &mut top);
        let newest = events.iter().map(|e| e.seq as u64).max().unwrap_or(0);
        top = top.max(newest);
        let bound = BacklogBound { events: BACKLOG_EVENTS, since: Utc::now() - BACKLOG_FOR };
        let top_mark = i64::try_from(top).unwrap_or(i64::MAX);
        match store.append_events(&events, top_mark, bound).await {
            Ok(()) => {
                events.clear();
                written_top = top;
                bus.persisted(newest);
            }
            Err(e @ (StoreError::Standby | StoreError::Deposed { .. })) => {
                tracing::warn!("the event backlog is no longer this daemon's to write: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("writing the event backlog failed; trying again: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::websocket;
    use super::*;
    use crate::domain::{GateRunId, Stream};

    fn chunk(seq: u64, len: usize) -> Event {
        Event::GateLogChunk {
            run_id: GateRunId::try_from(1).unwrap(),
            seq,
            stream: Stream::Stdout,
            offset: seq * len as u64,
            bytes: vec![b'x'; len].into(),
        }
    }

    #[test]
    fn unsent_chunks_past_the_bound_are_let_go_and_the_rest_kept_whole() {
        let bus = EventBus::new(1024);
        let mut slow = bus.subscribe();
        let piece = 256 << 10;
        let sent = LIVE_BYTES / piece + 8;
        for seq in 0..sent as u64 {
            bus.send(chunk(seq, piece));
        }
        // Nothing read yet: the bound holds, however much was sent.
        assert!(bus.held.load(Ordering::Relaxed) <= LIVE_BYTES);
        let mut let_go = 0;
        let mut kept = Vec::new();
        while let Ok(published) = slow.try_recv() {
            match published.message() {
                None => let_go += 1,
                Some(wire) => {
                    let (binary, frame) = websocket::tests::read(wire.bytes());
                    assert!(binary, "a chunk is binary");
                    let envelope = EventEnvelope::from_binary(frame).unwrap();
                    let Event::GateLogChunk { seq, bytes, .. } = envelope.event else {
                        panic!("a chunk")
                    };
                    assert_eq!(bytes.len(), piece, "a kept chunk is whole");
                    kept.push(seq);
                }
            }
        }
        assert_eq!(let_go, 8, "the oldest went first");
        assert_eq!(kept, (8..sent as u64).collect::<Vec<_>>());
        // Taken by every subscriber: nothing is held any more.
        assert_eq!(bus.held.load(Ordering::Relaxed), 0);
        assert!(bus.chunks.lock().unwrap().iter().all(|c| c.strong_count() == 0));
    }

    #[test]
    fn a_chunk_read_with_room_is_sent_in_its_own_memory_and_held_until_taken() {
        let bus = EventBus::new(1024);
        let mut subscriber = bus.subscribe();
        let mut read = bytes::BytesMut::zeroed(Unframed::ROOM);
        read.extend_from_slice(b"\xff exact bytes\n");
        let read_at = read[Unframed::ROOM..].as_ptr();
        let run_id = GateRunId::try_from(9).unwrap();
        let bytes = bus.send_chunk(run_id, 4, Stream::Stderr, 100, Unframed::new(read), None);
        assert_eq!(bytes.as_ptr(), read_at, "the bytes are where they were read");
        assert_eq!(bus.held.load(Ordering::Relaxed), bytes.len());
        let wire = subscriber.try_recv().unwrap().message().expect("a chunk's frame");
        assert_eq!(
            wire.bytes().as_ptr_range().end,
            bytes.as_ptr_range().end,
            "framed where it lies"
        );
        let (binary, frame) = websocket::tests::read(wire.bytes());
        assert!(binary, "a chunk is binary");
        let envelope = EventEnvelope::from_binary(frame).unwrap();
        let Event::GateLogChunk { run_id: r, seq, stream, offset, bytes: b } = envelope.event
        else {
            panic!("a chunk")
        };
        assert_eq!((r, seq, stream, offset), (run_id, 4, Stream::Stderr, 100));
        assert_eq!(b, bytes);
        assert_eq!(bus.held.load(Ordering::Relaxed), 0, "taken by its only subscriber");
    }

    #[test]
    fn a_chunk_is_framed_once_for_every_subscriber() {
        let bus = EventBus::new(1024);
        let (mut first, mut second) = (bus.subscribe(), bus.subscribe());
        bus.send(chunk(0, 1000));
        let wire = |published: Arc<Published>| published.message().expect("a chunk's frame");
        let (a, b) = (wire(first.try_recv().unwrap()), wire(second.try_recv().unwrap()));
        assert_eq!(a.bytes().as_ptr(), b.bytes().as_ptr(), "both send the one frame built");
        let (binary, frame) = websocket::tests::read(a.bytes());
        assert!(binary, "a chunk is binary");
        let Event::GateLogChunk { bytes, .. } = EventEnvelope::from_binary(frame).unwrap().event
        else {
            panic!("a chunk")
        };
        assert_eq!(bytes, vec![b'x'; 1000]);
    }

    #[test]
    fn other_events_are_text_and_never_let_go() {
        let bus = EventBus::new(1024);
        let mut subscriber = bus.subscribe();
        bus.send(Event::Lagged { missed: 2 });
        for seq in 0..(LIVE_BYTES / (1 << 20) + 4) as u64 {
            bus.send(chunk(seq, 1 << 20));
        }
        let first = subscriber.try_recv().unwrap();
        let (binary, text) = websocket::tests::read(first.message().expect("never let go").bytes());
        assert!(!binary, "text");
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.contains(r#""kind":"lagged""#), "{text}");
    }
}
