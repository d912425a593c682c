-- The bot registry (SQLite, BOT_DATABASE_URL). Embedded in the binary with
-- sqlx::migrate! and tracked in _sqlx_migrations, as upstream's.
CREATE TABLE IF NOT EXISTS bot_configs (
    bot_id TEXT PRIMARY KEY NOT NULL,
    symbol TEXT NOT NULL,
    strategy TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'paper',
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS bot_runtime_state (
    bot_id TEXT PRIMARY KEY NOT NULL REFERENCES bot_configs (bot_id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'stopped',
    updated_at INTEGER NOT NULL
);
