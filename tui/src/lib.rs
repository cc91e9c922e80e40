//! Sando's operator TUI (`sando tui`): tiers and gates live from the daemon's HTTP/WebSocket API, drill-down into runs and their logs, and the operator's actions.
//!
//! This crate speaks to the daemon only over its API and shares only
//! `sando-wire` with it: it links neither wasmtime nor sqlx.

pub mod app;
pub mod client;
pub mod describe;
pub mod tail;
pub mod view;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};

use crate::app::{App, Command, Connection};
use crate::client::Client;

pub use crate::client::ClientError;

/// Frames are drawn at most this often, however fast events arrive.
const FRAME: Duration = Duration::from_millis(16);
/// The spinner advances this often.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Options {
    /// One daemon, or several sharing a store (any order).
    pub urls: Vec<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("token file {path}: {source}")]
    TokenFile { path: String, source: std::io::Error },
    #[error("token file {path} is empty")]
    EmptyToken { path: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Runs the TUI until the operator quits. The terminal is restored on the
/// way out, on error and on panic alike.
pub fn run(options: Options) -> Result<(), TuiError> {
    let token = match &options.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| TuiError::TokenFile {
                path: path.display().to_string(),
                source,
            })?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(TuiError::EmptyToken { path: path.display().to_string() });
            }
            Some(token)
        }
        None => None,
    };
    let client = Client::over(&options.urls, token.clone())?;
    let operator = std::env::var("USER").ok().filter(|u| !u.is_empty());
    let mut app =
        App::new(client.base(), operator.unwrap_or_else(|| "operator".into()), token.is_some());

    let (msg_tx, msg_rx) = mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::channel();
    {
        let msgs = msg_tx.clone();
        let client = client.clone();
        std::thread::Builder::new()
            .name("sando-tui-http".into())
            .spawn(move || client::serve_commands(client, cmd_rx, msgs))?;
    }
    {
        let daemons = client.daemons().to_vec();
        let token = token.clone();
        std::thread::Builder::new()
            .name("sando-tui-events".into())
            .spawn(move || client::follow_events(daemons, token, msg_tx))?;
    }
    // The state first, so the screen fills before the stream connects.
    let _ = cmd_tx.send(Command::Resync);
    if token.is_some() {
        let _ = cmd_tx.send(Command::WhoAmI);
    }

    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &mut app, &msg_rx, &cmd_tx);
    ratatui::try_restore()?;
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    msgs: &mpsc::Receiver<app::Msg>,
    commands: &mpsc::Sender<Command>,
) -> Result<(), TuiError> {
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut last_tick = Instant::now();
    loop {
        // Everything that arrived since the last frame goes into one frame.
        let drained_until = Instant::now() + FRAME;
        while let Ok(msg) = msgs.try_recv() {
            for command in app.on_msg(msg) {
                let _ = commands.send(command);
            }
            dirty = true;
            if Instant::now() > drained_until {
                break;
            }
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            app.tick += 1;
            // Spinners and "running for" move; and a reconnect banner.
            dirty |= app.visible_rows().iter().any(|(_, r)| r.outcome.is_none())
                || app.connection != Connection::Live;
        }
        if dirty && last_draw.is_none_or(|at| at.elapsed() >= FRAME) {
            let now = Utc::now();
            terminal.draw(|frame| view::draw(frame, app, now))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        if event::poll(FRAME)? {
            match event::read()? {
                TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                    for command in app.on_key(key) {
                        if command == Command::Quit {
                            return Ok(());
                        }
                        let _ = commands.send(command);
                    }
                    dirty = true;
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}
