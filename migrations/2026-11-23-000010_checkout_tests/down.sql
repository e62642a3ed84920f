DROP TABLE checkout_run_pages;
DROP TABLE checkout_run_artifacts;
DROP TABLE checkout_run_steps;
DROP TABLE checkout_runs;
DROP TABLE checkout_secrets;
DROP TABLE checkout_tests;
DROP TABLE runner_keys;
