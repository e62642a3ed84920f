-- Erasure of an organization: asked by an owner, carried out by the purge leader once the grace
-- period has passed (or at once by `siteward admin erase-org --now`).
ALTER TABLE orgs
    ADD COLUMN erasure_requested_at TIMESTAMPTZ,
    ADD COLUMN erase_after TIMESTAMPTZ,
    ADD CONSTRAINT orgs_erasure_both_or_neither
        CHECK ((erasure_requested_at IS NULL) = (erase_after IS NULL));
CREATE INDEX orgs_due_for_erasure ON orgs (erase_after) WHERE erase_after IS NOT NULL;

-- The audit log stays append-only, with one exception: erasing an organization removes its own
-- chain, in the transaction that erases it (which names it in `siteward.erasing_org`), and only
-- once its erasure is due. The instance's chain records that the erasure happened.
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.org_id IS NOT NULL
       AND OLD.org_id::TEXT = current_setting('siteward.erasing_org', true)
       AND EXISTS (SELECT 1 FROM orgs WHERE id = OLD.org_id AND erase_after <= now()) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- While an organization is erased, its whole folder is queued once; the folders of its scans,
-- runs and reports need no rows of their own.
CREATE OR REPLACE FUNCTION queue_scan_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/snapshot/' || snapshot_id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_checkout_run_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/checkout-run/' || id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_compliance_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/compliance/' || id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION queue_report_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/report/' || id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
