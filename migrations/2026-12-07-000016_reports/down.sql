DROP TABLE report_shares;
DROP TABLE reports;
