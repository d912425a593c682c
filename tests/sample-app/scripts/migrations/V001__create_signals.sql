-- Trading signals, as upstream's migrations add tables after setup_timescale.sql.
-- Not re-runnable on purpose (no IF NOT EXISTS): a second run would fail the deploy.
CREATE TABLE signals (
    id BIGSERIAL PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL DEFAULT now(),
    source TEXT NOT NULL,
    symbol TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL
);
CREATE INDEX signals_symbol_time ON signals (symbol, time DESC);
