-- Exports: an organization's data (or one client's) as one archive, made by a background job,
-- stored sealed in parts under `org/<o>/export/<id>/attempt-<n>/`, downloadable once by a mailed link that
-- expires.
CREATE TABLE exports (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- NULL: the whole organization; else one client's history.
    client_id BIGINT REFERENCES clients (id) ON DELETE CASCADE,
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    job_id BIGINT REFERENCES jobs (id) ON DELETE SET NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'ready', 'failed', 'downloaded', 'expired')),
    -- SHA-256 of the download token, while it can be used.
    token_hash BYTEA UNIQUE,
    parts INTEGER NOT NULL DEFAULT 0,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    -- SHA-256 of the whole archive (hex), as downloaded.
    sha256 TEXT,
    artifacts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    downloaded_at TIMESTAMPTZ,
    -- The job attempt whose parts make the archive (each attempt writes its own).
    attempt INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT exports_ready_has_token CHECK (state <> 'ready' OR (token_hash IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE INDEX exports_org ON exports (org_id, id);
CREATE INDEX exports_ready_expiry ON exports (expires_at) WHERE state = 'ready';

-- An export deleted (its client's or organization's deletion, the purge) takes its parts.
CREATE FUNCTION queue_export_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/export/' || id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
CREATE TRIGGER exports_queue_blob_deletions AFTER DELETE ON exports
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_export_folders();
