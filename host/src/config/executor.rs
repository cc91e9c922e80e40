//! `[executor]`: where builds and gate processes (the `gates` role) run: on this machine (`kind = "local"`, the default) or as Slurm batch jobs (`kind = "slurm"`), with the job's resources, whole or per gate kind.
//!
//! Parsed into newtypes whose only way in is their parser: a partition,
//! account or QOS name that reaches `sbatch` is one Slurm accepts as a
//! name (never an option or a second word), a memory size is digits and a
//! unit, a shared directory is absolute.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::domain::GateKind;

/// Where the `gates` role's processes run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    /// On the daemon's machine, under bubblewrap.
    #[default]
    Local,
    /// As Slurm batch jobs.
    Slurm(SlurmConfig),
}

/// `[executor] kind = "slurm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmConfig {
    /// What every job asks for, unless its gate kind says otherwise.
    pub resources: SlurmResources,
    /// A directory the daemon and every node see at this same path: the
    /// jobs' scripts and output files, and the gates' work files.
    pub shared_dir: PathBuf,
    /// Per gate kind (`[executor.gates.cargo_test]`): replaces the fields it sets.
    pub per_gate: BTreeMap<GateKind, SlurmResources>,
}

impl SlurmConfig {
    /// What a job of `gate` asks for (the build's: `None`).
    pub fn resources_for(&self, gate: Option<GateKind>) -> SlurmResources {
        let mut resources = self.resources.clone();
        if let Some(over) = gate.and_then(|g| self.per_gate.get(&g)) {
            resources.partition = over.partition.clone().or(resources.partition);
            resources.account = over.account.clone().or(resources.account);
            resources.qos = over.qos.clone().or(resources.qos);
            resources.cpus = over.cpus.or(resources.cpus);
            resources.mem = over.mem.clone().or(resources.mem);
        }
        resources
    }
}

/// What a job asks Slurm for. `partition` is set on the whole section's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmResources {
    pub partition: Option<SlurmName>,
    pub account: Option<SlurmName>,
    pub qos: Option<SlurmName>,
    pub cpus: Option<Cpus>,
    pub mem: Option<Memory>,
}

/// A partition, account or QOS name: letters, digits, `_`, `-`, `.`, not
/// starting with `-` (so never read as an option), at most 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmName(String);

impl SlurmName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SlurmName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let fits = !s.is_empty()
            && s.len() <= 64
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if fits {
            Ok(SlurmName(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a Slurm name (letters, digits, _ - . and not starting with -, at most 64)"
            ))
        }
    }
}

impl fmt::Display for SlurmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// CPUs per job (`--cpus-per-task`), 1 to 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus(u32);

impl Cpus {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Cpus {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u32::try_from(n) {
            Ok(n @ 1..=4096) => Ok(Cpus(n)),
            _ => Err(format!("{n} is out of range (1 to 4096)")),
        }
    }
}

/// Memory per job (`--mem`): a whole number of mebibytes, or with a unit
/// `K`, `M`, `G` or `T`, as Slurm takes it (`512M`, `8G`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory(String);

