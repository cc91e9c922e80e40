//! `LogTail`: a run's log as lines in a ring buffer bounded in bytes and lines, fed by `gate_log_chunk` bytes at their offsets as they arrive.
//!
//! A gate can write faster than anyone reads, so the tail keeps only the end;
//! the full log stays on the daemon (`/api/gate-runs/{id}/log`). Lines are
//! numbered from the first line ever seen, so a view anchored to a line stays
//! put while older lines are dropped under it.

use std::collections::VecDeque;

/// A line longer than this is cut there and continued on the next one, so a
/// process writing without newlines cannot grow the partial line unbounded.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone)]
pub struct LogTail {
    lines: VecDeque<String>,
    /// Text after the last newline.
    partial: String,
    bytes: usize,
    max_bytes: usize,
    max_lines: usize,
    /// Lines dropped from the front so far: the number of `lines[0]`.
    dropped: u64,
    /// The log's offset of the next byte this tail expects: everything
    /// before it has been taken (fetched or live), nothing after it.
    next: u64,
    /// The start of a UTF-8 character whose end has not arrived yet.
    carry: Vec<u8>,
}

/// What became of bytes offered at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// They continued the log (or were held already).
    Taken,
    /// They start past what the tail holds: the log from `from` is missing.
    Gap { from: u64 },
}

