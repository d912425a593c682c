-- Lookups by source and by strategy, newest first.
CREATE INDEX IF NOT EXISTS signals_source_time ON signals (source, time DESC);
CREATE INDEX IF NOT EXISTS backtest_results_strategy_created
    ON backtest_results (strategy, created_at DESC);
