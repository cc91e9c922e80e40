//! Drawing: the overview, a run's detail, dialogs and the help screen, from an `App` and the current time (passed in, so snapshots are stable).

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Wrap};
use sando_wire::{
    DeployOutcome, FreezeSource, GateRunSummary, PromotionBlocker, RollbackProgress, RunState,
    TierState,
};

use crate::app::{
    App, AuditView, Connection, Detail, Dialog, History, HistoryOf, LogSource, Screen, TierAction,
    is_unclassified,
};
use crate::describe::Tone;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Side panes move from below the tiers to their right at this width.
const WIDE: u16 = 150;

pub fn draw(frame: &mut Frame, app: &App, now: DateTime<Utc>) {
    let [header, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)])
            .areas(frame.area());
    draw_header(frame, header, app);
    match &app.screen {
        Screen::Overview => draw_overview(frame, body, app, now),
        Screen::Detail(detail) => draw_detail(frame, body, app, detail, now),
        Screen::History(history) => draw_history(frame, body, history),
        Screen::Audit(view) => draw_audit(frame, body, app, view),
    }
    draw_status(frame, status, app);
    match &app.dialog {
        Some(Dialog::Help) => draw_help(frame, frame.area(), app),
        Some(Dialog::Component { record, scroll }) => {
            draw_component(frame, frame.area(), record, *scroll)
        }
        Some(Dialog::Reason { action, text }) => draw_reason(frame, frame.area(), action, text),
        Some(dialog) => draw_question(frame, frame.area(), app, dialog),
        None => {}
    }
}

fn tone_color(tone: Tone) -> Color {
    match tone {
        Tone::Good => Color::Green,
        Tone::Waiting => Color::Yellow,
        Tone::Bad => Color::Red,
        Tone::Neutral => Color::Reset,
    }
}

fn state_style(state: RunState) -> Style {
    match state {
        RunState::Passed => Style::new().fg(Color::Green),
        RunState::Blocked => Style::new().fg(Color::Yellow),
        RunState::Failed => Style::new().fg(Color::Red),
        RunState::Running => Style::new().fg(Color::Cyan),
    }
}

fn state_symbol(state: RunState, tick: u64) -> &'static str {
    match state {
        RunState::Passed => "✓",
        RunState::Blocked => "◆",
        RunState::Failed => "✗",
        RunState::Running => SPINNER[(tick % SPINNER.len() as u64) as usize],
    }
}

