//! What a sandboxed process is given beyond a read-only root, each by name (`Mount`): its work tree, the artifact, the restored backup, a scratch directory, the build cache's copy-on-write view. Each executor resolves them: locally as bubblewrap binds (the cache's view as an overlay mounted first); on Slurm the same, once it has checked a node can see them (and never the overlay: a job cannot mount one).

use std::path::{Path, PathBuf};

/// What a mount is for; its kind says whether the process may write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounted {
    /// The version's work tree (its checkout, where it builds and tests).
    Tree,
    /// The version's built artifact (boot smoke runs it).
    Artifact,
    /// The copy of production a migration dry run restores.
    Backup,
    /// A scratch database's directory (its journals sit beside it).
    Scratch,
    /// The version's copy-on-write view of the build cache (`build_cache`,
    /// on by default): an overlay whose lower layer is the trusted base and
    /// whose upper layer is the version's own ([`Layers`]).
    BuildCache,
    /// A program or file named on the command line, bound where the
    /// sandbox would hide it (a tool under `/tmp`).
    Program,
}

impl Mounted {
    pub fn writable(self) -> bool {
        matches!(self, Mounted::Tree | Mounted::Scratch | Mounted::BuildCache)
    }

    /// Whether it is the version's, or the gate's, to find on the machine
    /// that runs it (a cluster's node sees it only under the shared
    /// directory); a program is the machine's own.
    pub fn travels(self) -> bool {
        self != Mounted::Program
    }

    pub fn name(self) -> &'static str {
        match self {
            Mounted::Tree => "work tree",
            Mounted::Artifact => "artifact",
            Mounted::Backup => "backup",
            Mounted::Scratch => "scratch directory",
            Mounted::BuildCache => "build cache",
            Mounted::Program => "program",
        }
    }
}

/// An overlay's layers: `lower` is only read (the process never sees it,
/// and overlayfs never writes it); what the process writes at the mount
/// point lands in `upper`; `work` is overlayfs's own scratch directory, on
/// the same filesystem as `upper`. None of the three is visible inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl Layers {
    /// overlayfs's mount options. Redirects, metacopy, the index and
    /// inode numbers off: every file or directory the process changed is
    /// then whole in `upper` (a moved directory is copied, not recorded as
    /// a redirect), so the daemon can read an upper layer as plain files
    /// plus whiteouts and opaque directories.
    pub fn options(&self) -> String {
        format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off,xino=off",
            escape(&self.lower),
            escape(&self.upper),
            escape(&self.work)
        )
    }
}

/// A path in overlayfs's option string: `,` `:` and `\` escaped.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One path a process is given, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub what: Mounted,
    pub path: PathBuf,
    /// For an overlay, its layers (mounted at `path` before the sandbox is
    /// made, in the process's own mount namespace).
    pub layers: Option<Layers>,
}

impl Mount {
    pub fn new(what: Mounted, path: impl Into<PathBuf>) -> Mount {
        Mount { what, path: path.into(), layers: None }
    }

    /// A copy-on-write view of `layers.lower` at `path`.
    pub fn overlay(what: Mounted, path: impl Into<PathBuf>, layers: Layers) -> Mount {
        Mount { what, path: path.into(), layers: Some(layers) }
    }

    /// Where it is, for an executor whose nodes see only `shared`: `None`
    /// when the node sees it; else one line saying what cannot be seen.
    pub fn unseen_outside(&self, shared: &Path) -> Option<String> {
        let inside = std::fs::canonicalize(&self.path)
            .unwrap_or_else(|_| self.path.clone())
            .starts_with(std::fs::canonicalize(shared).unwrap_or_else(|_| shared.to_owned()));
        (self.what.travels() && !inside).then(|| {
            format!(
                "the {} at {} is outside shared_dir {}: no node sees it",
                self.what.name(),
                self.path.display(),
                shared.display()
            )
        })
    }
}
