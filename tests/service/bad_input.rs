//! Bad input on every form and endpoint of the route table answers 4xx with a message and
//! changes nothing: hostile values in every field, and ids that are not ids or not there.

use reqwest::{Method, StatusCode};
use siteward::web::{RouteDoc, Surface};

use super::support::*;

/// A fingerprint of everything people and keys can change (not sessions, not the audit log,
/// not `last_used_at`).
async fn fingerprint(app: &TestApp) -> String {
    #[derive(diesel::QueryableByName)]
    struct Digest {
        #[diesel(sql_type = diesel::sql_types::Text)]
        digest: String,
    }
    let tables = [
        "SELECT id, email, name, password_hash, totp_secret, totp_enabled_at FROM users",
        "SELECT id, name FROM orgs",
        "SELECT org_id, user_id, role FROM memberships",
        "SELECT id, email, role, accepted_at, revoked_at FROM invitations",
        "SELECT id, name, scope, revoked_at FROM api_keys",
        "SELECT id, name, notes, updated_at FROM clients",
        "SELECT * FROM targets",
        "SELECT id, used_at FROM recovery_codes",
        "SELECT id, used_at FROM password_resets",
        "SELECT id, state, attempts, holder, last_error, run_at FROM jobs",
        "SELECT * FROM scan_artifacts",
        "SELECT * FROM snapshots",
        "SELECT id, state, severity, acknowledged_at, resolved_at FROM alerts",
        "SELECT * FROM alert_rules",
        "SELECT id, name, kind, min_severity, display, enabled FROM notification_channels",
        "SELECT id, name, script, schedule, enabled, updated_at FROM checkout_tests",
        "SELECT test_id, name, sealed, updated_at FROM checkout_secrets",
        "SELECT id, outcome, failure FROM checkout_runs",
        "SELECT * FROM checkout_run_steps",
        "SELECT * FROM compliance_scans",
        "SELECT * FROM reports",
        "SELECT id, report_id, expires_at, revoked_at FROM report_shares",
    ];
    let mut conn = app.db().await;
    let mut all = String::new();
    for query in tables {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') AS digest FROM ({query}) x"
        );
        let digest: Digest =
            diesel_async::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn)
                .await
                .unwrap();
        all.push_str(&digest.digest);
    }
    all
}

