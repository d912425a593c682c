//! The terminal UIs ttyd serves. `live-bot-tui` keeps its own in-memory registry (it
//! does not see the daemon's bots, as upstream's); `backtest-manager-tui` reads the
//! TimescaleDB through the config's database url. Both quit on q.

use algo_trade_bot_orchestrator::Bot;
use crate::VERSION;
use algo_trade_core::{config, fatal};
use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::ExecutableCommand;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};
use ratatui::{Frame, Terminal};
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;
use std::io::stdout;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A screen: what it shows and what a key does (false: quit).
trait Screen {
    fn draw(&mut self, frame: &mut Frame);
    fn key(&mut self, code: KeyCode) -> bool;
}

/// Runs a screen on the terminal until it quits; restores the terminal.
fn run_screen(screen: &mut impl Screen) -> std::io::Result<()> {
    enable_raw_mode()?;
    stdout().execute(EnterAlternateScreen)?;
    let result = (|| {
        let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
        loop {
            terminal.draw(|frame| screen.draw(frame))?;
            if event::poll(Duration::from_millis(250))? {
                if let Event::Key(k) = event::read()? {
                    if k.kind == KeyEventKind::Press && !screen.key(k.code) {
                        return Ok(());
                    }
                }
            }
        }
    })();
    let _ = disable_raw_mode();
    let _ = stdout().execute(LeaveAlternateScreen);
    result
}

fn boxed(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(title)
}

fn finish(name: &str, result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => {
            tracing::info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fatal(&format!("{name}: {e}")),
    }
}

struct LiveBots {
    bots: Vec<Bot>,
    state: ListState,
    added: usize,
}

impl Screen for LiveBots {
    fn draw(&mut self, frame: &mut Frame) {
        let [title, body, detail, footer] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(3),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(
            Paragraph::new(format!(
                "algo-trade live-bot-tui {VERSION}  ·  {} bots",
                self.bots.len()
            ))
            .block(Block::default().borders(Borders::ALL)),
            title,
        );
        let items: Vec<ListItem> = self
            .bots
            .iter()
            .map(|b| {
                ListItem::new(format!(
                    "{:<16} {:<6} {:<10} {:<6} {}",
                    b.bot_id, b.symbol, b.strategy, b.mode, b.status
                ))
            })
            .collect();
        let list = List::new(items)
            .block(boxed("Bots (this terminal's own registry)"))
            .highlight_style(Style::new().reversed())
            .highlight_symbol("> ");
        frame.render_stateful_widget(list, body, &mut self.state);
        let text = self.state.selected().and_then(|i| self.bots.get(i)).map_or(
            "No bots: a adds one.".to_string(),
            |b| {
                format!(
                    "Selected: {} ({}), {} on {}",
                    b.bot_id, b.status, b.strategy, b.symbol
                )
            },
        );
        frame.render_widget(Paragraph::new(text).block(boxed("Details")), detail);
        frame.render_widget(
            Paragraph::new("q quit · j/k move · a add · s start/stop · d delete"),
            footer,
        );
    }

    fn key(&mut self, code: KeyCode) -> bool {
        let last = self.bots.len().saturating_sub(1);
        let selected = self.state.selected().unwrap_or(0).min(last);
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Down | KeyCode::Char('j') => self.state.select(Some((selected + 1).min(last))),
            KeyCode::Up | KeyCode::Char('k') => self.state.select(Some(selected.saturating_sub(1))),
            KeyCode::Char('a') => {
                self.added += 1;
                self.bots
                    .push(Bot::paper(&format!("bot-{}", self.added), "BTC", "quad_ma"));
                self.state.select(Some(self.bots.len() - 1));
            }
            KeyCode::Char('s') => {
                if let Some(bot) = self.bots.get_mut(selected) {
                    bot.status = if bot.status == "running" {
                        "stopped"
                    } else {
                        "running"
                    }
                    .to_string();
                    tracing::info!("Bot {} {}", bot.bot_id, bot.status);
                }
            }
            KeyCode::Char('d') if selected < self.bots.len() => {
                let bot = self.bots.remove(selected);
                tracing::info!("Deleted bot {}", bot.bot_id);
                self.state
                    .select(Some(selected.min(self.bots.len().saturating_sub(1))));
            }
            _ => {}
        }
        true
    }
}

