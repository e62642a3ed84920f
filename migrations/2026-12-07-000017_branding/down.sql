ALTER TABLE clients DROP COLUMN contact_name, DROP COLUMN contact_email;
ALTER TABLE orgs DROP CONSTRAINT orgs_logo_has_type,
    DROP COLUMN brand_name, DROP COLUMN brand_color, DROP COLUMN logo, DROP COLUMN logo_type;
