-- Envelope encryption: one data key per organization at a time (older ones stay to read older
-- blobs), stored only wrapped by a master key. Deleting an org's keys makes its blobs unreadable.
CREATE TABLE org_data_keys (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    -- The data key sealed by a master key (format of crypto::MasterKeys::seal).
    wrapped_key BYTEA NOT NULL,
    -- Which master key wrapped it, to find keys to re-wrap after a master-key rotation.
    master_key_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set when a newer key took over; the key still opens what it sealed.
    retired_at TIMESTAMPTZ
);
CREATE INDEX org_data_keys_org ON org_data_keys (org_id, id);
CREATE UNIQUE INDEX org_data_keys_one_current ON org_data_keys (org_id) WHERE retired_at IS NULL;
