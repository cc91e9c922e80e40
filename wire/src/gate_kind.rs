//! `GateKind`: which class of gate, the identifier used in events, the schema and URLs.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum GateKind {
    CargoTest,
    MigrationDryRun,
    BootSmoke,
    BurnIn,
    ManualConfirm,
}

impl GateKind {
    pub const ALL: [GateKind; 5] = [
        GateKind::CargoTest,
        GateKind::MigrationDryRun,
        GateKind::BootSmoke,
        GateKind::BurnIn,
        GateKind::ManualConfirm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::CargoTest => "cargo_test",
            GateKind::MigrationDryRun => "migration_dry_run",
            GateKind::BootSmoke => "boot_smoke",
            GateKind::BurnIn => "burn_in",
            GateKind::ManualConfirm => "manual_confirm",
        }
    }
}

impl FromStr for GateKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        GateKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = GateKind::ALL.iter().map(|k| k.as_str()).collect();
            ParseError::new("gate kind", s, format!("expected one of {}", known.join(", ")))
        })
    }
}

impl TryFrom<String> for GateKind {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<GateKind> for String {
    fn from(v: GateKind) -> String {
        v.as_str().to_owned()
    }
}

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
