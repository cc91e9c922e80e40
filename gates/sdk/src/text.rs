//! Text helpers for classifiers: tools print bytes, sometimes coloured.

use std::borrow::Cow;

/// Lossy UTF-8 with ANSI escape sequences (colours, cursor moves) removed, so
/// classifiers match what a person reading the terminal would see. Borrows
/// when there is nothing to remove: outputs run to hundreds of KB.
pub fn plain(bytes: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(bytes);
    if !text.as_bytes().contains(&0x1b) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ params final-byte(0x40..=0x7e)
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    Cow::Owned(out)
}

/// The lines of a tool's output as bytes, without their `\n` / `\r\n`, with
/// ANSI escape sequences removed from the (rare) lines that have them.
///
/// Outputs run to hundreds of KB and most of a classifier's time is finding
/// line ends, so the scan is `memchr`'s (SIMD: simd128 in the component,
/// SSE2/AVX2 natively) rather than `str::lines`. No UTF-8 validation is done:
/// classifiers match ASCII and decode only what they keep.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Cow<'_, [u8]>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let start = at;
        let (end, escaped) = match find(bytes, start, b'\n', ESC) {
            Some(i) if bytes[i] == ESC => match find(bytes, i, b'\n', b'\n') {
                Some(nl) => (nl, true),
                None => (bytes.len(), true),
            },
            Some(nl) => (nl, false),
            None => (bytes.len(), false),
        };
        at = end + 1;
        let mut line = &bytes[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        Some(if escaped {
            match plain(line) {
                Cow::Borrowed(s) => Cow::Owned(s.as_bytes().to_vec()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            }
        } else {
            Cow::Borrowed(line)
        })
    })
}

const ESC: u8 = 0x1b;

/// Index of the first byte at or after `from` equal to `a` or `b`.
fn find(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    memchr::memchr2(a, b, &bytes[from..]).map(|i| from + i)
}

/// Parses the leading unsigned integer of `s` (after trimming), if any.
pub fn leading_u32(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Seconds, rounded to nearest, from a duration in milliseconds.
pub fn secs_from_ms(ms: Option<u64>) -> u32 {
    ms.map(|ms| u32::try_from(ms.saturating_add(500) / 1000).unwrap_or(u32::MAX)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(plain(b"\x1b[1m\x1b[31merror\x1b[0m: x"), "error: x");
        assert_eq!(plain(b"no escapes"), "no escapes");
    }

    #[test]
    fn splits_lines_and_strips_escapes_per_line() {
        let text = b"first\r\n\x1b[32mok\x1b[0m here\nlast line without newline";
        let got: Vec<Vec<u8>> = lines(text).map(|l| l.into_owned()).collect();
        assert_eq!(
            got,
            vec![b"first".to_vec(), b"ok here".to_vec(), b"last line without newline".to_vec()]
        );
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"\n\n").count(), 2);
    }

    #[test]
    fn finds_bytes_across_word_boundaries() {
        for len in 0..40 {
            let mut bytes = vec![b'a'; len];
            assert_eq!(find(&bytes, 0, b'\n', ESC), None);
            for at in 0..len {
                bytes[at] = b'\n';
                assert_eq!(find(&bytes, 0, b'\n', ESC), Some(at), "len {len} at {at}");
                bytes[at] = 0x8a; // high-bit bytes must not match
                assert_eq!(find(&bytes, 0, b'\n', ESC), None);
                bytes[at] = b'a';
            }
        }
    }

    #[test]
    fn leading_number() {
        assert_eq!(leading_u32(" 12 passed"), Some(12));
        assert_eq!(leading_u32("x"), None);
    }

    #[test]
    fn rounds_seconds() {
        assert_eq!(secs_from_ms(Some(1499)), 1);
        assert_eq!(secs_from_ms(Some(1500)), 2);
        assert_eq!(secs_from_ms(None), 0);
    }
}
