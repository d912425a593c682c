//! algo-trade stand-in: upstream's subcommands, configuration, databases, API and
//! signal handling, small enough to build often. For the collection's tests only.

mod bots;
mod config;
mod daemon;
mod jobs;
mod tui;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

/// Shown by the API (X-Algo-Trade-Version), the TUIs and the daemon's log; tests rewrite this line.
pub const VERSION: &str = "sample-1";

#[derive(Parser)]
#[command(name = "algo-trade", version = VERSION, about = "algo-trade stand-in for the deployment tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The trading daemon: bot registry (SQLite) and HTTP API.
    Run {
        /// Accepted and logged only: config/Config.toml is found from the working directory.
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// The HTTP API alone, with an in-memory bot registry.
    Server {
        #[arg(long, default_value = "0.0.0.0:8080")]
        addr: String,
    },
    /// Terminal UI over its own in-memory bot registry (needs a terminal).
    LiveBotTui {
        #[arg(long)]
        log_file: Option<PathBuf>,
    },
    /// Terminal UI over the backtest results in TimescaleDB (config's database.url).
    BacktestManagerTui {
        #[arg(long)]
        log_file: Option<PathBuf>,
    },
    /// Runs backtests on a schedule, recording each run (handles no signals).
    ScheduledBacktest {
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Backtests and bot sync in a loop (handles SIGINT only).
    BacktestDaemon {
        #[arg(short, long)]
        config: Option<PathBuf>,
        #[arg(short, long, default_value = "quad_ma")]
        strategy: String,
    },
    /// Collects market signals for a duration, then exits (handles SIGINT only).
    CollectSignals {
        /// e.g. 90s, 30m, 24h, 7d
        #[arg(long, default_value = "24h")]
        duration: String,
        /// Comma-separated source names.
        #[arg(long, default_value = "funding")]
        sources: String,
        /// PostgreSQL URL; default DATABASE_URL.
        #[arg(long)]
        db_url: Option<String>,
    },
}

/// Whether log lines reach stderr (not under the TUIs, which own the terminal).
static LOG_TO_STDERR: OnceLock<bool> = OnceLock::new();

fn init_logging(log_file: Option<&PathBuf>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
            let _ = LOG_TO_STDERR.set(false);
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init();
            let _ = LOG_TO_STDERR.set(true);
        }
    }
    Ok(())
}

/// Reports an error that ends the process: in the log, and on stderr when the log is elsewhere.
pub fn fatal(message: &str) -> ExitCode {
    tracing::error!("{message}");
    if LOG_TO_STDERR.get() != Some(&true) {
        eprintln!("error: {message}");
    }
    ExitCode::FAILURE
}

/// Logs the `-c/--config` argument: like upstream's, it is only logged.
pub fn log_config_argument(config: Option<&PathBuf>) {
    if let Some(path) = config {
        tracing::info!(
            "Config argument {} (config/Config.toml is read from the working directory or a parent)",
            path.display()
        );
    }
}

/// "set" or "not set": secrets are never logged.
pub fn presence(variable: &str) -> &'static str {
    if std::env::var_os(variable).is_some_and(|v| !v.is_empty()) {
        "set"
    } else {
        "not set"
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The TUIs own the terminal: they log to --log-file, or nowhere.
    let logging = match &cli.command {
        Command::LiveBotTui { log_file } | Command::BacktestManagerTui { log_file } => {
            log_file.as_ref().map(|path| init_logging(Some(path)))
        }
        _ => Some(init_logging(None)),
    };
    match logging {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Some(Ok(())) => {}
        None => {
            let _ = LOG_TO_STDERR.set(false);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => daemon::run(config).await,
            Command::Server { addr } => daemon::server(addr).await,
            Command::LiveBotTui { .. } => tui::live_bot_tui().await,
            Command::BacktestManagerTui { .. } => tui::backtest_manager_tui().await,
            Command::ScheduledBacktest { config } => jobs::scheduled_backtest(config).await,
            Command::BacktestDaemon { config, strategy } => {
                jobs::backtest_daemon(config, strategy).await
            }
            Command::CollectSignals {
                duration,
                sources,
                db_url,
            } => jobs::collect_signals(duration, sources, db_url).await,
        }
    })
}
