DROP INDEX reports_by_client_period, payment_versions_by_last_snapshot,
    payment_versions_by_first_snapshot, snapshot_diffs_by_previous, alerts_by_last_snapshot,
    alerts_by_first_snapshot, report_deliveries_by_org_age, notification_deliveries_by_org_age,
    jobs_finished, diff_jobs_pending, checkout_screenshots_by_org_age, scan_screenshots_by_org_age,
    reports_by_org_age, compliance_scans_by_org_age, checkout_runs_by_org_age, scans_by_org_age;
DROP FUNCTION snapshot_is_kept;
DROP TRIGGER reports_delete_jobs ON reports;
DROP TRIGGER checkout_runs_delete_jobs ON checkout_runs;
DROP TRIGGER scans_delete_jobs ON scans;
DROP FUNCTION delete_jobs_of_gone;
DROP TRIGGER reports_queue_blob_deletions ON reports;
DROP TRIGGER compliance_scans_queue_blob_deletions ON compliance_scans;
DROP TRIGGER checkout_runs_queue_blob_deletions ON checkout_runs;
DROP TRIGGER scans_queue_blob_deletions ON scans;
DROP FUNCTION queue_report_folders, queue_compliance_folders, queue_checkout_run_folders,
    queue_scan_folders;
DROP TABLE blob_deletions;
ALTER TABLE orgs DROP COLUMN keep_history_days, DROP COLUMN keep_checkout_screenshots_days,
    DROP COLUMN keep_screenshots_days, DROP COLUMN keep_snapshots_days;
