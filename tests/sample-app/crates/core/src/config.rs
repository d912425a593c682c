//! Configuration as upstream reads it: figment merges `config/Config.toml` (searched
//! from the working directory up through every parent), then `APP_`-prefixed
//! environment variables, then `config/Config.json`. A missing file counts as empty;
//! a missing required key is an error naming it.

use figment::error::Kind;
use figment::providers::{Env, Format, Json, Toml};
use figment::Figment;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct AppConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    #[allow(dead_code)] // required as upstream; the stand-in trades nowhere
    pub hyperliquid: HyperliquidConfig,
    /// Optional; all of its fields are required when present. `[[bots]]` and `[build]`
    /// are ignored, as every unknown key.
    pub backtest_scheduler: Option<BacktestSchedulerConfig>,
}

#[derive(Deserialize)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
}

/// No Debug: the URL holds the password.
#[derive(Deserialize)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub struct HyperliquidConfig {
    pub api_url: String,
    pub ws_url: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub struct BacktestSchedulerConfig {
    pub enabled: bool,
    /// Six fields (seconds first). The stand-in honours `*/N` in the seconds field only.
    pub cron_schedule: String,
    pub fetch_universe_from_exchange: bool,
    pub token_universe: Vec<String>,
    pub backtest_window_days: u32,
    pub strategy_name: String,
    pub exchange: String,
    pub hyperliquid_api_url: String,
}

impl BacktestSchedulerConfig {
    /// Seconds between runs when the schedule's seconds field is `*/N`.
    pub fn every_seconds(&self) -> Option<u64> {
        self.cron_schedule
            .split_whitespace()
            .next()?
            .strip_prefix("*/")?
            .parse()
            .ok()
    }
}

pub fn load() -> Result<AppConfig, String> {
    Figment::new()
        .merge(Toml::file("config/Config.toml"))
        .merge(Env::prefixed("APP_").split("__"))
        .merge(Json::file("config/Config.json"))
        .extract()
        .map_err(describe)
}

/// Names the missing key as `[section] key`; other errors as figment words them.
fn describe(error: figment::Error) -> String {
    let first = error.into_iter().next();
    match first {
        Some(e) => match &e.kind {
            Kind::MissingField(field) => {
                let section = e.path.join(".");
                if section.is_empty() {
                    format!("Failed to load configuration: [{field}] is missing")
                } else {
                    format!("Failed to load configuration: [{section}] {field} is missing")
                }
            }
            _ => format!("Failed to load configuration: {e}"),
        },
        None => "Failed to load configuration".to_string(),
    }
}
