//! Text helpers for classifiers: tools print bytes, sometimes coloured.

/// Lossy UTF-8 with ANSI escape sequences (colours, cursor moves) removed, so
/// classifiers match what a person reading the terminal would see.
pub fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains('\u{1b}') {
        return text.into_owned();
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
    out
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
