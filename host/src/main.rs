//! The `sando` command line: parses arguments, calls the library, prints one line per error.

// The commands that talk to a running daemon (part of the binary, not the library).
mod remote;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Parser, Subcommand};

use sando::config::Config;
use sando::daemon;
use sando::domain::{ComponentPart, GateKind, ProcessEnd, RawOutput};
use sando::executor::Executor as _;
use sando::fixtures::{self, Case};
use sando::sandbox::{ComponentCache, GateComponent, Limits, Sandbox, shipped_component};

#[derive(Parser)]
#[command(name = "sando", version, about = "Deploy gates as sandboxed WebAssembly components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify one captured process output and print its GateStatus as JSON.
    Classify(ClassifyArgs),
    /// Import the old, stringly-typed daemon's history (its SQLite file)
    /// into this daemon's database, typed. Never writes to the old file.
    ImportLegacy {
        /// The old daemon's database.
        #[arg(long)]
        from: PathBuf,
        /// This daemon's config: its data directory receives the history.
        #[arg(long)]
        config: PathBuf,
        /// The old daemon's log directory (`<version>/<gate>.log`).
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Check and map everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write the report to this file: one JSON line per old row
        /// (`table`, `legacy_id`, `new_id`, `status`, `outcome`), then a
        /// line with `"table": "summary"`.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Work with gate components.
    Gate {
        #[command(subcommand)]
        command: GateCommand,
    },
    /// Run the daemon: build pushed commits, run gates, deploy, serve the API.
    Serve {
        /// The topology config (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Apply sqlx-format migrations to a SQLite database, reporting like
    /// `sqlx migrate run` (what the demo's migration_dry_run gate runs).
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Run the demo: a real project, a staging -> prod topology with local
    /// nodes, a backup, and two pushes. Runs until Ctrl-C.
    Demo {
        /// Where the API listens.
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: std::net::SocketAddr,
        /// The demo's directory (wiped and recreated on each run).
        #[arg(long, default_value = "sando-demo")]
        data_dir: PathBuf,
        /// Run builds and gates as Slurm jobs in this partition (with
        /// `--slurm-shared-dir`), as `[executor] kind = "slurm"`.
        #[arg(long, requires = "slurm_shared_dir")]
        slurm_partition: Option<String>,
        /// The directory the daemon and the Slurm nodes share.
        #[arg(long, requires = "slurm_partition")]
        slurm_shared_dir: Option<PathBuf>,
    },
    /// Open the operator's terminal UI on a running daemon.
    Tui {
        /// The daemon's address, as `sando serve` prints it. Given more than
        /// once (daemons sharing a PostgreSQL store), the TUI uses whichever
        /// answers and follows the leader after a takeover.
        #[arg(long = "url", default_value = "http://127.0.0.1:7878")]
        url: Vec<String>,
        /// A file holding the API token (`<data_dir>/token`); without it the
        /// TUI is read-only.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Show how the serving component classifies past runs of a gate (by
    /// default the unclassified ones); `--apply` records the new outcomes.
    Reclassify {
        /// The gate kind.
        #[arg(long)]
        gate: String,
        /// Only runs started on or after this date (YYYY-MM-DD, UTC) or time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Every recorded run, not only the unclassified ones.
        #[arg(long)]
        all: bool,
        /// Write the new outcomes (the old ones are kept).
        #[arg(long)]
        apply: bool,
        /// Runs imported from the old daemon: replay the text it kept through
        /// the serving classifier, as a dry run (it is a tail, not the output).
        #[arg(long, conflicts_with = "apply")]
        legacy: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apply the retention policy now, through the running daemon: old
    /// versions' files, old backups, and the shared build cache's oldest
    /// units over its cap. Never what a tier's current or candidate needs.
    Gc {
        /// Only say what would go.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage operators (`[[operators]]` in the config).
    Operators {
        #[command(subcommand)]
        command: OperatorsCommand,
    },
    /// Validate a topology config without starting anything.
    Check {
        /// The topology config (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Work with the store that keeps the history.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a whole SQLite history into an empty PostgreSQL database, ids
    /// kept, in one transaction, each table verified (rows and a digest)
    /// before it commits. The SQLite file is only read.
    Copy {
        /// The SQLite history: `sqlite:///var/lib/sando/sando.sqlite` (or its path).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database: `postgres://user@host/db`.
        #[arg(long, required_unless_present = "to_env", conflicts_with = "to_env")]
        to: Option<String>,
        /// The name of an environment variable holding that URL (keeps a
        /// password off the command line).
        #[arg(long)]
        to_env: Option<String>,
    },
}

/// Where the daemon is and how to authenticate to it.
#[derive(Args)]
struct Remote {
    /// The daemon's address, as `sando serve` prints it.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    url: String,
    /// A file holding the API token.
    #[arg(long)]
    token_file: PathBuf,
}

#[derive(Subcommand)]
enum GateCommand {
    /// Send an updated component to a running daemon. It is validated and
    /// shadow-tested against the fixtures and recorded runs, then swapped in,
    /// held for acceptance (verdicts change) or rejected.
    Push {
        /// The gate component (.wasm).
        component: PathBuf,
        #[command(flatten)]
        remote: Remote,
        /// Swap it in even though verdicts change.
        #[arg(long)]
        accept_changes: bool,
        /// Serve it as `gate` (runner and classifier) or only as the
        /// kind's `classifier`. Default: a gate if it exports a runner.
        #[arg(long, value_parser = parse_part)]
        part: Option<ComponentPart>,
    },
    /// Return one part of a gate kind to the component that served it
    /// before: the classifier-only part if one serves, else the gate.
    Rollback {
        kind: String,
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        accept_changes: bool,
        /// Which part to roll back: `gate` or `classifier`.
        #[arg(long, value_parser = parse_part)]
        part: Option<ComponentPart>,
    },
    /// Accept the candidate component held for a gate kind.
    Accept {
        kind: String,
        /// Only if this (sha256, as `gate push` printed it) is the one waiting.
        #[arg(long)]
        digest: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reject the candidate component held for a gate kind.
    Reject {
        kind: String,
        #[arg(long)]
        digest: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Classify every fixture case below a directory with a component and
    /// compare with each case's expected.json.
    /// Start a classifier project for a gate kind, in Rust or Python, that
    /// builds and passes `sando gate test` on the kind's shipped fixtures as
    /// written: it starts as the shipped classifier.
    New {
        /// The gate kind (cargo_test, migration_dry_run, boot_smoke, burn_in, manual_confirm).
        kind: String,
        /// `rust` (a crate on Sando's gate SDK) or `python` (a componentize-py project).
        #[arg(long)]
        lang: String,
        /// The project's directory (created; must be empty if it exists).
        dir: PathBuf,
        /// A Sando source tree, for a Rust project's path dependencies
        /// (default: the one this binary was built from).
        #[arg(long)]
        sando_source: Option<PathBuf>,
    },
    Test {
        /// The gate component (.wasm) to test.
        component: PathBuf,
        /// A directory of fixture cases (`<gate_kind>/<case>/`).
        fixtures: PathBuf,
        /// First write a new case below DIR (`<gate_kind>/run-<id>/`) from a
        /// real run's recorded classifier input (`--run`, from the daemon at
        /// `--url`), and test it too; its `expected.json` starts as the
        /// outcome the run got.
        #[arg(long, value_name = "DIR", requires_all = ["run", "token_file"])]
        record: Option<PathBuf>,
        /// The gate run to record (its id, as `/api/state` shows it).
        #[arg(long, requires = "record")]
        run: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:7878")]
        url: String,
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Apply every pending migration.
    Run {
        /// `sqlite://PATH`; or the environment's `DATABASE_URL`, which keeps a
        /// password off the command line.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The migrations directory.
        #[arg(long, default_value = "migrations")]
        source: PathBuf,
    },
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("end")
        .required(true)
        .args(["exit_code", "signal", "spawn_error", "still_running"])
))]
struct ClassifyArgs {
    /// The gate kind (cargo_test, migration_dry_run, boot_smoke, burn_in, manual_confirm).
    #[arg(long)]
    gate: String,
    /// A gate component to use instead of the one shipped with Sando.
    #[arg(long)]
    component: Option<PathBuf>,
    /// File holding what the process wrote to stdout.
    #[arg(long)]
    stdout: PathBuf,
    /// File holding what the process wrote to stderr.
    #[arg(long)]
    stderr: PathBuf,
    /// The process exited with this status code.
    #[arg(long, allow_negative_numbers = true)]
    exit_code: Option<i32>,
    /// The process was killed by this signal.
    #[arg(long)]
    signal: Option<i32>,
    /// The process could not be started (OS errno).
    #[arg(long)]
    spawn_error: Option<i32>,
    /// The process was still running when it was stopped.
    #[arg(long)]
    still_running: bool,
    /// How long the process ran.
    #[arg(long)]
    duration_ms: Option<u64>,
}

fn main() -> ExitCode {
    sando::executor::exec_shim::run_if_asked();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.to_string();
            let first =
                rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            eprintln!("sando: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sando: {}", sando::text::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Classify(args) => classify(args),
        Command::Gate { command: GateCommand::New { kind, lang, dir, sando_source } } => {
            gate_new(&kind, &lang, &dir, sando_source.as_deref())
        }
        Command::Gate {
            command: GateCommand::Test { component, fixtures, record, run, url, token_file },
        } => {
            let mut dirs = vec![fixtures.clone()];
            if let (Some(dir), Some(run), Some(token_file)) = (record, run, token_file) {
                let case = remote::record(&dir, &run, &url, &token_file)?;
                // Tested with the rest, or on its own when outside them.
                if !case.starts_with(&fixtures) {
                    dirs.push(case);
                }
            }
            gate_test(&component, &dirs)
        }
        Command::Gate {
            command: GateCommand::Push { component, remote, accept_changes, part },
        } => remote::push(&component, &remote.url, &remote.token_file, accept_changes, part),
        Command::Gate { command: GateCommand::Rollback { kind, remote, accept_changes, part } } => {
            remote::rollback(&kind, &remote.url, &remote.token_file, accept_changes, part)
        }
        Command::Gate { command: GateCommand::Accept { kind, digest, remote } } => {
            remote::settle(&kind, digest.as_deref(), &remote.url, &remote.token_file, true)
        }
        Command::Gate { command: GateCommand::Reject { kind, digest, remote } } => {
            remote::settle(&kind, digest.as_deref(), &remote.url, &remote.token_file, false)
        }
        Command::Reclassify { gate, since, all, apply, legacy, remote } => {
            let how = remote::Reclassify { since: since.as_deref(), all, apply, legacy };
            remote::reclassify(&gate, how, &remote.url, &remote.token_file)
        }
        Command::ImportLegacy { from, config, logs, dry_run, report } => {
            import_legacy(&from, &config, logs.as_deref(), dry_run, report.as_deref())
        }
        Command::Gc { dry_run, remote } => remote::gc(dry_run, &remote.url, &remote.token_file),
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Operators { command: OperatorsCommand::Add { name, role } } => {
            operators_add(&name, role)
        }
        Command::Store { command: StoreCommand::Copy { from, to, to_env } } => {
            store_copy(&from, to.as_deref(), to_env.as_deref())
        }
        Command::Tui { url, token_file } => {
            sando_tui::run(sando_tui::Options { urls: url, token_file })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, data_dir, slurm_partition, slurm_shared_dir } => {
            init_logging();
            let token = std::env::var("SANDO_TOKEN").ok().filter(|t| !t.trim().is_empty());
            let shared = slurm_shared_dir.map(|d| std::path::absolute(&d).unwrap_or(d));
            let slurm = slurm_partition.zip(shared);
            tokio::runtime::Runtime::new()?
                .block_on(sando::demo::run(&data_dir, listen, token, slurm))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { command: MigrateCommand::Run { database_url, source } } => {
            migrate(&database_url, &source)
        }
    }
}

fn store_copy(from: &str, to: Option<&str>, to_env: Option<&str>) -> anyhow::Result<ExitCode> {
    use sando::config::PostgresUrl;
    let shown = sando::executor::redact;
    if from.starts_with("postgres://") || from.starts_with("postgresql://") {
        anyhow::bail!(
            "--from {}: a copy reads a SQLite history (sqlite:///path/sando.sqlite)",
            shown(from)
        );
    }
    let path =
        from.strip_prefix("sqlite://").or_else(|| from.strip_prefix("sqlite:")).unwrap_or(from);
    let url = match (to, to_env) {
        (Some(url), _) => PostgresUrl::Written(url.to_owned()),
        (None, Some(name)) => PostgresUrl::Env(name.to_owned()),
        (None, None) => anyhow::bail!("--to or --to-env names the PostgreSQL database"),
    };
    let url = url.resolve().map_err(|e| anyhow::anyhow!(e.replace("store.url_env", "--to-env")))?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("--to {}: expected a postgres:// URL", shown(&url));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(sando::store::copy::sqlite_to_postgres(Path::new(path), &url))?;
    for table in &report.tables {
        println!("{:<20} {:>9} rows  sha256 {}", table.table, table.rows, table.sha256);
    }
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    println!(
        "copied {rows} rows of {} tables from {} to {} in one transaction, each table's rows and digest equal on both sides; {} was only read",
        report.tables.len(),
        report.from,
        report.to,
        report.from
    );
    Ok(ExitCode::SUCCESS)
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let gates: usize = config.tiers.iter().map(|t| t.gates.len()).sum();
    let nodes: usize = config.tiers.iter().map(|t| t.nodes.len()).sum();
    let order: Vec<&str> = config.tiers.iter().map(|t| t.name.as_str()).collect();
    // A config the daemon would refuse to serve is not ok.
    let executor = daemon::executor_for(&config)?;
    let problems = tokio::runtime::Runtime::new()?.block_on(daemon::executor_problems(&config));
    if !problems.is_empty() {
        for problem in &problems {
            println!("{}: {problem}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("{}: ok ({}; {gates} gates, {nodes} nodes)", path.display(), order.join(" -> "));
    if !executor.isolates() {
        println!(
            "warning: isolation = \"none\": builds and gates run with the daemon's authority ({})",
            executor.describe()
        );
    }
    if let Some(user) = &config.run_as {
        println!("code under test runs as {} (uid {})", user.name(), user.uid());
    }
    if executor.isolates() {
        for line in daemon::unreachable_paths(&config) {
            println!("warning: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn import_legacy(
    from: &Path,
    config: &Path,
    logs: Option<&Path>,
    dry_run: bool,
    report_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let request = sando::legacy::ImportRequest { from, config: &config, logs, dry_run };
    let outcome = tokio::runtime::Runtime::new()?.block_on(sando::legacy::import(&request))?;
    let report = match &outcome {
        sando::legacy::Outcome::Imported(report) => {
            let verb = if dry_run { "would import" } else { "imported" };
            println!("{verb} {}:\n{}", from.display(), report.summary());
            report
        }
        sando::legacy::Outcome::AlreadyImported { imported_at, report } => {
            println!(
                "{} was already imported at {imported_at}; nothing changed:\n{}",
                from.display(),
                report.summary()
            );
            report
        }
    };
    if let Some(file) = report_file {
        std::fs::write(file, report.json_lines()).map_err(|e| {
            anyhow::anyhow!("{}: {}", file.display(), sando::fixtures::io_message(&e))
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Mirrors sqlx-cli: errors go to stdout as `error: ...`, exit 1.
fn migrate(database_url: &str, source: &Path) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result =
        runtime.block_on(sando::migrate::run(database_url, source, &mut std::io::stdout()));
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            println!("error: {error}");
            ExitCode::FAILURE
        }
    })
}

/// Structured logs on stderr for the daemon: `SANDO_LOG` filters (default
/// `info`), `SANDO_LOG_FORMAT=json` gives one JSON object per line.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SANDO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if std::env::var("SANDO_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[derive(Subcommand)]
enum OperatorsCommand {
    /// Make a token for a new operator: prints the token once, and the
    /// `[[operators]]` entry (with only its SHA-256) to add to the config.
    Add {
        /// The operator's name (a-z, 0-9, '-', '_', '.').
        name: String,
        /// viewer (reads), operator (confirm, reject, rerun, cancel) or admin (everything).
        #[arg(long)]
        role: String,
    },
}

/// Prints rather than appends: the config is the operator's file (often in
/// git, reviewed), so Sando never rewrites it; the token is shown here
/// once and kept nowhere.
fn operators_add(name: &str, role: String) -> anyhow::Result<ExitCode> {
    use sando::identity::{OperatorName, Role, TokenDigest, new_token};
    let name: OperatorName = name.parse().map_err(|e: String| anyhow::anyhow!("NAME: {e}"))?;
    let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
    let token = new_token().map_err(|e| anyhow::anyhow!("reading /dev/urandom: {e}"))?;
    let digest = TokenDigest::of(&token).hex();
    eprintln!("the token for {name} (shown once; give it to them, e.g. as their --token-file):");
    println!("{token}");
    eprintln!("add this to the daemon's config and restart it:");
    println!(
        "\n[[operators]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{digest}\"\n# emails = [\"{name}@example.com\"]  # git author e-mails, for forbid_author"
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    init_logging();
    sando::memory::return_large_blocks_at_once();
    let config = Config::load(path)?;
    let token = config.token.as_ref().map(daemon::read_token).transpose()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(daemon::serve(config, token))?;
    Ok(ExitCode::SUCCESS)
}

fn sandbox() -> anyhow::Result<Sandbox> {
    Sandbox::new(Limits::default(), ComponentCache::default_dir().map(ComponentCache::new))
        .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e}"))
}

fn load_component(sandbox: &Sandbox, path: &Path) -> anyhow::Result<GateComponent> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!("component {}: {}", path.display(), fixtures::io_message(&e))
    })?;
    sandbox.load(&bytes).map_err(|e| anyhow::anyhow!("component {}: {e}", path.display()))
}

fn read_input(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("--{what} {}: {}", path.display(), fixtures::io_message(&e)))
}

fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let kind: GateKind = args.gate.parse().context("--gate")?;
    let end = match (args.exit_code, args.signal, args.spawn_error) {
        (Some(code), _, _) => ProcessEnd::Exited(code),
        (_, Some(signal), _) => ProcessEnd::Signaled(signal),
        (_, _, Some(errno)) => ProcessEnd::SpawnError(errno),
        _ => ProcessEnd::StillRunning,
    };
    let output = RawOutput {
        stdout: read_input("stdout", &args.stdout)?,
        stderr: read_input("stderr", &args.stderr)?,
        end,
        duration_ms: args.duration_ms,
    };
    let path = match args.component {
        Some(path) => path,
        None => shipped_component(kind).map_err(|missing| {
            anyhow::anyhow!(
                "no shipped {kind} component at {}: build the gates with `./x build` or pass --component",
                missing.display()
            )
        })?,
    };
    let sandbox = sandbox()?;
    let component = load_component(&sandbox, &path)?;
    if component.kind() != kind {
        bail!("component {} serves {}, not {kind}", path.display(), component.kind());
    }
    let classification = component.classify(&sandbox, kind, &output);
    println!("{}", serde_json::to_string(&classification.status)?);
    Ok(ExitCode::SUCCESS)
}

fn gate_test(component_path: &Path, dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let sandbox = sandbox()?;
    let component = load_component(&sandbox, component_path)?;
    let dir = &dirs[0];
    let mut cases = Vec::new();
    for dir in dirs {
        cases.extend(fixtures::discover(dir)?);
    }
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for case_dir in &cases {
        // Cases of other gate kinds are not this component's to classify.
        if fixtures::kind_of(case_dir).is_ok_and(|k| k != component.kind()) {
            skipped += 1;
            continue;
        }
        let case = match Case::load(case_dir) {
            Ok(case) => case,
            Err(e) => {
                failed += 1;
                println!("FAIL {}: {e}", case_dir.display());
                continue;
            }
        };
        let started = std::time::Instant::now();
        let classification = component.classify(&sandbox, case.kind, &case.output);
        // What the case cost the classifier, so an author sees a slow one.
        let cost = format!(
            "[fuel {}, {}]",
            classification.usage.fuel,
            humantime::format_duration(std::time::Duration::from_micros(
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
            ))
        );
        let got = classification.status;
        if got == case.expected {
            passed += 1;
            println!("ok   {}: {got} {cost}", case.name);
        } else {
            failed += 1;
            println!(
                "FAIL {}: expected {}, got {} {cost}",
                case.name,
                serde_json::to_string(&case.expected)?,
                serde_json::to_string(&got)?
            );
        }
    }
    if passed + failed == 0 {
        bail!(
            "no {} fixture cases below {} ({} cases of other kinds)",
            component.kind(),
            dir.display(),
            skipped
        );
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn gate_new(
    kind: &str,
    lang: &str,
    dir: &Path,
    sando_source: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let kind: GateKind = kind.parse()?;
    let lang: sando::scaffold::Lang = lang.parse().map_err(|e| anyhow::anyhow!("--lang: {e}"))?;
    for file in sando::scaffold::scaffold(kind, lang, dir, sando_source)? {
        println!("wrote {}", file.display());
    }
    println!("next: see {} for how to build it and test it", dir.join("README.md").display());
    Ok(ExitCode::SUCCESS)
}

/// `--part gate|classifier`, through the wire type's own parser.
fn parse_part(text: &str) -> Result<ComponentPart, String> {
    text.parse().map_err(|e: sando::domain::ParseError| e.to_string())
}
