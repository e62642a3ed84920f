-- How a target is compared with itself over time.
ALTER TABLE targets
    -- A checkout or payment page makes script changes critical.
    ADD COLUMN page_kind TEXT NOT NULL DEFAULT 'page' CHECK (page_kind IN ('page', 'checkout', 'payment')),
    -- Percent of changed pixels above which a screenshot counts as visually changed.
    ADD COLUMN visual_threshold REAL NOT NULL DEFAULT 1.0 CHECK (visual_threshold >= 0 AND visual_threshold <= 100),
    -- CSS selectors whose text is left out of the DOM text diff (clocks, ads, random ids).
    ADD COLUMN ignore_selectors JSONB NOT NULL DEFAULT '[]',
    -- Rectangles ({x, y, width, height} in screenshot pixels) left out of visual diffs.
    ADD COLUMN ignore_regions JSONB NOT NULL DEFAULT '[]';

-- What changed from the target's previous snapshot, computed by the app after ingestion.
CREATE TABLE snapshot_diffs (
    snapshot_id BIGINT PRIMARY KEY REFERENCES snapshots (id) ON DELETE CASCADE,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    target_id BIGINT NOT NULL REFERENCES targets (id) ON DELETE CASCADE,
    -- NULL for a target's first snapshot.
    previous_snapshot_id BIGINT REFERENCES snapshots (id) ON DELETE SET NULL,
    changes JSONB NOT NULL,
    -- {"viewport": VisualDiff, "full_page": VisualDiff} or null values when not comparable.
    visual JSONB NOT NULL,
    change_count INTEGER NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX snapshot_diffs_by_target ON snapshot_diffs (target_id, snapshot_id DESC);
