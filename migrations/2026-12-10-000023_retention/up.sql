-- Retention: how long each organization keeps what siteward captured. The purge worker (one
-- leader across serve processes) deletes what has expired; see src/lifecycle/.
ALTER TABLE orgs
    ADD COLUMN keep_snapshots_days INTEGER NOT NULL DEFAULT 400
        CHECK (keep_snapshots_days BETWEEN 7 AND 3650),
    ADD COLUMN keep_screenshots_days INTEGER NOT NULL DEFAULT 90
        CHECK (keep_screenshots_days BETWEEN 1 AND 3650),
    ADD COLUMN keep_checkout_screenshots_days INTEGER NOT NULL DEFAULT 30
        CHECK (keep_checkout_screenshots_days BETWEEN 1 AND 3650),
    ADD COLUMN keep_history_days INTEGER NOT NULL DEFAULT 30
        CHECK (keep_history_days BETWEEN 1 AND 3650);

-- Blobs to delete from the store: the outbox of every deletion. Rows are written in the
-- transaction that deletes what the blobs belonged to (by the triggers below, or by the purge
-- for single artifacts), and removed once the store confirms, so a deletion is never lost to a
-- crash and never runs before its transaction commits. `key` is one object, or with
-- `whole_folder` every object under it (a folder ends in '/'). No foreign key: these outlive
-- their organization.
CREATE TABLE blob_deletions (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    whole_folder BOOLEAN NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (whole_folder = (key LIKE '%/'))
);
CREATE INDEX blob_deletions_due ON blob_deletions (next_attempt_at, id);

-- Whatever deletes a scan, checkout run, compliance scan or report (the purge, a target or client
-- deleted, an organization erased: cascades included) queues its folder. Statement triggers with
-- transition tables: one INSERT per statement, however many rows it deleted.
CREATE FUNCTION queue_scan_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/snapshot/' || snapshot_id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER scans_queue_blob_deletions AFTER DELETE ON scans
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_scan_folders();

CREATE FUNCTION queue_checkout_run_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/checkout-run/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER checkout_runs_queue_blob_deletions AFTER DELETE ON checkout_runs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_checkout_run_folders();

CREATE FUNCTION queue_compliance_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/compliance/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER compliance_scans_queue_blob_deletions AFTER DELETE ON compliance_scans
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_compliance_folders();

CREATE FUNCTION queue_report_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/report/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE TRIGGER reports_queue_blob_deletions AFTER DELETE ON reports
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_report_folders();

-- A scan, checkout run or report takes its job with it (the job was its state, and its payload
-- names the work). A job still queued goes unclaimed; a runner holding one finds it gone at its
-- next heartbeat or upload and drops the work.
CREATE FUNCTION delete_jobs_of_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'reports' THEN
        DELETE FROM jobs WHERE id IN (SELECT pdf_job_id FROM gone);
    ELSE
        DELETE FROM jobs WHERE id IN (SELECT job_id FROM gone);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER scans_delete_jobs AFTER DELETE ON scans
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION delete_jobs_of_gone();
CREATE TRIGGER checkout_runs_delete_jobs AFTER DELETE ON checkout_runs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION delete_jobs_of_gone();
CREATE TRIGGER reports_delete_jobs AFTER DELETE ON reports
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION delete_jobs_of_gone();
-- Jobs left behind by targets and clients deleted before this migration.
DELETE FROM jobs j WHERE j.kind IN ('scan', 'checkout', 'pdf')
    AND NOT EXISTS (SELECT 1 FROM scans s WHERE s.job_id = j.id)
    AND NOT EXISTS (SELECT 1 FROM checkout_runs r WHERE r.job_id = j.id)
    AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.pdf_job_id = j.id);

