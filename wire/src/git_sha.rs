//! `GitSha`: a commit id as a post-receive hook or an operator spells it.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// A full (40) or abbreviated (7) hex commit id. The canonical form is
/// lowercase, so `ABCDEF1` and `abcdef1` are the same sha everywhere.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct GitSha(String);

impl GitSha {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_full(&self) -> bool {
        self.0.len() == 40
    }

    /// The 7-character abbreviation, as git prints it by default.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl FromStr for GitSha {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        if s.len() != 7 && s.len() != 40 {
            return Err(ParseError::new(
                "git sha",
                s,
                format!("must be 7 or 40 hex digits, got {} characters", s.len()),
            ));
        }
        if let Some(bad) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(ParseError::new("git sha", s, format!("{bad:?} is not a hex digit")));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for GitSha {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<GitSha> for String {
    fn from(v: GitSha) -> String {
        v.0
    }
}

impl fmt::Display for GitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
