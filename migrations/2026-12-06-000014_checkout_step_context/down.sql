ALTER TABLE checkout_run_steps DROP COLUMN page_says, DROP COLUMN refused_requests;
