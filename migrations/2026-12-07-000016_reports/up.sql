-- Reports for an agency's clients: rendered once when made and stored sealed
-- (org/<org>/report/<id>/report.html), so what a client received can be shown again unchanged.
-- A report covers a whole client, or one of its targets, over a period.
CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    target_id BIGINT REFERENCES targets (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL CHECK (period_end > period_start),
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reports_by_client ON reports (client_id, id DESC);

-- Links that show one report to anyone who has them, without signing in. Only the token's
-- SHA-256 is kept (like API keys); the prefix finds the row.
CREATE TABLE report_shares (
    id BIGSERIAL PRIMARY KEY,
    report_id BIGINT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    token_prefix TEXT NOT NULL UNIQUE,
    token_hash BYTEA NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    views INTEGER NOT NULL DEFAULT 0,
    last_viewed_at TIMESTAMPTZ
);
CREATE INDEX report_shares_by_report ON report_shares (report_id, id DESC);