impl LogTail {
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            partial: String::new(),
            bytes: 0,
            max_bytes: max_bytes.max(MAX_LINE),
            max_lines: max_lines.max(1),
            dropped: 0,
            next: 0,
            carry: Vec::new(),
        }
    }

    /// Offers the log's bytes at `offset` (a live chunk, or a fetched
    /// stretch): only what continues the tail is taken, what it holds
    /// already is skipped, and bytes past a gap are refused so the gap can
    /// be fetched first.
    pub fn push_at(&mut self, offset: u64, bytes: &[u8]) -> Continuity {
        let end = offset.saturating_add(bytes.len() as u64);
        if offset > self.next {
            return Continuity::Gap { from: self.next };
        }
        if end > self.next {
            let skip = usize::try_from(self.next - offset).unwrap_or(usize::MAX);
            self.push_bytes(&bytes[skip.min(bytes.len())..]);
            self.next = end;
        }
        Continuity::Taken
    }

    /// The offset of the next byte expected.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Gives up on the bytes before `offset` (older than the tail would
    /// keep): the tail goes on from there, after a line that says so.
    pub fn skip_to(&mut self, offset: u64) {
        if offset > self.next {
            self.carry.clear();
            if !self.partial.is_empty() {
                self.end_line();
            }
            self.push(&format!(
                "… ({} earlier bytes: press l for the full log)\n",
                offset - self.next
            ));
            self.next = offset;
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.carry.extend_from_slice(bytes);
        let cut = self.carry.len() - incomplete_suffix(&self.carry);
        let text = String::from_utf8_lossy(&self.carry[..cut]).into_owned();
        self.carry.drain(..cut);
        self.push(&text);
    }

    /// The tail of a log given whole (the persisted log), within the same bounds.
    pub fn from_text(text: &str, max_bytes: usize, max_lines: usize) -> Self {
        let mut tail = Self::new(max_bytes, max_lines);
        tail.push(text);
        tail
    }

    /// Appends text as the process wrote it. Terminal control sequences are
    /// removed and a carriage return keeps only what was written after it,
    /// as a terminal would show a progress line.
    pub fn push(&mut self, text: &str) {
        let mut rest = text;
        while let Some(newline) = rest.find('\n') {
            self.append_partial(&rest[..newline]);
            self.end_line();
            rest = &rest[newline + 1..];
        }
        self.append_partial(rest);
    }

    fn append_partial(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => self.partial.clear(),
                '\t' => self.partial.push_str("    "),
                '\u{1b}' => {
                    // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    } else {
                        chars.next();
                    }
                }
                c if c.is_control() => {}
                c => self.partial.push(c),
            }
            if self.partial.len() >= MAX_LINE {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.partial);
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            let Some(old) = self.lines.pop_front() else { break };
            self.bytes -= old.len();
            self.dropped += 1;
        }
    }

    /// Number of the first line still kept.
    pub fn first_line(&self) -> u64 {
        self.dropped
    }

    /// Number one past the last line, the partial line included.
    pub fn end_line_no(&self) -> u64 {
        self.dropped + self.len() as u64
    }

    /// Kept lines, the partial one included.
    pub fn len(&self) -> usize {
        self.lines.len() + usize::from(!self.partial.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of text held (the bound the ring keeps).
    pub fn bytes(&self) -> usize {
        self.bytes + self.partial.len()
    }

    /// The line numbered `number`, if still kept.
    pub fn line(&self, number: u64) -> Option<&str> {
        let index = usize::try_from(number.checked_sub(self.dropped)?).ok()?;
        match index.cmp(&self.lines.len()) {
            std::cmp::Ordering::Less => Some(&self.lines[index]),
            std::cmp::Ordering::Equal if !self.partial.is_empty() => Some(&self.partial),
            _ => None,
        }
    }
}

/// Length of a UTF-8 sequence begun but not finished at the end of `bytes`.
fn incomplete_suffix(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead
        }
        let needed = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_taken_once_in_order_and_a_gap_is_named() {
        let mut tail = LogTail::new(1 << 20, 100);
        // The log is "one\ntwo\nthree\n". Live bytes from the middle of
        // a run: the start is missing.
        assert_eq!(tail.push_at(8, b"three\n"), Continuity::Gap { from: 0 });
        // Fetched from 0 (as far as the log had got), then the live chunk
        // again, overlapping: one continuous log, nothing twice.
        assert_eq!(tail.push_at(0, b"one\ntwo\nth"), Continuity::Taken);
        assert_eq!(tail.push_at(8, b"three\n"), Continuity::Taken);
        assert_eq!(tail.push_at(0, b"one\n"), Continuity::Taken, "held already");
        assert_eq!(all(&tail), ["one", "two", "three"]);
        assert_eq!(tail.next(), 14);
    }

    #[test]
    fn a_character_split_across_chunks_is_whole() {
        let mut tail = LogTail::new(1 << 20, 100);
        let text = "prix: 5 €\n".as_bytes();
        let split = text.len() - 2; // inside the euro sign
        tail.push_at(0, &text[..split]);
        tail.push_at(split as u64, &text[split..]);
        assert_eq!(all(&tail), ["prix: 5 €"]);
        tail.push_at(text.len() as u64, b"\xff!\n");
        assert_eq!(all(&tail), ["prix: 5 €", "\u{fffd}!"]);
    }

    #[test]
    fn finds_unfinished_characters() {
        assert_eq!(incomplete_suffix(b"abc"), 0);
        assert_eq!(incomplete_suffix("é".as_bytes()), 0);
        assert_eq!(incomplete_suffix(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_suffix(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_suffix(&"😀".as_bytes()[..3]), 3);
    }

    fn all(tail: &LogTail) -> Vec<&str> {
        (tail.first_line()..tail.end_line_no()).filter_map(|n| tail.line(n)).collect()
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut tail = LogTail::new(1 << 20, 100);
        tail.push("running 2 te");
        tail.push("sts\ntest a ... ok\ntest b");
        assert_eq!(all(&tail), ["running 2 tests", "test a ... ok", "test b"]);
        tail.push(" ... FAILED\n");
        assert_eq!(all(&tail), ["running 2 tests", "test a ... ok", "test b ... FAILED"]);
    }

    #[test]
    fn control_sequences_and_carriage_returns_are_cleaned() {
        let mut tail = LogTail::new(1 << 20, 100);
        tail.push("\u{1b}[1m\u{1b}[32mCompiling\u{1b}[0m x\n10%\r50%\r100%\n\tindented\u{7}\n");
        assert_eq!(all(&tail), ["Compiling x", "100%", "    indented"]);
    }

    #[test]
    fn the_ring_stays_within_its_bounds_and_keeps_numbering() {
        let mut tail = LogTail::new(8192, 50);
        for i in 0..10_000 {
            tail.push(&format!("line {i}\n"));
            assert!(tail.len() <= 50 && tail.bytes() <= 8192);
        }
        assert_eq!(tail.first_line(), 9950);
        assert_eq!(tail.line(9950), Some("line 9950"));
        assert_eq!(tail.line(9949), None);
        assert_eq!(tail.line(9999), Some("line 9999"));

        let mut bytes = LogTail::new(8192, 1_000_000);
        for _ in 0..1000 {
            bytes.push(&"x".repeat(1000));
            bytes.push("\n");
            assert!(bytes.bytes() <= 8192 + MAX_LINE, "{}", bytes.bytes());
        }
    }

    #[test]
    fn output_without_newlines_is_cut_into_lines() {
        let mut tail = LogTail::new(1 << 20, 1000);
        tail.push(&"y".repeat(3 * MAX_LINE + 10));
        assert_eq!(tail.len(), 4);
        assert_eq!(tail.line(3).map(str::len), Some(10));
    }
}
