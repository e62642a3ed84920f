DROP INDEX snapshots_by_target;
ALTER TABLE snapshots DROP COLUMN page_key;
CREATE INDEX snapshots_by_target ON snapshots (target_id, visit, id DESC);
DROP TABLE crawl_pages;
ALTER TABLE scans DROP COLUMN crawl_id;
DROP TABLE crawls;
ALTER TABLE orgs DROP COLUMN max_crawl_pages, DROP COLUMN crawl_concurrency;
ALTER TABLE targets DROP CONSTRAINT targets_site_has_rules, DROP COLUMN crawl_rules, DROP COLUMN kind;