fn draw_header(frame: &mut Frame, area: Rect, app: &App) {
    let (dot, label, color) = match &app.connection {
        Connection::Connecting => ("○", "connecting".to_owned(), Color::Yellow),
        Connection::Live => ("●", "live".to_owned(), Color::Green),
        Connection::Reconnecting { error } => ("○", format!("reconnecting ({error})"), Color::Red),
    };
    let mut spans = vec![
        Span::styled(" Sando ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw("│ "),
        Span::raw(app.url.clone()),
        Span::raw(" │ "),
        Span::styled(format!("{dot} {label}"), Style::new().fg(color)),
    ];
    if let Some(leader) = app.state.as_ref().and_then(|s| s.leader.as_ref()) {
        // Daemons sharing a store: which one this is, and who leads.
        spans.push(Span::raw(if leader.this_daemon {
            format!(" │ leader, epoch {}", leader.epoch)
        } else {
            format!(" │ standby; leader {} (epoch {})", leader.url, leader.epoch)
        }));
    }
    if app.state.as_ref().and_then(|s| s.scheduler.as_ref()).is_some_and(|s| !s.alive) {
        spans.push(Span::styled(
            " │ decision loop stopped".to_owned(),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(warning) = app.state.as_ref().and_then(|s| s.warnings.first()) {
        // The warning's headline: what comes before its explanation.
        let headline = warning.split(':').next().unwrap_or(warning);
        spans.push(Span::styled(
            format!(" │ ⚠ {headline}"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if app.undecodable > 0 {
        spans.push(Span::styled(
            format!(" │ {} frames not understood", app.undecodable),
            Style::new().fg(Color::Yellow),
        ));
    }
    let left = Line::from(spans);
    let right = Line::from(" ?:help ").alignment(Alignment::Right);
    frame.render_widget(Paragraph::new(left), area);
    frame.render_widget(Paragraph::new(right), area);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let line = if app.filter_editing {
        Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Cyan)),
            Span::raw(app.filter.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            Span::styled("  enter keep · esc clear", Style::new().fg(Color::DarkGray)),
        ])
    } else if let Some(status) = &app.status {
        let color = if status.ok { Color::Reset } else { Color::Red };
        Line::from(Span::styled(format!(" {}", status.text), Style::new().fg(color)))
    } else {
        // A token that may not act (none, or a viewer's) is shown no action keys.
        let hints = match (&app.screen, app.can_act()) {
            (Screen::Overview, true) => fit_hints(
                &[
                    "↑↓ select",
                    "⏎ detail",
                    "c confirm",
                    "r re-run",
                    "z freeze",
                    "B roll back",
                    "A audit",
                    "b backup",
                    "/ filter",
                ],
                usize::from(area.width),
            ),
            (Screen::Overview, false) => fit_hints(
                &["↑↓ select", "⏎ detail", "A audit", "/ filter"],
                usize::from(area.width),
            ),
            (Screen::Detail(_), true) => {
                " esc back  f follow  ↑↓ scroll  l full log  t tail  c confirm  r re-run  ? help"
                    .to_owned()
            }
            (Screen::Detail(_), false) => {
                " esc back  f follow  ↑↓ scroll  l full log  t tail  ? help".to_owned()
            }
            (Screen::History(_), _) => " esc back  ? help".to_owned(),
            (Screen::Audit(view), _) if view.open => " esc close  ↑↓ select  ? help".to_owned(),
            (Screen::Audit(_), _) => {
                " ↑↓ select  ⏎ before/after  R refresh  esc back  ? help".to_owned()
            }
        };
        Line::from(Span::styled(hints, Style::new().fg(Color::DarkGray)))
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// As many of `keys` as fit `width` in their order, then help and quit,
/// which always show.
fn fit_hints(keys: &[&str], width: usize) -> String {
    const TAIL: &str = "  ? help  q quit";
    let mut line = String::new();
    for key in keys {
        let wider = line.chars().count() + 2 + key.chars().count() + TAIL.chars().count();
        if wider <= width {
            line.push_str(if line.is_empty() { " " } else { "  " });
            line.push_str(key);
        }
    }
    line.push_str(TAIL);
    line
}

// ---- overview ----------------------------------------------------------------

fn draw_overview(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let (tiers, side) = if area.width >= WIDE {
        let [tiers, side] =
            Layout::horizontal([Constraint::Min(80), Constraint::Length(area.width * 2 / 5)])
                .areas(area);
        (tiers, side)
    } else {
        let side_height = (area.height / 3).max(6).min(area.height.saturating_sub(6));
        let [tiers, side] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(side_height)]).areas(area);
        (tiers, side)
    };
    draw_tiers(frame, tiers, app, now);
    let [deploys, events] = if area.width >= WIDE {
        Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(side)
    } else {
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(side)
    };
    draw_deploys(frame, deploys, app);
    draw_events(frame, events, app);
}

fn pane(title: &str) -> Block<'static> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Span::styled(format!(" {title} "), Style::new().add_modifier(Modifier::BOLD)))
}

fn draw_tiers(frame: &mut Frame, area: Rect, app: &App, now: DateTime<Utc>) {
    let mut title = "Tiers".to_owned();
    if !app.filter.is_empty() {
        title = format!("Tiers · filter /{}", app.filter);
    }
    let block = pane(&title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(state) = &app.state else {
        let text = match &app.connection {
            Connection::Reconnecting { .. } => "waiting for the daemon…",
            _ => "loading /api/state…",
        };
        frame.render_widget(Paragraph::new(text).style(Style::new().fg(Color::DarkGray)), inner);
        return;
    };
    let rows = app.visible_rows();
    let mut lines: Vec<Line> = Vec::new();
    for record in &state.pending_components {
        lines.push(Line::styled(
            format!(
                "◆ updated {} component {} changes {} verdict(s): p to review",
                record.kind,
                crate::describe::short(&record.digest),
                record.diff.len()
            ),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(build) = state.builds.first().filter(|_| app.filter.is_empty()) {
        lines.push(build_line(build, now));
    }
    let mut selected_line = None;
    for tier in &state.tiers {
        let tier_rows: Vec<&GateRunSummary> =
            rows.iter().filter(|(t, _)| t.name == tier.name).map(|(_, r)| *r).collect();
        if !app.filter.is_empty() && tier_rows.is_empty() {
            continue;
        }
        lines.push(tier_line(tier));
        lines.extend(tier_control_lines(tier, now));
        if tier.candidate_version.is_none() && tier.current_version.is_none() {
            lines.push(Line::styled(
                "  no version has reached this tier",
                Style::new().fg(Color::DarkGray),
            ));
        }
        let pending =
            tier.pipeline.iter().filter(|kind| !tier.gates.iter().any(|r| r.gate == **kind));
        let shows_version = tier.candidate_version.is_some() || tier.current_version.is_some();
        for run in tier_rows {
            let selected =
                app.selected.as_ref().is_some_and(|s| s.tier == tier.name && s.gate == run.gate);
            if selected {
                selected_line = Some(lines.len());
            }
            lines.push(gate_line(app, run, inner.width, selected, now));
        }
        if app.filter.is_empty() && shows_version {
            // Gates run in order and stop at the first that does not pass.
            let why = if tier.gates.iter().any(|r| r.status == RunState::Failed) {
                "not run: a gate before it failed"
            } else if tier.gates.iter().any(|r| r.status == RunState::Blocked) {
                "waits for the gates before it"
            } else {
                "not run yet"
            };
            for kind in pending {
                lines.push(Line::styled(
                    format!("  · {:<8}{:<19}{why}", "pending", kind.to_string()),
                    Style::new().fg(Color::DarkGray),
                ));
            }
        }
    }
    if lines.is_empty() {
        lines.push(Line::styled(
            format!("no gate matches /{}", app.filter),
            Style::new().fg(Color::DarkGray),
        ));
    }
    let height = usize::from(inner.height);
    let offset = selected_line.map_or(0, |line| (line + 1).saturating_sub(height));
    frame.render_widget(Paragraph::new(lines).scroll((offset as u16, 0)), inner);
}

/// The latest build: what it built, how it ended, and how long it took
/// beside the build before it.
fn build_line(build: &sando_wire::BuildSummary, now: DateTime<Utc>) -> Line<'static> {
    let dim = Style::new().fg(Color::DarkGray);
    let (text, color) = match &build.outcome {
        None => (format!("building for {}", duration(now - build.started_at)), Color::Cyan),
        Some(sando_wire::BuildOutcome::Ok { version }) => {
            (format!("built {version}"), Color::Green)
        }
        Some(sando_wire::BuildOutcome::Failed { failure }) => {
            (format!("failed: {failure}"), Color::Red)
        }
    };
    let mut spans = vec![
        Span::styled(format!("{:<10}", "build"), Style::new().add_modifier(Modifier::BOLD)),
        Span::styled(" commit ", dim),
        Span::raw(build.git_sha.short().to_owned()),
        Span::raw("  "),
        Span::styled(text, Style::new().fg(color)),
    ];
    if let Some(ms) = build.duration_ms {
        spans.push(Span::styled(format!("  took {}", millis(ms)), dim));
    }
    if let Some(ms) = build.previous_duration_ms {
        spans.push(Span::styled(format!(" (previous build {})", millis(ms)), dim));
    }
    Line::from(spans)
}

fn tier_line(tier: &TierState) -> Line<'static> {
    let version =
        |v: &Option<sando_wire::Version>| v.as_ref().map_or("—".to_owned(), ToString::to_string);
    let mut spans = vec![
        Span::styled(
            format!("{:<10}", tier.name.to_string()),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(" current ", Style::new().fg(Color::DarkGray)),
        Span::raw(version(&tier.current_version)),
    ];
    if tier.candidate_version.is_some() {
        spans.push(Span::styled("  candidate ", Style::new().fg(Color::DarkGray)));
        spans.push(Span::raw(version(&tier.candidate_version)));
    }
    // Its gates passed; only the freeze holds it (a precondition: yellow).
    if let Some(PromotionBlocker::TierFrozen { .. }) = &tier.promotion_blocked {
        spans.push(Span::styled(
            format!(" waits: {} frozen", tier.name),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// Under a tier's line: the freeze in force on it, an admin's override,
/// and its latest rollback.
fn tier_control_lines(tier: &TierState, now: DateTime<Utc>) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let yellow = Style::new().fg(Color::Yellow);
    let held = match (&tier.frozen, &tier.promotion_blocked) {
        (Some(freeze), _) => Some((
            match freeze.source {
                FreezeSource::Window => " (window)".to_owned(),
                FreezeSource::Manual { .. } => format!(" by {}", freeze.by),
            },
            freeze.tier.is_none(),
            freeze.until,
            freeze.reason.as_str(),
        )),
        // The blocker names the freeze when the state has no `frozen`.
        (None, Some(PromotionBlocker::TierFrozen { by, reason, until })) => {
            Some((format!(" by {by}"), false, *until, reason.as_str()))
        }
        (None, None) => None,
    };
    if let Some((by, every_tier, until, reason)) = held {
        let scope = if every_tier { " (every tier)" } else { "" };
        let until = until.map(|u| format!(" until {}", when(u, now))).unwrap_or_default();
        let reason = if reason.is_empty() { String::new() } else { format!(": {reason}") };
        lines.push(Line::styled(format!("  ❄ frozen{scope}{by}{until}{reason}"), yellow));
    }
    if let Some(version) = &tier.override_version {
        lines.push(Line::styled(
            format!("  ⇥ override: {version} may enter while frozen (an admin's)"),
            yellow,
        ));
    }
    if let Some(rollback) = &tier.rollback {
        let (from, to, by) = (&rollback.from, &rollback.to, &rollback.by);
        let ago = duration(now - rollback.requested_at);
        let (text, color) = match rollback.progress {
            RollbackProgress::Pending => {
                (format!("rolling back {from} → {to}, asked by {by} {ago} ago"), Color::Cyan)
            }
            RollbackProgress::Done => {
                (format!("rolled back {from} → {to} by {by} {ago} ago"), Color::Reset)
            }
            RollbackProgress::Failed => (
                format!(
                    "rollback {from} → {to} by {by} failed {ago} ago: {} still runs {from}",
                    tier.name
                ),
                Color::Red,
            ),
        };
        let reason = if rollback.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", rollback.reason)
        };
        lines.push(Line::styled(format!("  ↩ {text}{reason}"), Style::new().fg(color)));
    }
    lines
}

/// A time to come: its weekday and time within the week ahead, else its date.
fn when(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if at - now < chrono::TimeDelta::days(6) {
        at.format("%a %H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// One gate: symbol, state word (colour is never the only signal), gate,
/// the typed summary, and its age on the right when there is room.
fn gate_line(
    app: &App,
    run: &GateRunSummary,
    width: u16,
    selected: bool,
    now: DateTime<Utc>,
) -> Line<'static> {
    let style = state_style(run.status);
    let summary = summary(app, run, now);
    // Its time beside the version before's only where the summary keeps
    // its room.
    let age = age(app, run, now, usize::from(width) >= 130);
    let width = usize::from(width);
    // "  ✓ passed  cargo_test         " is 32 columns.
    let room = width.saturating_sub(32);
    let show_age = width >= 100;
    let summary_room = if show_age { room.saturating_sub(age.chars().count() + 2) } else { room };
    let summary = truncate(&summary, summary_room);
    let mut spans = vec![
        Span::raw(if selected { "▶ " } else { "  " }),
        Span::styled(state_symbol(run.status, app.tick).to_owned(), style),
        Span::raw(" "),
        Span::styled(format!("{:<8}", run.status.as_str()), style),
        Span::raw(format!("{:<19}", run.gate.to_string())),
        Span::styled(summary.clone(), style),
    ];
    if show_age {
        let used = 32 + summary.chars().count();
        let pad = width.saturating_sub(used + age.chars().count());
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(age, Style::new().fg(Color::DarkGray)));
    }
    let line = Line::from(spans);
    if selected { line.style(Style::new().add_modifier(Modifier::REVERSED)) } else { line }
}

/// The one-line summary: the typed outcome's `Display`, or how long it has run.
fn summary(app: &App, run: &GateRunSummary, now: DateTime<Utc>) -> String {
    let text = outcome_text(app, run, now);
    // A retry says so; a first attempt is the normal case and says nothing.
    if run.attempt > 1 {
        format!("{text} · attempt {} of {}", run.attempt, run.max_attempts)
    } else {
        text
    }
}

fn outcome_text(app: &App, run: &GateRunSummary, now: DateTime<Utc>) -> String {
    match &run.outcome {
        Some(outcome) => {
            let mut text = outcome.to_string();
            if run.gate == sando_wire::GateKind::ManualConfirm
                && run.status == RunState::Passed
                && let Some(by) = app.confirmed_by(run)
            {
                text = format!("{text} by {by}");
            }
            // Under an approval policy, who has approved so far: `1 of 2: alice`.
            if run.gate == sando_wire::GateKind::ManualConfirm
                && run.status == RunState::Blocked
                && let Some(approvals) = app.approvals(run)
            {
                text = format!("awaiting approvals: {approvals}");
            }
            text
        }
        None => format!("{} so far", duration(now - run.started_at)),
    }
}

/// When it ended (or started), after how long it took beside the version
/// before's time, so a push that got slow shows.
fn age(app: &App, run: &GateRunSummary, now: DateTime<Utc>, timed: bool) -> String {
    let previous = previous_run(app, run)
        .filter(|_| timed)
        .map(|p| format!(" ({} {})", p.version, millis(p.duration_ms)))
        .unwrap_or_default();
    match run.finished_at {
        Some(at) if timed => {
            format!("took {}{previous} · {} ago", duration(at - run.started_at), duration(now - at))
        }
        Some(at) => format!("{} ago", duration(now - at)),
        None => format!("since {}{previous}", run.started_at.format("%H:%M:%S")),
    }
}

/// The gate's latest finished run at this tier for the version before.
fn previous_run<'a>(app: &'a App, run: &GateRunSummary) -> Option<&'a sando_wire::PreviousRun> {
    let tier = app.state.as_ref()?.tiers.iter().find(|t| t.name == run.tier)?;
    tier.previous_runs.iter().find(|p| p.gate == run.gate && p.version != run.version)
}

fn millis(ms: i64) -> String {
    duration(chrono::TimeDelta::milliseconds(ms))
}

fn duration(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn truncate(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(room.saturating_sub(1)).collect();
    if room > 0 {
        out.push('…');
    }
    out
}

fn draw_deploys(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane("Deploys");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines: Vec<Line> = app
        .state
        .iter()
        .flat_map(|s| s.deploys.iter())
        .take(usize::from(inner.height))
        .map(|d| {
            let color = match d.outcome {
                DeployOutcome::Ok => Color::Green,
                DeployOutcome::InProgress => Color::Cyan,
                DeployOutcome::Failed { .. } => Color::Red,
            };
            let symbol = match d.outcome {
                DeployOutcome::Ok => "✓",
                DeployOutcome::InProgress => "…",
                DeployOutcome::Failed { .. } => "✗",
            };
            let mut spans = vec![Span::styled(format!("{symbol} "), Style::new().fg(color))];
            // A deploy of a rollback says so first: the pane is narrow.
            if d.rollback.is_some() {
                spans.push(Span::styled("↩ rollback ", Style::new().add_modifier(Modifier::BOLD)));
            }
            spans.push(Span::raw(format!("{} → {} ", d.version, d.node)));
            spans.push(Span::styled(d.outcome.to_string(), Style::new().fg(color)));
            if let Some(of) = &d.rollback {
                spans.push(Span::styled(
                    format!(" (from {} by {})", of.from, of.by),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            Line::from(spans)
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new("none yet").style(Style::new().fg(Color::DarkGray)),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn draw_events(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane("Events");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines: Vec<Line> = app
        .events
        .iter()
        .take(usize::from(inner.height))
        .map(|e| {
            Line::from(vec![
                Span::styled(
                    e.at.format("%H:%M:%S ").to_string(),
                    Style::new().fg(Color::DarkGray),
                ),
                Span::styled(e.text.clone(), Style::new().fg(tone_color(e.tone))),
            ])
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new("waiting for events…").style(Style::new().fg(Color::DarkGray)),
            inner,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

// ---- run detail --------------------------------------------------------------

fn draw_detail(frame: &mut Frame, area: Rect, app: &App, detail: &Detail, now: DateTime<Utc>) {
    let Some(run) = app.run(detail.run_id) else {
        let block = pane(&format!("Run {}", detail.run_id));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new("loading the run…"), inner);
        return;
    };
    let unclassified = run.outcome.as_ref().is_some_and(is_unclassified);
    // For an unclassified run the log is the point: the facts shrink to make room.
    let facts_height = if unclassified { 5 } else { 8 }.min(area.height / 2);
    let [facts, log] =
        Layout::vertical([Constraint::Length(facts_height), Constraint::Min(3)]).areas(area);
    draw_facts(frame, facts, app, run, unclassified, now);
    draw_log(frame, log, app, detail, run, unclassified);
}

fn draw_facts(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    run: &GateRunSummary,
    unclassified: bool,
    now: DateTime<Utc>,
) {
    let style = state_style(run.status);
    let block = pane(&format!("{} · {} · {}", run.tier, run.version, run.gate))
        .title(Line::from(format!(" run {} ", run.run_id)).alignment(Alignment::Right))
        .border_style(style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("{} {} ", state_symbol(run.status, app.tick), run.status),
            style.add_modifier(Modifier::BOLD),
        ),
        Span::styled(summary(app, run, now), style),
    ])];
    let finished = match run.finished_at {
        Some(at) => format!(
            "  finished {} ({})",
            at.format("%Y-%m-%d %H:%M:%S"),
            duration(at - run.started_at)
        ),
        None => format!("  running for {}", duration(now - run.started_at)),
    };
    let mut started = vec![
        Span::styled("started ", dim),
        Span::raw(run.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        Span::raw(finished),
    ];
    if let Some(previous) = previous_run(app, run) {
        started.push(Span::styled(
            format!("  {} took {}", previous.version, millis(previous.duration_ms)),
            dim,
        ));
    }
    lines.push(Line::from(started));
    let digest = if run.component_digest.len() > 12 {
        format!("{}…", crate::describe::short(&run.component_digest))
    } else {
        run.component_digest.clone()
    };
    let mut provenance = if run.contract == sando_wire::IMPORTED_RUN {
        vec![Span::styled("imported from the old daemon: no component decided it", dim)]
    } else {
        vec![
            Span::styled("component ", dim),
            Span::raw(if digest.is_empty() {
                "—".to_owned()
            } else {
                format!("sha256:{digest}")
            }),
            Span::styled("  contract ", dim),
            Span::raw(if run.contract.is_empty() {
                "—".to_owned()
            } else {
                run.contract.clone()
            }),
        ]
    };
    // A classifier-only part judged the run: name it beside the runner.
    if let Some(classifier) = run.classifier_digest.as_ref().filter(|c| **c != run.component_digest)
    {
        provenance.push(Span::styled("  classifier ", dim));
        provenance.push(Span::raw(format!("sha256:{}…", crate::describe::short(classifier))));
    }
    if let Some(fuel) = run.fuel {
        provenance.push(Span::styled("  fuel ", dim));
        provenance.push(Span::raw(thousands(fuel)));
    }
    if let Some(memory) = run.peak_memory {
        provenance.push(Span::styled("  peak memory ", dim));
        provenance.push(Span::raw(format!("{:.1} MiB", memory as f64 / (1024.0 * 1024.0))));
    }
    lines.push(Line::from(provenance));
    if let Some(outcome) = &run.outcome {
        let json = serde_json::to_string(outcome).unwrap_or_default();
        lines.push(Line::from(vec![Span::styled("outcome ", dim), Span::raw(json)]));
    }
    if !unclassified {
        if let Some(log_ref) = &run.log_ref {
            lines.push(Line::from(vec![Span::styled("log ", dim), Span::raw(log_ref.to_string())]));
        }
        if let Some(by) =
            app.confirmed_by(run).filter(|_| run.gate == sando_wire::GateKind::ManualConfirm)
        {
            lines.push(Line::from(vec![
                Span::styled("confirmed by ", dim),
                Span::raw(by.to_owned()),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn draw_log(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    detail: &Detail,
    run: &GateRunSummary,
    unclassified: bool,
) {
    let source = match detail.log {
        LogSource::Live if run.status == RunState::Running => "live tail",
        LogSource::Live => "tail received here (l: full log)",
        LogSource::Loading => "loading the full log…",
        LogSource::Full => "full log",
    };
    let mode = if detail.follow { " · following" } else { "" };
    let title = if unclassified {
        format!("Log · unclassified output · {source}{mode}")
    } else {
        format!("Log · {source}{mode}")
    };
    let mut block = pane(&title);
    if unclassified {
        block = block.border_style(Style::new().fg(Color::Red));
    }
    let inner = block.inner(area);
    let height = inner.height;
    app.log_height.set(height);
    let tail = app.log_for(detail);
    let (first, end) = tail.map_or((0, 0), |t| (t.first_line(), t.end_line_no()));
    let top = if detail.follow {
        end.saturating_sub(u64::from(height)).max(first)
    } else {
        detail.top.clamp(first, end.max(first + 1) - 1)
    };
    let bottom = (top + u64::from(height)).min(end);
    let position = if end == 0 {
        String::new()
    } else {
        let dropped = if first > 0 { format!(", {first} earlier dropped") } else { String::new() };
        format!(" lines {}-{} of {}{dropped} ", top + 1, bottom, end)
    };
    block = block.title(Line::from(position).alignment(Alignment::Right));
    frame.render_widget(block, area);
    let Some(tail) = tail.filter(|t| !t.is_empty()) else {
        let text = match detail.log {
            LogSource::Loading => "loading…",
            _ if run.status == RunState::Running => "waiting for output…",
            _ => "nothing received while this screen was open; press l for the full log",
        };
        frame.render_widget(Paragraph::new(text).style(Style::new().fg(Color::DarkGray)), inner);
        return;
    };
    let width = usize::from(inner.width);
    let lines: Vec<Line> = (top..bottom)
        .filter_map(|n| tail.line(n))
        .map(|text| Line::raw(truncate(text, width)))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

// ---- dialogs -----------------------------------------------------------------

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width.saturating_sub(2));
    let height = height.min(area.height.saturating_sub(2));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_question(frame: &mut Frame, area: Rect, app: &App, dialog: &Dialog) {
    let (title, body): (&str, Vec<String>) = match dialog {
        Dialog::Confirm { run } => (
            "Confirm",
            vec![
                format!("Confirm {} {} at {}?", run.gate, run.version, run.tier),
                format!("It is recorded as confirmed by {}.", app.operator),
            ],
        ),
        Dialog::Rerun { run } => (
            "Run again",
            vec![
                format!("Run {} for {} at {} again?", run.gate, run.version, run.tier),
                format!(
                    "It failed: {}",
                    run.outcome.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
            ],
        ),
        Dialog::Cancel { run } => (
            "Cancel",
            vec![
                format!("Cancel {} for {} at {}?", run.gate, run.version, run.tier),
                "Its processes end; it fails as cancelled, not retried.".to_owned(),
            ],
        ),
        Dialog::FetchBackup => (
            "Fetch backup",
            vec![
                "Fetch a fresh production backup now?".to_owned(),
                "Migration dry runs use the newest backup.".to_owned(),
            ],
        ),
        Dialog::Tier { action, reason } => {
            let title = action.title();
            let mut body = tier_question(action);
            if !reason.is_empty() {
                // Its start: the question must fit the screen.
                body.push(format!("Reason: {}", truncate(reason, 240)));
            }
            draw_yes_no(frame, area, &title, body);
            return;
        }
        Dialog::Help | Dialog::Component { .. } | Dialog::Reason { .. } => return,
    };
    draw_yes_no(frame, area, title, body);
}

/// How many rows `text` takes wrapped at word boundaries into `width`.
fn wrapped_rows(text: &str, width: usize) -> usize {
    let (mut rows, mut column) = (1, 0);
    for word in text.split(' ') {
        let length = word.chars().count();
        if column == 0 {
            column = length;
        } else if column + 1 + length <= width {
            column += 1 + length;
        } else {
            rows += 1;
            column = length;
        }
        // A word longer than the line is cut across rows.
        while column > width {
            rows += 1;
            column -= width;
        }
    }
    rows
}

/// What a tier action will do, in the words its y/n asks.
fn tier_question(action: &TierAction) -> Vec<String> {
    match action {
        TierAction::Freeze { tier: Some(tier) } => vec![
            format!("Freeze {tier}?"),
            "Promotions into it wait until lifted; gates still run.".into(),
        ],
        TierAction::Freeze { tier: None } => vec![
            "Freeze every tier?".into(),
            "No promotion anywhere until lifted; gates still run.".into(),
        ],
        TierAction::Lift { tier, freeze, .. } => {
            let scope = if freeze.tier.is_none() { "every tier" } else { "it" };
            vec![
                format!("Lift the freeze on {tier}?"),
                format!("Frozen by {}: {}", freeze.by, freeze.reason),
                format!("Lifting it thaws {scope}."),
            ]
        }
        TierAction::Rollback { tier, from, to } => vec![
            match from {
                Some(from) => format!("Roll back {tier} from {from} to {to}?"),
                None => format!("Roll back {tier} to {to}?"),
            },
            "Its kept artifact is deployed; a freeze does not hold it.".into(),
        ],
    }
}

fn draw_yes_no(frame: &mut Frame, area: Rect, title: &str, body: Vec<String>) {
    // Room for each line as wrapped (a reason may be long), so the
    // answer keys stay in the box.
    let inner = 62;
    let rows: usize = body.iter().map(|line| wrapped_rows(line, inner)).sum();
    let rect = centered(area, inner as u16 + 2, rows as u16 + 4);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(Style::new().fg(Color::Yellow))
        .title(Span::styled(format!(" {title} "), Style::new().add_modifier(Modifier::BOLD)));
    let mut lines: Vec<Line> = body.into_iter().map(Line::raw).collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("[y]", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)),
        Span::raw(" yes   "),
        Span::styled("[n]", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        Span::raw(" no"),
    ]));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

/// The reason for a tier action, being typed.
fn draw_reason(frame: &mut Frame, area: Rect, action: &TierAction, text: &str) {
    let rect = centered(area, 64, 6);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(Style::new().fg(Color::Yellow))
        .title(Span::styled(
            format!(" {} ", action.title()),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    // The end of a long reason stays in view, where the typing is.
    let room = usize::from(rect.width.saturating_sub(5));
    let skip = text.chars().count().saturating_sub(room);
    let shown: String = text.chars().skip(skip).collect();
    let lines = vec![
        Line::raw("Why? One line, recorded and shown to everyone:"),
        Line::from(vec![
            Span::styled("> ", Style::new().fg(Color::Cyan)),
            Span::raw(shown),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
        ]),
        Line::raw(""),
        Line::from(vec![
            Span::styled("[enter]", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)),
            Span::raw(" go on   "),
            Span::styled("[esc]", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
            Span::raw(" cancel"),
        ]),
    ];
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn draw_component(
    frame: &mut Frame,
    area: Rect,
    record: &sando_wire::ComponentRecord,
    scroll: usize,
) {
    let dim = Style::new().fg(Color::DarkGray);
    let mut head = vec![
        Line::from(vec![
            Span::styled("sha256 ", dim),
            Span::raw(crate::describe::short(&record.digest).to_owned()),
            Span::styled("  contract ", dim),
            Span::raw(record.contract.clone()),
            Span::styled("  from ", dim),
            Span::raw(record.source.clone()),
        ]),
        Line::raw(format!(
            "It changes {} verdict(s) of the recorded runs and fixtures:",
            record.diff.len()
        )),
    ];
    // The change that matters most comes first, however long the diff.
    let now_passing = record
        .diff
        .iter()
        .filter(|c| matches!(c.new, sando_wire::GateStatus::Passed { .. }))
        .count();
    if now_passing > 0 {
        head.push(Line::styled(
            format!("  {now_passing} that did not pass would now pass"),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    let foot = vec![
        Line::raw(""),
        Line::from(vec![
            Span::styled("[a]", Style::new().fg(Color::Green).add_modifier(Modifier::BOLD)),
            Span::raw(" accept: new runs use it   "),
            Span::styled("[x]", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
            Span::raw(" reject   "),
            Span::styled("[esc]", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" later   ↑↓ scroll"),
        ]),
    ];
    let wanted = (head.len() + record.diff.len() + foot.len() + 2) as u16;
    let rect = centered(area, area.width.saturating_sub(4).min(110), wanted);
    let room =
        usize::from(rect.height.saturating_sub(2)).saturating_sub(head.len() + foot.len()).max(1);
    let scroll = scroll.min(record.diff.len().saturating_sub(room));
    let shown: Vec<&sando_wire::VerdictChange> =
        record.diff.iter().skip(scroll).take(room).collect();
    let hidden = record.diff.len().saturating_sub(scroll + shown.len());
    let mut lines = head;
    for (i, change) in shown.iter().enumerate() {
        if i + 1 == room && hidden > 0 {
            lines.push(Line::styled(format!("  … {} more below", hidden + 1), dim));
            break;
        }
        let old = sando_wire::RunState::of(&change.old);
        let new = sando_wire::RunState::of(&change.new);
        lines.push(Line::from(vec![
            Span::raw(format!("  {}: ", change.case)),
            Span::styled(change.old.to_string(), state_style(old)),
            Span::raw("  →  "),
            Span::styled(change.new.to_string(), state_style(new).add_modifier(Modifier::BOLD)),
        ]));
    }
    lines.extend(foot);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Double)
        .border_style(Style::new().fg(Color::Yellow))
        .title(Span::styled(
            format!(" Updated {} component ", record.kind),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

// ---- history -----------------------------------------------------------------

fn draw_history(frame: &mut Frame, area: Rect, history: &History) {
    let title = match &history.of {
        HistoryOf::Gate { tier, gate } => format!(" {gate} at {tier}: past runs, newest first "),
        HistoryOf::Version(version) => format!(" {version}: its walk through the tiers "),
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, Style::new().add_modifier(Modifier::BOLD)));
    let runs = match &history.runs {
        None => {
            frame.render_widget(Paragraph::new(" loading…").block(block), area);
            return;
        }
        Some(Err(e)) => {
            let line = Line::styled(format!(" {e}"), Style::new().fg(Color::Red));
            frame.render_widget(Paragraph::new(line).block(block), area);
            return;
        }
        Some(Ok(runs)) => runs,
    };
    let mut lines = Vec::new();
    match &history.of {
        HistoryOf::Gate { .. } => {
            lines.push(history_header("version", 10));
            lines.extend(runs.iter().map(|run| history_line(run, &run.version.to_string(), 10)));
            lines.push(Line::raw(""));
            lines.extend(flaky_lines(runs));
        }
        HistoryOf::Version(_) => {
            lines.push(history_header("at", 26));
            // Oldest first: the order it walked in.
            let mut walk: Vec<&GateRunSummary> = runs.iter().collect();
            walk.reverse();
            for run in walk {
                lines.push(history_line(run, &format!("{} {}", run.tier, run.gate), 26));
            }
        }
    }
    if runs.is_empty() {
        lines.push(Line::raw(" no runs yet"));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn header_line(text: &str) -> Line<'static> {
    Line::styled(text.to_owned(), Style::new().fg(Color::DarkGray).add_modifier(Modifier::BOLD))
}

/// One past run: its id, where (or which version), attempt, how long it
/// took, when it started, and its verdict in its colour.
fn history_line(run: &GateRunSummary, what: &str, width: usize) -> Line<'static> {
    let took = run.finished_at.map_or("running".to_owned(), |end| duration(end - run.started_at));
    let verdict = run.outcome.as_ref().map_or("running".to_owned(), ToString::to_string);
    let facts = format!(
        " {:<7} {:<width$} {:>2} of {:<2}  {:<9} {}  ",
        run.run_id.to_string(),
        truncate(what, width),
        run.attempt,
        run.max_attempts,
        took,
        run.started_at.format("%m-%d %H:%M:%S"),
    );
    Line::from(vec![
        Span::raw(facts),
        Span::styled(format!("{} {verdict}", state_symbol(run.status, 0)), state_style(run.status)),
    ])
}

/// The column heads above `history_line`s whose second column is `what`.
fn history_header(what: &str, width: usize) -> Line<'static> {
    header_line(&format!(
        " {:<7} {what:<width$} {:<8}  {:<9} {:<14}  verdict",
        "run", "attempt", "took", "started (UTC)"
    ))
}

/// Tests that failed in some of these runs of a gate while others passed:
/// a passed run's tests that failed and then passed on a retry, and a
/// failed run's first failing test, counted by run.
fn flaky_lines(runs: &[GateRunSummary]) -> Vec<Line<'static>> {
    use sando_wire::{GateFailure, GateStatus, PassNote};
    let finished = runs.iter().filter(|r| r.finished_at.is_some()).count();
    let any_passed = runs.iter().any(|r| r.status == RunState::Passed);
    let mut failing: Vec<(String, usize)> = Vec::new();
    for run in runs {
        let tests: Vec<&String> = match &run.outcome {
            Some(GateStatus::Passed { note: PassNote::TestsPassed { flaky, .. } }) => {
                flaky.iter().collect()
            }
            Some(GateStatus::Failed {
                failure: GateFailure::CargoTest { first_failed: Some(test), .. },
            }) => vec![test],
            _ => Vec::new(),
        };
        for test in tests {
            match failing.iter_mut().find(|(t, _)| t == test) {
                Some((_, n)) => *n += 1,
                None => failing.push((test.clone(), 1)),
            }
        }
    }
    if !any_passed || failing.is_empty() {
        return vec![Line::styled(
            format!(" flaky tests over the last {finished} runs: none seen"),
            Style::new().fg(Color::DarkGray),
        )];
    }
    let mut lines = vec![Line::raw(format!(" flaky tests over the last {finished} runs:"))];
    lines.extend(failing.into_iter().map(|(test, n)| {
        Line::styled(
            format!("   {test}: failed in {n} of {finished} runs"),
            Style::new().fg(Color::Yellow),
        )
    }));
    lines
}

// ---- audit ---------------------------------------------------------------------

/// The audit trail, newest first; with the selected entry's before and
/// after below it when opened.
fn draw_audit(frame: &mut Frame, area: Rect, app: &App, view: &AuditView) {
    let trail = &app.audit;
    let loading = if trail.loading { " · loading…" } else { "" };
    let title = format!(" Audit trail: newest first · {} entries{loading} ", trail.entries.len());
    let (list, detail) = if view.open {
        let [list, detail] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
        (list, Some(detail))
    } else {
        (area, None)
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Span::styled(title, Style::new().add_modifier(Modifier::BOLD)));
    let inner = block.inner(list);
    frame.render_widget(block, list);
    let mut lines = vec![header_line(&format!(
        " {:>6}  {:<14}  {:<10} {:<16} target",
        "id", "at (UTC)", "actor", "action"
    ))];
    if let Some(error) = &trail.error {
        lines.push(Line::styled(format!(" {error}"), Style::new().fg(Color::Red)));
    }
    if trail.entries.is_empty() && trail.error.is_none() {
        let text = if trail.loading { " loading…" } else { " nothing recorded yet" };
        lines.push(Line::styled(text, Style::new().fg(Color::DarkGray)));
    }
    let room = usize::from(inner.height).saturating_sub(lines.len()).max(1);
    // The selection stays in view: the list scrolls under it.
    let top = (view.selected + 1).saturating_sub(room);
    let width = usize::from(inner.width);
    for index in top..top + room {
        let Some(entry) = trail.newest(index) else { break };
        let text = format!(
            " {:>6}  {}  {:<10} {:<16} {}",
            entry.id,
            entry.at.format("%m-%d %H:%M:%S"),
            truncate(&entry.actor, 10),
            truncate(&entry.action, 16),
            entry.target
        );
        let line = Line::raw(truncate(&text, width));
        lines.push(if index == view.selected {
            line.style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            line
        });
    }
    frame.render_widget(Paragraph::new(lines), inner);
    let (Some(detail), Some(entry)) = (detail, trail.newest(view.selected)) else { return };
    let [before, after] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(detail);
    for (area, name, json) in [(before, "before", &entry.before), (after, "after", &entry.after)] {
        let block = pane(&format!("{name} · {} {}", entry.action, entry.target));
        let text = match json {
            Some(json) => pretty(json),
            None => "—".to_owned(),
        };
        frame.render_widget(Paragraph::new(text).block(block).wrap(Wrap { trim: false }), area);
    }
}

/// JSON text indented for reading; as it came when it is not JSON.
fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|value| serde_json::to_string_pretty(&value))
        .unwrap_or_else(|_| json.to_owned())
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move through gates / scroll the log"),
    ("g G  home end", "first / last (G in a log: follow)"),
    ("enter", "open the run: outcome, provenance, log"),
    ("h  v", "a gate's past runs and flaky tests / a version's walk"),
    ("esc", "back, or clear the filter"),
    ("/", "filter gates by tier, gate, state or summary"),
    ("c", "confirm a waiting manual_confirm gate"),
    ("r", "run a failed gate again"),
    ("x", "cancel a running gate"),
    ("b", "fetch a fresh backup"),
    ("p", "review an updated gate component: accept or reject it"),
    ("z  Z", "freeze the selected tier / every tier (asks why)"),
    ("u", "lift the selected tier's freeze"),
    ("B", "roll the selected tier back (asks why)"),
    ("A", "the audit trail: who did what; enter: before/after"),
    ("f  l  t", "in a run: follow the log's end / full log / live tail"),
    ("R", "resync from the daemon"),
    ("?  q  ctrl-c", "this help / quit"),
];

/// The keys that act (and need an operator's token).
const ACTION_KEYS: &[&str] = &["c", "r", "x", "b", "p", "z  Z", "u", "B"];

fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let shown: Vec<&(&str, &str)> =
        HELP.iter().filter(|(keys, _)| app.can_act() || !ACTION_KEYS.contains(keys)).collect();
    let rect = centered(area, 72, shown.len() as u16 + 4);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .title(Span::styled(" Help ", Style::new().add_modifier(Modifier::BOLD)));
    let mut lines: Vec<Line> = shown
        .into_iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<15}"), Style::new().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        " green passed · yellow blocked (waiting) · red failed · times in UTC",
        Style::new().fg(Color::DarkGray),
    ));
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
