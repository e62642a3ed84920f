ALTER TABLE targets DROP COLUMN device, DROP COLUMN languages, DROP COLUMN timezone;
