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
    // the process that made the change; the database signals the others).
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
    // The database's trigger signals every process, which forgets its cached keys: refused
    // within a second, not after the cache's lifetime.
    let deleted_at = std::time::Instant::now();
    while key.get("/api/v1/clients").await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            deleted_at.elapsed() < std::time::Duration::from_secs(1),
            "the key still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
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

/// Finding 9: a comparison computed on request is kept (sealed) and read back when asked again;
/// computing new ones is limited per organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_are_kept_and_computing_them_is_rate_limited_per_organization() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first("Agency").await;
    let api = app.api(&app.create_key(&owner, "read").await);
    let write = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&write, "https://shop.example.com/").await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let mut snapshots = Vec::new();
    for seed in 0..12 {
        let scan = scan_now(&write, target).await;
        let job = runner.claim(5).await.unwrap();
        assert_eq!(job.scan_id, scan);
        let png = fake_png(&format!("shot {seed}"));
        let doc = sample_snapshot(&job.url, &png, &png);
        assert_eq!(
            runner.deliver(&job, &png, &png, &doc).await.status(),
            StatusCode::OK
        );
        snapshots.push(app.count("SELECT max(id) AS n FROM snapshots").await);
    }
    let limit = siteward::web::rate_limit::rules::COMPARE_ORG.max;
    let kept_comparisons = || {
        let blobs = app.data_dir.path().join("blobs");
        walk(&blobs)
            .into_iter()
            .filter(|path| path.contains("/comparison/"))
            .count()
    };

    // The same comparison asked for far more often than the limit is computed once.
    let latest = format!("/api/v1/targets/{target}/diff");
    let first: serde_json::Value = api.get(&latest).await.json().await.unwrap();
    assert_eq!(kept_comparisons(), 1);
    for n in 0..limit + 10 {
        let again = api.get(&latest).await;
        assert_eq!(again.status(), StatusCode::OK, "asked again, {n}");
        let again: serde_json::Value = again.json().await.unwrap();
        assert_eq!(again, first, "read back as computed");
    }
    assert_eq!(kept_comparisons(), 1);

    // New comparisons: the first ones in the minute are computed, then refused.
    let pairs = snapshots
        .iter()
        .flat_map(|a| snapshots.iter().map(move |b| (*a, *b)))
        .filter(|(a, b)| a != b);
    let (mut computed, mut refused) = (1, None);
    for (from, to) in pairs {
        let response = api
            .get(&format!(
                "/api/v1/targets/{target}/diff?from={from}&to={to}"
            ))
            .await;
        match response.status() {
            StatusCode::OK => computed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                refused = Some((from, to));
                break;
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(computed, limit, "computed until the limit");
    assert!(refused.is_some(), "then refused");
    assert_eq!(kept_comparisons() as u32, limit);
    // What was kept is still served while new work is refused.
    assert_eq!(api.get(&latest).await.status(), StatusCode::OK);
}

/// Every file below `dir`, as paths.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// Finding 11: `/metrics` is the operator's. With a token it asks for it; without one it answers
/// only callers on this machine that came through no proxy.
#[tokio::test]
async fn metrics_answer_only_the_operator() {
    let token = "scrape-me-0123456789abcdef";
    let app = TestApp::spawn_with(&[("SITEWARD_METRICS_TOKEN", token)]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    assert_eq!(status(client.get(&url)).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(client.get(&url).bearer_auth("scrape-me-wrong")).await,
        StatusCode::NOT_FOUND
    );
    let scraped = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("siteward_http_requests_total")
    );

    let open = TestApp::spawn().await;
    let url = format!("{}/metrics", open.base);
    assert_eq!(status(client.get(&url)).await, StatusCode::OK);
    assert_eq!(
        status(client.get(&url).header("x-forwarded-for", "203.0.113.9")).await,
        StatusCode::NOT_FOUND,
        "a visitor through a proxy on this machine is not the operator"
    );
}

#[tokio::test]
async fn a_refused_flood_is_answered_without_the_database_until_its_window_ends() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let token = "x".repeat(43);
    let view = || client.get(format!("{}/r/{token}", app.base)).send();
    for _ in 0..60 {
        assert_eq!(view().await.unwrap().status(), StatusCode::NOT_FOUND);
    }
    let refused = view().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM rate_limit_windows WHERE rule = 'share/ip'")
            .await,
        1,
        "the shared count is in the database"
    );
    // With the shared row gone, this process still remembers the refusal for the window's rest.
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("DELETE FROM rate_limit_windows"),
        &mut conn,
    )
    .await
    .unwrap();
    let remembered = view().await.unwrap();
    assert_eq!(remembered.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = remembered.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM rate_limit_windows")
            .await,
        0,
        "the refused request never reached the database"
    );
}
