-- One row per run of `algo-trade scheduled-backtest`. The app's only compile-time
-- checked query (sqlx::query!) reads this table: a build needs it in its database.
CREATE TABLE IF NOT EXISTS scheduled_backtest_runs (
    id BIGSERIAL PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    strategy TEXT NOT NULL,
    symbols TEXT NOT NULL,
    status TEXT NOT NULL
);
