//! `sando demo`: a real project, topology and backup on this machine, and two pushes — one that walks to prod and waits there, one that fails red.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::Config;
use crate::daemon::{StartError, Started};
use crate::domain::GitSha;

/// The first commit: `demo/service/`, compiled in so the demo needs no checkout of Sando.
const SERVICE: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../demo/service/Cargo.toml")),
    (".gitignore", include_str!("../../demo/service/.gitignore")),
    ("src/lib.rs", include_str!("../../demo/service/src/lib.rs")),
    ("src/main.rs", include_str!("../../demo/service/src/main.rs")),
    (
        "migrations/20260101000000_create_items.sql",
        include_str!("../../demo/service/migrations/20260101000000_create_items.sql"),
    ),
    (
        "migrations/20260102000000_add_price.sql",
        include_str!("../../demo/service/migrations/20260102000000_add_price.sql"),
    ),
];

/// What the second commit changes: it edits an already-applied migration.
const NEXT: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../demo/next/Cargo.toml")),
    (
        "migrations/20260101000000_create_items.sql",
        include_str!("../../demo/next/migrations/20260101000000_create_items.sql"),
    ),
];

/// Marks a directory as the demo's own, so a re-run may wipe it.
const MARKER: &str = ".sando-demo";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{path}: not empty and not a previous demo's directory; pick another --data-dir")]
    NotDemoDir { path: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("preparing the backup: {0}")]
    Backup(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DemoError + '_ {
    move |e| DemoError::Io {
        path: path.display().to_string(),
        message: crate::fixtures::io_message(&e),
    }
}

/// Sets the demo up in `dir` (wiping a previous demo there), starts the
/// daemon, pushes both commits, and serves until Ctrl-C.
/// With `slurm` (a partition and a shared directory), builds and gates run
/// as Slurm jobs.
pub async fn run(
    dir: &Path,
    listen: SocketAddr,
    token: Option<String>,
    slurm: Option<(String, PathBuf)>,
) -> Result<(), DemoError> {
    prepare_dir(dir)?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let repo = dir.join("repo");
    let first = commit(&repo, SERVICE, "demo-service 0.1.0")?;
    let second = commit(&repo, NEXT, "demo-service 0.2.0: edit the items table")?;
    let backup = dir.join("prod-db.sqlite");
    make_backup(&dir, &backup).await?;

    let token = token.unwrap_or_else(generate_token);
    let token_file = dir.join("token");
    write_private(&token_file, &format!("{token}\n")).map_err(io(&token_file))?;
    let config_path = dir.join("sando.toml");
    let mut text = config_text(&dir, listen, slurm.as_ref().map(|(_, shared)| shared.as_path()))?;
    if let Some((partition, shared)) = &slurm {
        text.push_str(&format!(
            "\n[executor]\nkind = \"slurm\"\npartition = {partition:?}\nshared_dir = {:?}\n",
            shared.display().to_string()
        ));
    }
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    let config = Config::load(&config_path)?;

    let started = Started::start(config, Some(token.clone())).await?;
    let url = started.url();
    let daemon = started.daemon.clone();
    if let Err(e) = daemon.fetch_backup().await {
        eprintln!("sando: demo: fetching the backup: {e}");
    }
    // 0.2.0 is pushed once 0.1.0 has reached prod, as a team would: pushed
    // at once, it would supersede 0.1.0 in staging (newest ready first).
    let mut events = daemon.subscribe();
    if let Err(e) = daemon.rebuild(first.clone()).await {
        eprintln!("sando: demo: requesting the first build: {e}");
    }
    let (pusher, staging, second_sha) = (daemon.clone(), first_tier_name(&daemon), second.clone());
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(envelope) => {
                    if let crate::domain::Event::Promoted { tier, .. } = &envelope.event
                        && Some(tier) == staging.as_ref()
                    {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        if let Err(e) = pusher.rebuild(second_sha).await {
            eprintln!("sando: demo: requesting the second build: {e}");
        }
    });
    println!(
        "\nSando demo: {url}
  data:   {dir}
  config: {config}
  token:  {token}   (also in {token_file})

  0.1.0 ({first_short}) walks through staging, then waits at prod on burn_in (60s) and manual_confirm.
  0.2.0 ({second_short}), pushed once 0.1.0 reaches prod, edits an applied migration: migration_dry_run fails red.

  Operate:  {sando} tui --url {url} --token-file {token_file}
  Browse:   {url}/   (the status page, read-only)
  Watch:    curl -s {url}/api/state
  Events:   a WebSocket on {ws}/api/events
  Confirm:  curl -s -X POST -H 'Authorization: Bearer {token}' {url}/api/gate-runs/<run_id>/confirm
  Logs:     curl -s {url}/logs/0.2.0/migration_dry_run

Ctrl-C stops the demo.\n",
        dir = dir.display(),
        config = config_path.display(),
        token_file = token_file.display(),
        first_short = first.short(),
        second_short = second.short(),
        ws = url.replace("http://", "ws://"),
        sando = runnable_name(),
    );
    started
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn prepare_dir(dir: &Path) -> Result<(), DemoError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(DemoError::NotDemoDir { path: dir.display().to_string() });
        }
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::write(
        dir.join(MARKER),
        "created by `sando demo`; a new demo run wipes this directory\n",
    )
    .map_err(io(dir))
}

