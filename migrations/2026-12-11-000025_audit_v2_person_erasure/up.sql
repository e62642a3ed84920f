-- Audit chain v2: a row's hash covers a keyed digest of its personal fields (actor, subject,
-- detail, ip) instead of the fields themselves. The digest's key is a random salt per row. Erasing
-- a person replaces those fields by a pseudonym and deletes the salt: the chain still verifies
-- (its hashes never change), and without the salt the digest tells nothing about what was there.
-- Rows written before this version (1) are re-chained as version 2 by the application right after
-- migrating, once their chain verifies as version 1; each re-chained chain records its old head.
ALTER TABLE audit_log
    ADD COLUMN version SMALLINT NOT NULL DEFAULT 1 CHECK (version IN (1, 2)),
    ADD COLUMN personal_salt BYTEA,
    ADD COLUMN personal_digest BYTEA,
    -- The instance-chain `person.erased` entry that pseudonymized this row.
    ADD COLUMN erased_by BIGINT,
    ADD CONSTRAINT audit_log_v2_has_digest CHECK (version = 1 OR personal_digest IS NOT NULL),
    ADD CONSTRAINT audit_log_salt_or_erased
        CHECK (version = 1 OR (personal_salt IS NULL) = (erased_by IS NOT NULL));
CREATE INDEX audit_log_v1 ON audit_log (org_id, seq) WHERE version = 1;
CREATE INDEX audit_log_actor_user ON audit_log (actor_user_id) WHERE actor_user_id IS NOT NULL;
CREATE INDEX audit_log_erased_by ON audit_log (erased_by) WHERE erased_by IS NOT NULL;

-- Still append-only, with three narrow exceptions:
-- * an organization's erasure removes its own chain (see migration 24);
-- * re-chaining a version-1 row as version 2, its recorded content unchanged;
-- * pseudonymizing a version-2 row for a person's erasure, in the transaction of that erasure:
--   only its personal fields change, its salt goes, and it names the `person.erased` entry of the
--   instance chain that did it; the hashes stay as they are.
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.org_id IS NOT NULL
       AND OLD.org_id::TEXT = current_setting('siteward.erasing_org', true)
       AND EXISTS (SELECT 1 FROM orgs WHERE id = OLD.org_id AND erase_after <= now()) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE'
       AND NEW.id = OLD.id AND NEW.org_id IS NOT DISTINCT FROM OLD.org_id AND NEW.seq = OLD.seq
       AND NEW.created_at = OLD.created_at
       AND NEW.actor_user_id IS NOT DISTINCT FROM OLD.actor_user_id
       AND NEW.actor_key_id IS NOT DISTINCT FROM OLD.actor_key_id
       AND NEW.action = OLD.action THEN
        IF OLD.version = 1 AND NEW.version = 2
           AND NEW.actor = OLD.actor AND NEW.subject = OLD.subject AND NEW.detail = OLD.detail
           AND NEW.ip = OLD.ip AND NEW.personal_salt IS NOT NULL AND NEW.erased_by IS NULL THEN
            RETURN NEW;
        END IF;
        -- Only inside the erasure's own transaction, which names its entry in
        -- `siteward.erasing_person`; an address is kept or blanked, never changed.
        IF OLD.version = 2 AND NEW.version = 2
           AND OLD.personal_salt IS NOT NULL AND NEW.personal_salt IS NULL
           AND NEW.personal_digest = OLD.personal_digest
           AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
           AND NEW.ip IN (OLD.ip, '')
           AND NEW.erased_by::TEXT = current_setting('siteward.erasing_person', true)
           AND EXISTS (SELECT 1 FROM audit_log e
                       WHERE e.id = NEW.erased_by AND e.org_id IS NULL
                         AND e.action = 'person.erased') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- Payment-script decisions stay append-only, except that a person's erasure replaces the name it
-- recorded for them (`decided_by_name`) by their pseudonym, and drops the pointer to their
-- deleted account, in the erasure's transaction.
CREATE OR REPLACE FUNCTION payment_script_decisions_append_only() RETURNS trigger AS $$
BEGIN
    IF current_setting('siteward.erasing_person', true) <> ''
       AND NEW.id = OLD.id AND NEW.org_id = OLD.org_id AND NEW.version_id = OLD.version_id
       AND NEW.decision = OLD.decision AND NEW.justification = OLD.justification
       AND (NEW.decided_by IS NOT DISTINCT FROM OLD.decided_by OR NEW.decided_by IS NULL)
       AND NEW.rule_id IS NOT DISTINCT FROM OLD.rule_id AND NEW.decided_at = OLD.decided_at
       AND NEW.decided_by_name LIKE 'erased person #%' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'payment script decisions are append-only';
END;
$$ LANGUAGE plpgsql;
