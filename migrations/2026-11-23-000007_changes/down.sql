DROP TABLE snapshot_diffs;
ALTER TABLE targets
    DROP COLUMN ignore_regions,
    DROP COLUMN ignore_selectors,
    DROP COLUMN visual_threshold,
    DROP COLUMN page_kind;
