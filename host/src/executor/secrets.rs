//! The operator's secrets (`project.secret_env`): given to the processes that need them and masked in everything those processes print, even a value split across two reads; and `redact`, which hides the passwords in command lines echoed into logs.

/// The operator's `secret_env`: variables taken from the daemon's
/// environment and given to the processes that need them. Their values
/// never leave the executor in what a process printed: each occurrence is
/// overwritten with `*` (the same length, so byte offsets hold), even when
/// it arrives split across two reads.
#[derive(Clone, Default)]
pub struct Secrets {
    pairs: Vec<(String, String)>,
}

/// Shorter values would mask ordinary output and cannot be kept out of it.
pub const SHORTEST_SECRET: usize = 8;

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pairs.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "Secrets({})", names.join(", "))
    }
}

impl Secrets {
    /// Reads `names` from this process's environment; the error names the
    /// first that is missing, not Unicode, or too short to mask.
    pub fn from_env(names: &[String]) -> Result<Secrets, String> {
        let mut pairs = Vec::new();
        for name in names {
            let value = match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("{name} is not set in sando's environment"));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!("{name} is not valid UTF-8"));
                }
            };
            if value.len() < SHORTEST_SECRET {
                return Err(format!(
                    "{name} is shorter than {SHORTEST_SECRET} bytes, too short to mask in logs"
                ));
            }
            pairs.push((name.clone(), value));
        }
        Ok(Secrets { pairs })
    }

    /// The variables, for a process's environment.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Overwrites every occurrence of a value in `bytes` with `*`.
    pub fn mask(&self, bytes: &mut [u8]) {
        for (_, value) in &self.pairs {
            let finder = memchr::memmem::Finder::new(value.as_bytes());
            let mut from = 0;
            while let Some(at) = finder.find(&bytes[from..]) {
                let start = from + at;
                bytes[start..start + value.len()].fill(b'*');
                from = start + value.len();
            }
        }
    }

    /// How many bytes at the end of `bytes` (already masked) begin a value
    /// not yet complete, and must wait for the next read: only those. A
    /// fixed count would hold back the end of every read, so a finished
    /// line would not show live until more output came, and the other
    /// stream's output would land in the log inside it.
    pub(super) fn incomplete_at_end(&self, bytes: &[u8]) -> usize {
        self.pairs
            .iter()
            .filter_map(|(_, value)| {
                let value = value.as_bytes();
                (1..value.len().min(bytes.len() + 1))
                    .rev()
                    .find(|&len| bytes.ends_with(&value[..len]))
            })
            .max()
            .unwrap_or(0)
    }
}

/// `text` with the password of every `scheme://user:password@host`, and
/// of every `password=` query parameter (libpq's), replaced by `***`, for
/// command lines echoed into logs. A URL ends at whitespace only: a quote
/// may be part of a password.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let url_end = after.find(char::is_whitespace).unwrap_or(after.len());
        let url = &after[..url_end];
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let authority = &url[..authority_end];
        match authority.rfind('@').and_then(|a| authority[..a].find(':').map(|c| (c, a))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        out.push_str(&redact_query(&url[authority_end..]));
        rest = &after[url_end..];
    }
    out.push_str(rest);
    out
}

/// A URL's path and query with the value of each `password=` parameter
/// replaced by `***` (a closing quote kept).
fn redact_query(tail: &str) -> String {
    let Some(q) = tail.find('?') else { return tail.to_owned() };
    let (path, query) = tail.split_at(q + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                let quotes = &value[value.trim_end_matches(['\'', '"']).len()..];
                format!("{key}=***{quotes}")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{path}{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::{Collect, run, sh};
    use super::super::{ProcessSpec, Stream};
    use super::*;

    #[test]
    fn secrets_are_given_and_masked_even_split_across_reads() {
        let secrets = Arc::new(Secrets {
            pairs: vec![("SANDO_TEST_SECRET".into(), "hunter2-long-value".into())],
        });
        let script = r#"printf '%s\n' "$SANDO_TEST_SECRET"; printf 'x hunter2-lo'; sleep 0.3; printf 'ng-value y\n'"#;
        let spec = ProcessSpec { secrets, ..sh(script) };
        let sink = Arc::new(Collect::default());
        let out = run(spec, Some(sink.clone()));
        let masked = b"******************\nx ****************** y\n".to_vec();
        assert_eq!(String::from_utf8_lossy(&out.output.stdout), String::from_utf8_lossy(&masked));
        let streamed: Vec<u8> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(stream, _)| *stream == Stream::Stdout)
            .flat_map(|(_, bytes)| bytes.clone())
            .collect();
        assert_eq!(streamed, masked);
        assert!(!format!("{:?}", Secrets::default()).contains("hunter2"));
    }

    #[test]
    fn only_the_start_of_a_secret_waits_for_the_next_read() {
        let secrets = Secrets { pairs: vec![("S".into(), "hunter2-long-value".into())] };
        let mut line = b"the tests see hunter2-long-value\n".to_vec();
        secrets.mask(&mut line);
        assert_eq!(secrets.incomplete_at_end(&line), 0, "a finished line goes out whole");
        assert_eq!(secrets.incomplete_at_end(b"x hunter2-lo"), 10);
        assert_eq!(secrets.incomplete_at_end(b"h"), 1);
        assert_eq!(secrets.incomplete_at_end(b""), 0);
        assert_eq!(secrets.incomplete_at_end(b"hunter3"), 0);
        assert_eq!(Secrets::default().incomplete_at_end(b"anything"), 0);
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("sqlx migrate run --database-url postgres://sando:S3cr3t@db:5432/scratch"),
            "sqlx migrate run --database-url postgres://sando:***@db:5432/scratch"
        );
        assert_eq!(
            redact("'sqlite:///srv/x.db' https://u:p@h a://b@c"),
            "'sqlite:///srv/x.db' https://u:***@h a://b@c"
        );
        assert_eq!(redact("no urls here: just://words"), "no urls here: just://words");
        assert_eq!(redact("x://u:p:q@h"), "x://u:***@h");
        // A quote in the password, and the URL quoted.
        assert_eq!(
            redact("--url 'postgres://sando:it's-me@db/s' next"),
            "--url 'postgres://sando:***@db/s' next"
        );
        // libpq's password parameter, alone or among others.
        assert_eq!(
            redact(
                "postgres://sando@db/s?password=hunter2 and 'x://h/p?sslmode=require&PASSWORD=s3'"
            ),
            "postgres://sando@db/s?password=*** and 'x://h/p?sslmode=require&PASSWORD=***'"
        );
        assert_eq!(redact("http://h/?passwords=fine"), "http://h/?passwords=fine");
    }
}
