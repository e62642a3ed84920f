-- Alert rules an organization has tuned: for all its targets (target_id NULL) or for one. Rules
-- not listed here apply with their built-in severity.
CREATE TABLE alert_rules (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT REFERENCES targets (id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    enabled BOOLEAN NOT NULL,
    UNIQUE NULLS NOT DISTINCT (org_id, target_id, rule)
);

-- Alerts: open → acknowledged → resolved (automatically when a later snapshot no longer shows the
-- change, or by hand). One live alert per target and fingerprint: repeats count as occurrences,
-- and an alert resolved less than a day ago reopens instead of starting over (flapping).
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    detail JSONB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    first_snapshot_id BIGINT REFERENCES snapshots (id) ON DELETE SET NULL,
    last_snapshot_id BIGINT REFERENCES snapshots (id) ON DELETE SET NULL,
    occurrences INTEGER NOT NULL DEFAULT 1,
    reopened INTEGER NOT NULL DEFAULT 0,
    opened_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    resolution TEXT CHECK (resolution IN ('auto', 'manual'))
);
CREATE UNIQUE INDEX alerts_live ON alerts (target_id, fingerprint) WHERE state <> 'resolved';
CREATE INDEX alerts_inbox ON alerts (org_id, id DESC);
