-- Whether a client's scheduled report mail carries the report's PDF (the mail waits for it).
ALTER TABLE clients ADD COLUMN report_attach_pdf BOOLEAN NOT NULL DEFAULT false;
-- A period's mail is composed once, with its report: a retry (waiting for the PDF, or after the
-- mail server refused) sends the same report and words, adding only a fresh share link.
ALTER TABLE report_deliveries ADD COLUMN mail_subject TEXT, ADD COLUMN mail_body TEXT;