pub async fn live_bot_tui() -> ExitCode {
    tracing::info!("live-bot-tui {VERSION} started");
    // Its own registry, in memory: two paper bots to look at, more with `a`.
    let mut screen = LiveBots {
        bots: vec![
            Bot::paper("demo-btc", "BTC", "quad_ma"),
            Bot::paper("demo-eth", "ETH", "quad_ma"),
        ],
        state: ListState::default().with_selected(Some(0)),
        added: 0,
    };
    let result = tokio::task::spawn_blocking(move || run_screen(&mut screen))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    finish("live-bot-tui", result)
}

#[derive(Default, Clone)]
struct BacktestView {
    rows: Option<i64>,
    latest: Vec<String>,
    error: Option<String>,
}

struct BacktestScreen {
    view: Arc<Mutex<BacktestView>>,
}

impl Screen for BacktestScreen {
    fn draw(&mut self, frame: &mut Frame) {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let [title, body, footer] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let summary = match (&view.rows, &view.error) {
            (_, Some(e)) => format!("database unavailable: {e}"),
            (Some(rows), None) => format!("{rows} rows in backtest_results"),
            (None, None) => "connecting to TimescaleDB...".to_string(),
        };
        frame.render_widget(
            Paragraph::new(format!(
                "algo-trade backtest-manager-tui {VERSION}  ·  {summary}"
            ))
            .block(Block::default().borders(Borders::ALL)),
            title,
        );
        let items: Vec<ListItem> = view
            .latest
            .iter()
            .map(|l| ListItem::new(l.as_str()))
            .collect();
        frame.render_widget(
            List::new(items).block(boxed("Latest backtest results")),
            body,
        );
        frame.render_widget(Paragraph::new("q quit"), footer);
    }

    fn key(&mut self, code: KeyCode) -> bool {
        !matches!(code, KeyCode::Char('q') | KeyCode::Esc)
    }
}

pub async fn backtest_manager_tui() -> ExitCode {
    tracing::info!("backtest-manager-tui {VERSION} started");
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    // Lazy: the screen comes up at once and says so when the database is away.
    let pool = match PgPoolOptions::new()
        .max_connections(config.database.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&config.database.url)
    {
        Ok(p) => p,
        Err(e) => return fatal(&format!("Invalid [database] url: {e}")),
    };
    let view = Arc::new(Mutex::new(BacktestView::default()));
    let refresher = {
        let view = Arc::clone(&view);
        tokio::spawn(async move {
            loop {
                let count = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM backtest_results")
                    .fetch_one(&pool)
                    .await;
                let latest = sqlx::query(
                    "SELECT strategy, created_at::text AS created FROM backtest_results ORDER BY created_at DESC LIMIT 10",
                )
                .fetch_all(&pool)
                .await;
                let next = match (count, latest) {
                    (Ok(rows), Ok(latest)) => BacktestView {
                        rows: Some(rows),
                        latest: latest
                            .iter()
                            .map(|r| {
                                let strategy: String = r.try_get("strategy").unwrap_or_default();
                                let created: String = r.try_get("created").unwrap_or_default();
                                format!("{created}  {strategy}")
                            })
                            .collect(),
                        error: None,
                    },
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!("TimescaleDB query failed: {e}");
                        BacktestView {
                            error: Some(e.to_string()),
                            ..Default::default()
                        }
                    }
                };
                *view.lock().unwrap_or_else(|e| e.into_inner()) = next;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let mut screen = BacktestScreen { view };
    let result = tokio::task::spawn_blocking(move || run_screen(&mut screen))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    refresher.abort();
    finish("backtest-manager-tui", result)
}
