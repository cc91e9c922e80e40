//! A terminal for the TUI's tests: the real `sando tui` in tmux, keys in by `send-keys`, the screen back with its colours from `capture-pane -e`.

use std::process::Command;
use std::time::{Duration, Instant};

/// ANSI colour numbers as the terminal reports them.
pub const RED: u8 = 1;
pub const GREEN: u8 = 2;
pub const YELLOW: u8 = 3;

/// A tmux server of its own (`-L`), so tests never touch the user's sessions.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        // One server per test: tests in this binary run at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("sando-test-{}-{n}", std::process::id());
        let tmux = Tmux { socket };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "sando",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux is needed for this test (Debian: apt-get install tmux)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn screen(&self) -> Screen {
        Screen { raw: self.run(&["capture-pane", "-p", "-e", "-t", "sando"]) }
    }

    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "sando", key]);
            // Esc followed at once by a letter reads as Alt+letter.
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    pub fn wait(&self, what: &str, timeout: Duration, ready: impl Fn(&Screen) -> bool) -> Screen {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{}",
                screen.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// One capture of the pane, escapes included.
pub struct Screen {
    raw: String,
}

impl Screen {
    pub fn text(&self) -> String {
        self.raw.lines().map(|l| strip(l).0).collect::<Vec<_>>().join("\n")
    }

    pub fn contains(&self, text: &str) -> bool {
        self.text().contains(text)
    }

    /// The foreground colour `text` is drawn in where it first appears.
    pub fn colour_of(&self, text: &str) -> Option<u8> {
        self.raw.lines().find_map(|line| {
            let (plain, colours) = strip(line);
            let at = plain.find(text)?;
            colours[plain[..at].chars().count()]
        })
    }
}

/// A line without its escape sequences, and the foreground colour of each
/// character (`None`: the default colour).
fn strip(line: &str) -> (String, Vec<Option<u8>>) {
    let mut plain = String::new();
    let mut colours = Vec::new();
    let mut fg: Option<u8> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            plain.push(c);
            colours.push(fg);
            continue;
        }
        if chars.peek() != Some(&'[') {
            chars.next();
            continue;
        }
        chars.next();
        let mut params = String::new();
        let mut end = ' ';
        for c in chars.by_ref() {
            if ('@'..='~').contains(&c) {
                end = c;
                break;
            }
            params.push(c);
        }
        if end != 'm' {
            continue;
        }
        let mut codes = params.split(';').map(|p| p.parse::<u16>().unwrap_or(0));
        while let Some(code) = codes.next() {
            match code {
                0 | 39 => fg = None,
                30..=37 => fg = Some((code - 30) as u8),
                90..=97 => fg = Some((code - 90 + 8) as u8),
                38 => match codes.next() {
                    Some(5) => fg = codes.next().map(|n| n as u8),
                    Some(2) => {
                        codes.next();
                        codes.next();
                        codes.next();
                        fg = Some(u8::MAX);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    (plain, colours)
}
