//! The unprivileged user code under test runs as (`run_as`): looked up once, handed what it must write, and the sandbox arguments that drop to it.
//!
//! The daemon stays root, because bubblewrap needs root to build the sandbox
//! without user namespaces. Inside the sandbox, `setpriv` (util-linux)
//! changes to the user before the program starts, so the code under test
//! holds neither root's files nor any capability. Directories the user could
//! not enter on the way to what it needs (a toolchain under `/root`, a data
//! directory under a private parent) are replaced inside the sandbox by an
//! empty, enterable directory, with only the needed paths mounted back.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An unprivileged user: built only by [`RunAs::lookup`], so its uid is
/// never 0 and it exists on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// The user named `spec` (a name, or a numeric uid). The error says what
    /// is wrong in words fit for a config message.
    pub fn lookup(spec: &str) -> Result<RunAs, String> {
        let found = match spec.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(uid.into()),
            Err(_) => nix::unistd::User::from_name(spec),
        };
        let user = match found {
            Ok(Some(user)) => user,
            Ok(None) => return Err(format!("no user {spec:?} on this machine")),
            Err(e) => return Err(format!("looking up user {spec:?}: {e}")),
        };
        if user.uid.is_root() {
            return Err(format!(
                "{spec:?} is root; name an unprivileged user (code under test already runs as root without capabilities when run_as is unset)"
            ));
        }
        Ok(RunAs { name: user.name, uid: user.uid.as_raw(), gid: user.gid.as_raw() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Gives `path` and everything below it to the user, without following
    /// symbolic links (a link planted in a work tree changes only itself).
    pub fn own(&self, path: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.uid() != self.uid || meta.gid() != self.gid {
            std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.own(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// Lets the user read `path` (a backup or an artifact a gate is given,
    /// mounted read-only): its group becomes the user's and gains read (and
    /// execute, where its owner has it). The owner stays.
    pub fn let_read(&self, path: &Path) -> std::io::Result<()> {
        self.grant(path, 0o4)
    }

    /// Lets the user write in the directory `dir` (a SQLite scratch
    /// database's), the same way. A directory the user may already write in
    /// (`/tmp`) is left as it is.
    pub fn let_write(&self, dir: &Path) -> std::io::Result<()> {
        self.grant(dir, 0o7)
    }

    fn grant(&self, path: &Path, bits: u32) -> std::io::Result<()> {
        let meta = std::fs::metadata(path)?;
        if self.may(&meta, bits) {
            return Ok(());
        }
        std::os::unix::fs::chown(path, None, Some(self.gid))?;
        let mode = meta.permissions().mode();
        let group = (bits << 3) | ((mode & 0o100) >> 3);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | group))
    }

    /// Whether the user's permission bits on `meta` include `bits` (4 read,
    /// 2 write, 1 search). Only the user's own group counts: its other groups are
    /// dropped in the sandbox.
    fn may(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        let mode = meta.mode();
        let shift = if meta.uid() == self.uid {
            6
        } else if meta.gid() == self.gid {
            3
        } else {
            0
        };
        (mode >> shift) & bits == bits
    }

    /// The topmost directory above `path` the user cannot enter, if any.
    fn closed_ancestor(&self, path: &Path) -> Option<PathBuf> {
        path.ancestors()
            .skip(1)
            .filter(|dir| dir.parent().is_some())
            .filter(|dir| std::fs::metadata(dir).is_ok_and(|m| !self.may(&m, 0o1)))
            .last()
            .map(Path::to_path_buf)
    }

    /// bubblewrap's arguments that open the way to `needed` (paths the
    /// sandbox mounts) and to the toolchain: each closed directory above
    /// them becomes an empty one the user may enter, and the toolchain's
    /// directories are mounted back into it read-only. They come before the
    /// sandbox's own mounts, which then land inside.
    pub(crate) fn open_ways(&self, needed: &[&Path]) -> Vec<OsString> {
        let toolchain = toolchain_dirs();
        let mut closed: BTreeMap<PathBuf, Vec<&Path>> = BTreeMap::new();
        for path in needed.iter().copied().chain(toolchain.iter().map(PathBuf::as_path)) {
            if let Some(dir) = self.closed_ancestor(path) {
                closed.entry(dir).or_default();
            }
        }
        for dir in &toolchain {
            if let Some(top) = closed.keys().find(|top| dir.starts_with(top)).cloned() {
                closed.get_mut(&top).expect("just found").push(dir);
            }
        }
        let mut args: Vec<OsString> = Vec::new();
        for (dir, inside) in &closed {
            args.extend(["--perms".into(), "0755".into(), "--tmpfs".into(), dir.into()]);
            for path in inside {
                args.extend(["--ro-bind".into(), path.into(), path.into()]);
            }
        }
        args
    }

    /// The command that becomes the user and runs what follows it: no
    /// supplementary groups, and no way back through a set-user-ID program.
    pub(crate) fn setpriv(&self, setpriv: &Path) -> Vec<OsString> {
        vec![
            setpriv.into(),
            format!("--reuid={}", self.uid).into(),
            format!("--regid={}", self.gid).into(),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--".into(),
        ]
    }
}

/// Where the daemon's tools live: each directory of its `PATH`, and rustup's
/// and cargo's homes (rustup's proxies in `~/.cargo/bin` read toolchains
/// from `~/.rustup`).
fn toolchain_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, default) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
        match std::env::var_os(var) {
            Some(dir) => dirs.push(dir.into()),
            None => dirs.extend(home.as_ref().map(|h| h.join(default))),
        }
    }
    dirs.retain(|d| d.is_absolute() && d.is_dir());
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_strangers_are_refused() {
        let root = RunAs::lookup("root").unwrap_err();
        assert!(root.contains("is root"), "{root}");
        assert!(RunAs::lookup("0").unwrap_err().contains("is root"));
        let missing = RunAs::lookup("no-such-user-sando").unwrap_err();
        assert_eq!(missing, "no user \"no-such-user-sando\" on this machine");
        let nobody = RunAs::lookup("nobody").unwrap();
        assert_eq!(RunAs::lookup(&nobody.uid().to_string()).unwrap(), nobody);
    }

    #[test]
    fn a_private_parent_is_opened_and_only_the_needed_path_mounted_back() {
        let nobody = RunAs::lookup("nobody").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let tree = dir.path().join("data/worktrees/abc");
        std::fs::create_dir_all(&tree).unwrap();
        assert_eq!(nobody.closed_ancestor(&tree).as_deref(), Some(dir.path()));
        let args = nobody.open_ways(&[&tree]);
        let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let at = words.iter().position(|w| w == &dir.path().display().to_string()).unwrap();
        assert_eq!(words[at - 3..at], ["--perms", "0755", "--tmpfs"]);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(nobody.closed_ancestor(&tree), None);
    }

    #[test]
    fn owning_a_tree_leaves_what_its_links_point_at() {
        let nobody = RunAs::lookup("nobody").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "root's").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("src")).unwrap();
        std::fs::write(tree.join("src/lib.rs"), "").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        nobody.own(&tree).unwrap();
        for path in [tree.clone(), tree.join("src"), tree.join("src/lib.rs"), tree.join("link")] {
            assert_eq!(std::fs::symlink_metadata(&path).unwrap().uid(), nobody.uid(), "{path:?}");
        }
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
    }

    #[test]
    fn a_private_file_is_made_readable_to_the_users_group_only() {
        let nobody = RunAs::lookup("nobody").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup.sqlite");
        std::fs::write(&backup, "rows").unwrap();
        std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o600)).unwrap();
        nobody.let_read(&backup).unwrap();
        let meta = std::fs::metadata(&backup).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        assert_eq!((meta.uid(), meta.gid()), (0, nobody.gid));
    }
}
