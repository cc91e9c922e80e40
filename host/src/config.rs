//! The topology config (`sando serve --config FILE.toml`): parsed once into typed values, with every error naming file, line and key.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::domain::Canary;
use crate::domain::{GateFailure, GateKind, NodeId, TierId};
use crate::identity::{OperatorConfig, OperatorName, OperatorToken, Role, TokenDigest};
use crate::run_as::RunAs;
pub use freeze::{FreezeWindow, WeekTime};

mod executor;
mod freeze;
mod notify;
pub use executor::{Cpus, ExecutorKind, Memory, SlurmConfig, SlurmName, SlurmResources};
pub use notify::{NotifyEvent, NotifyFormat, NotifyTarget, NotifyUrl};

/// A config problem, located: `sando.toml:12:5: tiers[1].gates[0].duration: …`.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {key}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

/// The whole daemon configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from: hidden from code under test, since it
    /// may hold the store's password.
    pub source: PathBuf,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The old single token (`token_env` / `token_file`): one `admin` named
    /// `admin`. `None` when `[[operators]]` are configured and neither key is.
    pub token: Option<TokenSource>,
    /// `[[operators]]`: named identities, each with a role and a hashed token.
    pub operators: Vec<OperatorConfig>,
    pub project: Project,
    /// In promotion order.
    pub tiers: Vec<Tier>,
    /// Where `POST /api/backup/fetch` copies the newest backup from.
    pub backup_source: Option<PathBuf>,
    /// A directory watched for updated gate components (`<kind>.wasm`).
    pub gates_dir: Option<PathBuf>,
    /// Fixture cases (`<kind>/<case>/`) every updated component must keep passing.
    pub fixtures_dir: Option<PathBuf>,
    /// How many recorded outputs of a kind the shadow test replays.
    pub shadow_runs: u32,
    /// Bounds and policies every tier and gate starts from (`[defaults]`).
    pub defaults: Defaults,
    /// Whether code under test (builds, gate processes) runs sandboxed.
    pub isolation: IsolationMode,
    /// The unprivileged user code under test runs as inside the sandbox
    /// (`run_as`); unset, it runs as root without capabilities.
    pub run_as: Option<RunAs>,
    /// Whether the read routes answer without a token (`public_read`, or
    /// `read_requires_token` said the other way round).
    pub public_read: bool,
    /// Origins (`https://ops.example.com`) besides the daemon's own whose
    /// pages may open the event stream.
    pub allowed_origins: Vec<String>,
    /// Event stream clients at once.
    pub max_event_clients: usize,
    /// How long an event stream client may take to take one message
    /// before it is let go, and its place with it (`event_send_timeout`).
    pub event_send_timeout: Duration,
    /// What old versions' files and old backups the daemon removes.
    pub retention: Retention,
    /// Where the history is kept (`[store]`): `<data_dir>/sando.sqlite`
    /// unless a URL says otherwise.
    pub store: StoreLocation,
    /// How this daemon stands for the lead of a shared store (`[store]
    /// advertise` and `leader_lease`); a SQLite store has one daemon.
    pub leadership: LeadershipConfig,
    /// Where builds and gate processes run (`[executor]`).
    pub executor: ExecutorKind,
    /// Where notifications go (`[[notify]]`).
    pub notify: Vec<NotifyTarget>,
}

/// `[store] advertise` and `leader_lease`: what a daemon on a shared store
/// tells the others, and how long its lead lasts unrenewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipConfig {
    /// The URL clients of a standby are sent to while this daemon leads;
    /// `None`: `http://` and the address it listens on.
    pub advertise: Option<String>,
    /// How long a leader that stops renewing its lead (paused, partitioned)
    /// keeps it before a standby ends its session and takes over.
    pub lease: Duration,
}

/// The default `leader_lease`.
pub const DEFAULT_LEADER_LEASE: Duration = Duration::from_secs(10);

/// Where the daemon keeps its history (`[store] url` or `url_env`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file: the data directory's `sando.sqlite` by default.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several daemons.
    Postgres(PostgresUrl),
}

/// A PostgreSQL URL, which may hold a password: as written in the config,
/// or the value of an environment variable read when the store opens.
/// Never printed with its password.
#[derive(Clone, PartialEq, Eq)]
pub enum PostgresUrl {
    Written(String),
    Env(String),
}

impl PostgresUrl {
    /// The URL itself (from the environment, if that is where it is).
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            PostgresUrl::Written(url) => Ok(url.clone()),
            PostgresUrl::Env(name) => match std::env::var(name) {
                Ok(url) if is_postgres_url(&url) => Ok(url),
                Ok(_) => Err(format!(
                    "store.url_env: {name} does not hold a postgres:// or postgresql:// URL"
                )),
                Err(_) => Err(format!("store.url_env: {name} is not set")),
            },
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            StoreLocation::Postgres(PostgresUrl::Written(url)) => {
                write!(f, "Postgres({})", crate::executor::redact(url))
            }
            StoreLocation::Postgres(PostgresUrl::Env(name)) => write!(f, "Postgres(${name})"),
        }
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `[retention]`: a version's work tree, artifact, logs and recorded outputs
/// are kept while it is among the newest `keep_versions`, younger than
/// `keep_for`, or needed by a tier; the newest `keep_backups` backups are
/// kept. Unset bounds keep everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_versions: Option<u32>,
    pub keep_for: Option<Duration>,
    pub keep_backups: Option<u32>,
    /// The shared build cache's size cap, in bytes (`cache_max_mib`): above
    /// it, its oldest compiled units go.
    pub cache_max_bytes: Option<u64>,
    /// How many of the versions last promoted to each tier keep their
    /// artifacts for a rollback (`keep_promoted`; 3 when unset).
    pub keep_promoted: Option<u32>,
}

impl Retention {
    /// The artifacts a rollback may need: the last this many promoted per tier.
    pub fn keep_promoted(&self) -> usize {
        self.keep_promoted.map_or(3, |n| n as usize)
    }
}

/// `isolation`: `"sandbox"` (the default: bubblewrap, and the daemon refuses
/// to start without it) or `"none"` (explicitly running code under test
/// with the daemon's authority; shown as a warning everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationMode {
    #[default]
    Sandbox,
    None,
}

/// `[defaults]`: the timeouts every process gets, how a tree is ended, and
/// the retry policies gates and deploys start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub build_timeout: Duration,
    pub git_timeout: Duration,
    pub gate_timeout: Duration,
    pub deploy_timeout: Duration,
    pub health_timeout: Duration,
    /// Between SIGTERM and SIGKILL when a timeout or a cancel ends a tree.
    pub kill_grace: Duration,
    pub retry: Retry,
    pub deploy_retry: Retry,
    pub on_supersede: OnSupersede,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            build_timeout: Duration::from_secs(30 * 60),
            git_timeout: Duration::from_secs(5 * 60),
            gate_timeout: Duration::from_secs(60 * 60),
            deploy_timeout: Duration::from_secs(10 * 60),
            health_timeout: Duration::from_secs(2 * 60),
            kill_grace: Duration::from_secs(5),
            retry: Retry {
                attempts: 3,
                backoff: Duration::from_secs(30),
                on: ["spawn_failed", "interrupted", "component_fault", "host_fault"]
                    .map(String::from)
                    .to_vec(),
            },
            deploy_retry: Retry {
                attempts: 3,
                backoff: Duration::from_secs(30),
                on: ["spawn", "transport", "interrupted", "timeout", "host_fault"]
                    .map(String::from)
                    .to_vec(),
            },
            on_supersede: OnSupersede::Cancel,
        }
    }
}

/// `retry = { attempts = 3, backoff = "30s", on = ["spawn_failed", ...] }`:
/// how often a failure of one of the `on` classes (a failure's `kind`) is
/// tried again, and how long after. Defects of the version are never in the
/// default classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Runs in all, the first included (1 = never retried).
    pub attempts: u32,
    pub backoff: Duration,
    pub on: Vec<String>,
}

