//! Names and row ids: `TierId`, `NodeId`, `GateRunId`, `DeployId`.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// Checks the shape shared by tier and node names: what an operator types in
/// a config file and sees in a URL, so lowercase, digits, `-` and `_` only.
fn parse_name(what: &'static str, s: &str) -> Result<String, ParseError> {
    let err = |reason: &str| ParseError::new(what, s, reason);
    let first = s.chars().next().ok_or_else(|| err("must not be empty"))?;
    if s.len() > 63 {
        return Err(err("must be at most 63 characters"));
    }
    if !first.is_ascii_lowercase() && !first.is_ascii_digit() {
        return Err(err("must start with a lowercase letter or a digit"));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(err(&format!("{bad:?} is not allowed (use a-z, 0-9, - and _)")));
    }
    Ok(s.to_owned())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                parse_name($what, s).map(Self)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, ParseError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A tier's name (`staging`, `prod`). Whether it exists in the topology
    /// is checked when the topology is loaded, not here.
    TierId,
    "tier name"
);
name_type!(
    /// A node's name within its tier.
    NodeId,
    "node name"
);

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = ParseError;
            fn try_from(v: i64) -> Result<Self, ParseError> {
                if v > 0 {
                    Ok(Self(v))
                } else {
                    Err(ParseError::new($what, v.to_string(), "must be a positive integer"))
                }
            }
        }

        impl From<$name> for i64 {
            fn from(v: $name) -> i64 {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                let v: i64 = s
                    .parse()
                    .map_err(|_| ParseError::new($what, s, "must be a positive integer"))?;
                Self::try_from(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

row_id!(
    /// Identifies one row of `gate_runs`, from `gate_start` through its log
    /// chunks to `gate_done`.
    GateRunId,
    "gate run id"
);
row_id!(
    /// Identifies one row of `deploys`.
    DeployId,
    "deploy id"
);
