-- Wrong second-factor codes are counted per person in the database (so every serve process sees
-- them); each fifth failure locks the second step for a doubling while.
ALTER TABLE users
    ADD COLUMN second_factor_failures INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN second_factor_locked_until TIMESTAMPTZ;
