-- Every report also downloads as a PDF, rendered by a runner (the app never starts a browser):
-- its job, and the PDF the attempt that completed it uploaded
-- (org/<org>/report/<id>/attempt-<n>/report.pdf).
ALTER TABLE reports
    ADD COLUMN pdf_job_id BIGINT REFERENCES jobs (id),
    ADD COLUMN pdf_attempt INTEGER,
    ADD COLUMN pdf_sha256 TEXT,
    ADD COLUMN pdf_size_bytes BIGINT,
    ADD COLUMN pdf_done BOOLEAN NOT NULL DEFAULT false;
CREATE UNIQUE INDEX reports_by_pdf_job ON reports (pdf_job_id);