-- Whether a snapshot must outlive its retention: what later features depend on. The one place
-- this rule is written; the purge asks it of every candidate.
CREATE FUNCTION snapshot_is_kept(snap BIGINT) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
    SELECT
        -- the latest snapshot of its target (per compliance visit): the next scan's baseline
        EXISTS (
            SELECT 1 FROM snapshots l WHERE l.id = snap AND CASE WHEN l.visit IS NULL
                THEN NOT EXISTS (SELECT 1 FROM snapshots n
                                 WHERE n.target_id = l.target_id AND n.visit IS NULL AND n.id > l.id)
                ELSE NOT EXISTS (SELECT 1 FROM snapshots n
                                 WHERE n.target_id = l.target_id AND n.visit = l.visit AND n.id > l.id)
            END)
        -- the baseline of a newer snapshot whose comparison is still to run (its diff job is
        -- queued or running; a dead one will never need it)
        OR EXISTS (
            SELECT 1 FROM snapshots l
            CROSS JOIN LATERAL (
                SELECT n.id FROM snapshots n
                WHERE n.target_id = l.target_id AND n.visit IS NOT DISTINCT FROM l.visit
                  AND n.id > l.id
                ORDER BY n.id LIMIT 1) next
            JOIN jobs j ON j.kind = 'diff' AND j.state IN ('queued', 'running')
                AND (j.payload->>'snapshot_id')::bigint = next.id
            WHERE l.id = snap)
        -- where an alert that is not resolved was first and last seen, and the snapshot its
        -- first sighting was compared with
        OR EXISTS (SELECT 1 FROM alerts a WHERE a.first_snapshot_id = snap AND a.state <> 'resolved')
        OR EXISTS (SELECT 1 FROM alerts a WHERE a.last_snapshot_id = snap AND a.state <> 'resolved')
        OR EXISTS (SELECT 1 FROM snapshot_diffs d JOIN alerts a ON a.first_snapshot_id = d.snapshot_id
                   WHERE d.previous_snapshot_id = snap AND a.state <> 'resolved')
        -- in the period of a client report whose share link is live
        OR EXISTS (SELECT 1 FROM snapshots l
                   JOIN targets t ON t.id = l.target_id
                   JOIN reports r ON r.client_id = t.client_id
                       AND (r.target_id IS NULL OR r.target_id = l.target_id)
                       AND l.captured_at BETWEEN r.period_start AND r.period_end
                   JOIN report_shares sh ON sh.report_id = r.id
                       AND sh.revoked_at IS NULL AND sh.expires_at > now()
                   WHERE l.id = snap)
$$;

-- What the purge looks for.
CREATE INDEX diff_jobs_pending ON jobs (((payload->>'snapshot_id')::bigint))
    WHERE kind = 'diff' AND state IN ('queued', 'running');
CREATE INDEX scans_by_org_age ON scans (org_id, created_at);
CREATE INDEX checkout_runs_by_org_age ON checkout_runs (org_id, created_at);
CREATE INDEX compliance_scans_by_org_age ON compliance_scans (org_id, created_at);
CREATE INDEX reports_by_org_age ON reports (org_id, created_at);
CREATE INDEX scan_screenshots_by_org_age ON scan_artifacts (org_id, uploaded_at)
    WHERE content_type = 'image/png';
CREATE INDEX checkout_screenshots_by_org_age ON checkout_run_artifacts (org_id, uploaded_at)
    WHERE content_type = 'image/png';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'dead');
CREATE INDEX notification_deliveries_by_org_age ON notification_deliveries (org_id, created_at)
    WHERE status <> 'pending';
CREATE INDEX report_deliveries_by_org_age ON report_deliveries (org_id, created_at)
    WHERE status = 'sent';
CREATE INDEX reports_by_client_period ON reports (client_id, period_start);
-- Snapshot references the purge checks before deleting.
CREATE INDEX alerts_by_first_snapshot ON alerts (first_snapshot_id) WHERE first_snapshot_id IS NOT NULL;
CREATE INDEX alerts_by_last_snapshot ON alerts (last_snapshot_id) WHERE last_snapshot_id IS NOT NULL;
CREATE INDEX snapshot_diffs_by_previous ON snapshot_diffs (previous_snapshot_id)
    WHERE previous_snapshot_id IS NOT NULL;
CREATE INDEX payment_versions_by_first_snapshot ON payment_script_versions (first_seen_snapshot_id)
    WHERE first_seen_snapshot_id IS NOT NULL;
CREATE INDEX payment_versions_by_last_snapshot ON payment_script_versions (last_seen_snapshot_id)
    WHERE last_seen_snapshot_id IS NOT NULL;

-- Comparisons were kept under org/<org>/comparison/ before they moved into the older snapshot's
-- folder (so they go with it); those are a cache, asked for again at their new place.
INSERT INTO blob_deletions (org_id, key, whole_folder)
SELECT id, 'org/' || id || '/comparison/', true FROM orgs;
