-- What the page showed as wrong when a step failed (alerts, invalid fields' messages), and the
-- requests the egress guard refused during the step, kept apart from the page's own errors.
ALTER TABLE checkout_run_steps
    ADD COLUMN page_says JSONB NOT NULL DEFAULT '[]',
    ADD COLUMN refused_requests JSONB NOT NULL DEFAULT '[]';