impl FromStr for Memory {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.trim_end_matches(['K', 'M', 'G', 'T']);
        let unit = s.len() - digits.len();
        let fits = unit <= 1
            && (1..=12).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && digits.bytes().any(|b| b != b'0');
        if fits {
            Ok(Memory(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a memory size (a positive number and K, M, G or T: 8G)"))
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl crate::config::Config {
    /// Where the files builds and gates use are kept (work trees,
    /// artifacts, backups, the build cache): the data directory, or with
    /// Slurm `<shared_dir>/files`, which the nodes see at the same path.
    /// The store, the logs and the components stay in the data directory.
    pub fn work_dir(&self) -> PathBuf {
        match &self.executor {
            ExecutorKind::Local => self.data_dir.clone(),
            ExecutorKind::Slurm(slurm) => slurm.shared_dir.join("files"),
        }
    }
}

// ---- the section as written ----------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExecutor {
    kind: Option<Spanned<String>>,
    shared_dir: Option<Spanned<String>>,
    // The job's resources, as in `RawResources` (serde's `flatten` would
    // lose `deny_unknown_fields`).
    partition: Option<Spanned<String>>,
    account: Option<Spanned<String>>,
    qos: Option<Spanned<String>>,
    cpus: Option<Spanned<i64>>,
    mem: Option<Spanned<String>>,
    gates: Option<BTreeMap<String, RawResources>>,
}

impl RawExecutor {
    fn resources(&self) -> RawResources {
        RawResources {
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            cpus: self.cpus.clone(),
            mem: self.mem.clone(),
        }
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawResources {
    partition: Option<Spanned<String>>,
    account: Option<Spanned<String>>,
    qos: Option<Spanned<String>>,
    cpus: Option<Spanned<i64>>,
    mem: Option<Spanned<String>>,
}

impl RawResources {
    fn any_set(&self) -> Option<(std::ops::Range<usize>, &'static str)> {
        let spans = [
            (self.partition.as_ref().map(Spanned::span), "partition"),
            (self.account.as_ref().map(Spanned::span), "account"),
            (self.qos.as_ref().map(Spanned::span), "qos"),
            (self.cpus.as_ref().map(Spanned::span), "cpus"),
            (self.mem.as_ref().map(Spanned::span), "mem"),
        ];
        spans.into_iter().find_map(|(span, key)| span.map(|s| (s, key)))
    }
}

impl Source<'_> {
    /// `[executor]`: absent, `kind = "local"`.
    pub(super) fn executor(
        &self,
        raw: Option<&RawExecutor>,
        resolve: impl Fn(&str) -> PathBuf,
    ) -> Result<ExecutorKind, ConfigError> {
        let Some(raw) = raw else { return Ok(ExecutorKind::Local) };
        let kind = raw.kind.as_ref().map_or("local", |k| k.get_ref().as_str());
        match kind {
            "local" => {
                let slurm_only = raw
                    .resources()
                    .any_set()
                    .or_else(|| raw.shared_dir.as_ref().map(|d| (d.span(), "shared_dir")))
                    .or_else(|| raw.gates.as_ref().map(|_| (self.at("[executor.gates"), "gates")));
                match slurm_only {
                    Some((span, key)) => Err(self.error(
                        span,
                        format!("executor.{key}"),
                        "only for kind = \"slurm\" (this executor is local)",
                    )),
                    None => Ok(ExecutorKind::Local),
                }
            }
            "slurm" => {
                let resources = self.resources(&raw.resources(), "executor")?;
                if resources.partition.is_none() {
                    return Err(self.error(
                        raw.kind.as_ref().map_or(0..0, Spanned::span),
                        "executor.partition",
                        "kind = \"slurm\" needs the partition its jobs go to",
                    ));
                }
                let shared_dir = match &raw.shared_dir {
                    Some(dir) if !dir.get_ref().is_empty() => resolve(dir.get_ref()),
                    Some(dir) => {
                        return Err(self.error(dir.span(), "executor.shared_dir", "an empty path"));
                    }
                    None => {
                        return Err(self.error(
                            raw.kind.as_ref().map_or(0..0, Spanned::span),
                            "executor.shared_dir",
                            "kind = \"slurm\" needs a directory the daemon and every node see at the same path",
                        ));
                    }
                };
                let mut per_gate = BTreeMap::new();
                if let Some(gates) = &raw.gates {
                    for (name, over) in gates {
                        let key = format!("executor.gates.{name}");
                        let gate: GateKind = name
                            .parse()
                            .map_err(|e| self.error(self.at(&key), &key, format!("{e}")))?;
                        per_gate.insert(gate, self.resources(over, &key)?);
                    }
                }
                Ok(ExecutorKind::Slurm(SlurmConfig {
                    resources,
                    shared_dir: normal(&shared_dir),
                    per_gate,
                }))
            }
            other => Err(self.error(
                raw.kind.as_ref().map_or(0..0, Spanned::span),
                "executor.kind",
                format!("unknown executor {other:?} (use local or slurm)"),
            )),
        }
    }

    /// Where `text` first is in the file (a table without a span of its
    /// own); else the start.
    fn at(&self, text: &str) -> std::ops::Range<usize> {
        self.text.find(text).map_or(0..0, |i| i..i + text.len())
    }

    fn resources(&self, raw: &RawResources, at: &str) -> Result<SlurmResources, ConfigError> {
        let name = |value: &Option<Spanned<String>>, key: &str| {
            value.as_ref().map(|v| self.parse::<SlurmName>(v, &format!("{at}.{key}"))).transpose()
        };
        Ok(SlurmResources {
            partition: name(&raw.partition, "partition")?,
            account: name(&raw.account, "account")?,
            qos: name(&raw.qos, "qos")?,
            cpus: raw
                .cpus
                .as_ref()
                .map(|n| {
                    Cpus::try_from(*n.get_ref())
                        .map_err(|e| self.error(n.span(), format!("{at}.cpus"), e))
                })
                .transpose()?,
            mem: raw
                .mem
                .as_ref()
                .map(|m| self.parse::<Memory>(m, &format!("{at}.mem")))
                .transpose()?,
        })
    }
}

/// `path` without `.` and `..` components, so what is inside it is known
/// by its prefix.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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

    fn parse(section: &str) -> Result<ExecutorKind, String> {
        Config::parse(Path::new("/etc/sando/sando.toml"), &format!("{BASE}{section}"))
            .map(|c| c.executor)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_executor_is_local_unless_the_config_says_slurm() {
        assert_eq!(parse("").unwrap(), ExecutorKind::Local);
        assert_eq!(parse("[executor]\nkind = \"local\"\n").unwrap(), ExecutorKind::Local);
        let slurm = parse(
            "[executor]\nkind = \"slurm\"\npartition = \"gates\"\nshared_dir = \"shared/../jobs\"\n\
             cpus = 2\nmem = \"4G\"\naccount = \"ops\"\n\
             [executor.gates.cargo_test]\ncpus = 8\npartition = \"big\"\n",
        )
        .unwrap();
        let ExecutorKind::Slurm(slurm) = slurm else { panic!("{slurm:?}") };
        assert_eq!(slurm.shared_dir, Path::new("/etc/sando/jobs"));
        let all = slurm.resources_for(None);
        assert_eq!(all.partition.unwrap().as_str(), "gates");
        assert_eq!(all.cpus.unwrap().get(), 2);
        let tests = slurm.resources_for(Some(GateKind::CargoTest));
        assert_eq!(tests.partition.unwrap().as_str(), "big");
        assert_eq!(tests.cpus.unwrap().get(), 8);
        assert_eq!(tests.mem.unwrap().to_string(), "4G");
        assert_eq!(tests.account.unwrap().as_str(), "ops");
    }

    #[test]
    fn bad_executor_input_is_one_line_naming_the_key() {
        let cases = [
            ("[executor]\nkind = \"k8s\"\n", "executor.kind: unknown executor \"k8s\""),
            ("[executor]\nkind = \"slurm\"\nshared_dir = \"/s\"\n", "executor.partition: "),
            ("[executor]\nkind = \"slurm\"\npartition = \"p\"\n", "executor.shared_dir: "),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"--wrap=id\"\nshared_dir = \"/s\"\n",
                "executor.partition: \"--wrap=id\" is not a Slurm name",
            ),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"a b\"\nshared_dir = \"/s\"\n",
                "executor.partition: ",
            ),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"p\"\nshared_dir = \"/s\"\ncpus = 0\n",
                "executor.cpus: 0 is out of range",
            ),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"p\"\nshared_dir = \"/s\"\nmem = \"8GB\"\n",
                "executor.mem: \"8GB\" is not a memory size",
            ),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"p\"\nshared_dir = \"/s\"\n\
                 [executor.gates.unit]\ncpus = 2\n",
                "executor.gates.unit: ",
            ),
            (
                "[executor]\nkind = \"slurm\"\npartition = \"p\"\nshared_dir = \"/s\"\n\
                 [executor.gates.boot_smoke]\nmem = \"0\"\n",
                "executor.gates.boot_smoke.mem: ",
            ),
            ("[executor]\npartition = \"p\"\n", "executor.partition: only for kind = \"slurm\""),
            ("[executor]\nkind = \"slurm\"\nnodes = 3\n", "nodes"),
        ];
        for (section, expected) in cases {
            let error = parse(section).unwrap_err();
            assert!(error.contains(expected), "{section}: {error}");
            assert!(!error.contains('\n'), "{error}");
            assert!(error.starts_with("/etc/sando/sando.toml:"), "{error}");
        }
    }
}
