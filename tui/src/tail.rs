//! `LogTail`: a run's log as lines in a ring buffer bounded in bytes and lines, fed by `gate_log_chunk` text as it arrives.
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
