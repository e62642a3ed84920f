-- Whole-site scans. A site target crawls: each crawl visits the pages of the site, each page an
-- ordinary scan with its own job (kind `crawl_page`), snapshot and diff against the same page of
-- earlier crawls. Runner slots take a crawl as lanes (jobs of kind `crawl`), each lane a visitor
-- with its own browsing session asking the app for the next page; the crawl's frontier (the
-- scanner's `Frontier`, as JSON) lives in the crawl's row, locked while a page's links are
-- offered. When no page is left, the app builds the site snapshot (sealed blob
-- org/<org>/crawl/<id>/site.json), compares it with the previous crawl's and raises alerts.
ALTER TABLE targets
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'page' CHECK (kind IN ('page', 'site')),
    ADD COLUMN crawl_rules JSONB,
    ADD CONSTRAINT targets_site_has_rules CHECK ((kind = 'site') = (crawl_rules IS NOT NULL));

-- Per organization: the most pages one crawl may visit, and the pages of one crawl visited at
-- once at most (its lanes; each takes one runner slot).
ALTER TABLE orgs
    ADD COLUMN max_crawl_pages INTEGER NOT NULL DEFAULT 100 CHECK (max_crawl_pages BETWEEN 1 AND 1000),
    ADD COLUMN crawl_concurrency INTEGER NOT NULL DEFAULT 4 CHECK (crawl_concurrency BETWEEN 1 AND 16);

CREATE TABLE crawls (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    trigger TEXT NOT NULL CHECK (trigger IN ('dashboard', 'api', 'schedule')),
    requested_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    start_url TEXT NOT NULL,
    lanes INTEGER NOT NULL CHECK (lanes BETWEEN 1 AND 16),
    frontier JSONB NOT NULL,
    -- The sitemaps read (scanner::crawl::SitemapRead), in order.
    sitemaps JSONB NOT NULL DEFAULT '[]',
    -- running: pages are queued or being visited; assembling: the site snapshot is being built;
    -- done: it is stored; failed: no page could be visited.
    state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'assembling', 'done', 'failed')),
    error TEXT,
    -- No page starts after this: the crawl's time budget.
    deadline TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    site_sha256 TEXT,
    page_count INTEGER,
    unreachable_count INTEGER,
    previous_crawl_id BIGINT REFERENCES crawls (id) ON DELETE SET NULL,
    -- What changed since the previous crawl (crawls::site_diff::SiteChange), once done.
    changes JSONB
);
CREATE INDEX crawls_by_target ON crawls (target_id, id DESC);
CREATE INDEX crawls_unfinished ON crawls (id) WHERE state IN ('running', 'assembling');

-- A page of a crawl is a scan of the site target.
ALTER TABLE scans ADD COLUMN crawl_id BIGINT REFERENCES crawls (id) ON DELETE CASCADE;
CREATE INDEX scans_by_crawl ON scans (crawl_id) WHERE crawl_id IS NOT NULL;

CREATE TABLE crawl_pages (
    crawl_id BIGINT NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
    -- In the order the frontier handed the pages out, from 1 (the start page).
    number INTEGER NOT NULL,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    depth INTEGER NOT NULL,
    -- scanner::crawl::Source: the start, a link on a page, or a sitemap.
    found_by JSONB NOT NULL,
    scan_id BIGINT NOT NULL UNIQUE REFERENCES scans (id) ON DELETE CASCADE,
    -- Set when the page's visit is over; until then its job says where it stands.
    outcome TEXT CHECK (outcome IN ('visited', 'unreachable')),
    reason TEXT,
    final_url TEXT,
    -- First-party links found on it.
    links INTEGER,
    -- The browsing session it was visited in (lane job and attempt), to credit cookies.
    session TEXT,
    PRIMARY KEY (crawl_id, number)
);

-- A crawl page's snapshot is compared with the same page (its URL as the frontier normalized
-- it) of earlier crawls; plain scans have none.
ALTER TABLE snapshots ADD COLUMN page_key TEXT;
DROP INDEX snapshots_by_target;
CREATE INDEX snapshots_by_target ON snapshots (target_id, visit, page_key, id DESC);

-- A deleted crawl (its target deleted) queues its site snapshot's folder for deletion, as a
-- compliance scan does; an organization being erased deletes its whole folder instead.
CREATE FUNCTION queue_crawl_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blob_deletions (org_id, key, whole_folder)
    SELECT org_id, 'org/' || org_id || '/crawl/' || id || '/', true FROM gone
    WHERE org_id::TEXT IS DISTINCT FROM current_setting('siteward.erasing_org', true);
    RETURN NULL;
END $$;
CREATE TRIGGER crawls_queue_blob_deletions AFTER DELETE ON crawls
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION queue_crawl_folders();
