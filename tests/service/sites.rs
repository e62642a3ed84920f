//! Clients and targets through the dashboard and the API: validation, pagination, the OpenAPI
//! document, and bad input that changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::support::*;

async fn owner_with_key(app: &TestApp) -> (Browser, ApiClient) {
    let owner = app.sign_up_first("Agency").await;
    let key = app.create_key(&owner, "read_write").await;
    (owner, app.api(&key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_form_errors_are_shown_per_field_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_with_key(&app).await;
    let empty = owner.post_form("/clients", &[("name", "  ")]).await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.text().await.unwrap().contains("is required"));
    owner.post_form("/clients", &[("name", "Shop")]).await;
    let duplicate = owner.post_form("/clients", &[("name", "shop")]).await;
    assert_eq!(duplicate.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(duplicate.text().await.unwrap().contains("has this name"));
    let client = app.count("SELECT max(id) AS n FROM clients").await;

    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("url", "ftp://shop.example.com/")],
            "must use http or https",
        ),
        (
            &[("url", "https://admin:hunter2@shop.example.com/")],
            "must not contain a user name or password",
        ),
        (&[("url", "shop.example.com")], "must be a full URL"),
        (
            &[
                ("url", "https://shop.example.com/"),
                ("schedule", "every morning"),
            ],
            "five fields",
        ),
        (
            &[
                ("url", "https://shop.example.com/"),
                ("schedule", "* * * * *"),
            ],
            "more often than every 5 minutes",
        ),
        (
            &[
                ("url", "https://shop.example.com/"),
                ("viewport_width", "wide"),
            ],
            "whole number",
        ),
        (
            &[
                ("url", "https://shop.example.com/"),
                ("viewport_width", "10"),
            ],
            "between 320 and 3840",
        ),
        (
            &[
                ("url", "https://shop.example.com/"),
                ("consent_mode", "maybe"),
            ],
            "none, accept or reject",
        ),
        (
            &[("url", "https://shop.example.com/"), ("wait_ms", "99999")],
            "between 0 and 30000",
        ),
    ];
    for (fields, message) in cases {
        let response = owner
            .post_form(&format!("/clients/{client}/targets"), fields)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{fields:?}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains(message), "{fields:?} should say {message:?}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM targets").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE action LIKE 'target.%'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_bad_input_with_problem_details_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (_, api) = owner_with_key(&app).await;
    let created = api
        .send_json(
            Method::POST,
            "/api/v1/clients",
            json!({"name": "Shop", "notes": "EU store"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let client: Value = created.json().await.unwrap();
    let id = client["id"].as_i64().unwrap();
    let target: Value = api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{id}/targets"),
            json!({"url": "HTTPS://Shop.Example.com/#top", "schedule": "0 6 * * 1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(target["url"], "https://shop.example.com/", "normalized");
    assert_eq!(target["name"], "shop.example.com");
    assert!(
        target["next_run_at"]
            .as_str()
            .unwrap()
            .ends_with("06:00 UTC")
    );
    let target_id = target["id"].as_i64().unwrap();

    let bad: Vec<(Method, String, Value, u16, Option<&str>)> = vec![
        (Method::POST, "/api/v1/clients".into(), json!({}), 400, None),
        (
            Method::POST,
            "/api/v1/clients".into(),
            json!({"name": ""}),
            422,
            Some("name"),
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            json!({"name": "SHOP"}),
            422,
            Some("name"),
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            json!({"name": "X", "colour": "red"}),
            400,
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/clients/{id}/targets"),
            json!({"url": "ftp://x.example"}),
            422,
            Some("url"),
        ),
        (
            Method::POST,
            format!("/api/v1/clients/{id}/targets"),
            json!({}),
            422,
            Some("url"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"schedule": "*/1 * * * *"}),
            422,
            Some("schedule"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"viewport_height": 99999}),
            422,
            Some("viewport_height"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"wait_ms": "slow"}),
            400,
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"device": "tablet"}),
            422,
            Some("device"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"languages": "de_DE;q=1"}),
            422,
            Some("languages"),
        ),
        (
            Method::PATCH,
            format!("/api/v1/targets/{target_id}"),
            json!({"timezone": "Europe/Berlin; DROP"}),
            422,
            Some("timezone"),
        ),
        (
            Method::PATCH,
            "/api/v1/targets/abc".into(),
            json!({}),
            404,
            None,
        ),
        (
            Method::GET,
            "/api/v1/clients?cursor=garbage".into(),
            json!(null),
            422,
            Some("cursor"),
        ),
        (
            Method::GET,
            "/api/v1/clients?limit=0".into(),
            json!(null),
            422,
            Some("limit"),
        ),
        (
            Method::GET,
            "/api/v1/targets/999999999".into(),
            json!(null),
            404,
            None,
        ),
    ];
    for (method, path, body, status, field) in bad {
        let response = if body.is_null() {
            api.request(method.clone(), &path).send().await.unwrap()
        } else {
            api.send_json(method.clone(), &path, body.clone()).await
        };
        assert_eq!(response.status().as_u16(), status, "{method} {path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"].as_u64(), Some(status as u64));
        assert!(!problem["detail"].as_str().unwrap().is_empty());
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
    let unchanged: Value = api
        .get(&format!("/api/v1/targets/{target_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["schedule"], "0 6 * * 1");
    assert_eq!(unchanged["viewport_height"], 768);
    assert_eq!(
        (
            &unchanged["device"],
            &unchanged["languages"],
            &unchanged["timezone"]
        ),
        (
            &json!("desktop"),
            &json!("en-US,en"),
            &json!("Europe/Berlin")
        )
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM clients").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_through_with_cursors() {
    let app = TestApp::spawn().await;
    let (_, api) = owner_with_key(&app).await;
    for n in 0..5 {
        let response = api
            .send_json(
                Method::POST,
                "/api/v1/clients",
                json!({"name": format!("Client {n}")}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/clients?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page: Value = api.get(&path).await.json().await.unwrap();
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/clients?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        ["Client 4", "Client 3", "Client 2", "Client 1", "Client 0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_keys_read_and_revoked_keys_stop_working() {
    let app = TestApp::spawn().await;
    let (owner, _) = owner_with_key(&app).await;
    let read_key = app.create_key(&owner, "read").await;
    let read = app.api(&read_key);
    assert_eq!(read.get("/api/v1/clients").await.status(), StatusCode::OK);
    let refused = read
        .send_json(Method::POST, "/api/v1/clients", json!({"name": "Nope"}))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let org: Value = read.get("/api/v1/org").await.json().await.unwrap();
    assert_eq!(org["role"], "member");
    assert!(
        app.count("SELECT count(*) AS n FROM api_keys WHERE last_used_at IS NOT NULL")
            .await
            >= 1,
        "last use is recorded"
    );
    let stored = app
        .count(&format!(
            "SELECT count(*) AS n FROM api_keys WHERE secret_hash = '\\x{}'::bytea",
            hex::encode(siteward::crypto::token_hash(
                read_key.rsplit_once('_').unwrap().1
            ))
        ))
        .await;
    // The secret may contain '_': take everything after the prefix instead.
    let secret = &read_key[16..];
    let stored_full = app
        .count(&format!(
            "SELECT count(*) AS n FROM api_keys WHERE secret_hash = '\\x{}'::bytea",
            hex::encode(siteward::crypto::token_hash(secret))
        ))
        .await;
    assert_eq!(
        stored.max(stored_full),
        1,
        "only the secret's hash is stored"
    );
    let key_id = app.count("SELECT max(id) AS n FROM api_keys").await;
    let response = owner
        .post_form(&format!("/keys/{key_id}/revoke"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        read.get("/api/v1/clients").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let garbage = app.api("sw_0123456789ab_not-a-real-secret");
    assert_eq!(
        garbage.get("/api/v1/clients").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_api_route() {
    let app = TestApp::spawn().await;
    let document: Value = app
        .browser()
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let routes = siteward::app::route_table();
    let mut api_routes = 0;
    for route in routes
        .iter()
        .filter(|r| r.doc.surface == siteward::web::Surface::Api)
    {
        api_routes += 1;
        let method = route.doc.method.as_str().to_ascii_lowercase();
        let operation = &document["paths"][route.doc.path][&method];
        assert!(
            operation.is_object(),
            "{method} {} is documented",
            route.doc.path
        );
        assert!(operation["responses"][route.doc.success.to_string()].is_object());
        assert!(!operation["summary"].as_str().unwrap().is_empty());
    }
    assert!(api_routes >= 15);
    // Every $ref points at a schema in components.
    let text = document.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "dangling $ref to {name}"
        );
    }
    assert!(document["components"]["schemas"]["Client"].is_object());
}
