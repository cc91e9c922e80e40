//! What a sandboxed process is given beyond a read-only root, each by name (`Mount`): its work tree, the artifact, the restored backup, a scratch directory, the shared build cache. Each executor resolves them: locally as bubblewrap binds; on Slurm the same, once it has checked a node can see them.

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
    /// The build cache versions share (`build_cache = true`).
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

/// One path a process is given, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub what: Mounted,
    pub path: PathBuf,
}

impl Mount {
    pub fn new(what: Mounted, path: impl Into<PathBuf>) -> Mount {
        Mount { what, path: path.into() }
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