impl Retry {
    /// Whether a failure of `class` after attempt `attempt` is tried again.
    pub fn retries(&self, class: &str, attempt: u32) -> bool {
        attempt < self.attempts && self.on.iter().any(|c| c == class)
    }
}

/// What happens to an older version's running gate when a newer version
/// becomes the tier's candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSupersede {
    #[default]
    Cancel,
    Finish,
}

/// Recorded outputs replayed by default when a component is updated.
pub const DEFAULT_SHADOW_RUNS: u32 = 1000;

/// Where the API token comes from. Never logged, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Project {
    /// The git repository versions are built from.
    pub repo: PathBuf,
    /// The build command, run in the commit's work tree.
    pub build: Command,
    /// The built binary, relative to the work tree; kept per version.
    pub artifact: PathBuf,
    /// Extra environment for the build and every gate process.
    pub env: BTreeMap<String, String>,
    /// Names of variables in the daemon's environment passed to the build,
    /// gate processes and deploys, and masked in everything they print.
    pub secret_env: Vec<String>,
    /// Whether the build may reach the network (else only a private loopback).
    pub network: bool,
    /// Whether versions build and test on copy-on-write views of one trusted
    /// cargo target directory and Sando-owned `CARGO_HOME` (`build_cache`,
    /// on by default), so a push builds incrementally.
    pub build_cache: bool,
}

impl Project {
    /// `env` as the pairs a spawned process gets.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// A program and its arguments, split like a shell would split words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl FromStr for Command {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = split_words(s)?.into_iter();
        let program = words.next().ok_or("must not be empty")?;
        Ok(Command { program, args: words.collect() })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// The `key` of a `key = value` line holding byte `at` of `text`.
fn key_on_line(text: &str, at: usize) -> Option<&str> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c)))
        .then_some(key)
}

/// Words split as a POSIX shell would split them (quotes group, a
/// backslash escapes).
fn split_words(s: &str) -> Result<Vec<String>, String> {
    shlex::split(s).ok_or_else(|| "has an unclosed quote or a trailing backslash".to_owned())
}

/// An `args` value: a TOML array, each element one argument exactly as
/// written, or a string split like a shell's words.
enum RawWords {
    List(Vec<String>),
    Line(String),
}

impl<'de> Deserialize<'de> for RawWords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawWords;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of strings, or a string of words")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawWords, E> {
                Ok(RawWords::Line(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawWords, A::Error> {
                let mut words = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                Ok(RawWords::List(words))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: TierId,
    pub canary: Canary,
    pub nodes: Vec<Node>,
    pub gates: Vec<GateSpec>,
    /// How failed deploys to this tier's nodes are retried.
    pub deploy_retry: Retry,
    /// Who must approve the tier's `manual_confirm`, and how many.
    pub approvals: Option<ApprovalPolicy>,
    /// Weekly windows in which promotions into the tier wait (`freeze`).
    pub freeze: Vec<FreezeWindow>,
    /// A deploy whose health check fails for good takes the tier back to
    /// the version it ran (`auto_rollback = true`).
    pub auto_rollback: bool,
}

/// `approvals = { required = 2, from = ["alice", "bob"], forbid_author = true }`
/// on a tier with a `manual_confirm` gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    /// Distinct operators whose approval, on the evidence as it is now, passes the gate.
    pub required: u32,
    /// Who may approve; empty: any operator or admin.
    pub from: Vec<OperatorName>,
    /// The commit's author (by git author e-mail, mapped through an
    /// operator's `emails`) may not approve it.
    pub forbid_author: bool,
}

/// A gate as configured: what it runs, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSpec {
    pub gate: Gate,
    /// Every process the gate starts is ended after this long (`timeout`).
    pub timeout: Duration,
    pub retry: Retry,
    /// Whether the gate's processes may reach the network (`network = true`,
    /// e.g. a PostgreSQL scratch database); else only a private loopback.
    pub network: bool,
}

impl GateSpec {
    pub fn kind(&self) -> GateKind {
        self.gate.kind()
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: NodeId,
    /// `{artifact}`, `{version}`, `{node}` and `{tier}` are substituted.
    pub deploy: Command,
    /// Run after a deploy; non-zero means the node is unhealthy.
    pub health: Option<Command>,
}

/// A gate's configuration: its kind and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    CargoTest {
        args: Vec<String>,
    },
    MigrationDryRun {
        scratch_db_url: Option<String>,
        /// Relative to the work tree.
        migrations: String,
        migrate: Command,
        restore: Option<Command>,
    },
    BootSmoke {
        args: Vec<String>,
        stay_up: Duration,
    },
    BurnIn {
        duration: Duration,
        on_tier: Option<TierId>,
    },
    ManualConfirm,
}

impl Gate {
    pub fn kind(&self) -> GateKind {
        match self {
            Gate::CargoTest { .. } => GateKind::CargoTest,
            Gate::MigrationDryRun { .. } => GateKind::MigrationDryRun,
            Gate::BootSmoke { .. } => GateKind::BootSmoke,
            Gate::BurnIn { .. } => GateKind::BurnIn,
            Gate::ManualConfirm => GateKind::ManualConfirm,
        }
    }
}

/// How long an event stream client may take over one message by default:
/// long enough for a client paused for a while (a terminal suspended, a
/// laptop's network changing), short enough that clients which stopped
/// reading do not keep `max_event_clients` full.
pub const DEFAULT_EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest duration a config may give: ten years. Anything longer is a
/// typo, and bounding it keeps every later date addition in range.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

/// `"168h"`, `"90s"`, `"30m"`, `"2d"`, `"500ms"`; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use e.g. \"168h\", \"90s\")"))?;
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!("{s:?} has an unknown unit (use ms, s, m, h or d, e.g. \"168h\")"));
        }
    };
    let too_long = || format!("{s:?} is longer than the maximum of 10 years");
    let millis = n.checked_mul(scale).ok_or_else(too_long)?;
    let duration = Duration::from_millis(millis);
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    data_dir: Spanned<String>,
    token_env: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    operators: Vec<RawOperator>,
    read_requires_token: Option<Spanned<bool>>,
    backup_source: Option<Spanned<String>>,
    gates_dir: Option<Spanned<String>>,
    fixtures_dir: Option<Spanned<String>>,
    shadow_runs: Option<u32>,
    #[serde(default)]
    defaults: RawDefaults,
    isolation: Option<Spanned<String>>,
    run_as: Option<Spanned<String>>,
    public_read: Option<bool>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    max_event_clients: Option<Spanned<u32>>,
    event_send_timeout: Option<Spanned<String>>,
    retention: Option<RawRetention>,
    store: Option<RawStore>,
    executor: Option<executor::RawExecutor>,
    #[serde(default)]
    notify: Vec<notify::RawNotify>,
    project: RawProject,
    tiers: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    name: Spanned<String>,
    role: Spanned<String>,
    token_sha256: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    #[serde(default)]
    emails: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    required: Option<Spanned<u32>>,
    #[serde(default)]
    from: Vec<Spanned<String>>,
    #[serde(default)]
    forbid_author: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    advertise: Option<Spanned<String>>,
    leader_lease: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    build_timeout: Option<Spanned<String>>,
    git_timeout: Option<Spanned<String>>,
    gate_timeout: Option<Spanned<String>>,
    deploy_timeout: Option<Spanned<String>>,
    health_timeout: Option<Spanned<String>>,
    kill_grace: Option<Spanned<String>>,
    retry: Option<Spanned<RawRetry>>,
    deploy_retry: Option<Spanned<RawRetry>>,
    on_supersede: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_versions: Option<Spanned<u32>>,
    keep_for: Option<Spanned<String>>,
    keep_backups: Option<Spanned<u32>>,
    cache_max_mib: Option<Spanned<u32>>,
    keep_promoted: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    backoff: Option<Spanned<String>>,
    on: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    repo: Spanned<String>,
    build: Spanned<String>,
    artifact: Spanned<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secret_env: Vec<Spanned<String>>,
    #[serde(default)]
    network: bool,
    #[serde(default = "on")]
    build_cache: bool,
}