/// Every value of a urlencoded or JSON example replaced by something no field accepts.
fn hostile(doc: &RouteDoc) -> Option<String> {
    let junk = format!("\u{1}{}", "\u{7}x".repeat(1500));
    if doc.example.is_empty() {
        return None;
    }
    if matches!(doc.surface, Surface::Api | Surface::Internal) {
        let mut value: serde_json::Value = serde_json::from_str(doc.example).ok()?;
        for (_, field) in value.as_object_mut()?.iter_mut() {
            *field = match field {
                serde_json::Value::Number(_) => serde_json::json!(-1),
                serde_json::Value::Bool(_) => serde_json::json!("not a boolean"),
                _ => serde_json::json!(junk),
            };
        }
        return Some(value.to_string());
    }
    let fields: Vec<(String, String)> = doc
        .example
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, _)| (name.to_string(), junk.clone()))
        .collect();
    Some(serde_urlencoded::to_string(fields).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_and_bad_ids_on_every_route_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    app.invite_and_sign_up(&owner, "member").await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    let client = api
        .send_json(
            Method::POST,
            "/api/v1/clients",
            serde_json::json!({"name": "Shop"}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    api.send_json(
        Method::POST,
        &format!("/api/v1/clients/{client}/targets"),
        serde_json::json!({"url": "https://shop.example.com/"}),
    )
    .await;
    let target = app.count("SELECT max(id) AS n FROM targets").await;
    let member = app
        .count("SELECT max(user_id) AS n FROM memberships WHERE role = 'member'")
        .await;
    let org = app.count("SELECT min(id) AS n FROM orgs").await;
    app.invite(&owner, "pending@example.com", "member").await;
    let invitation = app.count("SELECT max(id) AS n FROM invitations").await;
    let key_id = app.count("SELECT max(id) AS n FROM api_keys").await;
    let scan = scan_now(&api, target).await;
    let job_id = app
        .count(&format!("SELECT job_id AS n FROM scans WHERE id = {scan}"))
        .await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "bad-input").await);
    let channel = api
        .send_json(
            Method::POST,
            "/api/v1/notification-channels",
            serde_json::json!({"name": "Ops", "kind": "email", "to": "ops@example.com"}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["channel"]["id"]
        .as_i64()
        .unwrap();
    let alert = app
        .count(&format!(
            "INSERT INTO alerts (org_id, target_id, rule, severity, fingerprint, title, detail, state)
             VALUES ({org}, {target}, 'visual_change', 'medium', 'visual:viewport', 'Looks different', '{{}}', 'open')
             RETURNING id AS n"
        ))
        .await;
    let test = api
        .send_json(
            Method::POST,
            &format!("/api/v1/targets/{target}/checkout-tests"),
            serde_json::json!({"name": "Checkout", "script": "steps:\n  - goto: /\n  - stop\n"}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let run = api
        .request(Method::POST, &format!("/api/v1/checkout-tests/{test}/runs"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let report = api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{client}/reports"),
            serde_json::json!({"days": 7}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let share = api
        .send_json(
            Method::POST,
            &format!("/api/v1/reports/{report}/shares"),
            serde_json::json!({}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["share"]["id"]
        .as_i64()
        .unwrap();
    let version = app
        .count(&format!(
            "WITH script AS (
               INSERT INTO payment_scripts (org_id, target_id, identity, kind, url, host)
               VALUES ({org}, {target}, 'http://cdn.test/a.js', 'external', 'http://cdn.test/a.js', 'cdn.test')
               RETURNING id)
             INSERT INTO payment_script_versions (org_id, script_id, sha256, size_bytes, frame_url,
                                                  in_iframe, integrity_state)
             SELECT {org}, id, '{sha}', 1, 'http://shop.test/', false, 'missing' FROM script
             RETURNING id AS n",
            sha = "ab".repeat(32),
        ))
        .await;
    let payment_rule = app
        .count(&format!(
            "INSERT INTO payment_script_rules (org_id, host, justification, created_by_name)
             VALUES ({org}, 'js.stripe.com', 'Card fields', 'test') RETURNING id AS n"
        ))
        .await;
    let real_id = |name: &str| -> String {
        match name {
            "client_id" => client.to_string(),
            "target_id" => target.to_string(),
            "user_id" => member.to_string(),
            "invitation_id" => invitation.to_string(),
            "key_id" => key_id.to_string(),
            "org_id" => org.to_string(),
            "job_id" => job_id.to_string(),
            "scan_id" => scan.to_string(),
            "artifact" => "viewport.png".into(),
            "rule" => "visual_change".into(),
            "alert_id" => alert.to_string(),
            "channel_id" => channel.to_string(),
            "test_id" => test.to_string(),
            "run_id" => run.to_string(),
            "secret" => "card_number".into(),
            "screenshot" => "step-1.png".into(),
            "report_id" => report.to_string(),
            "share_id" => share.to_string(),
            "version_id" => version.to_string(),
            "rule_id" => payment_rule.to_string(),
            other => panic!("teach the bad-input test about `{other}`"),
        }
    };
    // Two-factor enrolment under way, so that its confirmation step takes input.
    let enrolment = owner.post_form("/settings/two-factor", &[]).await;
    assert_eq!(enrolment.status(), StatusCode::OK);
    let before = fingerprint(&app).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for route in siteward::app::route_table() {
        let doc = &route.doc;
        if doc.method == actix_web::http::Method::GET
            || doc.surface == Surface::Public
            || doc.ends_session
        {
            continue;
        }
        let params = doc.params();
        let fill = |value: &dyn Fn(&str) -> String| {
            let mut path = doc.path.to_string();
            for name in &params {
                path = path.replace(&format!("{{{name}}}"), &value(name));
            }
            path
        };
        let mut attempts: Vec<(String, Option<String>)> = Vec::new();
        if !params.is_empty() {
            attempts.push((fill(&|_| "not-an-id".into()), None));
            attempts.push((fill(&|_| "999999999".into()), None));
        }
        if let Some(body) = hostile(doc) {
            attempts.push((fill(&|name| real_id(name)), Some(body)));
        }
        for (path, body) in attempts {
            let method = Method::from_bytes(doc.method.as_str().as_bytes()).unwrap();
            let response = match doc.surface {
                Surface::Internal => runner
                    .request(method, &path)
                    .header("content-type", "application/json")
                    .body(body.clone().unwrap_or_else(|| "{}".into()))
                    .send()
                    .await
                    .unwrap(),
                Surface::Api => api
                    .request(method, &path)
                    .header("content-type", "application/json")
                    .body(body.clone().unwrap_or_else(|| "{}".into()))
                    .send()
                    .await
                    .unwrap(),
                _ => {
                    let token = owner.csrf().await;
                    let form = match &body {
                        Some(fields) => format!("{fields}&_csrf={token}"),
                        None => format!("_csrf={token}"),
                    };
                    owner.post_raw(&path, form).await
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            checked += 1;
            let clear = match doc.surface {
                Surface::Api | Surface::Internal => text.contains("\"detail\""),
                _ => text.contains("class=\"error\"") || text.contains("<h1>"),
            };
            if !status.is_client_error() || !clear {
                failures.push(format!(
                    "{} {path} ({}): {status}",
                    doc.method,
                    if body.is_some() {
                        "hostile body"
                    } else {
                        "bad id"
                    }
                ));
            }
        }
    }
    assert!(checked > 30, "{checked} attempts");
    assert!(
        failures.is_empty(),
        "{} of {checked} attempts were not refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        fingerprint(&app).await,
        before,
        "bad input changed stored data"
    );
    assert_eq!(StatusCode::OK, owner.get("/clients").await.status());
}
