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
            .then(|| BuildCache { root: daemon.work_dir().join("cache") })
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

/// One compiled unit of the target directory (`<profile>/<name>-<hash>`):
/// its fingerprint, its outputs in `deps/`, its build-script directory and
/// incremental state. Cargo rebuilds a unit whose outputs are gone, so
/// removing whole units is safe.
#[derive(Debug, Clone)]
pub(crate) struct CacheUnit {
    pub name: String,
    pub bytes: u64,
    pub last_used: std::time::SystemTime,
    paths: Vec<PathBuf>,
}

impl CacheUnit {
    pub(crate) fn remove(&self) {
        for path in &self.paths {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "build cache: could not remove");
            }
        }
    }
}

/// The units of `target`, by profile directory (each holding `.fingerprint`).
pub(crate) fn units(target: &Path) -> Vec<CacheUnit> {
    use std::collections::BTreeMap;
    let mut units: BTreeMap<String, CacheUnit> = BTreeMap::new();
    let Ok(profiles) = std::fs::read_dir(target) else { return Vec::new() };
    for profile in profiles.flatten().map(|e| e.path()).filter(|p| p.join(".fingerprint").is_dir())
    {
        let profile_name = profile.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for (dir, is_output) in
            [(".fingerprint", false), ("build", false), ("incremental", false), ("deps", true)]
        {
            let Ok(entries) = std::fs::read_dir(profile.join(dir)) else { continue };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let key = if is_output { unit_of_output(&file) } else { file.clone() };
                let path = entry.path();
                let (bytes, modified) = size_and_time(&path);
                let unit =
                    units.entry(format!("{profile_name}/{key}")).or_insert_with(|| CacheUnit {
                        name: format!("{profile_name}/{key}"),
                        bytes: 0,
                        last_used: std::time::SystemTime::UNIX_EPOCH,
                        paths: Vec::new(),
                    });
                unit.bytes += bytes;
                unit.last_used = unit.last_used.max(modified);
                unit.paths.push(path);
            }
        }
    }
    units.into_values().collect()
}

/// `libserde-1a2b.rlib` and `serde-1a2b.d` are both unit `serde-1a2b`.
fn unit_of_output(file: &str) -> String {
    let (stem, extension) = file.split_once('.').unwrap_or((file, ""));
    let library = matches!(extension, "rlib" | "rmeta" | "so" | "a" | "dylib");
    match stem.strip_prefix("lib") {
        Some(name) if library => name.to_owned(),
        _ => stem.to_owned(),
    }
}

fn size_and_time(path: &Path) -> (u64, std::time::SystemTime) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, std::time::SystemTime::UNIX_EPOCH);
    };
    let mut bytes = meta.len();
    let mut newest = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let (b, t) = size_and_time(&entry.path());
            bytes += b;
            newest = newest.max(t);
        }
    }
    (bytes, newest)
}

/// The units to remove, oldest first, until the rest fit under `cap` bytes.
pub(crate) fn over_cap(units: &[CacheUnit], cap: u64) -> Vec<usize> {
    let mut total: u64 = units.iter().map(|u| u.bytes).sum();
    let mut oldest: Vec<usize> = (0..units.len()).collect();
    oldest.sort_by_key(|&i| (units[i].last_used, units[i].name.clone()));
    oldest
        .into_iter()
        .take_while(|&i| {
            let over = total > cap;
            if over {
                total -= units[i].bytes;
            }
            over
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, bytes: u64, age_s: u64) -> CacheUnit {
        CacheUnit {
            name: name.into(),
            bytes,
            last_used: std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1000 - age_s),
            paths: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_units_go_until_the_rest_fit() {
        let units =
            [unit("debug/new", 40, 1), unit("debug/old", 30, 900), unit("debug/mid", 50, 100)];
        assert_eq!(over_cap(&units, 200), Vec::<usize>::new());
        assert_eq!(over_cap(&units, 90), vec![1]);
        assert_eq!(over_cap(&units, 40), vec![1, 2]);
        assert_eq!(over_cap(&units, 0), vec![1, 2, 0]);
    }

    #[test]
    fn outputs_belong_to_their_unit() {
        assert_eq!(unit_of_output("libserde-1a2b.rlib"), "serde-1a2b");
        assert_eq!(unit_of_output("libc-9f.rmeta"), "c-9f");
        assert_eq!(unit_of_output("libc-9f.d"), "libc-9f");
        assert_eq!(unit_of_output("tiny-77"), "tiny-77");
    }
}
