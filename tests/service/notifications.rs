//! Notifications through the queue: mail, signed webhooks and Slack-compatible webhooks, retried
//! while the receiver is down and delivered exactly once when it is back; secrets sealed at rest;
//! webhook URLs behind the egress rules.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::{Method, StatusCode};

use super::support::*;

/// A request as received: headers and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// An HTTP receiver on loopback that records every request and answers with `status`.
#[derive(Clone)]
struct Receiver {
    port: u16,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            port,
            status: Arc::new(AtomicU16::new(200)),
            seen: Arc::default(),
        };
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    state.seen.lock().unwrap().push((headers, body.to_vec()));
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(state.status.load(Ordering::SeqCst))
                            .unwrap(),
                    )
                    .finish()
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

async fn deliveries(api: &ApiClient) -> Vec<serde_json::Value> {
    api.get("/api/v1/notification-deliveries")
        .await
        .json()
        .await
        .unwrap()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets queued retries run now instead of after their backoff.
async fn skip_backoff(app: &TestApp) {
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "UPDATE jobs SET run_at = now() WHERE kind = 'notify' AND state = 'queued'",
        ),
        &mut conn,
    )
    .await
    .unwrap();
}

async fn channel(api: &ApiClient, body: serde_json::Value) -> serde_json::Value {
    let response = api
        .send_json(Method::POST, "/api/v1/notification-channels", body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Raises one high alert: a new third-party host.
async fn raise_alerts(app: &TestApp, api: &ApiClient) {
    let target = new_target(api, "https://shop.example.com/").await;
    let runner = RunnerApi::new(app, &runner_token(app, "r").await);
    for tracker in [false, true] {
        let scan = scan_now(api, target).await;
        let job = runner.claim(5).await.unwrap();
        assert_eq!(job.scan_id, scan);
        let png = fake_png("steady");
        let mut doc = sample_snapshot(&job.url, &png, &png);
        if tracker {
            doc["third_party_hosts"] = serde_json::json!(["analytics.test", "tracker.example"]);
        }
        assert_eq!(
            runner.deliver(&job, &png, &png, &doc).await.status(),
            StatusCode::OK
        );
        let snapshot = app
            .count(&format!(
                "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
            ))
            .await;
        computed_changes(api, snapshot).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_mailed_and_posted_signed_retried_while_down_and_delivered_once() {
    let app = TestApp::spawn_with(&[("SITEWARD_NOTIFY_ALLOW_PRIVATE", "true")]).await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let hook = Receiver::start().await;
    let slack = Receiver::start().await;
    hook.status.store(503, Ordering::SeqCst);
    app.mail.set_down(true);
    channel(&api, serde_json::json!({"name": "Ops mail", "kind": "email", "to": "ops@agency.example", "min_severity": "high"})).await;
    let created = channel(&api, serde_json::json!({"name": "Hook", "kind": "webhook", "to": hook.url("/siteward"), "min_severity": "medium"})).await;
    let secret = created["signing_secret"].as_str().unwrap().to_string();
    channel(&api, serde_json::json!({"name": "Chat", "kind": "slack", "to": slack.url("/services/T0/B0/xyz"), "min_severity": "critical"})).await;

    // Addresses, URLs and secrets are sealed at rest and redacted in lists.
    let rows = app.count("SELECT count(*) AS n FROM notification_channels WHERE position(convert_to('xyz', 'UTF8') in config_sealed) > 0 OR position(convert_to('ops@agency', 'UTF8') in config_sealed) > 0").await;
    assert_eq!(rows, 0);
    let listed = api
        .get("/api/v1/notification-channels")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains("xyz") && !listed.contains(&secret),
        "{listed}"
    );

    raise_alerts(&app, &api).await;
    // A high alert: a mail and a webhook post; nothing for the critical-only chat.
    wait_until("first attempts fail", async || {
        let d = deliveries(&api).await;
        d.len() == 2 && d.iter().all(|d| d["status"] == "failed")
    })
    .await;
    let failed = deliveries(&api).await;
    assert!(
        failed.iter().any(|d| d["response_code"] == 503),
        "{failed:?}"
    );
    assert!(slack.requests().is_empty());
    assert!(app.mail.mails_to("ops@agency.example").is_empty());

    // Back up: each message arrives exactly once.
    hook.status.store(200, Ordering::SeqCst);
    app.mail.set_down(false);
    skip_backoff(&app).await;
    wait_until("retries deliver", async || {
        deliveries(&api)
            .await
            .iter()
            .all(|d| d["status"] == "delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    skip_backoff(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.mail.mails_to("ops@agency.example").len(), 1);
    let posts = hook.requests();
    let delivered: Vec<&Received> = posts
        .iter()
        .filter(|(headers, _)| !header(headers, "siteward-signature").is_empty())
        .collect();
    assert_eq!(posts.len(), 2, "one failed attempt and one delivery");
    let ids: std::collections::BTreeSet<&str> = posts
        .iter()
        .map(|(h, _)| header(h, "siteward-delivery"))
        .collect();
    assert_eq!(ids.len(), 1, "a retry carries the same delivery id");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for (headers, body) in delivered {
        let signature = header(headers, "siteward-signature");
        assert!(siteward::notify::verify(
            secret.as_bytes(),
            signature,
            body,
            now,
            300
        ));
        let mut altered = body.clone();
        altered[2] ^= 1;
        assert!(!siteward::notify::verify(
            secret.as_bytes(),
            signature,
            &altered,
            now,
            300
        ));
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["severity"], "high");
    }
    assert!(
        deliveries(&api)
            .await
            .iter()
            .all(|d| d["response_code"] == 200 || d["response_code"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_private_addresses_are_refused_and_test_sends_work() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let hook = Receiver::start().await;
    let created = channel(
        &api,
        serde_json::json!({"name": "Inside", "kind": "webhook", "to": hook.url("/x")}),
    )
    .await;
    let id = created["channel"]["id"].as_i64().unwrap();
    let response = api
        .request(
            Method::POST,
            &format!("/api/v1/notification-channels/{id}/test"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_until("the test send is tried", async || {
        deliveries(&api)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let error = deliveries(&api).await[0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("loopback"), "{error}");
    assert!(
        hook.requests().is_empty(),
        "nothing reached the private address"
    );

    let bad = api
        .send_json(
            Method::POST,
            "/api/v1/notification-channels",
            serde_json::json!({"name": "x", "kind": "webhook", "to": "ftp://example.com"}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The dashboard's test button queues a message too.
    let mail = channel(&api, serde_json::json!({"name": "Mail", "kind": "email", "to": "me@agency.example", "min_severity": "info"})).await;
    let mail_id = mail["channel"]["id"].as_i64().unwrap();
    let response = owner
        .post_form(&format!("/settings/notifications/{mail_id}/test"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let message = app.mail.wait_for("me@agency.example", 1).await;
    assert!(message.text.contains("Test message from siteward"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_text_in_an_alert_cannot_speak_in_slack_or_add_mail_headers() {
    // A compromised page sets a cookie whose name is Slack markup and a mail header.
    let app = TestApp::spawn_with(&[("SITEWARD_NOTIFY_ALLOW_PRIVATE", "true")]).await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let slack = Receiver::start().await;
    channel(&api, serde_json::json!({"name": "Chat", "kind": "slack", "to": slack.url("/services/T0/B0/xyz"), "min_severity": "high"})).await;
    channel(&api, serde_json::json!({"name": "Ops mail", "kind": "email", "to": "ops@agency.example", "min_severity": "high"})).await;
    let hostile = "<!channel>*pay*<https://evil.example|invoice>\r\nBcc: victim@evil.example";

    let target = new_target(&api, "https://shop.example.com/").await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    for with_cookie in [false, true] {
        let scan = scan_now(&api, target).await;
        let job = runner.claim(5).await.unwrap();
        assert_eq!(job.scan_id, scan);
        let png = fake_png("steady");
        let mut doc = sample_snapshot(&job.url, &png, &png);
        if with_cookie {
            let mut cookie = doc["cookies"][0].clone();
            cookie["name"] = serde_json::json!(hostile);
            doc["cookies"].as_array_mut().unwrap().push(cookie);
        }
        assert_eq!(
            runner.deliver(&job, &png, &png, &doc).await.status(),
            StatusCode::OK
        );
        let snapshot = app
            .count(&format!(
                "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
            ))
            .await;
        computed_changes(&api, snapshot).await;
    }
    wait_until("the chat message and the mail", async || {
        !slack.requests().is_empty() && !app.mail.mails_to("ops@agency.example").is_empty()
    })
    .await;
    let (_, body) = &slack.requests()[0];
    let message: serde_json::Value = serde_json::from_slice(body).unwrap();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("&lt;!channel&gt;"),
        "the name is shown: {text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<https://evil") && !text.contains("*pay*"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    let mail = &app.mail.mails_to("ops@agency.example")[0];
    assert!(
        !mail.to.iter().any(|to| to.contains("victim")),
        "{:?}",
        mail.to
    );
    assert!(
        !mail
            .text
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
        "{}",
        mail.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_channel_settings_swapped_between_rows_do_not_open() {
    // Someone who can write the database swaps two channels' sealed settings of one
    // organization, to send one channel's alerts to the other's address.
    let app = TestApp::spawn_with(&[("SITEWARD_NOTIFY_ALLOW_PRIVATE", "true")]).await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let a = channel(&api, serde_json::json!({"name": "A", "kind": "slack", "to": first.url("/a"), "min_severity": "info"})).await;
    let b = channel(&api, serde_json::json!({"name": "B", "kind": "slack", "to": second.url("/b"), "min_severity": "info"})).await;
    let (a, b) = (
        a["channel"]["id"].as_i64().unwrap(),
        b["channel"]["id"].as_i64().unwrap(),
    );
    let mut conn = app.db().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE notification_channels SET config_sealed = CASE id
               WHEN {a} THEN (SELECT config_sealed FROM notification_channels WHERE id = {b})
               ELSE (SELECT config_sealed FROM notification_channels WHERE id = {a}) END
             WHERE id IN ({a}, {b})"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    let response = api
        .request(
            Method::POST,
            &format!("/api/v1/notification-channels/{a}/test"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    wait_until("the test send is tried", async || {
        deliveries(&api)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let error = deliveries(&api).await[0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("cannot be opened"), "{error}");
    assert!(
        first.requests().is_empty() && second.requests().is_empty(),
        "nothing was sent anywhere"
    );
}
