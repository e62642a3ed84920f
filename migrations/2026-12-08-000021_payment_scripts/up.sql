-- Payment-page script inventory and authorization (PCI DSS 4.0 requirement 6.4.3).

-- Owner-set rules that authorize, with one justification, every version of the scripts from a
-- host (`js.stripe.com`, or `*.example.com` for its subdomains). Revoked, never deleted.
CREATE TABLE payment_script_rules (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    host TEXT NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
    justification TEXT NOT NULL CHECK (length(justification) BETWEEN 1 AND 2000),
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_by_name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ,
    revoked_by_name TEXT
);
CREATE INDEX payment_script_rules_org ON payment_script_rules (org_id) WHERE revoked_at IS NULL;

-- A script on a payment target, identified across scans by its URL (or, inline, its hash).
CREATE TABLE payment_scripts (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('external', 'inline')),
    url TEXT,
    host TEXT,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (target_id, identity)
);

-- Each body a script was seen with: a version.
CREATE TABLE payment_script_versions (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    script_id BIGINT NOT NULL REFERENCES payment_scripts (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    first_bytes TEXT NOT NULL DEFAULT '',
    frame_url TEXT NOT NULL,
    in_iframe BOOLEAN NOT NULL,
    injected_by TEXT,
    integrity_state TEXT NOT NULL,
    integrity TEXT,
    first_seen_snapshot_id BIGINT REFERENCES snapshots (id) ON DELETE SET NULL,
    last_seen_snapshot_id BIGINT REFERENCES snapshots (id) ON DELETE SET NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (script_id, sha256)
);

-- Decisions about versions: append-only, the latest (highest id) stands. A rule's decision
-- names the rule.
CREATE TABLE payment_script_decisions (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES payment_script_versions (id) ON DELETE CASCADE,
    decision TEXT NOT NULL CHECK (decision IN ('authorized', 'rejected')),
    justification TEXT NOT NULL CHECK (length(justification) BETWEEN 1 AND 2000),
    decided_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    decided_by_name TEXT NOT NULL,
    rule_id BIGINT REFERENCES payment_script_rules (id) ON DELETE SET NULL,
    decided_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payment_script_decisions_version ON payment_script_decisions (version_id, id DESC);

-- A decision is a record: it is superseded by a new one, never edited.
CREATE FUNCTION payment_script_decisions_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'payment script decisions are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER payment_script_decisions_no_update BEFORE UPDATE ON payment_script_decisions
    FOR EACH ROW EXECUTE FUNCTION payment_script_decisions_append_only();
