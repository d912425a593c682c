-- A column with a default and a check, on the table V001 made. The comment's text
-- reaches the database as written: no template, no shell word.
ALTER TABLE signals
    ADD COLUMN confidence DOUBLE PRECISION NOT NULL DEFAULT 1.0
    CHECK (confidence BETWEEN 0 AND 1);
COMMENT ON COLUMN signals.confidence IS 'How sure the source is, 0 to 1 ({{ as written }} $(exit 1))';
