DROP INDEX audit_log_org_id;
DROP INDEX clients_org_id;
