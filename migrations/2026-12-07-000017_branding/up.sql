-- How an agency's reports look: its name as clients should read it, an accent colour and a logo
-- (PNG, or SVG checked against an allowlist so it cannot carry script).
ALTER TABLE orgs
    ADD COLUMN brand_name TEXT,
    ADD COLUMN brand_color TEXT CHECK (brand_color ~ '^#[0-9a-f]{6}$'),
    ADD COLUMN logo BYTEA CHECK (octet_length(logo) <= 262144),
    ADD COLUMN logo_type TEXT CHECK (logo_type IN ('image/png', 'image/svg+xml')),
    ADD CONSTRAINT orgs_logo_has_type CHECK ((logo IS NULL) = (logo_type IS NULL));
-- Whom a client's reports are for.
ALTER TABLE clients
    ADD COLUMN contact_name TEXT NOT NULL DEFAULT '',
    ADD COLUMN contact_email TEXT NOT NULL DEFAULT '';
