//! Client reports: made once from what the period held (and nothing of another client or
//! organization), frozen against later scans, shared by links that work signed out, count and
//! audit their views, and stop with 410 when withdrawn or expired.

use reqwest::{Method, StatusCode};

use super::smtp_sink::link_in;
use super::support::*;

/// Now, or today at 07:00 UTC when it is earlier than that: a period's report goes out at 06:00
/// UTC (Mondays, the 1st), so a test that ticks between midnight and six on such a day would
/// find nothing due yet.
fn sending_time() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    if now.hour() < 7 {
        now.replace_time(time::Time::from_hms(7, 0, 0).unwrap())
    } else {
        now
    }
}

async fn admin(app: &TestApp) -> (Browser, ApiClient) {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    (owner, app.api(&key))
}

/// Scans `target` once through the runner protocol with a sample snapshot whose page loads
/// `extra_host` too (so consecutive scans differ); returns the snapshot id.
async fn scan_with(
    app: &TestApp,
    api: &ApiClient,
    runner: &RunnerApi,
    target: i64,
    extra_host: Option<&str>,
) -> i64 {
    let scan = scan_now(api, target).await;
    let job = runner.claim(5).await.expect("the scan is queued");
    assert_eq!(job.scan_id, scan);
    let viewport = fake_png("viewport");
    let full = fake_png("full");
    let mut snapshot = sample_snapshot(&job.url, &viewport, &full);
    if let Some(host) = extra_host {
        snapshot["third_party_hosts"]
            .as_array_mut()
            .unwrap()
            .push(host.into());
    }
    let delivered = runner.deliver(&job, &viewport, &full, &snapshot).await;
    assert_eq!(delivered.status(), StatusCode::OK);
    let id = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
        ))
        .await;
    computed_changes(api, id).await;
    id
}

async fn client_of(app: &TestApp, target: i64) -> i64 {
    app.count(&format!(
        "SELECT client_id AS n FROM targets WHERE id = {target}"
    ))
    .await
}

async fn make_report(api: &ApiClient, client: i64, body: serde_json::Value) -> reqwest::Response {
    api.send_json(
        Method::POST,
        &format!("/api/v1/clients/{client}/reports"),
        body,
    )
    .await
}