/// The build cache is on unless the config turns it off.
fn on() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    name: Spanned<String>,
    canary: Option<Spanned<String>>,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    gates: Vec<RawGate>,
    deploy_retry: Option<Spanned<RawRetry>>,
    approvals: Option<Spanned<RawApprovals>>,
    #[serde(default)]
    freeze: Vec<Spanned<RawFreezeWindow>>,
    #[serde(default)]
    auto_rollback: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreezeWindow {
    from: Spanned<String>,
    to: Spanned<String>,
    tz: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    deploy: Spanned<String>,
    health: Option<Spanned<String>>,
}

/// Every key any gate kind takes; which ones a kind allows is checked after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    kind: Spanned<String>,
    args: Option<Spanned<RawWords>>,
    timeout: Option<Spanned<String>>,
    scratch_db_url: Option<Spanned<String>>,
    migrations: Option<Spanned<String>>,
    migrate: Option<Spanned<String>>,
    restore: Option<Spanned<String>>,
    stay_up: Option<Spanned<String>>,
    duration: Option<Spanned<String>>,
    on_tier: Option<Spanned<String>>,
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    network: bool,
}

// ---- validation ----------------------------------------------------------

struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let before = &self.text[..span.start.min(self.text.len())];
        ConfigError {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1,
            key: key.into(),
            message: message.into(),
        }
    }

    fn parse<T: FromStr>(&self, value: &Spanned<String>, key: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        value.get_ref().parse().map_err(|e: T::Err| self.error(value.span(), key, e.to_string()))
    }

    /// `[store] advertise` and `leader_lease`.
    fn leadership(&self, raw: Option<&RawStore>) -> Result<LeadershipConfig, ConfigError> {
        let (advertise, lease) =
            raw.map_or((None, None), |r| (r.advertise.as_ref(), r.leader_lease.clone()));
        let advertise = match advertise {
            None => None,
            Some(url) => {
                let text = url.get_ref().trim_end_matches('/');
                let host = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
                if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '?', '#', ' '])) {
                    return Err(self.error(
                        url.span(),
                        "store.advertise",
                        format!(
                            "{:?}: expected http://host:port (how clients reach this daemon)",
                            url.get_ref()
                        ),
                    ));
                }
                Some(text.to_owned())
            }
        };
        let lease = self.duration_or(&lease, "store.leader_lease", DEFAULT_LEADER_LEASE)?;
        if lease < Duration::from_secs(2) {
            let span = raw.and_then(|r| r.leader_lease.as_ref()).map_or(0..0, |l| l.span());
            return Err(self.error(
                span,
                "store.leader_lease",
                "must be at least 2s (a leader renews its lead three times per lease)",
            ));
        }
        Ok(LeadershipConfig { advertise, lease })
    }

    /// `[store]`: a `sqlite://` path (relative to the config's directory) or
    /// a `postgres://` URL, or the name of a variable holding the URL.
    fn store(
        &self,
        raw: Option<&RawStore>,
        data_dir: &Path,
        resolve: impl Fn(&str) -> PathBuf,
    ) -> Result<StoreLocation, ConfigError> {
        let default = StoreLocation::Sqlite(data_dir.join("sando.sqlite"));
        let Some(raw) = raw else { return Ok(default) };
        match (&raw.url, &raw.url_env) {
            (Some(_), Some(env)) => Err(self.error(
                env.span(),
                "store.url_env",
                "set store.url or store.url_env, not both",
            )),
            (None, None) => Ok(default),
            (None, Some(env)) => {
                let name = env.get_ref();
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    return Err(self.error(
                        env.span(),
                        "store.url_env",
                        format!("{name:?} is not an environment variable name"),
                    ));
                }
                Ok(StoreLocation::Postgres(PostgresUrl::Env(name.clone())))
            }
            (Some(url), None) => {
                let text = url.get_ref();
                if is_postgres_url(text) {
                    return Ok(StoreLocation::Postgres(PostgresUrl::Written(text.clone())));
                }
                let path = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:"));
                match path.filter(|p| !p.is_empty()) {
                    Some(path) => Ok(StoreLocation::Sqlite(resolve(path))),
                    None => Err(self.error(
                        url.span(),
                        "store.url",
                        format!(
                            "{:?}: expected sqlite:///path/to/sando.sqlite or postgres://user@host/db",
                            crate::executor::redact(text)
                        ),
                    )),
                }
            }
        }
    }

    fn retention(&self, raw: Option<&RawRetention>) -> Result<Retention, ConfigError> {
        let Some(raw) = raw else { return Ok(Retention::default()) };
        let count = |value: &Option<Spanned<u32>>, key: &str| match value {
            None => Ok(None),
            Some(n) if (1..=1_000_000).contains(n.get_ref()) => Ok(Some(*n.get_ref())),
            Some(n) => Err(self.error(
                n.span(),
                format!("retention.{key}"),
                format!("{} is out of range (1 to 1000000)", n.get_ref()),
            )),
        };
        Ok(Retention {
            keep_versions: count(&raw.keep_versions, "keep_versions")?,
            keep_for: raw
                .keep_for
                .as_ref()
                .map(|d| self.duration(d, "retention.keep_for"))
                .transpose()?,
            keep_backups: count(&raw.keep_backups, "keep_backups")?,
            cache_max_bytes: count(&raw.cache_max_mib, "cache_max_mib")?
                .map(|mib| u64::from(mib) << 20),
            keep_promoted: count(&raw.keep_promoted, "keep_promoted")?,
        })
    }

    /// One of a tier's `freeze` windows.
    fn freeze_window(
        &self,
        raw: &Spanned<RawFreezeWindow>,
        at: &str,
    ) -> Result<FreezeWindow, ConfigError> {
        let window = raw.get_ref();
        let from = self.parse(&window.from, &format!("{at}.from"))?;
        let to = self.parse(&window.to, &format!("{at}.to"))?;
        let tz = match &window.tz {
            None => chrono_tz::Tz::UTC,
            Some(tz) => freeze::zone(tz.get_ref())
                .map_err(|e| self.error(tz.span(), format!("{at}.tz"), e))?,
        };
        FreezeWindow::new(from, to, tz).map_err(|e| self.error(raw.span(), at, e))
    }

    /// Variable names: as a shell writes them, each once, and none the
    /// sandbox sets itself.
    fn secret_env(&self, names: &[Spanned<String>]) -> Result<Vec<String>, ConfigError> {
        let mut seen = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let key = format!("project.secret_env[{i}]");
            let text = name.get_ref();
            let mut chars = text.chars();
            let well_formed = chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
                && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
            let problem = if !well_formed {
                Some(format!("{text:?} is not an environment variable name"))
            } else if ["PATH", "HOME", "SANDO_OWNER"].contains(&text.as_str()) {
                Some(format!("{text:?} is set by Sando itself and cannot be a secret"))
            } else if seen.contains(text) {
                Some(format!("{text:?} is listed twice"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(self.error(name.span(), key, problem));
            }
            seen.push(text.clone());
        }
        Ok(seen)
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        parse_duration(value.get_ref()).map_err(|e| self.error(value.span(), key, e))
    }

    fn duration_or(
        &self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match value {
            Some(value) => {
                let duration = self.duration(value, key)?;
                if duration.is_zero() {
                    return Err(self.error(value.span(), key, "must be longer than zero"));
                }
                Ok(duration)
            }
            None => Ok(default),
        }
    }

    /// A retry table over `base`: what it leaves out comes from `base`.
    fn retry(
        &self,
        raw: &Option<Spanned<RawRetry>>,
        key: &str,
        base: &Retry,
        classes: &[&str],
    ) -> Result<Retry, ConfigError> {
        let Some(raw) = raw else { return Ok(base.clone()) };
        let span = raw.span();
        let raw = raw.get_ref();
        let attempts = raw.attempts.unwrap_or(base.attempts);
        if !(1..=100).contains(&attempts) {
            return Err(self.error(
                span,
                format!("{key}.attempts"),
                format!("{attempts} is out of range (1 to 100 runs in all)"),
            ));
        }
        let backoff = match &raw.backoff {
            Some(b) => self.duration(b, &format!("{key}.backoff"))?,
            None => base.backoff,
        };
        let on = match &raw.on {
            Some(on) => {
                let mut classes_given = Vec::new();
                for class in on {
                    if !classes.contains(&class.get_ref().as_str()) {
                        return Err(self.error(
                            class.span(),
                            format!("{key}.on"),
                            format!(
                                "unknown failure class {:?} (one of: {})",
                                class.get_ref(),
                                classes.join(", ")
                            ),
                        ));
                    }
                    classes_given.push(class.get_ref().clone());
                }
                classes_given
            }
            None => base.on.clone(),
        };
        Ok(Retry { attempts, backoff, on })
    }

    fn command(&self, value: &Spanned<String>, key: &str) -> Result<Command, ConfigError> {
        value.get_ref().parse().map_err(|e: String| self.error(value.span(), key, e))
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are relative
    /// to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            key: "(file)".into(),
            message: crate::fixtures::io_message(&e),
        })?;
        Config::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let source = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // A value of the wrong type is named by the key on its line; an
            // unknown or missing key by the name the message quotes.
            let key = e
                .message()
                .starts_with("invalid")
                .then(|| key_on_line(text, span.start))
                .flatten()
                .or_else(|| e.message().split('`').nth(1))
                .unwrap_or("(syntax)")
                .to_owned();
            source.error(span, key, crate::text::one_line(e.message()))
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve =
            |p: &str| if Path::new(p).is_absolute() { PathBuf::from(p) } else { base.join(p) };

        let listen = match &raw.listen {
            Some(listen) => source.parse::<SocketAddr>(listen, "listen")?,
            None => SocketAddr::from(([127, 0, 0, 1], 7878)),
        };
        let token = match (&raw.token_env, &raw.token_file) {
            (Some(_), Some(file)) => {
                return Err(source.error(
                    file.span(),
                    "token_file",
                    "set token_env or token_file, not both",
                ));
            }
            (Some(env), None) => Some(TokenSource::Env(env.get_ref().clone())),
            (None, Some(file)) => Some(TokenSource::File(resolve(file.get_ref()))),
            // Operators named one by one need no shared token.
            (None, None) if !raw.operators.is_empty() => None,
            (None, None) => Some(TokenSource::Env("SANDO_TOKEN".into())),
        };
        let operators = operators(&source, &raw.operators, token.is_some(), resolve)?;
        let public_read = match (raw.public_read, &raw.read_requires_token) {
            (Some(public), Some(needs)) if public == *needs.get_ref() => {
                return Err(source.error(
                    needs.span(),
                    "read_requires_token",
                    format!("contradicts public_read = {public}; set one of them"),
                ));
            }
            (_, Some(needs)) => !needs.get_ref(),
            (public, None) => public.unwrap_or(true),
        };
        let project = Project {
            repo: resolve(raw.project.repo.get_ref()),
            build: source.command(&raw.project.build, "project.build")?,
            artifact: PathBuf::from(raw.project.artifact.get_ref()),
            env: raw.project.env,
            secret_env: source.secret_env(&raw.project.secret_env)?,
            network: raw.project.network,
            build_cache: raw.project.build_cache,
        };
        if project.artifact.is_absolute() || raw.project.artifact.get_ref().contains("..") {
            return Err(source.error(
                raw.project.artifact.span(),
                "project.artifact",
                "must be a path inside the work tree (relative, no `..`)",
            ));
        }
        let defaults = defaults(&source, &raw.defaults)?;
        if raw.tiers.is_empty() {
            return Err(source.error(0..0, "tiers", "at least one [[tiers]] is needed"));
        }

        let mut tiers: Vec<Tier> = Vec::new();
        let mut seen_tiers = HashSet::new();
        for (t, raw_tier) in raw.tiers.iter().enumerate() {
            let at = |key: &str| format!("tiers[{t}].{key}");
            let name: TierId = source.parse(&raw_tier.name, &at("name"))?;
            if !seen_tiers.insert(name.clone()) {
                return Err(source.error(
                    raw_tier.name.span(),
                    at("name"),
                    format!("tier {name} is defined twice"),
                ));
            }
            let canary = match &raw_tier.canary {
                None => Canary::AllAtOnce,
                Some(c) => {
                    match c.get_ref().as_str() {
                        "all_at_once" => Canary::AllAtOnce,
                        "one_then_rest" => Canary::OneThenRest,
                        other => {
                            return Err(source.error(
                            c.span(),
                            at("canary"),
                            format!("unknown canary policy {other:?} (use all_at_once or one_then_rest)"),
                        ));
                        }
                    }
                }
            };
            let mut nodes = Vec::new();
            let mut seen_nodes = HashSet::new();
            for (n, raw_node) in raw_tier.nodes.iter().enumerate() {
                let key = |k: &str| at(&format!("nodes[{n}].{k}"));
                let node_name: NodeId = source.parse(&raw_node.name, &key("name"))?;
                if !seen_nodes.insert(node_name.clone()) {
                    return Err(source.error(
                        raw_node.name.span(),
                        key("name"),
                        format!("node {node_name} is defined twice in tier {name}"),
                    ));
                }
                nodes.push(Node {
                    name: node_name,
                    deploy: source.command(&raw_node.deploy, &key("deploy"))?,
                    health: raw_node
                        .health
                        .as_ref()
                        .map(|h| source.command(h, &key("health")))
                        .transpose()?,
                });
            }
            let mut gates = Vec::new();
            let mut seen_gates = HashSet::new();
            for (g, raw_gate) in raw_tier.gates.iter().enumerate() {
                let gate = gate(
                    &source,
                    raw_gate,
                    &at(&format!("gates[{g}]")),
                    &seen_tiers,
                    &name,
                    &defaults,
                )?;
                if !seen_gates.insert(gate.kind()) {
                    return Err(source.error(
                        raw_gate.kind.span(),
                        at(&format!("gates[{g}].kind")),
                        format!("tier {name} has two {} gates", gate.kind()),
                    ));
                }
                gates.push(gate);
            }
            let deploy_retry = source.retry(
                &raw_tier.deploy_retry,
                &at("deploy_retry"),
                &defaults.deploy_retry,
                crate::domain::DeployFailure::CLASSES,
            )?;
            let approvals = match &raw_tier.approvals {
                None => None,
                Some(raw) => Some(approvals(&source, raw, &at("approvals"), &gates, &operators)?),
            };
            let mut freeze = Vec::new();
            for (w, raw) in raw_tier.freeze.iter().enumerate() {
                freeze.push(source.freeze_window(raw, &at(&format!("freeze[{w}]")))?);
            }
            let auto_rollback = raw_tier.auto_rollback;
            tiers.push(Tier {
                name,
                canary,
                nodes,
                gates,
                deploy_retry,
                approvals,
                freeze,
                auto_rollback,
            });
        }
        let isolation = match &raw.isolation {
            None => IsolationMode::Sandbox,
            Some(mode) => match mode.get_ref().as_str() {
                "sandbox" => IsolationMode::Sandbox,
                "none" => IsolationMode::None,
                other => {
                    return Err(source.error(
                        mode.span(),
                        "isolation",
                        format!("unknown isolation {other:?} (use sandbox or none)"),
                    ));
                }
            },
        };
        let run_as = match &raw.run_as {
            None => None,
            Some(_) if isolation == IsolationMode::None => {
                let span = raw.isolation.as_ref().map_or(0..0, |i| i.span());
                return Err(source.error(
                    span,
                    "isolation",
                    "run_as needs isolation = \"sandbox\": without the sandbox the toolchain and work tree cannot be opened to the user",
                ));
            }
            Some(user) => Some(
                RunAs::lookup(user.get_ref())
                    .map_err(|message| source.error(user.span(), "run_as", message))?,
            ),
        };
        let data_dir = resolve(raw.data_dir.get_ref());
        let store = source.store(raw.store.as_ref(), &data_dir, resolve)?;
        let leadership = source.leadership(raw.store.as_ref())?;
        let executor = source.executor(raw.executor.as_ref(), resolve)?;
        Ok(Config {
            executor,
            notify: source.notify(&raw.notify)?,
            source: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            listen,
            store,
            leadership,
            data_dir,
            token,
            operators,
            project,
            tiers,
            backup_source: raw.backup_source.as_ref().map(|b| resolve(b.get_ref())),
            gates_dir: raw.gates_dir.as_ref().map(|d| resolve(d.get_ref())),
            fixtures_dir: raw.fixtures_dir.as_ref().map(|d| resolve(d.get_ref())),
            shadow_runs: raw.shadow_runs.unwrap_or(DEFAULT_SHADOW_RUNS),
            defaults,
            public_read,
            allowed_origins: raw.allowed_origins,
            retention: source.retention(raw.retention.as_ref())?,
            max_event_clients: match &raw.max_event_clients {
                None => 64,
                Some(n) if (1..=10_000).contains(n.get_ref()) => *n.get_ref() as usize,
                Some(n) => {
                    return Err(source.error(
                        n.span(),
                        "max_event_clients",
                        format!("{} is out of range (1 to 10000)", n.get_ref()),
                    ));
                }
            },
            event_send_timeout: source.duration_or(
                &raw.event_send_timeout,
                "event_send_timeout",
                DEFAULT_EVENT_SEND_TIMEOUT,
            )?,
            isolation,
            run_as,
        })
    }

    pub fn tier(&self, name: &TierId) -> Option<&Tier> {
        self.tiers.iter().find(|t| &t.name == name)
    }
}

