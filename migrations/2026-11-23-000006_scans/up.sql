-- Runners: worker processes that scan for the app. They hold a token (only its hash is kept) and
-- no database or object-store credentials.
CREATE TABLE runners (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    token_prefix TEXT NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

-- Snapshot ids are reserved when a scan is asked for, so artifacts uploaded before the snapshot
-- row exists already have their final object keys.
CREATE SEQUENCE snapshots_id_seq;

-- A scan that was asked for. Its state is its job's: queued, running, done or dead.
CREATE TABLE scans (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    job_id BIGINT NOT NULL UNIQUE REFERENCES jobs (id),
    snapshot_id BIGINT NOT NULL UNIQUE DEFAULT nextval('snapshots_id_seq'),
    trigger TEXT NOT NULL CHECK (trigger IN ('dashboard', 'api', 'schedule')),
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER SEQUENCE snapshots_id_seq OWNED BY scans.snapshot_id;
CREATE INDEX scans_by_target ON scans (target_id, id DESC);
CREATE INDEX scans_by_org ON scans (org_id, id DESC);

-- Artifacts uploaded for a scan, by the attempt that uploaded them last. The blob is at
-- org/<org_id>/snapshot/<snapshot_id>/<name>.
CREATE TABLE scan_artifacts (
    scan_id BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scan_id, name)
);

-- A finished scan's metadata; the whole snapshot (DOM, requests, policy text) is the sealed
-- blob snapshot.json. At most one per scan.
CREATE TABLE snapshots (
    id BIGINT PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    scan_id BIGINT NOT NULL UNIQUE REFERENCES scans (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    runner_id BIGINT REFERENCES runners (id) ON DELETE SET NULL,
    requested_url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    http_status INTEGER,
    title TEXT NOT NULL,
    scan_ms BIGINT NOT NULL,
    request_count INTEGER NOT NULL,
    console_error_count INTEGER NOT NULL,
    limits_hit JSONB NOT NULL,
    captured_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX snapshots_by_target ON snapshots (target_id, id DESC);

-- The inventory, for queries across targets ("which of my targets load host X").
CREATE TABLE snapshot_cookies (
    snapshot_id BIGINT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    org_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    domain TEXT NOT NULL,
    path TEXT NOT NULL,
    party TEXT NOT NULL,
    session BOOLEAN NOT NULL,
    expires TEXT,
    secure BOOLEAN NOT NULL,
    http_only BOOLEAN NOT NULL,
    same_site TEXT NOT NULL,
    set_by_host TEXT,
    category TEXT,
    PRIMARY KEY (snapshot_id, name, domain, path)
);
CREATE INDEX snapshot_cookies_by_name ON snapshot_cookies (org_id, name);

CREATE TABLE snapshot_scripts (
    snapshot_id BIGINT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    org_id BIGINT NOT NULL,
    url TEXT,
    host TEXT,
    party TEXT,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    PRIMARY KEY (snapshot_id, position)
);
CREATE INDEX snapshot_scripts_by_hash ON snapshot_scripts (org_id, sha256);

CREATE TABLE snapshot_hosts (
    snapshot_id BIGINT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    org_id BIGINT NOT NULL,
    party TEXT NOT NULL,
    requests INTEGER NOT NULL,
    category TEXT,
    PRIMARY KEY (snapshot_id, host)
);
CREATE INDEX snapshot_hosts_by_host ON snapshot_hosts (org_id, host);

CREATE TABLE snapshot_blocked (
    snapshot_id BIGINT NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    org_id BIGINT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    address TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, position)
);

-- When the scheduler last asked for a scan of the target; the next one is due at the schedule's
-- first firing after it.
ALTER TABLE targets ADD COLUMN last_scheduled_at TIMESTAMPTZ;
