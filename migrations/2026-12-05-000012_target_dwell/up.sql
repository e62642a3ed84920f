-- The least time a scan of the target waits after `load` before capture (trackers injected by
-- timers), beside `wait_ms`, the quiet period. New targets get the scanner's defaults.
ALTER TABLE targets ADD COLUMN dwell_ms INTEGER NOT NULL DEFAULT 3000;
