DROP TRIGGER memberships_signal_keys ON memberships;
DROP FUNCTION siteward_signal_keys_changed();
DROP TRIGGER api_keys_signal_deleted ON api_keys;
DROP TRIGGER api_keys_signal_revoked ON api_keys;
DROP FUNCTION siteward_signal_key_revoked();
DROP TRIGGER jobs_signal_ready ON jobs;
DROP FUNCTION siteward_signal_jobs();
DROP TABLE rate_limit_windows;
