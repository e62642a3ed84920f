-- The runners' public keys for sealing checkout test data. The private halves never reach the
-- app; one key is active at a time, retired keys stay listed so old sealed values can be named.
CREATE TABLE runner_keys (
    id BIGSERIAL PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX runner_keys_one_active ON runner_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;

-- A scripted journey through a target's checkout. The script is the YAML as written; it names
-- secrets but never holds their values.
CREATE TABLE checkout_tests (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    script TEXT NOT NULL,
    schedule TEXT,
    enabled BOOLEAN NOT NULL DEFAULT true,
    last_scheduled_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX checkout_tests_by_target ON checkout_tests (target_id, id);
CREATE INDEX checkout_tests_by_org ON checkout_tests (org_id, id DESC);

-- Test data, sealed to the runners' public key (HPKE) and bound to its test and name. The app
-- cannot open it: it can only replace or delete it.
CREATE TABLE checkout_secrets (
    test_id BIGINT NOT NULL REFERENCES checkout_tests (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    sealed BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    -- The hosts the test could open when the value was sealed; the seal is bound to them.
    hosts TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    PRIMARY KEY (test_id, name)
);

-- One run of a checkout test. Its state is its job's; the outcome is what the run found.
CREATE TABLE checkout_runs (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    test_id BIGINT NOT NULL REFERENCES checkout_tests (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    job_id BIGINT NOT NULL UNIQUE REFERENCES jobs (id),
    trigger TEXT NOT NULL CHECK (trigger IN ('dashboard', 'api', 'schedule')),
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    script TEXT NOT NULL,
    outcome TEXT CHECK (outcome IN ('passed', 'failed')),
    failed_step INTEGER,
    failure TEXT,
    stopped_at INTEGER,
    duration_ms BIGINT,
    runner_id BIGINT REFERENCES runners (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX checkout_runs_by_test ON checkout_runs (test_id, id DESC);

-- Per step: what it did and how it went. Screenshots are sealed blobs at
-- org/<org_id>/checkout-run/<run_id>/step-<n>.png.
CREATE TABLE checkout_run_steps (
    run_id BIGINT NOT NULL REFERENCES checkout_runs (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    org_id BIGINT NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('passed', 'failed', 'skipped')),
    duration_ms BIGINT NOT NULL,
    url TEXT NOT NULL,
    error JSONB,
    console_errors JSONB NOT NULL,
    failed_requests JSONB NOT NULL,
    screenshot TEXT,
    PRIMARY KEY (run_id, number)
);

-- Uploaded artifacts of a run's current attempt (step screenshots, the report, captured pages).
CREATE TABLE checkout_run_artifacts (
    run_id BIGINT NOT NULL REFERENCES checkout_runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    org_id BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    uploaded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);

-- Each page a run reached, captured as a scan and compared with the same page of the test's
-- previous run (matched by path), so a script change on the payment page is caught.
CREATE TABLE checkout_run_pages (
    run_id BIGINT NOT NULL REFERENCES checkout_runs (id) ON DELETE CASCADE,
    index INTEGER NOT NULL,
    org_id BIGINT NOT NULL,
    after_step INTEGER NOT NULL,
    url TEXT NOT NULL,
    path TEXT NOT NULL,
    script_count INTEGER NOT NULL,
    third_party_hosts JSONB NOT NULL,
    changes JSONB,
    previous_run_id BIGINT,
    PRIMARY KEY (run_id, index)
);
