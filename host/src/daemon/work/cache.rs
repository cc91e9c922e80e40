//! The shared build cache (`[project] build_cache = true`): one cargo target directory and one Sando-owned `CARGO_HOME` for every version, so a push builds incrementally.
//!
//! Its users never overlap: a build holds the daemon's cache lock from its
//! first cargo command until its artifact is copied out, and a `cargo_test`
//! gate holds it for its whole run, so no version's code runs while another
//! version's artifact is still in the shared directory.

use std::path::{Path, PathBuf};

use crate::daemon::shared::Daemon;

/// Where the cache lives: `<data_dir>/cache/{target,cargo-home}`.
#[derive(Debug, Clone)]
pub(crate) struct BuildCache {
    root: PathBuf,
}

impl BuildCache {
    /// The daemon's cache, when the config asks for one.
    pub(crate) fn of(daemon: &Daemon) -> Option<BuildCache> {
        daemon
            .config
            .project
            .build_cache
            .then(|| BuildCache { root: daemon.data_dir().join("cache") })
    }

    /// The directory the sandbox must leave writable.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// The environment that points cargo at the cache; `offline` forbids it
    /// the network (everything was fetched before the build).
    pub(crate) fn env(&self, offline: bool) -> Vec<(String, String)> {
        let mut env = vec![
            ("CARGO_TARGET_DIR".to_owned(), self.target().display().to_string()),
            ("CARGO_HOME".to_owned(), self.root.join("cargo-home").display().to_string()),
        ];
        if offline {
            env.push(("CARGO_NET_OFFLINE".to_owned(), "true".to_owned()));
        }
        env
    }

    /// Makes the directories, owned by the `run_as` user when there is one.
    pub(crate) async fn prepare(
        &self,
        run_as: Option<crate::run_as::RunAs>,
    ) -> std::io::Result<()> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(root.join("target"))?;
            std::fs::create_dir_all(root.join("cargo-home"))?;
            match run_as {
                Some(user) => user.own(&root),
                None => Ok(()),
            }
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Where a configured artifact under `target/` is built to instead:
    /// the base directory it must stay inside, and its path below it.
    pub(crate) fn artifact(&self, artifact: &Path) -> Option<(PathBuf, PathBuf)> {
        let below = artifact.strip_prefix("target").ok()?;
        Some((self.target(), below.to_path_buf()))
    }
}
