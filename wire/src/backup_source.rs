//! `BackupSource`: where a production backup was fetched from, a local path or an ssh URL, parsed once.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// Where a backup came from. Its text form is canonical: an absolute path,
/// or `ssh://[user@]host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BackupSource {
    /// A file on the daemon's machine (`backup_source` in the config).
    Local { path: String },
    /// A file fetched over ssh (the old daemon's sources).
    Ssh { user: Option<String>, host: String, port: Option<u16>, path: String },
}

impl FromStr for BackupSource {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let err = |reason: &str| ParseError::new("backup source", s, reason);
        if s.chars().any(char::is_control) {
            return Err(err("contains a control character"));
        }
        if s.starts_with('/') {
            return Ok(BackupSource::Local { path: s.to_owned() });
        }
        let Some(rest) = s.strip_prefix("ssh://") else {
            return Err(err("must be an absolute path or an ssh://[user@]host[:port]/path URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => return Err(err("an ssh URL needs a path after the host")),
        };
        if path.len() < 2 {
            return Err(err("an ssh URL needs a path after the host"));
        }
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) if !user.is_empty() && !user.contains(':') => {
                (Some(user.to_owned()), host)
            }
            Some(_) => return Err(err("the user part must be a name, without a password")),
            None => (None, authority),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => {
                (host, Some(port.parse::<u16>().map_err(|_| err("the port must be a number"))?))
            }
            None => (host_port, None),
        };
        let host_ok = !host.is_empty()
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !host_ok {
            return Err(err("the host must be a name or an address"));
        }
        Ok(BackupSource::Ssh { user, host: host.to_owned(), port, path: path.to_owned() })
    }
}

impl fmt::Display for BackupSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupSource::Local { path } => f.write_str(path),
            BackupSource::Ssh { user, host, port, path } => {
                f.write_str("ssh://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                f.write_str(host)?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                f.write_str(path)
            }
        }
    }
}

impl TryFrom<String> for BackupSource {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<BackupSource> for String {
    fn from(v: BackupSource) -> String {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_and_paths_parse_and_print_back() {
        let source: BackupSource =
            "ssh://backup@db1.internal/var/backups/mnw.sqlite".parse().unwrap();
        assert_eq!(
            source,
            BackupSource::Ssh {
                user: Some("backup".into()),
                host: "db1.internal".into(),
                port: None,
                path: "/var/backups/mnw.sqlite".into(),
            }
        );
        for text in [
            "ssh://backup@db1.internal/var/backups/mnw.sqlite",
            "ssh://db1:2222/x.sqlite",
            "/srv/prod.sqlite",
        ] {
            assert_eq!(text.parse::<BackupSource>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_sources_say_why() {
        for (text, reason) in [
            ("relative/path", "must be an absolute path or an ssh://"),
            ("ssh://host", "needs a path"),
            ("ssh://u:pw@host/x", "without a password"),
            ("ssh://host:ssh/x", "port must be a number"),
            ("ssh://ho st/x", "host must be a name"),
            ("https://host/x", "must be an absolute path"),
        ] {
            let e = text.parse::<BackupSource>().unwrap_err().to_string();
            assert!(e.contains(reason), "{text}: {e}");
        }
    }
}
