//! algo-trade stand-in: upstream's subcommands, configuration, databases, API and
//! signal handling, small enough to build often. For the collection's tests only.

mod tui;

use algo_trade_backtest_scheduler as jobs;
use algo_trade_core::init_logging;
use algo_trade_web_api as daemon;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    algo_trade_core::set_version(VERSION);
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
        None => algo_trade_core::no_logging(),
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
