//! `/api/events` frames: every state change as a typed `EventEnvelope`, one WebSocket message each: JSON text, or for a log chunk a binary frame (its JSON header, `\n`, its bytes).
//!
//! A subscriber that falls behind is skipped ahead and sent `lagged`; it
//! then resyncs from `/api/state`.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    BuildOutcome, DeployId, DeployOutcome, GateKind, GateOutcome, GateRunId, GateRunSummary,
    GitSha, NodeId, TierId, VerdictChange, Version,
};

/// Which stream of a process a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One frame on `/api/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    RebuildRequested {
        sha: GitSha,
    },
    BuildStarted {
        sha: GitSha,
    },
    BuildDone {
        sha: GitSha,
        outcome: BuildOutcome,
    },
    VersionRegistered {
        version: Version,
        sha: GitSha,
    },
    GateStart {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        /// The run as `/api/state` shows it, provenance and attempt
        /// included, so a client updates its row in place. Absent from
        /// daemons before it (and their backlogged events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<Box<GateRunSummary>>,
    },
    /// Part of a running gate's log: exactly the bytes the process wrote,
    /// which sit at `offset` in the run's log (`GET
    /// /api/gate-runs/{run_id}/log?from=` resumes there). It always travels
    /// as a binary frame (`Frame::Binary`): this event as JSON without its
    /// bytes, a `\n`, then the bytes themselves, unencoded.
    GateLogChunk {
        run_id: GateRunId,
        seq: u64,
        stream: Stream,
        offset: u64,
        #[serde(skip)]
        bytes: Bytes,
    },
    GateDone {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        outcome: GateOutcome,
        /// The finished run as `/api/state` shows it (times, cost,
        /// provenance): a client updates its row in place.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<Box<GateRunSummary>>,
    },
    /// A blocked run was evaluated again in place (same run, same log): its
    /// outcome now. A blocked gate never starts a new run.
    GateUpdated {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        outcome: GateOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<Box<GateRunSummary>>,
    },
    /// An operator asked to stop a running gate or build.
    CancelRequested {
        target: String,
        by: String,
    },
    Confirmed {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        by: String,
    },
    DeployStart {
        deploy_id: DeployId,
        tier: TierId,
        version: Version,
        node: NodeId,
    },
    DeployDone {
        deploy_id: DeployId,
        tier: TierId,
        version: Version,
        node: NodeId,
        outcome: DeployOutcome,
    },
    Promoted {
        tier: TierId,
        version: Version,
    },
    Superseded {
        tier: TierId,
        version: Version,
        by: Version,
    },
    /// An operator asked for a failed gate to run again.
    RerunRequested {
        run_id: GateRunId,
        tier: TierId,
        version: Version,
        gate: GateKind,
        by: String,
    },
    BackupFetched {
        backup_id: i64,
        source: crate::BackupSource,
    },
    /// An updated component now serves new runs of its kind.
    ComponentLoaded {
        gate: GateKind,
        digest: String,
        contract: String,
        source: String,
    },
    /// An updated component changes verdicts and waits for an operator.
    ComponentPending {
        gate: GateKind,
        digest: String,
        diff: Vec<VerdictChange>,
    },
    ComponentRejected {
        gate: GateKind,
        digest: String,
        reason: String,
        diff: Vec<VerdictChange>,
    },
    /// Runs of `gate` were classified again by the serving component.
    Reclassified {
        gate: GateKind,
        runs: Vec<GateRunId>,
    },
    /// An operator froze or thawed a tier (`tier: None`: every tier).
    FreezeChanged {
        tier: Option<TierId>,
        frozen: bool,
        by: String,
        reason: String,
    },
    /// A rollback was asked for: by an operator, or by `auto_rollback`.
    RollbackStarted {
        tier: TierId,
        from: Version,
        to: Version,
        by: String,
    },
    /// A rollback settled: every node runs `to` (`done`), or a node's
    /// deploy failed and the tier's current version is unchanged.
    RolledBack {
        tier: TierId,
        from: Version,
        to: Version,
        by: String,
        done: bool,
    },
    /// Sent to one subscriber only: it fell behind and `missed` events were
    /// dropped for it. Resync from `/api/state`.
    Lagged {
        missed: u64,
    },
}

/// A message on `/api/events` as it goes over the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Every event but a log chunk: the envelope as JSON.
    Text(String),
    /// A `gate_log_chunk`: the envelope as JSON (without the bytes, so
    /// nothing is escaped or encoded), a `\n`, then the chunk's bytes.
    Binary(Bytes),
}

