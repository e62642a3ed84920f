//! The findings of the December 2026 security review, each as the attack that worked before.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::*;

/// An admin API call any read-write key may make: create a client.
async fn create_client(api: &ApiClient) -> StatusCode {
    api.send_json(
        Method::POST,
        "/api/v1/clients",
        json!({"name": format!("Client {}", unique())}),
    )
    .await
    .status()
}

#[tokio::test]
async fn api_keys_act_with_at_most_their_creators_current_role() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let admin = app.invite_and_sign_up(&owner, "admin").await;
    let admin_id = app.user_id(&admin.email).await;
    let write_key = app.api(&app.create_key(&admin, "read_write").await);
    let read_key = app.api(&app.create_key(&admin, "read").await);
    assert_eq!(create_client(&write_key).await, StatusCode::CREATED);
    assert_eq!(
        write_key.get("/api/v1/clients").await.status(),
        StatusCode::OK
    );

    // Demoted: the read-write key acts as a member from the next request on (no cache delay on
    // the process that made the change; other processes follow within KEY_CACHE_TTL, 1 s).
    let response = owner
        .post_form(&format!("/members/{admin_id}/role"), &[("role", "member")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(create_client(&write_key).await, StatusCode::FORBIDDEN);
    assert_eq!(
        write_key.get("/api/v1/clients").await.status(),
        StatusCode::OK
    );

    // Promoted again, the key's own scope is the ceiling once more.
    owner
        .post_form(&format!("/members/{admin_id}/role"), &[("role", "admin")])
        .await;
    assert_eq!(create_client(&write_key).await, StatusCode::CREATED);
    assert_eq!(create_client(&read_key).await, StatusCode::FORBIDDEN);

    // Removed: every key they made stops at once and is recorded as revoked.
    let response = owner
        .post_form(&format!("/members/{admin_id}/remove"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        write_key.get("/api/v1/clients").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        read_key.get("/api/v1/clients").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM api_keys WHERE created_by = {admin_id} AND revoked_at IS NULL"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn a_key_whose_creator_left_by_another_way_is_refused_too() {
    // A membership that disappears without the remove route (say, deleted by an operator) takes
    // the creator's keys with it, though they are not marked revoked.
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let admin = app.invite_and_sign_up(&owner, "admin").await;
    let admin_id = app.user_id(&admin.email).await;
    let key = app.api(&app.create_key(&admin, "read_write").await);
    assert_eq!(key.get("/api/v1/clients").await.status(), StatusCode::OK);
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "DELETE FROM memberships WHERE user_id = {admin_id}"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    // The cache holds a verified key for at most KEY_CACHE_TTL (1 s).
    tokio::time::sleep(siteward::auth::KEY_CACHE_TTL).await;
    assert_eq!(
        key.get("/api/v1/clients").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn test_sends_and_invitations_are_rate_limited() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let created = api
        .send_json(
            Method::POST,
            "/api/v1/notification-channels",
            json!({"name": "Mail", "kind": "email", "to": "victim@example.com", "min_severity": "info"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<serde_json::Value>().await.unwrap()["channel"]["id"]
        .as_i64()
        .unwrap();
    let test_send = || async {
        api.request(
            Method::POST,
            &format!("/api/v1/notification-channels/{id}/test"),
        )
        .send()
        .await
        .unwrap()
        .status()
    };
    for _ in 0..3 {
        assert_eq!(test_send().await, StatusCode::ACCEPTED);
    }
    assert_eq!(test_send().await, StatusCode::TOO_MANY_REQUESTS);

    // Invitations: twenty an hour per organization.
    for n in 0..20 {
        let response = owner
            .post_form(
                "/members/invitations",
                &[
                    ("email", &format!("person{n}@example.com")),
                    ("role", "member"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "invitation {n}");
    }
    let response = owner
        .post_form(
            "/members/invitations",
            &[("email", "one-too-many@example.com"), ("role", "member")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invitations WHERE email = 'one-too-many@example.com'")
            .await,
        0,
        "nothing is stored for a refused invitation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_computed_on_request_are_rate_limited_per_organization() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let api = app.api(&app.create_key(&owner, "read").await);
    let write = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&write, "https://shop.example.com/").await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    for seed in ["one", "two"] {
        let scan = scan_now(&write, target).await;
        let job = runner.claim(5).await.unwrap();
        assert_eq!(job.scan_id, scan);
        let png = fake_png(seed);
        let doc = sample_snapshot(&job.url, &png, &png);
        assert_eq!(
            runner.deliver(&job, &png, &png, &doc).await.status(),
            StatusCode::OK
        );
    }
    let diff = format!("/api/v1/targets/{target}/diff");
    let limit = siteward::web::rate_limit::rules::COMPARE_ORG.max;
    for n in 0..limit {
        assert_eq!(
            api.get(&diff).await.status(),
            StatusCode::OK,
            "comparison {n}"
        );
    }
    let refused = api.get(&diff).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}
