-- A compliance scan: one page visited several times (first visit, reject all, accept all and
-- optionally with Global Privacy Control), each visit an ordinary scan with its own job,
-- snapshot and diff. When every visit has finished the app builds the report (sealed blob
-- org/<org>/compliance/<id>/report.json), records the findings and raises their alerts.
CREATE TABLE compliance_scans (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    trigger TEXT NOT NULL CHECK (trigger IN ('dashboard', 'api', 'schedule')),
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    gpc BOOLEAN NOT NULL,
    -- running: visits are queued or running; assembling: the report is being built;
    -- done: the report is stored; failed: every visit failed (no report).
    state TEXT NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'assembling', 'done', 'failed')),
    error TEXT,
    report_sha256 TEXT,
    finding_count INTEGER,
    -- The worst finding's severity; NULL when there are none (or no report yet).
    worst_severity TEXT CHECK (worst_severity IN ('info', 'low', 'medium', 'high', 'critical')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX compliance_scans_by_target ON compliance_scans (target_id, id DESC);
CREATE INDEX compliance_scans_unfinished ON compliance_scans (id) WHERE state IN ('running', 'assembling');

-- A visit of a compliance scan is a scan; plain scans have neither column.
ALTER TABLE scans
    ADD COLUMN compliance_scan_id BIGINT REFERENCES compliance_scans (id) ON DELETE CASCADE,
    ADD COLUMN visit TEXT CHECK (visit IN ('first_visit', 'reject_all', 'accept_all', 'gpc')),
    ADD CONSTRAINT scans_visit_of_compliance_scan CHECK ((compliance_scan_id IS NULL) = (visit IS NULL)),
    ADD CONSTRAINT scans_one_visit_each UNIQUE (compliance_scan_id, visit);
-- Copied from the scan, so a visit is compared only with the same visit of earlier scans.
ALTER TABLE snapshots ADD COLUMN visit TEXT;
DROP INDEX snapshots_by_target;
CREATE INDEX snapshots_by_target ON snapshots (target_id, visit, id DESC);

-- What a finished compliance scan found: the history of findings over time.
CREATE TABLE compliance_findings (
    compliance_scan_id BIGINT NOT NULL REFERENCES compliance_scans (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    visit TEXT NOT NULL,
    title TEXT NOT NULL,
    PRIMARY KEY (compliance_scan_id, fingerprint)
);
CREATE INDEX compliance_findings_by_target ON compliance_findings (target_id, compliance_scan_id DESC);

-- A target chooses plain scans, compliance scans or both, each on its own schedule.
ALTER TABLE targets
    ADD COLUMN compliance_schedule TEXT,
    ADD COLUMN compliance_gpc BOOLEAN NOT NULL DEFAULT true,
    ADD COLUMN last_compliance_scheduled_at TIMESTAMPTZ;