/// Why a WebSocket message is not an `/api/events` frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("not an event envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a binary frame has no `\\n` ending its header")]
    NoHeaderEnd,
    #[error("a binary frame carries a `{0}` event; only `gate_log_chunk` travels as bytes")]
    NotAChunk(String),
    #[error("a `gate_log_chunk` arrived as text; its bytes travel in a binary frame")]
    ChunkAsText,
}

/// A log chunk's bytes as they were read, with room before them for the
/// header of their binary frame: the frame is then made around the bytes
/// where they lie ([`Unframed::frame`]), without copying them.
#[derive(Debug)]
pub struct Unframed {
    buf: BytesMut,
}

impl Unframed {
    /// The room left before the bytes: more than the longest header (every
    /// number at its largest is under 250 bytes) and the longest outer
    /// header (`OUTER`) together.
    pub const ROOM: usize = 320;

    /// The most bytes an outer header may take: a WebSocket frame's header
    /// is at most 14.
    pub const OUTER: usize = 16;

    /// `buf`'s bytes after its first [`Unframed::ROOM`], which are room.
    /// Shorter than that, it is all room and no bytes.
    pub fn new(buf: BytesMut) -> Self {
        Self { buf }
    }

    pub fn bytes(&self) -> &[u8] {
        self.buf.get(Self::ROOM..).unwrap_or_default()
    }

    /// The bytes alone, without a copy.
    pub fn into_bytes(mut self) -> Bytes {
        if self.buf.len() < Self::ROOM {
            return Bytes::new();
        }
        self.buf.split_off(Self::ROOM).freeze()
    }

    /// The binary frame of `envelope`, a `gate_log_chunk` whose bytes are
    /// these (its own are not looked at), put after the header `outer`
    /// makes from the frame's length (the frame's WebSocket header, so
    /// the message as it goes on the wire is one piece of memory); and the
    /// bytes: the same memory.
    pub fn frame(
        mut self,
        envelope: &EventEnvelope,
        outer: impl FnOnce(usize) -> Vec<u8>,
    ) -> (Bytes, Bytes) {
        let header = serde_json::to_vec(envelope).expect("events serialise");
        let frame_len = header.len() + 1 + self.bytes().len();
        let outer = outer(frame_len);
        let Some(start) = Self::ROOM.checked_sub(outer.len() + header.len() + 1) else {
            // Cannot happen with the envelopes the daemon makes; still a frame.
            let bytes = self.into_bytes();
            let mut framed = envelope.clone();
            if let Event::GateLogChunk { bytes: b, .. } = &mut framed.event {
                *b = bytes.clone();
            }
            let Frame::Binary(frame) = framed.to_frame() else { unreachable!("a chunk") };
            return ([outer.as_slice(), &frame].concat().into(), bytes);
        };
        if self.buf.len() < Self::ROOM {
            self.buf.resize(Self::ROOM, 0);
        }
        let header_at = start + outer.len();
        self.buf[start..header_at].copy_from_slice(&outer);
        self.buf[header_at..Self::ROOM - 1].copy_from_slice(&header);
        self.buf[Self::ROOM - 1] = b'\n';
        let whole = self.buf.freeze();
        (whole.slice(start..), whole.slice(Self::ROOM..))
    }
}

impl EventEnvelope {
    /// The envelope as the daemon sends it. A chunk's bytes are copied once,
    /// into the frame (unless they come as [`Unframed`]).
    pub fn to_frame(&self) -> Frame {
        let header = serde_json::to_string(self).expect("events serialise");
        match &self.event {
            Event::GateLogChunk { bytes, .. } => {
                let mut frame = Vec::with_capacity(header.len() + 1 + bytes.len());
                frame.extend_from_slice(header.as_bytes());
                frame.push(b'\n');
                frame.extend_from_slice(bytes);
                Frame::Binary(frame.into())
            }
            _ => Frame::Text(header),
        }
    }

    /// A text frame's event (never a log chunk).
    pub fn from_text(text: &str) -> Result<EventEnvelope, FrameError> {
        let envelope: EventEnvelope = serde_json::from_str(text)?;
        if matches!(envelope.event, Event::GateLogChunk { .. }) {
            return Err(FrameError::ChunkAsText);
        }
        Ok(envelope)
    }

