//! A gate's parameters as the host hands them to its runner: typed per gate kind (contract 0.2), and flattened to the `key = value` strings contract 0.1 runners read.

use serde::{Deserialize, Serialize};

use crate::domain::GateKind;

/// A program and its arguments, each argument exactly as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

/// What one gate run is configured to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GateParams {
    CargoTest {
        command: Invocation,
    },
    MigrationDryRun {
        scratch_db_url: Option<String>,
        migrations: String,
        migrate: Invocation,
        restore: Option<Invocation>,
    },
    BootSmoke {
        command: Invocation,
        stay_up_ms: u64,
    },
    BurnIn {
        duration_ms: u64,
    },
    ManualConfirm,
}

impl GateParams {
    pub fn kind(&self) -> GateKind {
        match self {
            GateParams::CargoTest { .. } => GateKind::CargoTest,
            GateParams::MigrationDryRun { .. } => GateKind::MigrationDryRun,
            GateParams::BootSmoke { .. } => GateKind::BootSmoke,
            GateParams::BurnIn { .. } => GateKind::BurnIn,
            GateParams::ManualConfirm => GateKind::ManualConfirm,
        }
    }

    /// The `key = value` form contract 0.1 runners read: arguments joined
    /// with spaces (which a 0.1 runner splits again on whitespace, so an
    /// argument with a space does not survive it), durations in seconds.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut put = |key: &str, value: String| pairs.push((key.to_owned(), value));
        match self {
            GateParams::CargoTest { command } => {
                put("program", command.program.clone());
                put("args", command.args.join(" "));
            }
            GateParams::MigrationDryRun { scratch_db_url, migrations, migrate, restore } => {
                if let Some(url) = scratch_db_url {
                    put("scratch_db_url", url.clone());
                }
                put("migrations", migrations.clone());
                put("migrate_program", migrate.program.clone());
                put("migrate_args", migrate.args.join(" "));
                if let Some(restore) = restore {
                    put("restore_program", restore.program.clone());
                    put("restore_args", restore.args.join(" "));
                }
            }
            GateParams::BootSmoke { command, stay_up_ms } => {
                put("binary", command.program.clone());
                put("args", command.args.join(" "));
                put("seconds", (stay_up_ms / 1000).max(1).to_string());
            }
            GateParams::BurnIn { duration_ms } => {
                put("duration_s", (duration_ms / 1000).to_string())
            }
            GateParams::ManualConfirm => {}
        }
        pairs
    }

    /// Reads the 0.1 form back, for transcripts recorded before 0.2 (they
    /// kept only the pairs). Arguments come back split on whitespace, as a
    /// 0.1 runner saw them.
    pub fn from_pairs(kind: GateKind, pairs: &[(String, String)]) -> GateParams {
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let words = |key: &str| -> Vec<String> {
            get(key).unwrap_or("").split_whitespace().map(str::to_owned).collect()
        };
        let invocation = |program: &str, args: &str, default: &str| Invocation {
            program: get(program).unwrap_or(default).to_owned(),
            args: words(args),
        };
        let number = |key: &str| get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match kind {
            GateKind::CargoTest => {
                GateParams::CargoTest { command: invocation("program", "args", "cargo") }
            }
            GateKind::MigrationDryRun => GateParams::MigrationDryRun {
                scratch_db_url: get("scratch_db_url").map(str::to_owned),
                migrations: get("migrations").unwrap_or("").to_owned(),
                migrate: invocation("migrate_program", "migrate_args", "sqlx"),
                restore: get("restore_program")
                    .map(|_| invocation("restore_program", "restore_args", "")),
            },
            GateKind::BootSmoke => GateParams::BootSmoke {
                command: invocation("binary", "args", ""),
                stay_up_ms: number("seconds") * 1000,
            },
            GateKind::BurnIn => GateParams::BurnIn { duration_ms: number("duration_s") * 1000 },
            GateKind::ManualConfirm => GateParams::ManualConfirm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_0_1_form_joins_and_reads_back_split() {
        let params = GateParams::CargoTest {
            command: Invocation {
                program: "cargo".into(),
                args: vec!["test".into(), "--".into(), "a b".into()],
            },
        };
        let pairs = params.pairs();
        assert_eq!(pairs[1], ("args".to_owned(), "test -- a b".to_owned()));
        let GateParams::CargoTest { command } = GateParams::from_pairs(GateKind::CargoTest, &pairs)
        else {
            panic!("kind kept")
        };
        assert_eq!(command.args, ["test", "--", "a", "b"]);
        let burn_in = GateParams::BurnIn { duration_ms: 60_000 };
        assert_eq!(GateParams::from_pairs(GateKind::BurnIn, &burn_in.pairs()), burn_in);
    }
}
