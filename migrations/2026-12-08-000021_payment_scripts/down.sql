DROP TABLE payment_script_decisions;
DROP FUNCTION payment_script_decisions_append_only;
DROP TABLE payment_script_versions;
DROP TABLE payment_scripts;
DROP TABLE payment_script_rules;
