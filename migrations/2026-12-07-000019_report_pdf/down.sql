DROP INDEX reports_by_pdf_job;
ALTER TABLE reports DROP COLUMN pdf_job_id, DROP COLUMN pdf_attempt, DROP COLUMN pdf_sha256,
    DROP COLUMN pdf_size_bytes, DROP COLUMN pdf_done;
