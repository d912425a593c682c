//! The bot registry: bots in memory, persisted in SQLite (BOT_DATABASE_URL, default
//! `sqlite://data/bots.db`, `?mode=rwc` appended) by `run` and `backtest-daemon`.
//! The schema is an sqlx migration embedded in the binary.

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::RwLock;

pub const DEFAULT_BOT_DATABASE_URL: &str = "sqlite://data/bots.db";

#[derive(Clone, Serialize)]
pub struct Bot {
    pub bot_id: String,
    pub symbol: String,
    pub strategy: String,
    /// Always "paper": the API creates paper-trading bots only.
    pub mode: String,
    /// "running" or "stopped".
    pub status: String,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl Bot {
    pub fn paper(bot_id: &str, symbol: &str, strategy: &str) -> Bot {
        Bot {
            bot_id: bot_id.to_string(),
            symbol: symbol.to_string(),
            strategy: strategy.to_string(),
            mode: "paper".to_string(),
            status: "stopped".to_string(),
            created_at: now(),
        }
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub enum RegistryError {
    Exists,
    Store(sqlx::Error),
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Store(e)
    }
}

pub struct Registry {
    bots: RwLock<BTreeMap<String, Bot>>,
    store: Option<SqlitePool>,
}

/// BOT_DATABASE_URL with `mode=rwc`, as upstream builds it.
fn bot_database_url() -> String {
    let url = std::env::var("BOT_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_BOT_DATABASE_URL.to_string());
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

impl Registry {
    pub fn in_memory() -> Registry {
        Registry {
            bots: RwLock::new(BTreeMap::new()),
            store: None,
        }
    }

    /// Opens (creating) the SQLite registry, applies its migration and loads the bots.
    pub async fn open_sqlite() -> Result<Registry, String> {
        let options = SqliteConnectOptions::from_str(&bot_database_url())
            .map_err(|e| format!("Invalid BOT_DATABASE_URL: {e}"))?
            .busy_timeout(Duration::from_secs(10));
        let file = options.get_filename().to_path_buf();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "Cannot create bot database directory {}: {e}",
                    dir.display()
                )
            })?;
            let probe = dir.join(format!(".write-test-{}", std::process::id()));
            std::fs::write(&probe, b"").map_err(|e| {
                format!(
                    "Bot database directory {} is not writable: {e}",
                    dir.display()
                )
            })?;
            let _ = std::fs::remove_file(probe);
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| format!("Cannot open bot database {}: {e}", file.display()))?;
        // `run` and `backtest-daemon` may start together on one file: a second try
        // finds the migration applied by the other.
        let mut attempt = 0;
        loop {
            match sqlx::migrate!("./migrations").run(&pool).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    tracing::debug!("bot database migration, attempt {attempt}: {e}");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "Cannot migrate bot database {}: {e}",
                        file.display()
                    ))
                }
            }
        }
        let registry = Registry {
            bots: RwLock::new(BTreeMap::new()),
            store: Some(pool),
        };
        registry
            .reload()
            .await
            .map_err(|e| format!("Cannot read bot database: {e}"))?;
        Ok(registry)
    }

    /// Replaces the bots in memory with the stored ones; returns how many.
    pub async fn reload(&self) -> Result<usize, sqlx::Error> {
        let Some(pool) = &self.store else {
            return Ok(self.bots.read().await.len());
        };
        let rows = sqlx::query(
            "SELECT c.bot_id, c.symbol, c.strategy, c.mode, c.created_at, \
             COALESCE(s.status, 'stopped') AS status \
             FROM bot_configs c LEFT JOIN bot_runtime_state s ON s.bot_id = c.bot_id ORDER BY c.bot_id",
        )
        .fetch_all(pool)
        .await?;
        let mut bots = BTreeMap::new();
        for row in rows {
            let bot = Bot {
                bot_id: row.try_get("bot_id")?,
                symbol: row.try_get("symbol")?,
                strategy: row.try_get("strategy")?,
                mode: row.try_get("mode")?,
                status: row.try_get("status")?,
                created_at: row.try_get("created_at")?,
            };
            bots.insert(bot.bot_id.clone(), bot);
        }
        let count = bots.len();
        *self.bots.write().await = bots;
        Ok(count)
    }

    pub async fn list(&self) -> Vec<Bot> {
        self.bots.read().await.values().cloned().collect()
    }

    pub async fn get(&self, bot_id: &str) -> Option<Bot> {
        self.bots.read().await.get(bot_id).cloned()
    }

    pub async fn create(&self, bot: Bot) -> Result<Bot, RegistryError> {
        let mut bots = self.bots.write().await;
        if bots.contains_key(&bot.bot_id) {
            return Err(RegistryError::Exists);
        }
        if let Some(pool) = &self.store {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO bot_configs (bot_id, symbol, strategy, mode, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&bot.bot_id)
            .bind(&bot.symbol)
            .bind(&bot.strategy)
            .bind(&bot.mode)
            .bind(bot.created_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO bot_runtime_state (bot_id, status, updated_at) VALUES (?, ?, ?)",
            )
            .bind(&bot.bot_id)
            .bind(&bot.status)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        bots.insert(bot.bot_id.clone(), bot.clone());
        Ok(bot)
    }

    /// Sets a bot's status (persisted); None if there is no such bot.
    pub async fn set_status(&self, bot_id: &str, status: &str) -> Result<Option<Bot>, sqlx::Error> {
        let mut bots = self.bots.write().await;
        let Some(bot) = bots.get_mut(bot_id) else {
            return Ok(None);
        };
        if let Some(pool) = &self.store {
            sqlx::query(
                "INSERT INTO bot_runtime_state (bot_id, status, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (bot_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            )
            .bind(bot_id)
            .bind(status)
            .bind(now())
            .execute(pool)
            .await?;
        }
        bot.status = status.to_string();
        Ok(Some(bot.clone()))
    }

    pub async fn delete(&self, bot_id: &str) -> Result<bool, sqlx::Error> {
        let mut bots = self.bots.write().await;
        if !bots.contains_key(bot_id) {
            return Ok(false);
        }
        if let Some(pool) = &self.store {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM bot_runtime_state WHERE bot_id = ?")
                .bind(bot_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM bot_configs WHERE bot_id = ?")
                .bind(bot_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        bots.remove(bot_id);
        Ok(true)
    }

    /// Stops every running bot in memory, at shutdown. The stored state is kept, so
    /// the next start restores the bots as they were.
    pub async fn stop_all(&self) -> usize {
        let mut bots = self.bots.write().await;
        let mut stopped = 0;
        for bot in bots.values_mut().filter(|b| b.status == "running") {
            bot.status = "stopped".to_string();
            stopped += 1;
        }
        stopped
    }

    pub async fn close(&self) {
        if let Some(pool) = &self.store {
            pool.close().await;
        }
    }
}
