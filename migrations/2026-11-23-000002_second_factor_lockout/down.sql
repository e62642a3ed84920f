ALTER TABLE users
    DROP COLUMN second_factor_locked_until,
    DROP COLUMN second_factor_failures;
