//! What an operator may do: `viewer` < `operator` < `admin`, and who a token is (`GET /api/whoami`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an operator may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads state, logs and events (when reads need a token at all).
    Viewer,
    /// Confirms (approves), rejects, reruns and cancels.
    Operator,
    /// Everything: components, retention, reclassification, rebuilds, backups.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (use viewer, operator or admin)"))
    }
}

/// `GET /api/whoami`: the operator a token is, and their role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
}
