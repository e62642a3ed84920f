-- Who a scan of the target presents itself as: the device (desktop or mobile Chrome), the
-- visitor's languages (navigator.languages and Accept-Language, most preferred first) and the
-- timezone its pages see. Existing and new targets get the scanner's defaults.
ALTER TABLE targets
    ADD COLUMN device TEXT NOT NULL DEFAULT 'desktop' CHECK (device IN ('desktop', 'mobile')),
    ADD COLUMN languages TEXT NOT NULL DEFAULT 'en-US,en',
    ADD COLUMN timezone TEXT NOT NULL DEFAULT 'Europe/Berlin';
