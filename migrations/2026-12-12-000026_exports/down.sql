DROP TABLE exports;
DROP FUNCTION queue_export_folders;
