//! The event bus: every state change as a typed `EventEnvelope` (defined in `sando-wire`), broadcast to WebSocket subscribers.
//!
//! Sending never waits: a subscriber that falls behind (by more events than
//! the ring holds, or by more than `LIVE_BYTES` of log chunks) loses the
//! oldest and is told how many (`lagged`), then resyncs from `/api/state`
//! and resumes its logs by offset.

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
}

/// What a leader sends the standbys of a shared store: an event, or where
/// a log chunk's bytes are in its run's log file (which every daemon
/// reaches in the data directory they share), so the bytes themselves never
/// go through the database.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarded {
    Event(Event),
    Chunk { run_id: GateRunId, seq: u64, stream: Stream, offset: u64, len: u64 },
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
        if let Some(forward) = self.forward.get() {
            let _ = forward.try_send(match &event {
                Event::GateLogChunk { run_id, seq, stream, offset, bytes } => Forwarded::Chunk {
                    run_id: *run_id,
                    seq: *seq,
                    stream: *stream,
                    offset: *offset,
                    len: bytes.len() as u64,
                },
                event => Forwarded::Event(event.clone()),
            });
        }
        let envelope = self.envelope(event);
        // No subscribers is fine: events are also reflected in /api/state.
        if self.sender.receiver_count() == 0 {
            return;
        }
        // A chunk's bytes live in its slot only; any other event is built
        // now (it is small, and every subscriber sends it).
        match &envelope.event {
            Event::GateLogChunk { bytes, .. } => {
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
                self.publish(envelope, Slot::Built(message), None);
            }
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
        if let Some(forward) = self.forward.get() {
            let len = chunk.bytes().len() as u64;
            let _ = forward.try_send(Forwarded::Chunk { run_id, seq, stream, offset, len });
        }
        let bare =
            self.envelope(Event::GateLogChunk { run_id, seq, stream, offset, bytes: Bytes::new() });
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
    fn publish(&self, envelope: EventEnvelope, slot: Slot, len: Option<usize>) {
        let held = len.map(|len| (self.held.clone(), len));
        let published = Arc::new(Published { envelope, message: Mutex::new(slot), held });
        if let Some(len) = len {
            self.hold(&published, len);
        }
        let _ = self.sender.send(published);
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
