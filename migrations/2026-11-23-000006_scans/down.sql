ALTER TABLE targets DROP COLUMN last_scheduled_at;
DROP TABLE snapshot_blocked;
DROP TABLE snapshot_hosts;
DROP TABLE snapshot_scripts;
DROP TABLE snapshot_cookies;
DROP TABLE snapshots;
DROP TABLE scan_artifacts;
DROP TABLE scans;
DROP TABLE runners;
