CREATE OR REPLACE FUNCTION payment_script_decisions_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'payment script decisions are append-only';
END;
$$ LANGUAGE plpgsql;
-- Rows already re-chained as version 2 do not verify as version 1: going down loses the ability
-- to verify them (their content is unchanged).
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
DROP INDEX audit_log_v1, audit_log_actor_user, audit_log_erased_by;
ALTER TABLE audit_log
    DROP COLUMN version,
    DROP COLUMN personal_salt,
    DROP COLUMN personal_digest,
    DROP COLUMN erased_by;
