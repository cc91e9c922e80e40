//! The sandbox for code under test (`Isolation`): what a process may see of the machine, and the bubblewrap arguments that make it so.

use std::path::{Path, PathBuf};

use super::RunAs;
use super::workspace::{Mount, Mounted};

/// A sandbox for code under test: the root read-only, a private `/tmp`, no
/// network, the daemon's files invisible, and only what the version needs
/// writable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    /// Invisible inside: a directory is empty, a file reads as empty.
    pub hidden: Vec<PathBuf>,
    /// What the process is given, even within a hidden directory: the work
    /// tree and scratch writable, the artifact or the backup read-only.
    pub mounts: Vec<Mount>,
    /// Keep the host's network (else only a private loopback).
    pub network: bool,
    /// The unprivileged user the process runs as, else root without
    /// capabilities.
    pub run_as: Option<RunAs>,
}

impl Isolation {
    /// Adds a mount.
    pub fn mount(&mut self, what: Mounted, path: impl Into<PathBuf>) {
        self.mounts.push(Mount::new(what, path));
    }

    /// The paths the process may write.
    pub fn writable(&self) -> impl Iterator<Item = &Path> {
        self.mounts.iter().filter(|m| m.what.writable()).map(|m| m.path.as_path())
    }

    /// The paths the process may only read.
    pub fn readable(&self) -> impl Iterator<Item = &Path> {
        self.mounts.iter().filter(|m| !m.what.writable()).map(|m| m.path.as_path())
    }

    /// This sandbox with what a process is started with readable at its own
    /// path: `program`, the exec shim, and each argument that is an existing
    /// absolute path. So a program or file under a directory the sandbox
    /// replaces (`/tmp`) or closes to `run_as` is still there. Only regular
    /// files named by their real path (a directory could hold, and a link
    /// lead to, what the sandbox hides), never under `/dev`, `/proc` or
    /// `/sys`, never inside what the sandbox hides, and never over what it
    /// makes writable.
    pub fn with_programs(&self, program: &Path, shim: Option<&Path>, args: &[String]) -> Isolation {
        let mut isolation = self.clone();
        let real = |p: &Path| std::fs::canonicalize(p).ok();
        let hidden: Vec<PathBuf> = self.hidden.iter().filter_map(|h| real(h)).collect();
        let writable: Vec<PathBuf> = self.writable().filter_map(real).collect();
        let within = |p: &Path, dirs: &[PathBuf]| dirs.iter().any(|d| p.starts_with(d));
        let system = ["/dev", "/proc", "/sys"].map(PathBuf::from);
        let args = args.iter().map(Path::new).filter(|p| p.is_absolute());
        for path in std::iter::once(program).chain(shim).chain(args) {
            let Some(file) = real(path).filter(|r| r == path && r.is_file()) else { continue };
            if !within(&file, &system)
                && !within(&file, &hidden)
                && !within(&file, &writable)
                && !isolation.readable().any(|r| r == file)
            {
                isolation.mount(Mounted::Program, file);
            }
        }
        isolation
    }

