//! `[[notify]]`: where Sando tells people what happened (a webhook, a chat channel), for which events, in which format, signed with which secret.
//!
//! Parsed into values whose only way in is their parser: a URL Sando posts
//! to is `http` or `https` with a host, an event is one Sando sends, a
//! secret is named by the environment variable that holds it (read at
//! start, never written in the config).

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};

/// One place notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub url: NotifyUrl,
    pub events: Vec<NotifyEvent>,
    pub format: NotifyFormat,
    /// The environment variable holding the HMAC secret deliveries are
    /// signed with.
    pub secret_env: Option<String>,
}

/// An `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyUrl(String);

impl NotifyUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NotifyUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: axum::http::Uri =
            s.parse().map_err(|_| format!("{s:?} is not a URL (use http:// or https://)"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(NotifyUrl(s.to_owned())),
            (Some(other), _) if other != "http" && other != "https" => {
                Err(format!("{s:?} is not http(s): Sando posts notifications over HTTP"))
            }
            _ => Err(format!("{s:?} is not a URL (use http:// or https://)")),
        }
    }
}

impl fmt::Display for NotifyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a target may be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    /// A gate run ended red (its class says why).
    GateFailed,
    /// A gate run is blocked (yellow): a precondition, not a defect.
    GateBlocked,
    /// A `manual_confirm` waits for an operator.
    AwaitingApproval,
    /// A version passed a tier's gates and moved on.
    Promoted,
    /// A deploy to a node failed.
    DeployFailed,
    /// A build failed.
    BuildFailed,
    /// An updated gate component waits for review.
    ComponentPending,
    /// A tier's rollback settled (done or failed), whoever asked for it.
    Rollback,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 8] = [
        NotifyEvent::GateFailed,
        NotifyEvent::GateBlocked,
        NotifyEvent::AwaitingApproval,
        NotifyEvent::Promoted,
        NotifyEvent::DeployFailed,
        NotifyEvent::BuildFailed,
        NotifyEvent::ComponentPending,
        NotifyEvent::Rollback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::GateFailed => "gate_failed",
            NotifyEvent::GateBlocked => "gate_blocked",
            NotifyEvent::AwaitingApproval => "awaiting_approval",
            NotifyEvent::Promoted => "promoted",
            NotifyEvent::DeployFailed => "deploy_failed",
            NotifyEvent::BuildFailed => "build_failed",
            NotifyEvent::ComponentPending => "component_pending",
            NotifyEvent::Rollback => "rollback",
        }
    }
}

impl FromStr for NotifyEvent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        NotifyEvent::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| {
            let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
            format!("unknown event {s:?} (one of {})", names.join(", "))
        })
    }
}

impl fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The body a target gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyFormat {
    /// The event's envelope, its name, the delivery id and a link.
    #[default]
    Json,
    /// `{"text": "..."}`: one readable line with the link (Slack's, and
    /// Mattermost's and others' incoming webhooks).
    Slack,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    url: Spanned<String>,
    events: Option<Vec<Spanned<String>>>,
    format: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
}

impl Source<'_> {
    pub(super) fn notify(&self, raw: &[RawNotify]) -> Result<Vec<NotifyTarget>, ConfigError> {
        let mut targets = Vec::new();
        for (i, raw) in raw.iter().enumerate() {
            let key = |k: &str| format!("notify[{i}].{k}");
            let url =
                raw.url.get_ref().parse().map_err(|e| self.error(raw.url.span(), key("url"), e))?;
            let events = match &raw.events {
                None => NotifyEvent::ALL.to_vec(),
                Some(events) => {
                    let mut parsed = Vec::new();
                    for event in events {
                        let e: NotifyEvent = event
                            .get_ref()
                            .parse()
                            .map_err(|e| self.error(event.span(), key("events"), e))?;
                        if !parsed.contains(&e) {
                            parsed.push(e);
                        }
                    }
                    parsed
                }
            };
            let format = match raw.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
                None | Some(("json", _)) => NotifyFormat::Json,
                Some(("slack", _)) => NotifyFormat::Slack,
                Some((other, span)) => {
                    return Err(self.error(
                        span,
                        key("format"),
                        format!("unknown format {other:?} (\"json\" or \"slack\")"),
                    ));
                }
            };
            let secret_env = match &raw.secret_env {
                Some(name) if !is_env_name(name.get_ref()) => {
                    return Err(self.error(
                        name.span(),
                        key("secret_env"),
                        format!("{:?} is not an environment variable's name", name.get_ref()),
                    ));
                }
                other => other.as_ref().map(|n| n.get_ref().clone()),
            };
            targets.push(NotifyTarget { url, events, format, secret_env });
        }
        Ok(targets)
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const BASE: &str = r#"data_dir = "data"
[project]
repo = "repo"
build = "cargo build"
artifact = "target/debug/app"
[[tiers]]
name = "staging"
"#;

    fn parse(section: &str) -> Result<Vec<NotifyTarget>, String> {
        Config::parse(Path::new("/etc/sando/sando.toml"), &format!("{BASE}{section}"))
            .map(|c| c.notify)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn targets_parse_with_every_event_by_default() {
        let targets = parse(
            "[[notify]]\nurl = \"https://hooks.example.com/x\"\n\
             [[notify]]\nurl = \"http://127.0.0.1:9/h\"\nevents = [\"gate_failed\", \"promoted\"]\n\
             format = \"slack\"\nsecret_env = \"HOOK_SECRET\"\n",
        )
        .unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].events, NotifyEvent::ALL.to_vec());
        assert_eq!(targets[0].format, NotifyFormat::Json);
        assert_eq!(targets[1].events, [NotifyEvent::GateFailed, NotifyEvent::Promoted]);
        assert_eq!(targets[1].format, NotifyFormat::Slack);
        assert_eq!(targets[1].secret_env.as_deref(), Some("HOOK_SECRET"));
    }

    #[test]
    fn bad_notify_input_is_one_line_naming_the_key() {
        let cases = [
            ("url = \"ftp://x/y\"\n", "notify[0].url: \"ftp://x/y\" is not http(s)"),
            ("url = \"hooks.example.com\"\n", "notify[0].url: "),
            (
                "url = \"http://x/\"\nevents = [\"gate_exploded\"]\n",
                "notify[0].events: unknown event \"gate_exploded\"",
            ),
            ("url = \"http://x/\"\nformat = \"xml\"\n", "notify[0].format: unknown format \"xml\""),
            ("url = \"http://x/\"\nsecret_env = \"A B\"\n", "notify[0].secret_env: "),
            ("url = \"http://x/\"\nheaders = 1\n", "headers"),
        ];
        for (section, expected) in cases {
            let error = parse(&format!("[[notify]]\n{section}")).unwrap_err();
            assert!(error.contains(expected), "{section}: {error}");
            assert!(!error.contains('\n'), "{error}");
            assert!(error.starts_with("/etc/sando/sando.toml:"), "{error}");
        }
    }
}
