-- The job queue. A job is claimed with FOR UPDATE SKIP LOCKED under a lease that heartbeats
-- extend; a lapsed lease returns the job to the queue (or kills it after its last attempt).
-- Each claim gets a fresh attempt token: only the current attempt may heartbeat or finish.
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    run_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    lease_expires_at TIMESTAMPTZ,
    holder TEXT,
    -- SHA-256 of the current attempt's token.
    attempt_token_hash BYTEA,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);
CREATE INDEX jobs_ready ON jobs (run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE state = 'running';
