-- Rate-limit windows shared by every `serve` process: one row per rule and caller, counted with
-- an atomic upsert. UNLOGGED: no WAL, not in backups or replicas, emptied after a crash — all
-- fine for counters that live minutes, and it keeps a flood of sign-in attempts off the WAL.
CREATE UNLOGGED TABLE rate_limit_windows (
    rule text NOT NULL,
    caller text NOT NULL,
    expires_at timestamptz NOT NULL,
    count integer NOT NULL,
    PRIMARY KEY (rule, caller)
);
CREATE INDEX rate_limit_windows_expires_at ON rate_limit_windows (expires_at);

-- Signals to every `serve` process (LISTEN siteward), sent by the database itself so that no
-- code path — a route, a worker, an operator's SQL — can change what they depend on without
-- telling them. NOTIFY is delivered on commit and folds repeats within a transaction.
CREATE FUNCTION siteward_signal_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('siteward', 'jobs');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_signal_ready AFTER INSERT OR UPDATE OF state, run_at ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued' AND NEW.run_at <= now())
    EXECUTE FUNCTION siteward_signal_jobs();

CREATE FUNCTION siteward_signal_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('siteward', 'key-revoked:' || OLD.prefix);
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_signal_revoked AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION siteward_signal_key_revoked();
CREATE TRIGGER api_keys_signal_deleted AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION siteward_signal_key_revoked();

CREATE FUNCTION siteward_signal_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('siteward', 'keys-changed');
    RETURN NULL;
END $$;
CREATE TRIGGER memberships_signal_keys AFTER UPDATE OF role OR DELETE ON memberships
    FOR EACH STATEMENT EXECUTE FUNCTION siteward_signal_keys_changed();
