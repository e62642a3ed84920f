ALTER TABLE targets
    DROP COLUMN compliance_schedule,
    DROP COLUMN compliance_gpc,
    DROP COLUMN last_compliance_scheduled_at;
DROP TABLE compliance_findings;
DROP INDEX snapshots_by_target;
CREATE INDEX snapshots_by_target ON snapshots (target_id, id DESC);
ALTER TABLE snapshots DROP COLUMN visit;
ALTER TABLE scans DROP COLUMN compliance_scan_id, DROP COLUMN visit;
DROP TABLE compliance_scans;
