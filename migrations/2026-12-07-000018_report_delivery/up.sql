-- A client can receive a report by mail every week or month, at its contact address.
ALTER TABLE clients ADD COLUMN report_schedule TEXT CHECK (report_schedule IN ('weekly', 'monthly'));

-- One row per client and period ('2026-W49', '2026-12'): the scheduler inserts it once, so a
-- period's report is made and mailed once however often the tick runs or the app restarts.
CREATE TABLE report_deliveries (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    client_id BIGINT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    period TEXT NOT NULL,
    report_id BIGINT REFERENCES reports (id) ON DELETE SET NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    UNIQUE (client_id, period)
);
