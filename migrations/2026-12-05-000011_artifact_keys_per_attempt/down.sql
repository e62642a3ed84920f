ALTER TABLE checkout_run_artifacts DROP COLUMN keyed_by_attempt;
ALTER TABLE scan_artifacts DROP COLUMN keyed_by_attempt;
