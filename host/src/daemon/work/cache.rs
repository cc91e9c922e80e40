//! The build cache (`[project] build_cache`, on by default): a trusted base layer (a cargo target directory and a Sando-owned `CARGO_HOME`) that every version builds and tests on through a copy-on-write overlay of its own, and that only versions promoted out of the first tier feed.
//!
//! The trust boundary: no version's code ever writes the base. A version's
//! processes see the base through an overlay mounted (in their own mount
//! namespace, by the executor) at one fixed path, [`BuildCache::view`]: what
//! they write lands in the version's upper layer,
//! `cache/versions/<sha>/upper`, which its build and its tests share. Only
//! when the version is promoted out of the first tier (its gates passed
//! there: the trust the operator gives its code to go on) does the daemon
//! move its upper layer into the base ([`feed`]), under the cache's write
//! lock; a rejected, failing or superseded version's layer is never read
//! back and goes with its files (retention, `sando gc`).
//!
//! Readers (a build, a `cargo_test` gate) hold the read lock while their
//! overlay is mounted, so versions build and test side by side; a feed
//! and the size trim hold the write lock. A feed interrupted by a crash
//! leaves a marker: the next daemon to take office drops the base (cargo
//! then rebuilds from nothing) rather than trust a half-moved layer.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use crate::daemon::shared::Daemon;
use crate::domain::{GitSha, Version};
use crate::executor::{Layers, Mount, Mounted};

/// Where the cache lives, under the work directory's `cache/`:
/// `base/layer/{target,cargo-home}` (the trusted lower layer),
/// `base/fed-by` (the version that last fed it), `base/feeding` (present
/// only while a feed runs), `versions/<sha>/{upper,work}` (each version's
/// own layer), and `view` (the empty directory each version's overlay is
/// mounted on, in its own namespace).
#[derive(Debug, Clone)]
pub(crate) struct BuildCache {
    root: PathBuf,
}

/// Whether the cache is on and can be had, and if not, why not.
pub(crate) fn unavailable(daemon: &Daemon) -> Option<String> {
    if !daemon.config.project.build_cache {
        return None;
    }
    let cargo_test = daemon.executors.for_gate(crate::domain::GateKind::CargoTest);
    if !daemon.executors.gates.overlays() || !cargo_test.overlays() {
        return Some(format!(
            "build cache off: the gates' executor cannot mount a copy-on-write overlay ({}); \
             each version builds cold in its own work tree",
            daemon.executors.gates.describe()
        ));
    }
    None
}

impl BuildCache {
    /// The daemon's cache, when the config keeps it on and the executors
    /// can mount a version's view of it.
    pub(crate) fn of(daemon: &Daemon) -> Option<BuildCache> {
        (daemon.config.project.build_cache && unavailable(daemon).is_none())
            .then(|| BuildCache::at(&daemon.work_dir()))
    }

    pub(crate) fn at(work_dir: &Path) -> BuildCache {
        // Absolute: overlayfs's options and cargo's paths are read from the
        // version's work tree.
        let root = work_dir.join("cache");
        BuildCache { root: std::path::absolute(&root).unwrap_or(root) }
    }

    fn layer(&self) -> PathBuf {
        self.root.join("base/layer")
    }

    fn fed_by_file(&self) -> PathBuf {
        self.root.join("base/fed-by")
    }

    fn feeding_marker(&self) -> PathBuf {
        self.root.join("base/feeding")
    }

    /// A version's own directory (its upper and work layers).
    pub(crate) fn version_dir(&self, sha: &GitSha) -> PathBuf {
        self.root.join("versions").join(sha.as_str())
    }

    /// Where every version sees the cache: one path for all (cargo's
    /// fingerprints of registry crates hash their source's absolute path,
    /// so a path per version would rebuild every dependency).
    pub(crate) fn view(&self) -> PathBuf {
        self.root.join("view")
    }

    pub(crate) fn base_target(&self) -> PathBuf {
        self.layer().join("target")
    }

    /// The mount that gives the version with commit `sha` its view.
    pub(crate) fn mount(&self, sha: &GitSha) -> Mount {
        let dir = self.version_dir(sha);
        let layers =
            Layers { lower: self.layer(), upper: dir.join("upper"), work: dir.join("work") };
        Mount::overlay(Mounted::BuildCache, self.view(), layers)
    }

