//! `algo-trade live-bot-tui`: lists the bots from the registry; q quits.

use crate::{bots, VERSION};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::ExecutableCommand;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::{backend::CrosstermBackend, Terminal};
use serde_json::Value;
use std::io::{stdout, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn field(bot: &Value, key: &str) -> String {
    match &bot[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ui(terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>) -> std::io::Result<()> {
    let conn = bots::open().map_err(std::io::Error::other)?;
    let mut state = ListState::default();
    state.select(Some(0));
    let mut list = bots::list(&conn).unwrap_or_default();
    let mut loaded = Instant::now();
    let mut reload = false;
    loop {
        if reload || loaded.elapsed() > Duration::from_secs(2) {
            reload = false;
            list = bots::list(&conn).unwrap_or_default();
            loaded = Instant::now();
        }
        let selected = state.selected().unwrap_or(0).min(list.len().saturating_sub(1));
        state.select(Some(selected));
        terminal.draw(|frame| {
            let [title, body, detail, footer] = Layout::vertical([
                Constraint::Length(3),
                Constraint::Min(3),
                Constraint::Length(4),
                Constraint::Length(1),
            ])
            .areas(frame.area());
            frame.render_widget(
                Paragraph::new(format!("algo-trade live bot TUI {VERSION}  ·  {} bots", list.len()))
                    .block(Block::default().borders(Borders::ALL)),
                title,
            );
            let items: Vec<ListItem> = list
                .iter()
                .map(|b| {
                    ListItem::new(format!(
                        "#{:<4} {:<24} {:<8} {}",
                        field(b, "id"),
                        field(b, "name"),
                        field(b, "symbol"),
                        field(b, "status")
                    ))
                })
                .collect();
            let bots_list = List::new(items)
                .block(Block::default().borders(Borders::ALL).title("Bots"))
                .highlight_style(Style::new().reversed())
                .highlight_symbol("> ");
            frame.render_stateful_widget(bots_list, body, &mut state);
            let text = list.get(selected).map_or("No bots yet: create one through the API.".into(), |b| {
                format!("Selected: {} ({}) created {}", field(b, "name"), field(b, "status"), field(b, "created_at"))
            });
            frame.render_widget(
                Paragraph::new(text).block(Block::default().borders(Borders::ALL).title("Details")),
                detail,
            );
            frame.render_widget(Paragraph::new("q quit · j/k or ↓/↑ move · r reload"), footer);
        })?;
        if event::poll(Duration::from_millis(250))? {
            if let Event::Key(key) = event::read()? {
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Down | KeyCode::Char('j') => {
                        state.select(Some((selected + 1).min(list.len().saturating_sub(1))))
                    }
                    KeyCode::Up | KeyCode::Char('k') => state.select(Some(selected.saturating_sub(1))),
                    KeyCode::Char('r') => reload = true,
                    _ => {}
                }
            }
        }
    }
}

pub fn run(log_file: Option<String>) -> ExitCode {
    let log = |message: &str| {
        if let Some(path) = &log_file {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{message}");
            }
        }
    };
    log("live-bot-tui started");
    let setup = enable_raw_mode().and_then(|_| stdout().execute(EnterAlternateScreen).map(|_| ()));
    let result = setup
        .and_then(|_| Terminal::new(CrosstermBackend::new(stdout())))
        .and_then(|mut terminal| ui(&mut terminal));
    let _ = disable_raw_mode();
    let _ = stdout().execute(LeaveAlternateScreen);
    match result {
        Ok(()) => {
            log("live-bot-tui stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
