//! The supervisor each local program runs under (the forked child that never execs: async-signal-safe system calls only), which ends the tree when the daemon lets go of its lifeline; and, from the daemon's side, the signals and the `/proc` walk that end a tree.

use std::collections::HashMap;

/// Runs in the forked child, before `exec`. It forks once more: the new
/// child returns and becomes the program (bubblewrap or the command), with
/// `/dev/null` as stdin and a parent-death signal; this process stays as its
/// supervisor and never returns. The supervisor closes every other
/// descriptor, then waits for either the program's end (and exits the same
/// way) or the end of its lifeline, stdin, whose write end only the daemon
/// holds: the daemon is gone or has let go, so it kills the program and its
/// process group. Parent-death signals alone were seen not to end a sandbox
/// whose daemon was killed; a closed pipe is what the kernel guarantees.
///
/// # Safety
/// Call only between `fork` and `exec` (a `pre_exec` closure): it uses only
/// async-signal-safe system calls and allocates nothing.
pub(super) unsafe fn supervise_or_become_child(daemon: libc::pid_t) -> std::io::Result<()> {
    // SAFETY (whole body): raw system calls on this process's own state and
    // its own child; no memory is shared with the parent.
    unsafe {
        if libc::getppid() != daemon {
            // The daemon died right after the fork: start nothing.
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        let supervisor = libc::getpid();
        let child = libc::fork();
        if child < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if child == 0 {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != supervisor {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if null < 0 || libc::dup2(null, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(null);
            return Ok(());
        }
        supervise(child)
    }
}

/// The supervisor's loop (see [`supervise_or_become_child`]).
///
/// # Safety
/// Only in a forked, not exec'd, child; `child` is its own child.
unsafe fn supervise(child: libc::pid_t) -> ! {
    // SAFETY (whole body): as for `supervise_or_become_child`.
    unsafe {
        // Keep only the lifeline: the output pipes belong to the program,
        // and copies of the daemon's descriptors (other lifelines among them)
        // must not be held open here.
        if libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32) != 0 {
            for fd in 1..4096 {
                libc::close(fd);
            }
        }
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0u32) as libc::c_int;
        loop {
            let mut fds = [
                libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
            ];
            // Without a pidfd (kernels before 5.3), look at the child 10
            // times a second.
            let (count, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 100) };
            let ready = libc::poll(fds.as_mut_ptr(), count, timeout);
            let mut status = 0;
            if libc::waitpid(child, &mut status, libc::WNOHANG) == child {
                exit_as(status);
            }
            if ready > 0 && fds[0].revents != 0 {
                let mut byte = 0u8;
                let read = libc::read(0, (&raw mut byte).cast(), 1);
                let interrupted =
                    read < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
                if read <= 0 && !interrupted {
                    // Under bubblewrap the program's child is the namespace's
                    // init: killed, the kernel ends the whole namespace, with
                    // no parent-death signal to rely on.
                    kill_children_of(child);
                    libc::kill(child, libc::SIGKILL);
                    libc::kill(0, libc::SIGKILL);
                    libc::_exit(128 + libc::SIGKILL);
                }
            }
        }
    }
}

/// SIGKILLs the children of `pid`, read from
/// `/proc/<pid>/task/<pid>/children` into a buffer on the stack.
///
/// # Safety
/// As for [`supervise`]: no allocation, system calls only.
unsafe fn kill_children_of(pid: libc::pid_t) {
    // "/proc/" + pid + "/task/" + pid + "/children\0"
    let mut path = [0u8; 64];
    let mut len = 0;
    let mut put = |bytes: &[u8], len: &mut usize| {
        for &b in bytes {
            if *len < path.len() - 1 {
                path[*len] = b;
                *len += 1;
            }
        }
    };
    let mut digits = [0u8; 12];
    let mut n = 0;
    let mut value = pid.unsigned_abs();
    loop {
        digits[digits.len() - 1 - n] = b'0' + (value % 10) as u8;
        n += 1;
        value /= 10;
        if value == 0 || n == digits.len() {
            break;
        }
    }
    let number = &digits[digits.len() - n..];
    put(b"/proc/", &mut len);
    put(number, &mut len);
    put(b"/task/", &mut len);
    put(number, &mut len);
    put(b"/children", &mut len);
    // SAFETY (whole body): open/read/close/kill on a path we built; the
    // buffer outlives every call that uses it.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut buf = [0u8; 512];
        let read = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        let Ok(read) = usize::try_from(read) else { return };
        let mut current: libc::pid_t = 0;
        for &b in &buf[..read] {
            if b.is_ascii_digit() {
                current = current.saturating_mul(10).saturating_add(libc::pid_t::from(b - b'0'));
            } else {
                if current > 0 {
                    libc::kill(current, libc::SIGKILL);
                }
                current = 0;
            }
        }
        if current > 0 {
            libc::kill(current, libc::SIGKILL);
        }
    }
}

/// Ends the supervisor the way its child ended: the same exit code, or the
/// same signal (without a core file of its own).
///
/// # Safety
/// As for [`supervise`].
unsafe fn exit_as(status: libc::c_int) -> ! {
    // SAFETY (whole body): as for `supervise_or_become_child`.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

pub(super) fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill(2) sends a signal; it touches no memory of ours.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

pub(super) fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we
    // created for the child; it touches no memory of ours.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Every process below `root`, from `/proc`'s parent links. Inside a PID
/// namespace orphans are adopted by the namespace's init, so they stay below.
pub(super) fn descendants(root: i32) -> Vec<i32> {
    tree(root).into_iter().map(|(pid, _)| pid).collect()
}

/// Every process below `root` with its depth (1: a child of `root`).
pub(super) fn tree(root: i32) -> Vec<(i32, usize)> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(ppid) = parent_in(&stat) else { continue };
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut stack = vec![(root, 0)];
    while let Some((pid, depth)) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push((child, depth + 1));
            stack.push((child, depth + 1));
        }
    }
    found
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`,
/// where comm may hold spaces and parentheses.
pub(super) fn parent_in(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::block_on;
    use super::super::local::Started;
    use super::super::testing::{alive, eventually, executor, sh};

    #[test]
    fn letting_go_of_the_lifeline_ends_the_tree_without_parent_death_signals() {
        use std::os::unix::process::ExitStatusExt;
        // A grandchild has no parent-death signal of its own, so only the
        // supervisor's answer to the closed lifeline can end it here.
        let grouped = executor().in_process_groups();
        for (executor, marker) in [(executor(), "sleep 917"), (grouped, "sleep 918")] {
            block_on(async {
                let spec = sh(&format!("{marker} & wait"));
                let Started { mut child, _lifeline: lifeline, .. } =
                    executor.start(&spec).await.expect("starts");
                assert!(eventually(Duration::from_secs(10), || alive(marker)), "{marker} started");
                drop(lifeline);
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .expect("the supervisor ends")
                    .unwrap();
                assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
            });
            assert!(eventually(Duration::from_secs(5), || !alive(marker)), "{marker} is left");
        }
    }

    #[test]
    fn the_supervisor_exits_as_its_program_did() {
        use std::os::unix::process::ExitStatusExt;
        let grouped = executor().in_process_groups();
        block_on(async {
            let Started { mut child, _lifeline, .. } =
                grouped.start(&sh("kill -TERM $$")).await.expect("starts");
            assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
            let Started { mut child, _lifeline, .. } =
                grouped.start(&sh("exit 7")).await.expect("starts");
            assert_eq!(child.wait().await.unwrap().code(), Some(7));
        });
    }
}