fn defaults(source: &Source<'_>, raw: &RawDefaults) -> Result<Defaults, ConfigError> {
    let base = Defaults::default();
    let at = |k: &str| format!("defaults.{k}");
    Ok(Defaults {
        build_timeout: source.duration_or(
            &raw.build_timeout,
            &at("build_timeout"),
            base.build_timeout,
        )?,
        git_timeout: source.duration_or(&raw.git_timeout, &at("git_timeout"), base.git_timeout)?,
        gate_timeout: source.duration_or(
            &raw.gate_timeout,
            &at("gate_timeout"),
            base.gate_timeout,
        )?,
        deploy_timeout: source.duration_or(
            &raw.deploy_timeout,
            &at("deploy_timeout"),
            base.deploy_timeout,
        )?,
        health_timeout: source.duration_or(
            &raw.health_timeout,
            &at("health_timeout"),
            base.health_timeout,
        )?,
        kill_grace: match &raw.kill_grace {
            Some(g) => source.duration(g, &at("kill_grace"))?,
            None => base.kill_grace,
        },
        retry: source.retry(&raw.retry, &at("retry"), &base.retry, GateFailure::CLASSES)?,
        deploy_retry: source.retry(
            &raw.deploy_retry,
            &at("deploy_retry"),
            &base.deploy_retry,
            crate::domain::DeployFailure::CLASSES,
        )?,
        on_supersede: match &raw.on_supersede {
            None => base.on_supersede,
            Some(o) => match o.get_ref().as_str() {
                "cancel" => OnSupersede::Cancel,
                "finish" => OnSupersede::Finish,
                other => {
                    return Err(source.error(
                        o.span(),
                        at("on_supersede"),
                        format!("unknown policy {other:?} (use cancel or finish)"),
                    ));
                }
            },
        },
    })
}

