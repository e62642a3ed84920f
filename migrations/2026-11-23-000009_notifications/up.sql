-- Where an organization's alerts are sent. The address or URL and any secret are sealed with the
-- master key (`config_sealed`); `display` is a redacted description for lists.
CREATE TABLE notification_channels (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    min_severity TEXT NOT NULL CHECK (min_severity IN ('info', 'low', 'medium', 'high', 'critical')),
    config_sealed BYTEA NOT NULL,
    display TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per message: an alert opening (or reopening) on a channel, or a test. Sent by a queued
-- job; `dedupe_key` makes a message exist once however often the raise is retried.
CREATE TABLE notification_deliveries (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    alert_id BIGINT REFERENCES alerts (id) ON DELETE CASCADE,
    dedupe_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_code INTEGER,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at TIMESTAMPTZ
);
CREATE INDEX notification_deliveries_by_org ON notification_deliveries (org_id, id DESC);
