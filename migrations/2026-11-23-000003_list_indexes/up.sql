-- Lists are newest first within one organization: index them that way.
CREATE INDEX clients_org_id ON clients (org_id, id);
CREATE INDEX audit_log_org_id ON audit_log (org_id, id);