fn git(repo: &Path, args: &[&str]) -> Result<String, DemoError> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Sando demo",
            "-c",
            "user.email=demo@sando.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .map_err(|e| DemoError::Git { args: args.join(" "), message: e.to_string() })?;
    if !out.status.success() {
        return Err(DemoError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Writes `files` into the repository and commits them; returns the commit.
fn commit(repo: &Path, files: &[(&str, &str)], message: &str) -> Result<GitSha, DemoError> {
    if !repo.exists() {
        std::fs::create_dir_all(repo).map_err(io(repo))?;
        git(repo, &["init", "-q", "-b", "main"])?;
    }
    for (name, text) in files {
        let path = repo.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", message])?;
    let sha = git(repo, &["rev-parse", "HEAD"])?;
    sha.parse().map_err(|e: crate::domain::ParseError| DemoError::Git {
        args: "rev-parse HEAD".into(),
        message: e.to_string(),
    })
}

/// "Production's" database: only the first migration applied, as if 0.1.0's
/// second migration had not shipped yet.
async fn make_backup(dir: &Path, backup: &Path) -> Result<(), DemoError> {
    let only_first = dir.join("backup-migrations");
    std::fs::create_dir_all(&only_first).map_err(io(&only_first))?;
    let (name, text) = SERVICE[4];
    let file = only_first.join(Path::new(name).file_name().expect("file name"));
    std::fs::write(&file, text).map_err(io(&file))?;
    let url = format!("sqlite://{}?mode=rwc", backup.display());
    crate::migrate::run(&url, &only_first, &mut std::io::sink())
        .await
        .map_err(|e| DemoError::Backup(e.to_string()))?;
    std::fs::remove_dir_all(&only_first).map_err(io(&only_first))
}

fn config_text(dir: &Path, listen: SocketAddr, shared: Option<&Path>) -> Result<String, DemoError> {
    let sando = std::env::current_exe().map_err(io(Path::new("sando")))?;
    let nodes = dir.join("nodes");
    for node in ["staging-1", "prod-1", "prod-2"] {
        let path = nodes.join(node);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
    }
    // In a directory of its own: the migration gate's sandbox may write
    // there (SQLite's journals sit beside the database) and nowhere else.
    // On Slurm, where the nodes see it.
    let scratch_dir = match shared {
        Some(shared) => shared.join("demo-scratch"),
        None => dir.join("scratch"),
    };
    std::fs::create_dir_all(&scratch_dir).map_err(io(&scratch_dir))?;
    let scratch = scratch_dir.join("scratch.sqlite");
    let node = |name: &str| {
        let target = nodes.join(name).join("demo-service");
        format!(
            "[[tiers.nodes]]\nname = \"{name}\"\ndeploy = \"cp {{artifact}} '{target}'\"\nhealth = \"test -x '{target}'\"\n",
            target = target.display()
        )
    };
    Ok(format!(
        r#"# Written by `sando demo`.
listen = "{listen}"
data_dir = "state"
token_file = "token"
backup_source = "prod-db.sqlite"

[project]
repo = "repo"
build = "cargo build --offline --quiet"
artifact = "target/debug/demo-service"

[[tiers]]
name = "staging"
{staging}
[[tiers.gates]]
kind = "cargo_test"
args = "test --offline"

[[tiers.gates]]
kind = "migration_dry_run"
scratch_db_url = "sqlite://{scratch}"
migrate = "'{sando}'"
restore = "cp {{backup}} '{scratch}'"

[[tiers.gates]]
kind = "boot_smoke"
stay_up = "3s"

[[tiers]]
name = "prod"
canary = "one_then_rest"
{prod1}
{prod2}
[[tiers.gates]]
kind = "burn_in"
duration = "60s"

[[tiers.gates]]
kind = "manual_confirm"
"#,
        staging = node("staging-1"),
        prod1 = node("prod-1"),
        prod2 = node("prod-2"),
        scratch = scratch.display(),
        sando = sando.display(),
    ))
}

/// 32 hex characters from the OS's randomness.
fn generate_token() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = random.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn first_tier_name(daemon: &crate::daemon::Daemon) -> Option<crate::domain::TierId> {
    daemon.config.tiers.first().map(|t| t.name.clone())
}

/// Writes a secret readable by its owner only (mode 0600), from its creation on.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode through open(2): set it again.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// This `sando` as a command a newcomer can run as printed: `sando` when
/// that is what `PATH` finds (after `./x install`), else its full path.
fn runnable_name() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "sando".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("sando"))
            .find(|candidate| candidate.is_file())
            .and_then(|found| std::fs::canonicalize(found).ok())
            .is_some_and(|found| found == exe)
    });
    if on_path { "sando".into() } else { exe.display().to_string() }
}
