// @generated automatically by Diesel CLI.

diesel::table! {
    alert_rules (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Nullable<Int8>,
        rule -> Text,
        severity -> Text,
        enabled -> Bool,
    }
}

diesel::table! {
    alerts (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        rule -> Text,
        severity -> Text,
        fingerprint -> Text,
        title -> Text,
        detail -> Jsonb,
        state -> Text,
        first_snapshot_id -> Nullable<Int8>,
        last_snapshot_id -> Nullable<Int8>,
        occurrences -> Int4,
        reopened -> Int4,
        opened_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        acknowledged_at -> Nullable<Timestamptz>,
        acknowledged_by -> Nullable<Int8>,
        resolved_at -> Nullable<Timestamptz>,
        resolved_by -> Nullable<Int8>,
        resolution -> Nullable<Text>,
    }
}

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
        version -> Int2,
        personal_salt -> Nullable<Bytea>,
        personal_digest -> Nullable<Bytea>,
        erased_by -> Nullable<Int8>,
    }
}

diesel::table! {
    blob_deletions (id) {
        id -> Int8,
        org_id -> Int8,
        key -> Text,
        whole_folder -> Bool,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    checkout_run_artifacts (run_id, name) {
        run_id -> Int8,
        name -> Text,
        org_id -> Int8,
        content_type -> Text,
        size_bytes -> Int8,
        sha256 -> Text,
        attempt -> Int4,
        uploaded_at -> Timestamptz,
        keyed_by_attempt -> Bool,
    }
}

diesel::table! {
    checkout_run_pages (run_id, index) {
        run_id -> Int8,
        index -> Int4,
        org_id -> Int8,
        after_step -> Int4,
        url -> Text,
        path -> Text,
        script_count -> Int4,
        third_party_hosts -> Jsonb,
        changes -> Nullable<Jsonb>,
        previous_run_id -> Nullable<Int8>,
    }
}

diesel::table! {
    checkout_run_steps (run_id, number) {
        run_id -> Int8,
        number -> Int4,
        org_id -> Int8,
        line -> Int4,
        kind -> Text,
        name -> Nullable<Text>,
        description -> Text,
        status -> Text,
        duration_ms -> Int8,
        url -> Text,
        error -> Nullable<Jsonb>,
        console_errors -> Jsonb,
        failed_requests -> Jsonb,
        screenshot -> Nullable<Text>,
        page_says -> Jsonb,
        refused_requests -> Jsonb,
    }
}

diesel::table! {
    checkout_runs (id) {
        id -> Int8,
        org_id -> Int8,
        test_id -> Int8,
        target_id -> Int8,
        job_id -> Int8,
        trigger -> Text,
        requested_by -> Nullable<Int8>,
        script -> Text,
        outcome -> Nullable<Text>,
        failed_step -> Nullable<Int4>,
        failure -> Nullable<Text>,
        stopped_at -> Nullable<Int4>,
        duration_ms -> Nullable<Int8>,
        runner_id -> Nullable<Int8>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    checkout_secrets (test_id, name) {
        test_id -> Int8,
        name -> Text,
        org_id -> Int8,
        sealed -> Bytea,
        key_id -> Text,
        hosts -> Text,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Int8>,
    }
}

diesel::table! {
    checkout_tests (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        name -> Text,
        script -> Text,
        schedule -> Nullable<Text>,
        enabled -> Bool,
        last_scheduled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
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
        contact_name -> Text,
        contact_email -> Text,
        report_schedule -> Nullable<Text>,
        report_attach_pdf -> Bool,
    }
}

diesel::table! {
    compliance_findings (compliance_scan_id, fingerprint) {
        compliance_scan_id -> Int8,
        fingerprint -> Text,
        org_id -> Int8,
        target_id -> Int8,
        rule -> Text,
        severity -> Text,
        visit -> Text,
        title -> Text,
    }
}

diesel::table! {
    compliance_scans (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        trigger -> Text,
        requested_by -> Nullable<Int8>,
        gpc -> Bool,
        state -> Text,
        error -> Nullable<Text>,
        report_sha256 -> Nullable<Text>,
        finding_count -> Nullable<Int4>,
        worst_severity -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    crawl_pages (crawl_id, number) {
        crawl_id -> Int8,
        number -> Int4,
        org_id -> Int8,
        url -> Text,
        depth -> Int4,
        found_by -> Jsonb,
        scan_id -> Int8,
        outcome -> Nullable<Text>,
        reason -> Nullable<Text>,
        final_url -> Nullable<Text>,
        links -> Nullable<Int4>,
        session -> Nullable<Text>,
    }
}

diesel::table! {
    crawls (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        trigger -> Text,
        requested_by -> Nullable<Int8>,
        start_url -> Text,
        lanes -> Int4,
        frontier -> Jsonb,
        sitemaps -> Jsonb,
        state -> Text,
        error -> Nullable<Text>,
        deadline -> Timestamptz,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        site_sha256 -> Nullable<Text>,
        page_count -> Nullable<Int4>,
        unreachable_count -> Nullable<Int4>,
        previous_crawl_id -> Nullable<Int8>,
        changes -> Nullable<Jsonb>,
    }
}

diesel::table! {
    exports (id) {
        id -> Int8,
        org_id -> Int8,
        client_id -> Nullable<Int8>,
        requested_by -> Nullable<Int8>,
        job_id -> Nullable<Int8>,
        state -> Text,
        token_hash -> Nullable<Bytea>,
        parts -> Int4,
        size_bytes -> Int8,
        sha256 -> Nullable<Text>,
        artifacts -> Int4,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        expires_at -> Nullable<Timestamptz>,
        downloaded_at -> Nullable<Timestamptz>,
        attempt -> Int4,
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
    notification_channels (id) {
        id -> Int8,
        org_id -> Int8,
        name -> Text,
        kind -> Text,
        min_severity -> Text,
        config_sealed -> Bytea,
        display -> Text,
        enabled -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    notification_deliveries (id) {
        id -> Int8,
        org_id -> Int8,
        channel_id -> Int8,
        alert_id -> Nullable<Int8>,
        dedupe_key -> Text,
        status -> Text,
        attempts -> Int4,
        response_code -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
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
        brand_name -> Nullable<Text>,
        brand_color -> Nullable<Text>,
        logo -> Nullable<Bytea>,
        logo_type -> Nullable<Text>,
        keep_snapshots_days -> Int4,
        keep_screenshots_days -> Int4,
        keep_checkout_screenshots_days -> Int4,
        keep_history_days -> Int4,
        erasure_requested_at -> Nullable<Timestamptz>,
        erase_after -> Nullable<Timestamptz>,
        max_crawl_pages -> Int4,
        crawl_concurrency -> Int4,
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
    payment_script_decisions (id) {
        id -> Int8,
        org_id -> Int8,
        version_id -> Int8,
        decision -> Text,
        justification -> Text,
        decided_by -> Nullable<Int8>,
        decided_by_name -> Text,
        rule_id -> Nullable<Int8>,
        decided_at -> Timestamptz,
    }
}

diesel::table! {
    payment_script_rules (id) {
        id -> Int8,
        org_id -> Int8,
        host -> Text,
        justification -> Text,
        created_by -> Nullable<Int8>,
        created_by_name -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_by_name -> Nullable<Text>,
    }
}

diesel::table! {
    payment_script_versions (id) {
        id -> Int8,
        org_id -> Int8,
        script_id -> Int8,
        sha256 -> Text,
        size_bytes -> Int8,
        first_bytes -> Text,
        frame_url -> Text,
        in_iframe -> Bool,
        injected_by -> Nullable<Text>,
        integrity_state -> Text,
        integrity -> Nullable<Text>,
        first_seen_snapshot_id -> Nullable<Int8>,
        last_seen_snapshot_id -> Nullable<Int8>,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    payment_scripts (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        identity -> Text,
        kind -> Text,
        url -> Nullable<Text>,
        host -> Nullable<Text>,
        first_seen_at -> Timestamptz,
    }
}

diesel::table! {
    rate_limit_windows (rule, caller) {
        rule -> Text,
        caller -> Text,
        expires_at -> Timestamptz,
        count -> Int4,
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
    report_deliveries (id) {
        id -> Int8,
        org_id -> Int8,
        client_id -> Int8,
        period -> Text,
        report_id -> Nullable<Int8>,
        status -> Text,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        mail_subject -> Nullable<Text>,
        mail_body -> Nullable<Text>,
    }
}

diesel::table! {
    report_shares (id) {
        id -> Int8,
        report_id -> Int8,
        org_id -> Int8,
        token_prefix -> Text,
        token_hash -> Bytea,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        views -> Int4,
        last_viewed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    reports (id) {
        id -> Int8,
        org_id -> Int8,
        client_id -> Int8,
        target_id -> Nullable<Int8>,
        title -> Text,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        sha256 -> Text,
        size_bytes -> Int8,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        pdf_job_id -> Nullable<Int8>,
        pdf_attempt -> Nullable<Int4>,
        pdf_sha256 -> Nullable<Text>,
        pdf_size_bytes -> Nullable<Int8>,
        pdf_done -> Bool,
    }
}

diesel::table! {
    runner_keys (id) {
        id -> Int8,
        key_id -> Text,
        public_key -> Text,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    runners (id) {
        id -> Int8,
        name -> Text,
        token_prefix -> Text,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        last_seen_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    scan_artifacts (scan_id, name) {
        scan_id -> Int8,
        name -> Text,
        org_id -> Int8,
        content_type -> Text,
        size_bytes -> Int8,
        sha256 -> Text,
        attempt -> Int4,
        uploaded_at -> Timestamptz,
        keyed_by_attempt -> Bool,
    }
}

diesel::table! {
    scans (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        job_id -> Int8,
        snapshot_id -> Int8,
        trigger -> Text,
        requested_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        compliance_scan_id -> Nullable<Int8>,
        visit -> Nullable<Text>,
        crawl_id -> Nullable<Int8>,
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
    snapshot_blocked (snapshot_id, position) {
        snapshot_id -> Int8,
        position -> Int4,
        org_id -> Int8,
        host -> Text,
        port -> Int4,
        address -> Nullable<Text>,
        reason -> Text,
    }
}

diesel::table! {
    snapshot_cookies (snapshot_id, name, domain, path) {
        snapshot_id -> Int8,
        org_id -> Int8,
        name -> Text,
        domain -> Text,
        path -> Text,
        party -> Text,
        session -> Bool,
        expires -> Nullable<Text>,
        secure -> Bool,
        http_only -> Bool,
        same_site -> Text,
        set_by_host -> Nullable<Text>,
        category -> Nullable<Text>,
    }
}

diesel::table! {
    snapshot_diffs (snapshot_id) {
        snapshot_id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        previous_snapshot_id -> Nullable<Int8>,
        changes -> Jsonb,
        visual -> Jsonb,
        change_count -> Int4,
        computed_at -> Timestamptz,
    }
}

diesel::table! {
    snapshot_hosts (snapshot_id, host) {
        snapshot_id -> Int8,
        host -> Text,
        org_id -> Int8,
        party -> Text,
        requests -> Int4,
        category -> Nullable<Text>,
    }
}

diesel::table! {
    snapshot_scripts (snapshot_id, position) {
        snapshot_id -> Int8,
        position -> Int4,
        org_id -> Int8,
        url -> Nullable<Text>,
        host -> Nullable<Text>,
        party -> Nullable<Text>,
        sha256 -> Text,
        size_bytes -> Int8,
    }
}

diesel::table! {
    snapshots (id) {
        id -> Int8,
        org_id -> Int8,
        target_id -> Int8,
        scan_id -> Int8,
        attempt -> Int4,
        runner_id -> Nullable<Int8>,
        requested_url -> Text,
        final_url -> Text,
        http_status -> Nullable<Int4>,
        title -> Text,
        scan_ms -> Int8,
        request_count -> Int4,
        console_error_count -> Int4,
        limits_hit -> Jsonb,
        captured_at -> Timestamptz,
        visit -> Nullable<Text>,
        page_key -> Nullable<Text>,
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
        last_scheduled_at -> Nullable<Timestamptz>,
        page_kind -> Text,
        visual_threshold -> Float4,
        ignore_selectors -> Jsonb,
        ignore_regions -> Jsonb,
        dwell_ms -> Int4,
        device -> Text,
        languages -> Text,
        timezone -> Text,
        compliance_schedule -> Nullable<Text>,
        compliance_gpc -> Bool,
        last_compliance_scheduled_at -> Nullable<Timestamptz>,
        kind -> Text,
        crawl_rules -> Nullable<Jsonb>,
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

diesel::joinable!(alert_rules -> orgs (org_id));
diesel::joinable!(alert_rules -> targets (target_id));
diesel::joinable!(alerts -> orgs (org_id));
diesel::joinable!(alerts -> targets (target_id));
diesel::joinable!(api_keys -> orgs (org_id));
diesel::joinable!(api_keys -> users (created_by));
diesel::joinable!(checkout_run_artifacts -> checkout_runs (run_id));
diesel::joinable!(checkout_run_pages -> checkout_runs (run_id));
diesel::joinable!(checkout_run_steps -> checkout_runs (run_id));
diesel::joinable!(checkout_runs -> checkout_tests (test_id));
diesel::joinable!(checkout_runs -> jobs (job_id));
diesel::joinable!(checkout_runs -> orgs (org_id));
diesel::joinable!(checkout_runs -> runners (runner_id));
diesel::joinable!(checkout_runs -> targets (target_id));
diesel::joinable!(checkout_runs -> users (requested_by));
diesel::joinable!(checkout_secrets -> checkout_tests (test_id));
diesel::joinable!(checkout_secrets -> orgs (org_id));
diesel::joinable!(checkout_secrets -> users (updated_by));
diesel::joinable!(checkout_tests -> orgs (org_id));
diesel::joinable!(checkout_tests -> targets (target_id));
diesel::joinable!(clients -> orgs (org_id));
diesel::joinable!(compliance_findings -> compliance_scans (compliance_scan_id));
diesel::joinable!(compliance_findings -> orgs (org_id));
diesel::joinable!(compliance_findings -> targets (target_id));
diesel::joinable!(compliance_scans -> orgs (org_id));
diesel::joinable!(compliance_scans -> targets (target_id));
diesel::joinable!(compliance_scans -> users (requested_by));
diesel::joinable!(crawl_pages -> crawls (crawl_id));
diesel::joinable!(crawl_pages -> orgs (org_id));
diesel::joinable!(crawl_pages -> scans (scan_id));
diesel::joinable!(crawls -> orgs (org_id));
diesel::joinable!(crawls -> targets (target_id));
diesel::joinable!(crawls -> users (requested_by));
diesel::joinable!(exports -> clients (client_id));
diesel::joinable!(exports -> jobs (job_id));
diesel::joinable!(exports -> orgs (org_id));
diesel::joinable!(exports -> users (requested_by));
diesel::joinable!(invitations -> orgs (org_id));
diesel::joinable!(invitations -> users (invited_by));
diesel::joinable!(memberships -> orgs (org_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(notification_channels -> orgs (org_id));
diesel::joinable!(notification_deliveries -> alerts (alert_id));
diesel::joinable!(notification_deliveries -> notification_channels (channel_id));
diesel::joinable!(notification_deliveries -> orgs (org_id));
diesel::joinable!(org_data_keys -> orgs (org_id));
diesel::joinable!(password_resets -> users (user_id));
diesel::joinable!(payment_script_decisions -> orgs (org_id));
diesel::joinable!(payment_script_decisions -> payment_script_rules (rule_id));
diesel::joinable!(payment_script_decisions -> payment_script_versions (version_id));
diesel::joinable!(payment_script_decisions -> users (decided_by));
diesel::joinable!(payment_script_rules -> orgs (org_id));
diesel::joinable!(payment_script_rules -> users (created_by));
diesel::joinable!(payment_script_versions -> orgs (org_id));
diesel::joinable!(payment_script_versions -> payment_scripts (script_id));
diesel::joinable!(payment_scripts -> orgs (org_id));
diesel::joinable!(payment_scripts -> targets (target_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(report_deliveries -> clients (client_id));
diesel::joinable!(report_deliveries -> orgs (org_id));
diesel::joinable!(report_deliveries -> reports (report_id));
diesel::joinable!(report_shares -> orgs (org_id));
diesel::joinable!(report_shares -> reports (report_id));
diesel::joinable!(report_shares -> users (created_by));
diesel::joinable!(reports -> clients (client_id));
diesel::joinable!(reports -> jobs (pdf_job_id));
diesel::joinable!(reports -> orgs (org_id));
diesel::joinable!(reports -> targets (target_id));
diesel::joinable!(reports -> users (created_by));
diesel::joinable!(scan_artifacts -> orgs (org_id));
diesel::joinable!(scan_artifacts -> scans (scan_id));
diesel::joinable!(scans -> compliance_scans (compliance_scan_id));
diesel::joinable!(scans -> crawls (crawl_id));
diesel::joinable!(scans -> jobs (job_id));
diesel::joinable!(scans -> orgs (org_id));
diesel::joinable!(scans -> targets (target_id));
diesel::joinable!(scans -> users (requested_by));
diesel::joinable!(sessions -> orgs (org_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(snapshot_blocked -> snapshots (snapshot_id));
diesel::joinable!(snapshot_cookies -> snapshots (snapshot_id));
diesel::joinable!(snapshot_diffs -> orgs (org_id));
diesel::joinable!(snapshot_diffs -> targets (target_id));
diesel::joinable!(snapshot_hosts -> snapshots (snapshot_id));
diesel::joinable!(snapshot_scripts -> snapshots (snapshot_id));
diesel::joinable!(snapshots -> orgs (org_id));
diesel::joinable!(snapshots -> runners (runner_id));
diesel::joinable!(snapshots -> scans (scan_id));
diesel::joinable!(snapshots -> targets (target_id));

diesel::allow_tables_to_appear_in_same_query!(
    alert_rules,
    alerts,
    api_keys,
    audit_log,
    blob_deletions,
    checkout_run_artifacts,
    checkout_run_pages,
    checkout_run_steps,
    checkout_runs,
    checkout_secrets,
    checkout_tests,
    clients,
    compliance_findings,
    compliance_scans,
    crawl_pages,
    crawls,
    exports,
    invitations,
    jobs,
    memberships,
    notification_channels,
    notification_deliveries,
    org_data_keys,
    orgs,
    password_resets,
    payment_script_decisions,
    payment_script_rules,
    payment_script_versions,
    payment_scripts,
    rate_limit_windows,
    recovery_codes,
    report_deliveries,
    report_shares,
    reports,
    runner_keys,
    runners,
    scan_artifacts,
    scans,
    sessions,
    snapshot_blocked,
    snapshot_cookies,
    snapshot_diffs,
    snapshot_hosts,
    snapshot_scripts,
    snapshots,
    targets,
    users,
);
