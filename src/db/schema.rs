// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Int8,
        org_id -> Int8,
        name -> Text,
        prefix -> Text,
        secret_hash -> Bytea,
        scope -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        org_id -> Nullable<Int8>,
        seq -> Int8,
        created_at -> Timestamptz,
        actor_user_id -> Nullable<Int8>,
        actor_key_id -> Nullable<Int8>,
        actor -> Text,
        action -> Text,
        subject -> Text,
        detail -> Text,
        ip -> Text,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

diesel::table! {
    clients (id) {
        id -> Int8,
        org_id -> Int8,
        name -> Text,
        notes -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    invitations (id) {
        id -> Int8,
        org_id -> Int8,
        email -> Text,
        role -> Text,
        token_hash -> Bytea,
        invited_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        accepted_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        state -> Text,
        run_at -> Timestamptz,
        attempts -> Int4,
        max_attempts -> Int4,
        lease_expires_at -> Nullable<Timestamptz>,
        holder -> Nullable<Text>,
        attempt_token_hash -> Nullable<Bytea>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    memberships (org_id, user_id) {
        org_id -> Int8,
        user_id -> Int8,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    org_data_keys (id) {
        id -> Int8,
        org_id -> Int8,
        wrapped_key -> Bytea,
        master_key_id -> Text,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    orgs (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Int8,
        user_id -> Int8,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Int8,
        user_id -> Int8,
        code_hash -> Bytea,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Int8,
        token_hash -> Bytea,
        user_id -> Int8,
        org_id -> Nullable<Int8>,
        stage -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        user_agent -> Text,
    }
}

diesel::table! {
    targets (id) {
        id -> Int8,
        org_id -> Int8,
        client_id -> Int8,
        name -> Text,
        url -> Text,
        viewport_width -> Int4,
        viewport_height -> Int4,
        consent_mode -> Text,
        capture_policy_pages -> Bool,
        wait_ms -> Int4,
        schedule -> Nullable<Text>,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        totp_secret -> Nullable<Bytea>,
        totp_enabled_at -> Nullable<Timestamptz>,
        totp_last_step -> Nullable<Int8>,
        created_at -> Timestamptz,
        second_factor_failures -> Int4,
        second_factor_locked_until -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(api_keys -> orgs (org_id));
diesel::joinable!(api_keys -> users (created_by));
diesel::joinable!(clients -> orgs (org_id));
diesel::joinable!(invitations -> orgs (org_id));
diesel::joinable!(invitations -> users (invited_by));
diesel::joinable!(memberships -> orgs (org_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(org_data_keys -> orgs (org_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(sessions -> orgs (org_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    audit_log,
    clients,
    invitations,
    jobs,
    memberships,
    org_data_keys,
    orgs,
    password_resets,
    recovery_codes,
    sessions,
    targets,
    users,
);