    /// The environment that points cargo at the view; `offline` forbids it
    /// the network (everything was fetched before the build).
    pub(crate) fn env(&self, offline: bool) -> Vec<(String, String)> {
        let view = self.view();
        let mut env = vec![
            ("CARGO_TARGET_DIR".to_owned(), view.join("target").display().to_string()),
            ("CARGO_HOME".to_owned(), view.join("cargo-home").display().to_string()),
        ];
        if offline {
            env.push(("CARGO_NET_OFFLINE".to_owned(), "true".to_owned()));
        }
        env
    }

    /// The version that last fed the base, if any did since it was made.
    pub(crate) fn fed_by(&self) -> Option<Version> {
        let text = std::fs::read_to_string(self.fed_by_file()).ok()?;
        text.split_whitespace().next()?.parse().ok()
    }

    /// Makes the base and the version's layers (its upper layer owned by
    /// the `run_as` user when there is one: the overlay's root is the upper
    /// layer's).
    pub(crate) async fn prepare(
        &self,
        sha: &GitSha,
        run_as: Option<crate::run_as::RunAs>,
    ) -> std::io::Result<()> {
        let (cache, dir) = (self.clone(), self.version_dir(sha));
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(cache.layer().join("target"))?;
            std::fs::create_dir_all(cache.layer().join("cargo-home"))?;
            std::fs::create_dir_all(cache.view())?;
            std::fs::create_dir_all(dir.join("upper"))?;
            std::fs::create_dir_all(dir.join("work"))?;
            let Some(user) = run_as else { return Ok(()) };
            user.own(&dir.join("upper"))?;
            // The view's directories are the base's where the version has
            // not written: the user must own them to build in them. What a
            // feed moves in is the user's already; a base made for another
            // user (or none) is handed over whole, once.
            let target = cache.layer().join("target");
            let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::symlink_metadata(&target)?);
            if owner != user.uid() {
                user.own(&cache.layer())?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// A configured artifact under `target/` (the view's `target/` is
    /// `CARGO_TARGET_DIR`), as the version's view shows it: its own layer
    /// first, then the base. Only a regular file reached
    /// without a link; `None` otherwise.
    pub(crate) fn artifact(&self, sha: &GitSha, artifact: &Path) -> Option<PathBuf> {
        let upper = self.version_dir(sha).join("upper");
        through_layers(&upper, &self.layer(), artifact)
    }

    /// Removes a version's layer (never fed, or fed already).
    pub(crate) fn forget(&self, sha: &GitSha) {
        remove_any(&self.version_dir(sha));
    }
}

/// Once, when a daemon takes office: the cache of the old opt-in layout
/// (`cache/target`, `cache/cargo-home`, which any version could write, so
/// it may be poisoned) goes; so does a base whose feed a crash interrupted.
pub(crate) fn recover(work_dir: &Path) {
    let cache = BuildCache::at(work_dir);
    let old = [cache.root.join("target"), cache.root.join("cargo-home")];
    if old.iter().any(|p| p.exists()) {
        tracing::warn!(
            "build cache: dropping {} (the old shared cache, which versions could write: it may be poisoned)",
            cache.root.display()
        );
        old.iter().for_each(|p| remove_any(p));
    }
    if cache.feeding_marker().exists() {
        tracing::warn!(
            "build cache: a feed of the base was interrupted; dropping the base (the next build is cold)"
        );
        drop_base(&cache);
    }
}

fn drop_base(cache: &BuildCache) {
    remove_any(&cache.layer());
    remove_any(&cache.fed_by_file());
    remove_any(&cache.feeding_marker());
}

/// What a feed moved into the base.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fed {
    pub entries: u64,
    pub removed: u64,
}

/// Starts feeding the base with `version`'s layer: the write lock is taken
/// now if no view is mounted, else queued for (the lock is fair: builds
/// that ask after this wait for the feed).
pub(crate) fn start_feed(daemon: &std::sync::Arc<Daemon>, version: &Version) {
    if BuildCache::of(daemon).is_none() {
        return;
    }
    let lock = daemon.cache_lock.clone();
    let held = lock.clone().try_write_owned().ok();
    let (daemon, version) = (daemon.clone(), version.clone());
    tokio::spawn(async move {
        let held = match held {
            Some(held) => held,
            None => lock.write_owned().await,
        };
        feed(&daemon, &version, held).await;
    });
}