    /// bubblewrap's arguments for this sandbox, before `--`.
    pub(super) fn bwrap_args(&self, cwd: Option<&Path>) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        let mut push =
            |words: &[&std::ffi::OsStr]| args.extend(words.iter().map(|w| w.to_os_string()));
        let os = |s: &'static str| std::ffi::OsStr::new(s);
        push(&[os("--ro-bind"), os("/"), os("/"), os("--dev"), os("/dev")]);
        push(&[os("--proc"), os("/proc"), os("--perms"), os("1777"), os("--tmpfs"), os("/tmp")]);
        if let Some(user) = &self.run_as {
            let needed: Vec<&Path> = self.mounts.iter().map(|m| m.path.as_path()).collect();
            args.extend(user.open_ways(&needed));
        }
        let mut push =
            |words: &[&std::ffi::OsStr]| args.extend(words.iter().map(|w| w.to_os_string()));
        // Each mount point's parents first, as directories anyone may enter:
        // bubblewrap makes missing parents private to root, which would shut
        // out a `run_as` user. Parents that exist are left as they are.
        let binds = |push: &mut dyn FnMut(&[&std::ffi::OsStr])| {
            // Writable first, as before the mounts were named: a file bound
            // read-only within a writable tree stays read-only.
            let writable = self.writable().map(|p| (os("--bind"), p));
            let readable = self.readable().map(|p| (os("--ro-bind"), p));
            for (how, path) in writable.chain(readable).filter(|(_, p)| p.exists()) {
                if let Some(parent) = path.parent() {
                    push(&[os("--dir"), parent.as_os_str()]);
                }
                push(&[how, path.as_os_str(), path.as_os_str()]);
            }
        };
        binds(&mut push);
        for path in &self.hidden {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => push(&[os("--tmpfs"), path.as_os_str()]),
                Ok(_) => push(&[os("--ro-bind"), os("/dev/null"), path.as_os_str()]),
                Err(_) => {}
            }
        }
        // Again, over the hidden paths that hold them (bubblewrap mounts in
        // order), then the hidden directories made read-only around them.
        binds(&mut push);
        for path in self.hidden.iter().filter(|p| p.is_dir()) {
            push(&[os("--remount-ro"), path.as_os_str()]);
        }
        push(&[os("--unshare-pid"), os("--unshare-ipc"), os("--unshare-uts")]);
        push(&[os("--unshare-cgroup-try"), os("--die-with-parent"), os("--new-session")]);
        // Root inside without a capability: it cannot remount, unmount what
        // hides the daemon's files, or trace. `setpriv` alone may change user.
        push(&[os("--cap-drop"), os("ALL")]);
        if self.run_as.is_some() {
            push(&[os("--cap-add"), os("CAP_SETUID"), os("--cap-add"), os("CAP_SETGID")]);
        }
        if !self.network {
            push(&[os("--unshare-net")]);
        }
        if let Some(cwd) = cwd {
            push(&[os("--chdir"), cwd.as_os_str()]);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::testing::executor;
    use super::super::{CancellationToken, Executor, ProcessSpec, block_on};
    use super::*;

    #[test]
    fn only_regular_files_outside_what_is_hidden_are_bound_for_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let data = root.join("data");
        std::fs::create_dir_all(data.join("tree")).unwrap();
        std::fs::write(data.join("token"), "secret").unwrap();
        std::fs::write(root.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::write(data.join("tree/file"), "").unwrap();
        std::os::unix::fs::symlink(data.join("token"), root.join("link")).unwrap();
        let isolation = Isolation {
            hidden: vec![data.clone()],
            mounts: vec![Mount::new(Mounted::Tree, data.join("tree"))],
            ..Isolation::default()
        };
        let shown = |p: &Path| p.display().to_string();
        let args = [
            shown(&root),                              // holds the hidden directory
            shown(&data.join("token")),                // inside it
            format!("{}/../data/token", shown(&data)), // inside it, by another name
            shown(&root.join("link")),                 // a link to it
            shown(&data.join("tree/file")),            // already writable
            "/dev/null".into(),
            "/proc/self/status".into(),
            "relative/tool".into(),
            shown(&root.join("missing")),
        ];
        let bound = isolation.with_programs(&root.join("tool"), None, &args);
        assert_eq!(bound.readable().collect::<Vec<_>>(), [root.join("tool")]);
    }

    #[test]
    fn a_sandbox_hides_the_daemons_files_and_the_network() {
        sandboxed_attempts(None);
    }

    #[test]
    fn a_run_as_sandbox_runs_as_that_user_with_the_toolchain_in_reach() {
        let nobody = RunAs::lookup("nobody").unwrap();
        let stdout = sandboxed_attempts(Some(nobody.clone()));
        assert!(stdout.contains(&format!("uid {}\n", nobody.uid())), "{stdout}");
        assert!(stdout.contains("toolchain cargo "), "cargo runs as {}: {stdout}", nobody.name());
        // A home the user may not enter shows only the toolchain mounted back.
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
        if std::fs::metadata(&home).unwrap().permissions().mode() & 0o005 != 0o005 {
            let line = stdout.lines().find(|l| l.starts_with("home:")).unwrap();
            let toolchain: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap())
                .chain([home.join(".cargo"), home.join(".rustup")])
                .collect();
            for entry in line.split_whitespace().skip(1) {
                let shown = home.join(entry);
                assert!(toolchain.iter().any(|t| t.starts_with(&shown)), "{entry} shows in {line}");
            }
        }
    }

    /// Runs a script that tries to reach the daemon's files, undo the
    /// sandbox and reach the network; asserts every attempt failed and
    /// returns what it printed.
    fn sandboxed_attempts(run_as: Option<RunAs>) -> String {
        let executor = executor();
        assert!(executor.isolates(), "bubblewrap is needed (./x installs it)");
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let tree = data.join("worktrees/abc");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(data.join("sando.sqlite"), "secret-db").unwrap();
        let token = root.path().join("token");
        std::fs::write(&token, "secret-token").unwrap();
        // Listening on the host's loopback: unreachable from the sandbox.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let artifact = data.join("artifacts/app");
        std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
        std::fs::write(&artifact, "the-artifact").unwrap();
        if let Some(user) = &run_as {
            user.own(&tree).unwrap();
            user.let_read(&artifact).unwrap();
        }
        let script = format!(
            "cat {db} 2>/dev/null; cat {token}; cat {artifact}; echo; \
             echo tree > {tree}/written && echo wrote-tree; \
             touch {data}/planted 2>/dev/null || echo no-write-data; \
             touch /etc/planted 2>/dev/null || echo no-write-root; \
             echo private > /tmp/mine && echo wrote-tmp; \
             umount {token} 2>/dev/null && cat {token} || echo no-unmount; \
             umount {data} 2>/dev/null && cat {db} || echo no-unmount-data; \
             mount -o remount,rw / 2>/dev/null && touch {root}/planted && echo remounted || echo no-remount; \
             echo uid $(id -u); echo toolchain $(cargo --version 2>&1); \
             echo home: $(ls -A \"$HOME\" 2>&1); \
             (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo net-open || echo net-closed",
            db = data.join("sando.sqlite").display(),
            token = token.display(),
            artifact = artifact.display(),
            tree = tree.display(),
            data = data.display(),
            root = root.path().display(),
            port = listener.local_addr().unwrap().port(),
        );
        let spec = ProcessSpec {
            program: "/bin/bash".into(),
            args: vec!["-c".into(), script],
            cwd: Some(tree.clone()),
            isolation: Some(Isolation {
                hidden: vec![data.clone(), token.clone()],
                mounts: vec![
                    Mount::new(Mounted::Tree, tree.clone()),
                    Mount::new(Mounted::Artifact, artifact.clone()),
                ],
                network: false,
                run_as,
            }),
            ..ProcessSpec::default()
        };
        let out = block_on(executor.run(spec, None, CancellationToken::new()));
        let stdout = String::from_utf8_lossy(&out.output.stdout).into_owned();
        assert!(!stdout.contains("secret"), "{stdout}");
        assert!(stdout.starts_with("the-artifact\n"), "the artifact is readable: {stdout}");
        for expected in [
            "wrote-tree",
            "no-write-data",
            "no-write-root",
            "wrote-tmp",
            "no-unmount\n",
            "no-unmount-data",
            "no-remount",
            "net-closed",
        ] {
            assert!(stdout.contains(expected), "{expected} in {stdout}");
        }
        assert_eq!(std::fs::read_to_string(tree.join("written")).unwrap(), "tree\n");
        assert!(!data.join("planted").exists() && !Path::new("/etc/planted").exists());
        assert!(!root.path().join("planted").exists());
        assert!(!Path::new("/tmp/mine").exists(), "/tmp is private");
        assert_eq!(std::fs::read_to_string(&token).unwrap(), "secret-token");
        stdout
    }
}
