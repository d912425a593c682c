-- Market signals written by `algo-trade collect-signals`.
CREATE TABLE IF NOT EXISTS signals (
    time TIMESTAMPTZ NOT NULL DEFAULT now(),
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
SELECT create_hypertable('signals', 'time', if_not_exists => TRUE);