/// Moves `version`'s upper layer into the base: a promoted version earned
/// it. Holds the cache's write lock, so no overlay is mounted meanwhile.
async fn feed(daemon: &Daemon, version: &Version, _held: tokio::sync::OwnedRwLockWriteGuard<()>) {
    let Some(cache) = BuildCache::of(daemon) else { return };
    let sha = match daemon.store.version(version).await {
        Ok(Some(row)) => row.git_sha,
        _ => return,
    };
    let manifest = daemon.work_dir().join("worktrees").join(sha.as_str()).join("Cargo.toml");
    let (c, v, s) = (cache.clone(), version.clone(), sha.clone());
    let package = package_name(&manifest);
    let fed =
        tokio::task::spawn_blocking(move || feed_blocking(&c, &s, &v, package.as_deref())).await;
    match fed {
        Ok(Ok(Some(fed))) => tracing::info!(
            %version, %sha, entries = fed.entries, removed = fed.removed,
            "build cache: the base was fed by a promoted version"
        ),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            tracing::warn!(%version, error = %e, "build cache: feeding the base failed; dropping it");
            drop_base(&cache);
        }
        Err(e) => tracing::warn!(%version, error = %e, "build cache: the feed panicked"),
    }
}

/// The `[package] name` of a version's manifest.
fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table.get("package")?.get("name")?.as_str().map(str::to_owned)
}

/// The base's units of package `name` (`<profile>/<name>-<hash>`, the name
/// also with `_` for `-` as rustc writes it) that the feed did not bring.
fn superseded<'a>(
    units: &'a [CacheUnit],
    name: &str,
    brought: &HashSet<String>,
) -> Vec<&'a CacheUnit> {
    let names = [format!("{name}-"), format!("{}-", name.replace('-', "_"))];
    units
        .iter()
        .filter(|u| !brought.contains(&u.name))
        .filter(|u| {
            let key = u.name.split_once('/').map_or(u.name.as_str(), |(_, k)| k);
            names.iter().any(|n| {
                key.strip_prefix(n.as_str())
                    .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
            })
        })
        .collect()
}

/// Moves the version's layer into the base, then removes the base's units
/// of `package` it did not bring: the project's own compiled units from
/// earlier versions (each version's number is in its units' hashes) are
/// nobody's to build on any more, and without this every version would add
/// its crate's whole output to the base. Removing a unit is always safe:
/// cargo rebuilds what is missing. `fed-by` is written last.
fn feed_blocking(
    cache: &BuildCache,
    sha: &GitSha,
    version: &Version,
    package: Option<&str>,
) -> std::io::Result<Option<Fed>> {
    let upper = cache.version_dir(sha).join("upper");
    if !upper.is_dir() {
        return Ok(None);
    }
    let brought: HashSet<String> =
        units(&upper.join("target")).into_iter().map(|u| u.name).collect();
    if cache.feeding_marker().exists() {
        drop_base(cache);
    }
    std::fs::create_dir_all(cache.layer())?;
    // Durable before the first move: a crash from here on drops the base.
    let marker = std::fs::File::create(cache.feeding_marker())?;
    marker.sync_all()?;
    sync_dir(&cache.root.join("base"))?;
    let mut fed = Fed::default();
    merge(&upper, &cache.layer(), &mut fed)?;
    if let Some(name) = package {
        for unit in superseded(&units(&cache.base_target()), name, &brought) {
            unit.remove();
        }
    }
    std::fs::write(cache.fed_by_file(), format!("{version} {sha}\n"))?;
    sync_dir(&cache.root.join("base"))?;
    std::fs::remove_file(cache.feeding_marker())?;
    cache.forget(sha);
    Ok(Some(fed))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// An overlayfs whiteout: a character device 0:0 (the file was removed).
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// An opaque directory (`trusted.overlay.opaque` = `y`): it replaced
/// whatever the lower layer had there.
fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    let mut value = [0u8; 1];
    // SAFETY: NUL-terminated path and a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Removes a file, link or directory tree at `path`, never following a
/// link; gone already is fine.
fn remove_any(path: &Path) {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = removed
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "build cache: could not remove");
    }
}

