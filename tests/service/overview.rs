//! The overview: after sign-in, every client with its targets' state, those that need
//! attention first, with a 30-day trend drawn as inline SVG; the same data over the API.

use reqwest::{Method, StatusCode};

use super::support::*;

#[tokio::test]
async fn the_overview_puts_the_clients_that_need_attention_first() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let runner = RunnerApi::new(&app, &runner_token(&app, "overview").await);

    // "Calm" is scanned fine; "Broken" has a scan that failed for good and an open critical
    // alert; "Late" is scheduled hourly but was created two hours ago and never scanned.
    let calm = new_target(&api, "http://calm-shop.test/").await;
    let broken = new_target(&api, "http://broken-shop.test/").await;
    let late = new_target(&api, "http://late-shop.test/").await;
    let rename = |target: i64, name: &'static str| {
        let api = &api;
        let app = &app;
        async move {
            let client = app
                .count(&format!(
                    "SELECT client_id AS n FROM targets WHERE id = {target}"
                ))
                .await;
            let response = api
                .send_json(
                    Method::PATCH,
                    &format!("/api/v1/clients/{client}"),
                    serde_json::json!({ "name": name }),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    rename(calm, "Calm").await;
    rename(broken, "Broken").await;
    rename(late, "Late").await;

    scan_now(&api, calm).await;
    let job = runner.claim(5).await.expect("calm's scan");
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    scan_now(&api, broken).await;
    let job = runner.claim(5).await.expect("broken's scan");
    app.count(&format!(
        "UPDATE jobs SET state = 'dead', last_error = 'the site did not answer' WHERE id = {}
         RETURNING 0::bigint AS n",
        job.id
    ))
    .await;
    app.count(&format!(
        "INSERT INTO alerts (org_id, target_id, rule, severity, fingerprint, title, detail, state)
         SELECT org_id, id, 'checkout_failed', 'critical', 'checkout:1', 'Checkout failed', '{{}}', 'open'
         FROM targets WHERE id = {broken} RETURNING 0::bigint AS n"
    ))
    .await;
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{late}"),
            serde_json::json!({"schedule": "0 * * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    app.count(&format!(
        "UPDATE targets SET created_at = now() - interval '3 hours' WHERE id = {late}
         RETURNING 0::bigint AS n"
    ))
    .await;

    let overview: serde_json::Value = api.get("/api/v1/overview").await.json().await.unwrap();
    let names: Vec<&str> = overview
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Broken", "Late", "Calm"], "{overview}");
    let broken_state = &overview[0];
    assert_eq!(broken_state["open_alerts"]["critical"], 1);
    assert_eq!(broken_state["failing_scans"], 1);
    assert_eq!(broken_state["targets"][0]["last_scan"], "failed");
    assert_eq!(overview[1]["overdue_targets"], 1);
    assert_eq!(overview[1]["targets"][0]["overdue"], true);
    let calm_state = &overview[2];
    assert_eq!(calm_state["needs_attention"], false);
    assert_eq!(calm_state["targets"][0]["last_scan"], "succeeded");
    assert_eq!(calm_state["trend"]["changes"].as_array().unwrap().len(), 30);
    assert_eq!(broken_state["trend"]["alerts"][29], 1, "today's alert");

    // After sign-in the overview is home; it draws the trend without any script.
    let home = owner.get("/").await;
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&home), "/overview");
    let page = owner.get("/overview").await;
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.unwrap();
    let (broken_at, calm_at) = (text.find("Broken").unwrap(), text.find("Calm").unwrap());
    assert!(broken_at < calm_at);
    assert!(text.contains("<svg") && text.contains("1 failing scan"));
    assert!(!text.contains("<script"));
}
