//! Text from outside shown to an operator: one line, with control characters escaped.

/// `text` on one line: line breaks become `; `, other control characters
/// (a NUL from a mangled file, an escape sequence) are escaped, so an error
/// quoting what it read stays one readable line.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
    while let Some(line) = lines.next() {
        for c in line.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if lines.peek().is_some() {
            out.push_str("; ");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn breaks_and_control_characters_do_not_survive() {
        assert_eq!(
            one_line("name `\0ate-kind` is bad\n`\0ate-kind` is not kebab\r\n"),
            "name `\\u{0}ate-kind` is bad; `\\u{0}ate-kind` is not kebab"
        );
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(one_line("a\n\n\tb"), "a; \\tb");
    }
}
