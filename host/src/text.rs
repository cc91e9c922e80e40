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

/// An error and its causes on one line (line breaks become spaces), each
/// cause said once: a cause
/// whose text its wrapper already shows (`{source}` in a message that also
/// reports it as its source) is not repeated.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::{error_line, one_line};

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("database x: applying migrations: {0}")]
        Migrate(#[source] Inner),
        #[error("starting")]
        Start(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("while executing migrations: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn a_cause_is_said_once() {
        let io = || std::io::Error::other("table versions already exists");
        assert_eq!(
            error_line(&Outer::Migrate(Inner(io()))),
            "database x: applying migrations: while executing migrations: table versions already exists"
        );
        assert_eq!(
            error_line(&Outer::Start(Inner(io()))),
            "starting: while executing migrations: table versions already exists"
        );
    }

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