/// `[[operators]]`: each name once (and not `admin` while the old single
/// token is that admin), a role, and a token as a digest or a file.
fn operators(
    source: &Source<'_>,
    raw: &[RawOperator],
    legacy_admin: bool,
    resolve: impl Fn(&str) -> PathBuf,
) -> Result<Vec<OperatorConfig>, ConfigError> {
    let mut seen = HashSet::new();
    let mut operators = Vec::new();
    for (i, raw) in raw.iter().enumerate() {
        let key = |k: &str| format!("operators[{i}].{k}");
        let name: OperatorName = source.parse(&raw.name, &key("name"))?;
        if !seen.insert(name.clone()) {
            return Err(source.error(
                raw.name.span(),
                key("name"),
                format!("operator {name} is defined twice"),
            ));
        }
        if legacy_admin && name.as_str() == crate::identity::LEGACY_ADMIN {
            return Err(source.error(
                raw.name.span(),
                key("name"),
                "\"admin\" is the name of the token_env / token_file token; choose another name or drop that token",
            ));
        }
        let role: Role = source.parse(&raw.role, &key("role"))?;
        let token = match (&raw.token_sha256, &raw.token_file) {
            (Some(digest), None) => {
                OperatorToken::Sha256(source.parse::<TokenDigest>(digest, &key("token_sha256"))?)
            }
            (None, Some(file)) => OperatorToken::File(resolve(file.get_ref())),
            (Some(_), Some(file)) => {
                return Err(source.error(
                    file.span(),
                    key("token_file"),
                    "set token_sha256 or token_file, not both",
                ));
            }
            (None, None) => {
                return Err(source.error(
                    raw.name.span(),
                    key("token_sha256"),
                    format!("operator {name} needs token_sha256 (or token_file)"),
                ));
            }
        };
        let mut emails = Vec::new();
        for (e, email) in raw.emails.iter().enumerate() {
            let text = email.get_ref().trim();
            if !text.contains('@') || text.chars().any(char::is_whitespace) {
                return Err(source.error(
                    email.span(),
                    key(&format!("emails[{e}]")),
                    format!("{text:?} is not an e-mail address"),
                ));
            }
            emails.push(text.to_ascii_lowercase());
        }
        operators.push(OperatorConfig { name, role, token, emails });
    }
    Ok(operators)
}

/// A tier's `approvals`: on a tier that has a `manual_confirm` gate, naming
/// only operators who may confirm, no more required than can give them.
fn approvals(
    source: &Source<'_>,
    raw: &Spanned<RawApprovals>,
    at: &str,
    gates: &[GateSpec],
    operators: &[OperatorConfig],
) -> Result<ApprovalPolicy, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    if !gates.iter().any(|g| g.kind() == GateKind::ManualConfirm) {
        return Err(source.error(
            raw.span(),
            at,
            "approvals need a manual_confirm gate on the tier (they decide it)",
        ));
    }
    let raw = raw.get_ref();
    let mut from = Vec::new();
    for (i, name) in raw.from.iter().enumerate() {
        let key = key(&format!("from[{i}]"));
        let parsed: OperatorName = source.parse(name, &key)?;
        let Some(operator) = operators.iter().find(|o| o.name == parsed) else {
            return Err(source.error(
                name.span(),
                key,
                format!("unknown operator {parsed} (no [[operators]] entry has that name)"),
            ));
        };
        if operator.role < Role::Operator {
            return Err(source.error(
                name.span(),
                key,
                format!("{parsed} is a viewer and cannot approve (give them role = \"operator\")"),
            ));
        }
        if from.contains(&parsed) {
            return Err(source.error(name.span(), key, format!("{parsed} is named twice")));
        }
        from.push(parsed);
    }
    let required = match &raw.required {
        None => 1,
        Some(n) => {
            let available = if from.is_empty() {
                operators.iter().filter(|o| o.role >= Role::Operator).count().max(1)
            } else {
                from.len()
            };
            if *n.get_ref() == 0 || *n.get_ref() as usize > available {
                return Err(source.error(
                    n.span(),
                    key("required"),
                    format!(
                        "{} is out of range: 1 to {available} (the operators who may approve)",
                        n.get_ref()
                    ),
                ));
            }
            *n.get_ref()
        }
    };
    Ok(ApprovalPolicy { required, from, forbid_author: raw.forbid_author })
}

