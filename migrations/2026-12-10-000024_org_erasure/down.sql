CREATE OR REPLACE FUNCTION queue_scan_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/snapshot/' || snapshot_id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_checkout_run_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/checkout-run/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_compliance_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/compliance/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_report_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/report/' || id || '/', true FROM gone;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP INDEX orgs_due_for_erasure;
ALTER TABLE orgs DROP CONSTRAINT orgs_erasure_both_or_neither, DROP COLUMN erase_after,
    DROP COLUMN erasure_requested_at;
