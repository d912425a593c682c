-- Market data schema: hypertables as upstream's scripts/setup_timescale.sql.
-- Compression (timescaledb.compress, add_compression_policy) needs the
-- Timescale-licensed build and is left out: Debian's build is Apache-only.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS ohlcv (
    time TIMESTAMPTZ NOT NULL,
    symbol TEXT NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL
);
SELECT create_hypertable('ohlcv', 'time', if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS ohlcv_symbol_time ON ohlcv (symbol, time DESC);

CREATE TABLE IF NOT EXISTS trades (
    time TIMESTAMPTZ NOT NULL,
    symbol TEXT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    size DOUBLE PRECISION NOT NULL,
    side TEXT NOT NULL
);
SELECT create_hypertable('trades', 'time', if_not_exists => TRUE);

CREATE TABLE IF NOT EXISTS fills (
    time TIMESTAMPTZ NOT NULL,
    bot_id BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    size DOUBLE PRECISION NOT NULL,
    side TEXT NOT NULL
);
SELECT create_hypertable('fills', 'time', if_not_exists => TRUE);

CREATE TABLE IF NOT EXISTS backtest_results (
    id BIGSERIAL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    strategy TEXT NOT NULL,
    result JSONB NOT NULL,
    PRIMARY KEY (id, created_at)
);
SELECT create_hypertable('backtest_results', 'created_at', if_not_exists => TRUE);
