DROP TABLE org_data_keys;
