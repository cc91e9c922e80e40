//! Benchmark: a 10 MB/s gate log streamed into an open run detail. Each 1/60 s frame takes in that frame's share of `gate_log_chunk` events and redraws; frame times are compared with an idle redraw of the same screen, and memory with the ring buffer's bound.
//!
//! Run: `cargo bench -p sando-tui --bench tail` (or `./x bench`).

use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use sando_tui::app::{App, Msg, TAIL_BYTES};
use sando_wire::{Event, EventEnvelope, Frame, GateRunId, StateResponse, Stream};
use serde_json::json;

const RATE: usize = 10 << 20; // bytes per second
const FPS: usize = 60;
const SECONDS: usize = 10;
/// The daemon's chunk size for live log events.
const CHUNK: usize = 16 << 10;

fn state() -> StateResponse {
    serde_json::from_value(json!({
        "tiers": [{
            "name": "staging", "canary": "all_at_once", "current_version": null,
            "candidate_version": "0.2.0", "pipeline": ["cargo_test"],
            "gates": [{
                "run_id": 1, "tier": "staging", "version": "0.2.0", "gate": "cargo_test",
                "status": "running", "outcome": null, "started_at": "2026-11-27T12:00:00Z",
                "finished_at": null, "log_ref": "0.2.0/cargo_test/1.log",
                "component_digest": "ab", "contract": "0.1.0", "fuel": null, "peak_memory": null
            }],
            "confirmation": null
        }],
        "versions": [], "deploys": []
    }))
    .unwrap()
}

/// `bytes` of libtest-like output, as chunk events' frames.
fn chunks(seq: &mut u64, offset: &mut u64, line_no: &mut u64, bytes: usize) -> Vec<Frame> {
    let mut text = String::with_capacity(bytes + 128);
    while text.len() < bytes {
        *line_no += 1;
        if line_no.is_multiple_of(50) {
            text.push_str(&format!(
                "thread 'tests::case_{line_no}' panicked at src/lib.rs:{}:9: assertion `left == right` failed\n",
                *line_no % 400
            ));
        } else {
            text.push_str(&format!(
                "test tests::module_{}::case_{line_no} ... ok\n",
                *line_no % 17
            ));
        }
    }
    text.as_bytes()
        .chunks(CHUNK)
        .map(|c| {
            *seq += 1;
            let envelope = EventEnvelope {
                seq: *seq,
                at: Utc::now(),
                event: Event::GateLogChunk {
                    run_id: GateRunId::try_from(1).unwrap(),
                    seq: *seq,
                    stream: Stream::Stdout,
                    offset: *offset,
                    bytes: c.to_vec().into(),
                },
            };
            *offset += c.len() as u64;
            envelope.to_frame()
        })
        .collect()
}

/// What the events thread does with a chunk's binary frame.
fn decode_frame(frame: Frame) -> EventEnvelope {
    let Frame::Binary(frame) = frame else { panic!("a chunk is binary") };
    EventEnvelope::from_binary(frame).unwrap()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut app = App::new("http://127.0.0.1:7878", "bench", true);
    app.on_msg(Msg::Connected);
    app.on_msg(Msg::State(state()));
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let now = Utc::now();

    // Baseline: the same detail screen redrawn with nothing arriving.
    let mut seq = 0;
    let mut line_no = 0;
    let mut offset = 0;
    for frame in chunks(&mut seq, &mut offset, &mut line_no, 64 << 10) {
        app.on_msg(Msg::Event(decode_frame(frame)));
    }
    let mut idle = Vec::new();
    for _ in 0..FPS * SECONDS {
        let start = Instant::now();
        terminal.draw(|f| sando_tui::view::draw(f, &app, now)).unwrap();
        idle.push(start.elapsed());
    }

    let rss_before = peak_rss_kib();
    let per_frame = RATE / FPS;
    let mut frames = Vec::new();
    let mut decode = Duration::ZERO;
    let mut fed = 0usize;
    for _ in 0..FPS * SECONDS {
        let frames_in = chunks(&mut seq, &mut offset, &mut line_no, per_frame);
        fed += per_frame;
        // The events thread decodes; the UI thread applies and draws.
        let start = Instant::now();
        let envelopes: Vec<EventEnvelope> = frames_in.into_iter().map(decode_frame).collect();
        decode += start.elapsed();
        let start = Instant::now();
        for envelope in envelopes {
            app.on_msg(Msg::Event(envelope));
        }
        terminal.draw(|f| sando_tui::view::draw(f, &app, now)).unwrap();
        frames.push(start.elapsed());
    }
    let rss_after = peak_rss_kib();

    idle.sort();
    frames.sort();
    let tail_bytes = app.tails.values().map(|t| t.bytes()).sum::<usize>();
    let median_idle = percentile(&idle, 0.5);
    println!(
        "10 MB/s into an open run detail (120x40), {} frames at {FPS} fps, {:.0} MiB fed",
        frames.len(),
        fed as f64 / (1 << 20) as f64
    );
    println!(
        "  frame (apply events + draw): median {:.2} ms, p99 {:.2} ms, max {:.2} ms (budget 16 ms)",
        ms(percentile(&frames, 0.5)),
        ms(percentile(&frames, 0.99)),
        ms(*frames.last().unwrap())
    );
    println!(
        "  idle redraw baseline: median {:.3} ms; p99 frame / idle median = {:.1}",
        ms(median_idle),
        percentile(&frames, 0.99).as_secs_f64() / median_idle.as_secs_f64()
    );
    println!(
        "  decoding on the events thread: {:.2} ms per frame's worth",
        ms(decode) / frames.len() as f64
    );
    println!(
        "  ring buffer: {:.1} MiB held (bound {:.0} MiB); peak RSS grew {:.1} MiB while {:.0} MiB streamed",
        tail_bytes as f64 / (1 << 20) as f64,
        TAIL_BYTES as f64 / (1 << 20) as f64,
        rss_after.saturating_sub(rss_before) as f64 / 1024.0,
        fed as f64 / (1 << 20) as f64
    );
    assert!(tail_bytes <= TAIL_BYTES + 4096, "the ring buffer exceeded its bound");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
