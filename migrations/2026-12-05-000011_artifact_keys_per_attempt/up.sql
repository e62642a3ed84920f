-- Artifacts are sealed under a key of the attempt that uploaded them
-- (org/<org>/snapshot/<snapshot>/attempt-<n>/<name>), so an attempt whose lease lapsed can no
-- longer overwrite the blob a winning attempt's row points at. Rows uploaded before this keep
-- the old key (without the attempt): false here.
ALTER TABLE scan_artifacts ADD COLUMN keyed_by_attempt BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE scan_artifacts ALTER COLUMN keyed_by_attempt SET DEFAULT true;
ALTER TABLE checkout_run_artifacts ADD COLUMN keyed_by_attempt BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE checkout_run_artifacts ALTER COLUMN keyed_by_attempt SET DEFAULT true;
