ALTER TABLE report_deliveries DROP COLUMN mail_subject, DROP COLUMN mail_body;
ALTER TABLE clients DROP COLUMN report_attach_pdf;