async fn document(api: &ApiClient, report: i64) -> String {
    let response = api.get(&format!("/api/v1/reports/{report}/document")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_report_holds_its_period_and_nothing_else_and_never_changes() {
    let app = TestApp::spawn().await;
    let (_owner, api) = admin(&app).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "reports").await);
    let target = new_target(&api, &format!("http://shop-{}.test/", unique())).await;
    let client = client_of(&app, target).await;
    // Another client of the same organization, whose page must not appear.
    let elsewhere = new_target(&api, "http://elsewhere-shop.test/").await;
    scan_with(
        &app,
        &api,
        &runner,
        elsewhere,
        Some("secret-elsewhere.test"),
    )
    .await;

    scan_with(&app, &api, &runner, target, None).await;
    scan_with(&app, &api, &runner, target, Some("pixel.tracker.test")).await;

    let response = make_report(&api, client, serde_json::json!({"days": 30})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let report: serde_json::Value = response.json().await.unwrap();
    let id = report["id"].as_i64().unwrap();
    let html = document(&api, id).await;
    // Summary first, in words; then the detail of the period.
    let summary = html.find("Summary").unwrap();
    let detail = html.find("Third-party hosts").unwrap();
    assert!(summary < detail);
    assert!(html.contains("1 serious problem needs attention"), "{html}");
    assert!(html.contains("2 scans of 1 page in the period; 1 change seen."));
    assert!(html.contains("pixel.tracker.test"), "the new host");
    assert!(
        html.contains("data:image/png;base64,"),
        "the latest screenshot, inline"
    );
    assert!(!html.contains("elsewhere-shop.test") && !html.contains("secret-elsewhere.test"));
    // Captured strings are escaped (the sample page's title has markup).
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(!html.contains("<script"), "a report runs no script");

    // A later scan changes the site, not the report someone already received.
    scan_with(&app, &api, &runner, target, Some("another.tracker.test")).await;
    assert_eq!(document(&api, id).await, html);
    let listed: serde_json::Value = api
        .get(&format!("/api/v1/clients/{client}/reports"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], id);

    // Bad input is refused with a reason, and nothing is made.
    for body in [
        serde_json::json!({"days": 0}),
        serde_json::json!({"days": 400}),
        serde_json::json!({"target_id": elsewhere}),
    ] {
        let response = make_report(&api, client, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reports WHERE client_id = {client}"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn a_share_link_shows_one_report_signed_out_until_withdrawn_or_expired() {
    let app = TestApp::spawn().await;
    let (_owner, api) = admin(&app).await;
    let target = new_target(&api, &format!("http://shop-{}.test/", unique())).await;
    let client = client_of(&app, target).await;
    let report = make_report(&api, client, serde_json::json!({}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let id = report["id"].as_i64().unwrap();
    let period = (
        report["period_end"].as_str().unwrap().to_string(),
        report["period_start"].as_str().unwrap().to_string(),
    );
    assert!(period.0 > period.1);

    let share = |days: serde_json::Value| {
        let api = &api;
        async move {
            let response = api
                .send_json(
                    Method::POST,
                    &format!("/api/v1/reports/{id}/shares"),
                    serde_json::json!({ "days": days }),
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let created = share(serde_json::Value::Null).await;
    let url = created["url"].as_str().unwrap().to_string();
    let path = url::Url::parse(&url).unwrap().path().to_string();
    assert!(path.starts_with("/r/"));
    let expires = created["share"]["expires_at"].as_str().unwrap();
    assert!(expires > period.0.as_str(), "30 days from now");

    // Signed out, the link shows exactly the stored report, with nothing to run or leak.
    let reader = app.browser();
    let response = reader.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(response.text().await.unwrap(), document(&api, id).await);
    // Each view is counted and audited with the network, not the address.
    assert_eq!(
        app.count(&format!(
            "SELECT views::bigint AS n FROM report_shares WHERE report_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'report.viewed' AND ip = '127.0.0.0/24'"
        )
        .await,
        1
    );
    // A wrong token of the right shape finds nothing.
    let wrong = format!("{}{}", &path[..path.len() - 4], "AAAA");
    assert_eq!(reader.get(&wrong).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(reader.get("/r/short").await.status(), StatusCode::NOT_FOUND);

    // Withdrawn: 410 with a plain page, at once.
    let share_id = created["share"]["id"].as_i64().unwrap();
    let response = api
        .request(
            Method::POST,
            &format!("/api/v1/report-shares/{share_id}/revoke"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = reader.get(&path).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("withdrawn"));

    // Expired: 410 too.
    let second = share(serde_json::json!(1)).await;
    let second_path = url::Url::parse(second["url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_string();
    assert_eq!(reader.get(&second_path).await.status(), StatusCode::OK);
    app.count(&format!(
        "UPDATE report_shares SET expires_at = now() - interval '1 second'
         WHERE id = {} RETURNING 0::bigint AS n",
        second["share"]["id"]
    ))
    .await;
    let response = reader.get(&second_path).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("expired"));

    // Out-of-range expiries are refused.
    let response = api
        .send_json(
            Method::POST,
            &format!("/api/v1/reports/{id}/shares"),
            serde_json::json!({"days": 366}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_scheduled_report_is_mailed_once_per_period_also_across_a_restart() {
    let mut app = TestApp::spawn().await;
    let (_owner, api) = admin(&app).await;
    let target = new_target(&api, &format!("http://shop-{}.test/", unique())).await;
    let client = client_of(&app, target).await;
    let address = format!("owner-{}@shop.example", unique());
    // A schedule needs somewhere to send to.
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/clients/{client}"),
            serde_json::json!({"report_schedule": "weekly"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/clients/{client}"),
            serde_json::json!({"contact_name": "Ana", "contact_email": address, "report_schedule": "weekly"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let mut conn = app.db().await;
    assert_eq!(
        siteward::client_reports::delivery::tick_at(&mut conn, sending_time())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        siteward::client_reports::delivery::tick_at(&mut conn, sending_time())
            .await
            .unwrap(),
        0
    );
    let mail = app.mail.wait_for(&address, 1).await;
    assert!(mail.text.contains("Hello Ana,"), "{}", mail.text);
    assert!(mail.text.contains("Nothing needs your attention"));
    let link = link_in(&mail, "/r/");
    let path = url::Url::parse(&link).unwrap().path().to_string();
    let reader = app.browser();
    let response = reader.get(&path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("for Ana"));

    // After a restart the period is still done: the tick asks for nothing and no mail follows.
    app.stop().await;
    app.start_again().await;
    let mut conn = app.db().await;
    assert_eq!(
        siteward::client_reports::delivery::tick_at(&mut conn, sending_time())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM report_deliveries WHERE client_id = {client} AND status = 'sent'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM jobs WHERE kind = 'report_delivery'")
            .await,
        1
    );
    assert_eq!(app.mail.mails_to(&address).len(), 1);
}

/// A client that asked for scheduled reports with the PDF attached.
async fn scheduled_with_pdf(app: &TestApp, api: &ApiClient) -> (i64, String) {
    let target = new_target(api, &format!("http://shop-{}.test/", unique())).await;
    let client = client_of(app, target).await;
    let address = format!("owner-{}@shop.example", unique());
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/clients/{client}"),
            serde_json::json!({"contact_email": address, "report_schedule": "monthly", "report_attach_pdf": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["report_attach_pdf"],
        true
    );
    (client, address)
}

/// Waits until the client's delivery has failed an attempt waiting for the PDF.
async fn delivery_waits_for_the_pdf(app: &TestApp, client: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let error = "waiting for the report's PDF to be printed".replace('\'', "''");
    let sql = format!(
        "SELECT count(*) AS n FROM report_deliveries WHERE client_id = {client} AND last_error = '{error}'"
    );
    while app.count(&sql).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never waited with: {error}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_scheduled_mail_waits_for_the_pdf_and_carries_it() {
    let app = TestApp::spawn().await;
    let (_owner, api) = admin(&app).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "mail-pdf").await);
    let (client, address) = scheduled_with_pdf(&app, &api).await;
    let mut conn = app.db().await;
    assert_eq!(
        siteward::client_reports::delivery::tick_at(&mut conn, sending_time())
            .await
            .unwrap(),
        1
    );
    // No mail goes out before the PDF is printed.
    delivery_waits_for_the_pdf(&app, client).await;
    assert!(app.mail.mails_to(&address).is_empty());
    // The runner prints it; its completion wakes the mail at once (not after the backoff).
    assert!(runner.claim(1).await.is_none(), "only the PDF was queued");
    let mail = app.mail.wait_for(&address, 1).await;
    assert!(
        mail.text.contains("Content-Type: application/pdf"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("website-report-20"), "{}", mail.text);
    // The fake runner's PDF (short and plain enough to travel as text).
    assert!(mail.text.contains("%PDF-1.4"), "{}", mail.text);
    assert!(mail.text.contains("The report is attached as"));
    assert!(link_in(&mail, "/r/").contains("/r/"));
    // Waiting made no second report: the retry sent the one it had made.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM reports WHERE client_id = {client}"
        ))
        .await,
        1
    );
    assert_eq!(app.mail.mails_to(&address).len(), 1);
}

#[tokio::test]
async fn a_scheduled_mail_goes_without_a_pdf_that_is_never_printed_and_says_so() {
    let app = TestApp::spawn().await;
    let (_owner, api) = admin(&app).await;
    let (client, address) = scheduled_with_pdf(&app, &api).await;
    let mut conn = app.db().await;
    siteward::client_reports::delivery::tick_at(&mut conn, sending_time())
        .await
        .unwrap();
    delivery_waits_for_the_pdf(&app, client).await;
    // No runner prints it; fast-forward the queue to the last attempt that waits.
    let moved = app
        .count(&format!(
            "WITH moved AS (UPDATE jobs SET attempts = 5, run_at = now()
               WHERE kind = 'report_delivery' AND state = 'queued'
                 AND payload->>'delivery_id' IN
                     (SELECT id::text FROM report_deliveries WHERE client_id = {client})
               RETURNING 1) SELECT count(*) AS n FROM moved"
        ))
        .await;
    assert_eq!(moved, 1);
    let mail = app.mail.wait_for(&address, 1).await;
    assert!(!mail.text.contains("application/pdf"), "{}", mail.text);
    assert!(
        mail.text.contains("could not be made in time"),
        "{}",
        mail.text
    );
    assert!(link_in(&mail, "/r/").contains("/r/"));
}