/// One `[[tiers.gates]]` table. `earlier_tiers` holds the tiers defined so
/// far (this one included), which a burn-in may refer to.
fn gate(
    source: &Source<'_>,
    raw: &RawGate,
    at: &str,
    earlier_tiers: &HashSet<TierId>,
    this_tier: &TierId,
    defaults: &Defaults,
) -> Result<GateSpec, ConfigError> {
    let kind: GateKind = source.parse(&raw.kind, &format!("{at}.kind"))?;
    let key = |k: &str| format!("{at}.{k}");
    let allowed: &[&str] = match kind {
        GateKind::CargoTest => &["args"],
        GateKind::MigrationDryRun => &["scratch_db_url", "migrations", "migrate", "restore"],
        GateKind::BootSmoke => &["args", "stay_up"],
        GateKind::BurnIn => &["duration", "on_tier"],
        GateKind::ManualConfirm => &[],
    };
    let span = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
    let present = [
        ("args", raw.args.as_ref().map(Spanned::span)),
        ("scratch_db_url", span(&raw.scratch_db_url)),
        ("migrations", span(&raw.migrations)),
        ("migrate", span(&raw.migrate)),
        ("restore", span(&raw.restore)),
        ("stay_up", span(&raw.stay_up)),
        ("duration", span(&raw.duration)),
        ("on_tier", span(&raw.on_tier)),
    ];
    for (name, value) in present {
        if let Some(at) = value
            && !allowed.contains(&name)
        {
            return Err(source.error(at, key(name), format!("a {kind} gate takes no `{name}`")));
        }
    }
    let words = |v: &Option<Spanned<RawWords>>, k: &str| -> Result<Vec<String>, ConfigError> {
        match v.as_ref().map(|v| (v.get_ref(), v.span())) {
            Some((RawWords::List(words), _)) => Ok(words.clone()),
            Some((RawWords::Line(line), at)) => {
                split_words(line).map_err(|e| source.error(at, key(k), e))
            }
            None => Ok(Vec::new()),
        }
    };
    let timeout = source.duration_or(&raw.timeout, &key("timeout"), defaults.gate_timeout)?;
    let retry = source.retry(&raw.retry, &key("retry"), &defaults.retry, GateFailure::CLASSES)?;
    let gate = match kind {
        GateKind::CargoTest => Gate::CargoTest {
            args: match &raw.args {
                Some(_) => words(&raw.args, "args")?,
                None => vec!["test".into()],
            },
        },
        GateKind::MigrationDryRun => Gate::MigrationDryRun {
            scratch_db_url: raw.scratch_db_url.as_ref().map(|u| u.get_ref().clone()),
            migrations: raw
                .migrations
                .as_ref()
                .map_or("migrations".into(), |m| m.get_ref().clone()),
            migrate: match &raw.migrate {
                Some(m) => source.command(m, &key("migrate"))?,
                None => Command { program: "sqlx".into(), args: Vec::new() },
            },
            restore: raw
                .restore
                .as_ref()
                .map(|r| source.command(r, &key("restore")))
                .transpose()?,
        },
        GateKind::BootSmoke => Gate::BootSmoke {
            args: words(&raw.args, "args")?,
            stay_up: match &raw.stay_up {
                Some(s) => source.duration(s, &key("stay_up"))?,
                None => Duration::from_secs(10),
            },
        },
        GateKind::BurnIn => {
            let duration = raw.duration.as_ref().ok_or_else(|| {
                source.error(raw.kind.span(), key("duration"), "a burn_in gate needs a `duration`")
            })?;
            let on_tier = match &raw.on_tier {
                None => None,
                Some(t) => {
                    let tier: TierId = source.parse(t, &key("on_tier"))?;
                    if !earlier_tiers.contains(&tier) || &tier == this_tier {
                        return Err(source.error(
                            t.span(),
                            key("on_tier"),
                            format!("unknown tier {tier} (must name an earlier tier)"),
                        ));
                    }
                    Some(tier)
                }
            };
            Gate::BurnIn { duration: source.duration(duration, &key("duration"))?, on_tier }
        }
        GateKind::ManualConfirm => Gate::ManualConfirm,
    };
    Ok(GateSpec { gate, timeout, retry, network: raw.network })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:0"
data_dir = "data"
token_env = "MY_TOKEN"

[project]
repo = "repo"
build = "cargo build --release"
artifact = "target/release/app"

[[tiers]]
name = "staging"
[[tiers.nodes]]
name = "s1"
deploy = "cp {artifact} '/srv/my app/'"
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"
[[tiers.gates]]
kind = "boot_smoke"
stay_up = "3s"

[[tiers]]
name = "prod"
canary = "one_then_rest"
[[tiers.gates]]
kind = "burn_in"
duration = "168h"
[[tiers.gates]]
kind = "manual_confirm"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/sando/sando.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_store_is_the_data_directorys_sqlite_file_unless_a_url_says_otherwise() {
        let data = GOOD.lines().find(|l| l.starts_with("data_dir")).unwrap();
        let with = |store: &str| format!("{GOOD}\n[store]\n{store}\n");
        let at = |store: &str| parse(&with(store)).map(|c| c.store);
        let data_dir = parse(GOOD).unwrap().data_dir;
        assert_eq!(
            parse(GOOD).unwrap().store,
            StoreLocation::Sqlite(data_dir.join("sando.sqlite")),
            "{data}"
        );
        assert_eq!(
            at("url = \"sqlite://state/main.sqlite\"").unwrap(),
            StoreLocation::Sqlite("/etc/sando/state/main.sqlite".into())
        );
        assert_eq!(
            at("url = \"sqlite:///var/lib/sando/db\"").unwrap(),
            StoreLocation::Sqlite("/var/lib/sando/db".into())
        );
        let written = at("url = \"postgres://sando:hunter2@db.internal/sando\"").unwrap();
        assert_eq!(
            written,
            StoreLocation::Postgres(PostgresUrl::Written(
                "postgres://sando:hunter2@db.internal/sando".into()
            ))
        );
        assert!(!format!("{written:?}").contains("hunter2"), "{written:?}");
        assert_eq!(
            at("url_env = \"SANDO_DB\"").unwrap(),
            StoreLocation::Postgres(PostgresUrl::Env("SANDO_DB".into()))
        );
        let both = at("url = \"postgres://h/d\"\nurl_env = \"SANDO_DB\"").unwrap_err();
        assert!(
            both.ends_with("store.url_env: set store.url or store.url_env, not both"),
            "{both}"
        );
        let scheme = at("url = \"mysql://root:hunter2@db/sando\"").unwrap_err();
        assert!(
            scheme.contains("store.url: \"mysql://root:***@db/sando\": expected sqlite:///path"),
            "{scheme}"
        );
        let name = at("url_env = \"1 BAD\"").unwrap_err();
        assert!(name.ends_with("store.url_env: \"1 BAD\" is not an environment variable name"));
        let typo = at("uri = \"postgres://h/d\"").unwrap_err();
        assert!(typo.contains("unknown field `uri`"), "{typo}");
        assert_eq!(
            PostgresUrl::Env("SANDO_TEST_UNSET_VARIABLE".into()).resolve().unwrap_err(),
            "store.url_env: SANDO_TEST_UNSET_VARIABLE is not set"
        );
    }

    #[test]
    fn run_as_names_an_unprivileged_user_and_needs_the_sandbox() {
        assert_eq!(parse(GOOD).unwrap().run_as, None);
        let nobody = format!("run_as = \"nobody\"\n{GOOD}");
        let config = parse(&nobody).unwrap();
        assert_eq!(config.run_as.as_ref().map(|u| u.name()), Some("nobody"));
        assert_eq!(
            parse(&format!("run_as = \"root\"\n{GOOD}")).unwrap_err(),
            "/etc/sando/sando.toml:1:10: run_as: \"root\" is root; name an unprivileged user (code under test already runs as root without capabilities when run_as is unset)"
        );
        assert_eq!(
            parse(&format!("run_as = \"no-such-sando-user\"\n{GOOD}")).unwrap_err(),
            "/etc/sando/sando.toml:1:10: run_as: no user \"no-such-sando-user\" on this machine"
        );
        assert_eq!(
            parse(&format!("isolation = \"none\"\n{nobody}")).unwrap_err(),
            "/etc/sando/sando.toml:1:13: isolation: run_as needs isolation = \"sandbox\": without the sandbox the toolchain and work tree cannot be opened to the user"
        );
    }

    #[test]
    fn parses_a_topology() {
        let config = parse(GOOD).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/etc/sando/data"));
        assert_eq!(config.token, Some(TokenSource::Env("MY_TOKEN".into())));
        assert_eq!(config.tiers.len(), 2);
        assert_eq!(config.tiers[0].nodes[0].deploy.args, ["{artifact}", "/srv/my app/"]);
        assert_eq!(
            config.tiers[0].gates[0].gate,
            Gate::CargoTest { args: vec!["test".into(), "--offline".into()] }
        );
        assert_eq!(config.tiers[0].gates[0].timeout, Defaults::default().gate_timeout);
        assert_eq!(config.tiers[0].gates[0].retry, Defaults::default().retry);
        assert_eq!(config.tiers[1].canary, Canary::OneThenRest);
        assert_eq!(
            config.tiers[1].gates[0].gate,
            Gate::BurnIn { duration: Duration::from_secs(168 * 3600), on_tier: None }
        );
    }

    /// GOOD with operators, and `approvals` on prod.
    fn team(operators: &str, approvals: &str) -> String {
        let prod = "name = \"prod\"\ncanary = \"one_then_rest\"\n";
        let with = GOOD.replace(prod, &format!("{prod}approvals = {approvals}\n"));
        format!("{with}\n{operators}")
    }

    const ALICE_BOB_CAROL: &str = r#"
[[operators]]
name = "alice"
role = "operator"
token_sha256 = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
[[operators]]
name = "bob"
role = "admin"
token_file = "bob.token"
emails = ["Bob@Example.com"]
[[operators]]
name = "carol"
role = "viewer"
token_sha256 = "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"
"#;

    #[test]
    fn operators_and_an_approval_policy_parse() {
        let config = parse(&team(
            ALICE_BOB_CAROL,
            r#"{ required = 2, from = ["alice", "bob"], forbid_author = true }"#,
        ))
        .unwrap();
        let names: Vec<_> = config.operators.iter().map(|o| (o.name.to_string(), o.role)).collect();
        assert_eq!(
            names,
            [
                ("alice".into(), Role::Operator),
                ("bob".into(), Role::Admin),
                ("carol".into(), Role::Viewer)
            ]
        );
        assert_eq!(config.operators[1].emails, ["bob@example.com"]);
        assert_eq!(
            config.operators[1].token,
            OperatorToken::File(PathBuf::from("/etc/sando/bob.token"))
        );
        let policy = config.tiers[1].approvals.clone().unwrap();
        assert_eq!((policy.required, policy.from.len(), policy.forbid_author), (2, 2, true));
        assert_eq!(config.tiers[0].approvals, None);
        // The old single token is still the admin beside them.
        assert_eq!(config.token, Some(TokenSource::Env("MY_TOKEN".into())));
        assert!(config.public_read);
        let closed = parse(&format!("read_requires_token = true\n{GOOD}")).unwrap();
        assert!(!closed.public_read);
    }

    #[test]
    fn bad_operators_and_policies_are_one_line_naming_the_key() {
        let policy = |p: &str| parse(&team(ALICE_BOB_CAROL, p)).unwrap_err();
        let unknown = policy(r#"{ required = 1, from = ["alice", "dave"] }"#);
        assert!(
            unknown.starts_with("/etc/sando/sando.toml:")
                && unknown.contains(": tiers[1].approvals.from[1]: unknown operator dave"),
            "{unknown}"
        );
        assert!(!unknown.contains('\n'), "{unknown}");
        let viewer = policy(r#"{ from = ["carol"] }"#);
        assert!(viewer.contains("carol is a viewer and cannot approve"), "{viewer}");
        let too_many = policy(r#"{ required = 3, from = ["alice", "bob"] }"#);
        assert!(
            too_many.contains("tiers[1].approvals.required: 3 is out of range: 1 to 2"),
            "{too_many}"
        );
        let no_gate =
            parse(&GOOD.replace(
                "name = \"staging\"\n",
                "name = \"staging\"\napprovals = { required = 1 }\n",
            ))
            .unwrap_err();
        assert!(
            no_gate.contains("tiers[0].approvals: approvals need a manual_confirm gate"),
            "{no_gate}"
        );
        let digest = parse(&format!(
            "{GOOD}\n[[operators]]\nname = \"eve\"\nrole = \"operator\"\ntoken_sha256 = \"abc123\"\n"
        ))
        .unwrap_err();
        assert!(digest.contains(": operators[0].token_sha256: must be 64 hex digits"), "{digest}");
        let role = parse(&format!(
            "{GOOD}\n[[operators]]\nname = \"eve\"\nrole = \"root\"\ntoken_file = \"t\"\n"
        ))
        .unwrap_err();
        assert!(role.contains("operators[0].role: unknown role \"root\""), "{role}");
        let admin = parse(&format!(
            "{GOOD}\n[[operators]]\nname = \"admin\"\nrole = \"admin\"\ntoken_file = \"t\"\n"
        ))
        .unwrap_err();
        assert!(
            admin.contains("operators[0].name: \"admin\" is the name of the token_env"),
            "{admin}"
        );
        let both =
            parse(&format!("public_read = true\nread_requires_token = true\n{GOOD}")).unwrap_err();
        assert!(both.contains("read_requires_token: contradicts public_read = true"), "{both}");
    }

    #[test]
    fn freeze_windows_and_auto_rollback_parse_and_a_malformed_window_names_its_key() {
        let with = |window: &str| {
            GOOD.replace(
                "canary = \"one_then_rest\"",
                &format!("canary = \"one_then_rest\"\nauto_rollback = true\nfreeze = [{window}]"),
            )
        };
        let config =
            parse(&with(r#"{ from = "Fri 16:00", to = "Mon 08:00", tz = "Europe/Berlin" }"#))
                .unwrap();
        let prod = config.tiers.iter().find(|t| t.name.as_str() == "prod").unwrap();
        assert!(prod.auto_rollback);
        assert_eq!(prod.freeze.len(), 1);
        assert_eq!(prod.freeze[0].to_string(), "Fri 16:00 to Mon 08:00 (Europe/Berlin)");
        assert_eq!(
            parse(&with(r#"{ from = "Fri 4pm", to = "Mon 08:00" }"#)).unwrap_err(),
            "/etc/sando/sando.toml:27:20: tiers[1].freeze[0].from: \"Fri 4pm\" is not a time of the week (use e.g. \"Fri 16:00\")"
        );
        assert_eq!(
            parse(&with(r#"{ from = "Fri 16:00", to = "Mon 08:00", tz = "Berlin" }"#)).unwrap_err(),
            "/etc/sando/sando.toml:27:56: tiers[1].freeze[0].tz: \"Berlin\" is not a time zone (use an IANA name, e.g. \"Europe/Berlin\")"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let bad_duration = GOOD.replace("\"168h\"", "\"a week\"");
        assert_eq!(
            parse(&bad_duration).unwrap_err(),
            "/etc/sando/sando.toml:28:12: tiers[1].gates[0].duration: \"a week\" is not a duration (use e.g. \"168h\", \"90s\")"
        );
        let duplicate = GOOD.replace("name = \"prod\"", "name = \"staging\"");
        assert_eq!(
            parse(&duplicate).unwrap_err(),
            "/etc/sando/sando.toml:24:8: tiers[1].name: tier staging is defined twice"
        );
        let unknown_tier =
            GOOD.replace("duration = \"168h\"", "duration = \"168h\"\non_tier = \"qa\"");
        assert_eq!(
            parse(&unknown_tier).unwrap_err(),
            "/etc/sando/sando.toml:29:11: tiers[1].gates[0].on_tier: unknown tier qa (must name an earlier tier)"
        );
        let wrong_key = GOOD.replace("stay_up = \"3s\"", "duration = \"3s\"");
        assert_eq!(
            parse(&wrong_key).unwrap_err(),
            "/etc/sando/sando.toml:21:12: tiers[0].gates[1].duration: a boot_smoke gate takes no `duration`"
        );
        let unknown_kind = GOOD.replace("kind = \"manual_confirm\"", "kind = \"manual\"");
        assert!(
            parse(&unknown_kind)
                .unwrap_err()
                .contains(":30:8: tiers[1].gates[1].kind: invalid gate kind \"manual\"")
        );
        let typo = GOOD.replace("canary = ", "canery = ");
        assert!(
            parse(&typo).unwrap_err().contains(":25:1: canery: unknown field `canery`"),
            "{}",
            parse(&typo).unwrap_err()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("5 years").is_err());
        assert_eq!(
            parse_duration("100000000d").unwrap_err(),
            "\"100000000d\" is longer than the maximum of 10 years"
        );
        assert!(parse_duration("213503982334601d").is_err());
        assert!(parse_duration("18446744073709551615ms").is_err());
        assert_eq!(parse_duration("3650d"), Ok(Duration::from_secs(3650 * 86_400)));
    }

    #[test]
    fn defaults_timeouts_and_retries() {
        let text = GOOD.replace(
            "[project]",
            "[defaults]\ngate_timeout = \"20m\"\nkill_grace = \"1s\"\nretry = { attempts = 2, backoff = \"5s\" }\non_supersede = \"finish\"\n\n[project]",
        ).replace(
            "args = \"test --offline\"",
            "args = \"test --offline\"\ntimeout = \"20s\"\nretry = { attempts = 4, on = [\"interrupted\"] }",
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.event_send_timeout, DEFAULT_EVENT_SEND_TIMEOUT);
        let sends = parse(&format!("event_send_timeout = \"5s\"\n{text}")).unwrap();
        assert_eq!(sends.event_send_timeout, Duration::from_secs(5));
        let never = parse(&format!("event_send_timeout = \"0s\"\n{text}")).unwrap_err();
        assert!(never.to_string().contains("event_send_timeout"), "{never}");
        assert_eq!(config.defaults.kill_grace, Duration::from_secs(1));
        assert_eq!(config.defaults.on_supersede, OnSupersede::Finish);
        let tests = &config.tiers[0].gates[0];
        assert_eq!(tests.timeout, Duration::from_secs(20));
        assert_eq!(
            tests.retry,
            Retry { attempts: 4, backoff: Duration::from_secs(5), on: vec!["interrupted".into()] }
        );
        let smoke = &config.tiers[0].gates[1];
        assert_eq!(smoke.timeout, Duration::from_secs(20 * 60));
        assert_eq!(smoke.retry.attempts, 2);
        assert!(smoke.retry.retries("spawn_failed", 1));
        assert!(!smoke.retry.retries("spawn_failed", 2));
        assert!(!smoke.retry.retries("cargo_test", 1));

        let bad_class = text.replace("on = [\"interrupted\"]", "on = [\"flaky\"]");
        let error = parse(&bad_class).unwrap_err();
        assert!(
            error.contains("tiers[0].gates[0].retry.on: unknown failure class \"flaky\""),
            "{error}"
        );
        let bad_attempts = text.replace("attempts = 4", "attempts = 0");
        let error = parse(&bad_attempts).unwrap_err();
        assert!(error.contains("tiers[0].gates[0].retry.attempts: 0 is out of range"), "{error}");
        let zero = text.replace("timeout = \"20s\"", "timeout = \"0s\"");
        let error = parse(&zero).unwrap_err();
        assert!(error.contains("tiers[0].gates[0].timeout: must be longer than zero"), "{error}");
    }

    #[test]
    fn secret_env_names_are_checked_where_they_are_written() {
        let with = |list: &str| {
            GOOD.replace(
                "artifact = \"target/release/app\"",
                &format!("artifact = \"target/release/app\"\nsecret_env = {list}"),
            )
        };
        let config = parse(&with(r#"["DEPLOY_KEY", "_PG2"]"#)).unwrap();
        assert_eq!(config.project.secret_env, ["DEPLOY_KEY", "_PG2"]);
        let error = parse(&with(r#"["DEPLOY_KEY", "bad name"]"#)).unwrap_err();
        assert!(
            error.contains(
                "sando.toml:10:29: project.secret_env[1]: \"bad name\" is not an environment variable name"
            ),
            "{error}"
        );
        let error = parse(&with(r#"["PATH"]"#)).unwrap_err();
        assert!(error.contains("is set by Sando itself"), "{error}");
        let error = parse(&with(r#"["A_KEY", "A_KEY"]"#)).unwrap_err();
        assert!(error.contains("project.secret_env[1]: \"A_KEY\" is listed twice"), "{error}");
    }

    #[test]
    fn retention_is_bounded_where_it_is_written() {
        let with = |table: &str| format!("{GOOD}\n[retention]\n{table}\n");
        assert_eq!(parse(GOOD).unwrap().retention, Retention::default());
        let config = parse(&with(
            "keep_versions = 20\nkeep_for = \"30d\"\nkeep_backups = 3\ncache_max_mib = 512",
        ))
        .unwrap();
        assert_eq!(
            config.retention,
            Retention {
                keep_versions: Some(20),
                keep_for: Some(Duration::from_secs(30 * 86_400)),
                keep_backups: Some(3),
                cache_max_bytes: Some(512 << 20),
                keep_promoted: None,
            }
        );
        let error = parse(&with("keep_versions = 0")).unwrap_err();
        assert!(error.contains("retention.keep_versions: 0 is out of range"), "{error}");
        let error = parse(&with("keep_for = \"100000000d\"")).unwrap_err();
        assert!(error.contains("retention.keep_for"), "{error}");
        let error = parse(&with("keep_all = true")).unwrap_err();
        assert!(error.contains("keep_all"), "{error}");
    }

    #[test]
    fn args_arrays_keep_each_argument_as_written() {
        let listed =
            GOOD.replace("args = \"test --offline\"", "args = [\"test\", \"--\", \"a b\"]");
        assert_ne!(listed, GOOD, "the fixture config has the string form");
        let config = parse(&listed).unwrap();
        assert_eq!(
            config.tiers[0].gates[0].gate,
            Gate::CargoTest { args: vec!["test".into(), "--".into(), "a b".into()] }
        );
        let quoted = GOOD.replace("args = \"test --offline\"", "args = \"test -- 'a b'\"");
        assert_eq!(
            parse(&quoted).unwrap().tiers[0].gates[0].gate,
            Gate::CargoTest { args: vec!["test".into(), "--".into(), "a b".into()] }
        );
        let not_words = GOOD.replace("args = \"test --offline\"", "args = [\"test\", 3]");
        assert_eq!(
            parse(&not_words).unwrap_err().to_string(),
            "/etc/sando/sando.toml:18:17: args: invalid type: integer `3`, expected a string"
        );
    }

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words("a 'b c' \"d\"e  f").unwrap(), ["a", "b c", "de", "f"]);
        assert!(split_words("a 'b").is_err());
    }
}
