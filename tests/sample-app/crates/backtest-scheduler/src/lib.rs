//! The long-running data services, with upstream's signal handling:
//! `scheduled-backtest` handles no signal, `backtest-daemon` and `collect-signals`
//! handle SIGINT only (SIGTERM keeps its default action: the process dies).
//! SAMPLE_TICK_SECS (stand-in only) sets the seconds between their writes.

use algo_trade_bot_orchestrator::Registry;
use algo_trade_core::config::AppConfig;
use algo_trade_core::{config, fatal, log_config_argument, presence, version};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{info, warn};

fn tick(default_seconds: u64) -> Duration {
    let seconds = std::env::var("SAMPLE_TICK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(default_seconds);
    Duration::from_secs(seconds)
}

/// The config's database (`[database] url`, not DATABASE_URL). Down at start: sqlx
/// retries for about 30 s, then the command exits 1.
async fn config_database(config: &AppConfig) -> Result<PgPool, String> {
    let pool = PgPoolOptions::new()
        .max_connections(config.database.max_connections)
        .connect(&config.database.url)
        .await
        .map_err(|e| format!("Failed to connect to TimescaleDB: {e}"))?;
    info!("Connected to TimescaleDB");
    Ok(pool)
}

/// The one query checked at compile time (sqlx::query!): the build needs a database
/// with migration V002 applied, or SQLX_OFFLINE=true and a `.sqlx/` cache.
async fn record_run(pool: &PgPool, strategy: &str, symbols: &str) -> Result<i64, sqlx::Error> {
    let run = sqlx::query!(
        "INSERT INTO scheduled_backtest_runs (strategy, symbols, status) VALUES ($1, $2, 'completed') RETURNING id",
        strategy,
        symbols
    )
    .fetch_one(pool)
    .await?;
    Ok(run.id)
}

pub async fn scheduled_backtest(config_argument: Option<PathBuf>) -> ExitCode {
    log_config_argument(config_argument.as_ref());
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let pool = match config_database(&config).await {
        Ok(p) => p,
        Err(e) => return fatal(&e),
    };
    let scheduler = config.backtest_scheduler.as_ref();
    let every = tick(scheduler.and_then(|s| s.every_seconds()).unwrap_or(10));
    let strategy = scheduler.map_or("quad_ma".to_string(), |s| s.strategy_name.clone());
    let symbols = scheduler
        .map(|s| s.token_universe.join(","))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "BTC,ETH".to_string());
    info!(
        "Scheduled backtest {} started: {strategy} on {symbols} every {} s",
        version(),
        every.as_secs()
    );
    let mut timer = tokio::time::interval(every);
    loop {
        timer.tick().await;
        match record_run(&pool, &strategy, &symbols).await {
            Ok(id) => info!("Scheduled backtest run {id} completed: {strategy} on {symbols}"),
            Err(e) => warn!("Scheduled backtest run failed: {e}"),
        }
    }
}

pub async fn backtest_daemon(config_argument: Option<PathBuf>, strategy: String) -> ExitCode {
    log_config_argument(config_argument.as_ref());
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let pool = match config_database(&config).await {
        Ok(p) => p,
        Err(e) => return fatal(&e),
    };
    let registry = match Registry::open_sqlite().await {
        Ok(r) => r,
        Err(e) => return fatal(&e),
    };
    info!(
        "Backtest daemon {} started: strategy {strategy}, {} bots restored",
        version(),
        registry.list().await.len()
    );
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut timer = tokio::time::interval(tick(10));
    loop {
        tokio::select! {
            _ = timer.tick() => {
                let result = serde_json::json!({"trades": 0, "pnl": 0.0, "source": "sample"}).to_string();
                let stored = sqlx::query("INSERT INTO backtest_results (strategy, result) VALUES ($1, $2::jsonb)")
                    .bind(&strategy)
                    .bind(result)
                    .execute(&pool)
                    .await;
                let synced = registry.reload().await;
                match (stored, synced) {
                    (Ok(_), Ok(bots)) => info!("Backtest of {strategy} stored; {bots} bots in sync"),
                    (Err(e), _) => warn!("Backtest of {strategy} not stored: {e}"),
                    (_, Err(e)) => warn!("Bot sync failed: {e}"),
                }
            }
            _ = &mut interrupted => break,
        }
    }
    info!("Received SIGINT, stopping backtest daemon");
    pool.close().await;
    registry.close().await;
    info!("Backtest daemon stopped");
    ExitCode::SUCCESS
}

/// "90s", "30m", "24h", "7d" (or plain seconds).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    number
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_secs(n * factor))
}

pub async fn collect_signals(
    duration: String,
    sources: String,
    db_url: Option<String>,
) -> ExitCode {
    let Some(length) = parse_duration(&duration) else {
        return fatal(&format!(
            "--duration {duration}: expected e.g. 90s, 30m, 24h or 7d"
        ));
    };
    let sources: Vec<String> = sources
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if sources.is_empty() {
        return fatal("--sources: name at least one source");
    }
    info!("CRYPTOPANIC_API_KEY: {}", presence("CRYPTOPANIC_API_KEY"));
    let Some(url) = db_url
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|u| !u.is_empty())
    else {
        return fatal("No database: pass --db-url or set DATABASE_URL");
    };
    let pool = match PgPool::connect(&url).await {
        Ok(p) => p,
        Err(e) => return fatal(&format!("Failed to connect to TimescaleDB: {e}")),
    };
    info!("Connected to TimescaleDB");
    info!(
        "Collecting signals from {} for {duration}",
        sources.join(", ")
    );
    let deadline = tokio::time::sleep(length);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(deadline, interrupted);
    let mut timer = tokio::time::interval(tick(5));
    let mut written: u64 = 0;
    loop {
        tokio::select! {
            _ = timer.tick() => {
                for source in &sources {
                    let stored = sqlx::query("INSERT INTO signals (source, symbol, value) VALUES ($1, 'BTC', $2)")
                        .bind(source)
                        .bind((written % 100) as f64 / 100.0)
                        .execute(&pool)
                        .await;
                    match stored {
                        Ok(_) => written += 1,
                        Err(e) => warn!("Signal from {source} not stored: {e}"),
                    }
                }
                info!("{written} signals stored");
            }
            _ = &mut deadline => {
                info!("Signal collection finished after {duration}: {written} signals stored");
                break;
            }
            _ = &mut interrupted => {
                info!("Received SIGINT, stopping signal collection: {written} signals stored");
                break;
            }
        }
    }
    pool.close().await;
    ExitCode::SUCCESS
}
