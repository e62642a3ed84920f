ALTER TABLE targets DROP COLUMN dwell_ms;