/// Moves `upper` into `base` as overlayfs would show one on the other:
/// a whiteout removes, an opaque or new directory replaces whole (its own
/// whiteouts dropped), a directory on a directory merges, anything else
/// replaces. Renames only (one filesystem), and never through a link: only
/// real directories of the base are entered (`symlink_metadata`), and a
/// rename replaces a link, it does not follow it. Devices, pipes and
/// sockets are not carried.
fn merge(upper: &Path, base: &Path, fed: &mut Fed) -> std::io::Result<()> {
    for entry in std::fs::read_dir(upper)? {
        let entry = entry?;
        let (from, to) = (entry.path(), base.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)?;
        let below = std::fs::symlink_metadata(&to).ok();
        if is_whiteout(&meta) {
            if below.is_some() {
                remove_any(&to);
                fed.removed += 1;
            }
            continue;
        }
        if meta.is_dir() {
            if below.as_ref().is_some_and(|b| b.is_dir()) && !is_opaque(&from) {
                merge(&from, &to, fed)?;
                continue;
            }
            remove_any(&to);
            std::fs::rename(&from, &to)?;
            scrub(&to);
            fed.entries += 1;
        } else if meta.is_file() || meta.is_symlink() {
            if below.as_ref().is_some_and(|b| b.is_dir()) {
                remove_any(&to);
            }
            std::fs::rename(&from, &to)?;
            fed.entries += 1;
        }
    }
    Ok(())
}

/// A directory moved in whole: its whiteouts (and any other special file)
/// go; links stay links, never entered.
fn scrub(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            scrub(&path);
        } else if !meta.is_file() && !meta.is_symlink() {
            remove_any(&path);
        }
    }
}

/// `relative` as an overlay of `upper` on `lower` shows it: a regular file
/// reached through real directories only (no link, no `..`), from the
/// upper layer unless it has nothing there; a whiteout or an opaque
/// directory on the way hides the lower layer.
fn through_layers(upper: &Path, lower: &Path, relative: &Path) -> Option<PathBuf> {
    let parts: Vec<_> = relative.components().collect();
    if parts.is_empty() || parts.iter().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let (mut up, mut low) = (Some(upper.to_path_buf()), Some(lower.to_path_buf()));
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        up = up.map(|p| p.join(part));
        low = low.map(|p| p.join(part));
        let up_meta = up.as_ref().and_then(|p| std::fs::symlink_metadata(p).ok());
        match &up_meta {
            Some(m) if is_whiteout(m) => return None,
            Some(m) if last => return m.is_file().then(|| up.clone()).flatten(),
            Some(m) if m.is_dir() => {
                if is_opaque(up.as_ref()?) {
                    low = None;
                }
            }
            Some(_) => return None,
            None => up = None,
        }
        let low_meta = low.as_ref().and_then(|p| std::fs::symlink_metadata(p).ok());
        match low_meta {
            Some(m) if last => return m.is_file().then(|| low.clone()).flatten(),
            Some(m) if m.is_dir() => {}
            _ => low = None,
        }
        if up.is_none() && low.is_none() {
            return None;
        }
    }
    None
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
    fn a_feed_supersedes_only_the_projects_own_older_units() {
        let units = [
            unit("release/warm_service-1a2b", 1, 1),
            unit("release/warm_service-3c4d", 1, 1),
            unit("debug/warm-service-5e6f", 1, 1),
            unit("release/warm_service_extra-77", 1, 1),
            unit("release/serde-99", 1, 1),
        ];
        let brought: HashSet<String> = ["release/warm_service-3c4d".to_owned()].into();
        let gone: Vec<&str> =
            superseded(&units, "warm-service", &brought).iter().map(|u| u.name.as_str()).collect();
        assert_eq!(gone, ["release/warm_service-1a2b", "debug/warm-service-5e6f"]);
    }

    #[test]
    fn outputs_belong_to_their_unit() {
        assert_eq!(unit_of_output("libserde-1a2b.rlib"), "serde-1a2b");
        assert_eq!(unit_of_output("libc-9f.rmeta"), "c-9f");
        assert_eq!(unit_of_output("libc-9f.d"), "libc-9f");
        assert_eq!(unit_of_output("tiny-77"), "tiny-77");
    }
}
