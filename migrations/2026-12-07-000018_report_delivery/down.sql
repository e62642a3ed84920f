DROP TABLE report_deliveries;
ALTER TABLE clients DROP COLUMN report_schedule;