    /// A binary frame's log chunk; its bytes share the frame's memory.
    pub fn from_binary(frame: Bytes) -> Result<EventEnvelope, FrameError> {
        let end = frame.iter().position(|&b| b == b'\n').ok_or(FrameError::NoHeaderEnd)?;
        let mut envelope: EventEnvelope = serde_json::from_slice(&frame[..end])?;
        match &mut envelope.event {
            Event::GateLogChunk { bytes, .. } => *bytes = frame.slice(end + 1..),
            other => {
                let kind = serde_json::to_value(&*other)?["kind"].as_str().unwrap_or("").to_owned();
                return Err(FrameError::NotAChunk(kind));
            }
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(bytes: &'static [u8]) -> EventEnvelope {
        EventEnvelope {
            seq: 7,
            at: "2026-11-28T01:00:00Z".parse().unwrap(),
            event: Event::GateLogChunk {
                run_id: GateRunId::try_from(3).unwrap(),
                seq: 2,
                stream: Stream::Stderr,
                offset: 4096,
                bytes: Bytes::from_static(bytes),
            },
        }
    }

    #[test]
    fn an_unframed_chunk_is_framed_where_it_lies_even_with_every_number_at_its_largest() {
        let bytes = b"not utf-8: \xff\xfe\n";
        let largest = EventEnvelope {
            seq: u64::MAX,
            at: "2262-04-11T23:47:16.854775807Z".parse().unwrap(),
            event: Event::GateLogChunk {
                run_id: GateRunId::try_from(i64::MAX).unwrap(),
                seq: u64::MAX,
                stream: Stream::Stdout,
                offset: u64::MAX,
                bytes: Bytes::new(),
            },
        };
        let mut buf = BytesMut::zeroed(Unframed::ROOM);
        buf.extend_from_slice(bytes);
        let read_at = buf[Unframed::ROOM..].as_ptr();
        let unframed = Unframed::new(buf);
        assert_eq!(unframed.bytes(), bytes);
        let outer = vec![0xee; Unframed::OUTER];
        let mut frame_len = 0;
        let (wire, framed_bytes) = unframed.frame(&largest, |len| {
            frame_len = len;
            outer.clone()
        });
        assert_eq!(framed_bytes.as_ptr(), read_at, "the bytes stay where they were read");
        assert_eq!(wire.as_ptr_range().end, framed_bytes.as_ptr_range().end);
        assert_eq!(&wire[..Unframed::OUTER], outer, "the outer header comes first");
        let frame = wire.slice(Unframed::OUTER..);
        assert_eq!(frame.len(), frame_len, "the outer header was given the frame's length");
        let mut expected = largest.clone();
        if let Event::GateLogChunk { bytes: b, .. } = &mut expected.event {
            *b = Bytes::from_static(bytes);
        }
        assert_eq!(EventEnvelope::from_binary(frame).unwrap(), expected);
    }

    #[test]
    fn a_chunk_travels_as_its_header_then_its_exact_bytes() {
        let bytes = b"not utf-8: \xff\xfe, a newline\n, a quote \" and NUL \0";
        let Frame::Binary(frame) = chunk(bytes).to_frame() else { panic!("a chunk is binary") };
        let header_end = frame.iter().position(|&b| b == b'\n').unwrap();
        assert_eq!(&frame[header_end + 1..], bytes);
        let header = std::str::from_utf8(&frame[..header_end]).unwrap();
        assert!(header.contains(r#""offset":4096"#) && !header.contains("bytes"), "{header}");
        assert_eq!(EventEnvelope::from_binary(frame).unwrap(), chunk(bytes));
    }

    #[test]
    fn other_events_are_text_and_frames_of_the_wrong_kind_are_refused() {
        let lagged = EventEnvelope { event: Event::Lagged { missed: 3 }, ..chunk(b"") };
        let Frame::Text(text) = lagged.to_frame() else { panic!("lagged is text") };
        assert_eq!(EventEnvelope::from_text(&text).unwrap(), lagged);

        let as_text = serde_json::to_string(&chunk(b"x")).unwrap();
        assert!(matches!(EventEnvelope::from_text(&as_text), Err(FrameError::ChunkAsText)));
        let no_end = Bytes::from(as_text.clone());
        assert!(matches!(EventEnvelope::from_binary(no_end), Err(FrameError::NoHeaderEnd)));
        let wrong = Bytes::from(format!("{text}\nbytes"));
        let err = EventEnvelope::from_binary(wrong).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a binary frame carries a `lagged` event; only `gate_log_chunk` travels as bytes"
        );
    }
}
