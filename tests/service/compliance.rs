//! Compliance scans through the service: a compliance scan queues one ordinary scan per visit
//! with that visit's banner answer and GPC setting; when the last visit is in, the app builds
//! the report, records the findings, raises their alerts, and resolves them once a later
//! compliance scan no longer shows them. Each visit is diffed only against the same visit.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use super::support::*;

async fn admin(app: &TestApp) -> (Browser, ApiClient) {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    (owner, api)
}

async fn request_compliance(api: &ApiClient, target: i64) -> serde_json::Value {
    let response = api
        .request(
            Method::POST,
            &format!("/api/v1/targets/{target}/compliance-scans"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

/// The target's compliance once its latest compliance scan is finished.
async fn finished_compliance(api: &ApiClient, target: i64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let body: serde_json::Value = api
            .get(&format!("/api/v1/targets/{target}/compliance"))
            .await
            .json()
            .await
            .unwrap();
        let state = body["latest"]["state"].as_str().unwrap_or_default();
        if state == "done" || state == "failed" {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the report was never built: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The snapshot a runner would send for one visit: the sample page, with the banner answered
/// on its first layer for the answering visits, and `tracker` requests after the answer.
fn visit_snapshot(
    job: &TestJob,
    viewport: &[u8],
    full: &[u8],
    trackers: &[&str],
) -> serde_json::Value {
    let mut snapshot = sample_snapshot(&job.url, viewport, full);
    let order = &job.body["scan"];
    let mode = order["consent_mode"].as_str().unwrap().to_string();
    if mode != "no_interaction" {
        let label = if mode == "reject_all" {
            "Reject all"
        } else {
            "Accept all"
        };
        snapshot["options"]["consent_mode"] = mode.clone().into();
        snapshot["consent"] = serde_json::json!({
            "mode": mode,
            "clicked": {"matched_by": "text", "label": label, "frame_url": job.url, "layer": 1},
            "cookies_before": [],
            "consent_managers": ["klaro"]
        });
    }
    for tracker in trackers {
        let request = serde_json::json!({"url": format!("http://{tracker}/collect?v=2"),
            "method": "GET", "resource_type": "Image", "host": tracker, "party": "third",
            "status": 204, "failure": null, "blocked": false, "started_ms": 900,
            "duration_ms": 3, "encoded_bytes": 0, "after_answer": true,
            "initiator": "http://analytics.test/a.js",
            "listed": {"list": "easyprivacy", "rule": format!("||{tracker}^")}});
        snapshot["requests"].as_array_mut().unwrap().push(request);
        snapshot["third_party_hosts"]
            .as_array_mut()
            .unwrap()
            .push(tracker.to_string().into());
    }
    serde_json::from_value::<scanner::Snapshot>(snapshot.clone()).expect("a valid snapshot");
    snapshot
}

/// Claims the compliance scan's visit jobs and delivers each visit, with `trackers_after_reject`
/// requested in the reject-all visit. Returns the orders as claimed, by visit.
async fn run_visits(
    runner: &RunnerApi,
    app: &TestApp,
    trackers_after_reject: &[&str],
) -> Vec<(String, serde_json::Value)> {
    let mut orders = Vec::new();
    for _ in 0..4 {
        let job = runner.claim(5).await.expect("a visit is queued");
        let visit: String = {
            let mut conn = app.db().await;
            use diesel_async::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Visit {
                #[diesel(sql_type = diesel::sql_types::Text)]
                visit: String,
            }
            diesel::sql_query(format!(
                "SELECT visit FROM scans WHERE id = {}",
                job.scan_id
            ))
            .get_result::<Visit>(&mut conn)
            .await
            .unwrap()
            .visit
        };
        let trackers = if visit == "reject_all" {
            trackers_after_reject
        } else {
            &[]
        };
        let viewport = fake_png(&format!("viewport {visit}"));
        let full = fake_png(&format!("full {visit}"));
        let snapshot = visit_snapshot(&job, &viewport, &full, trackers);
        let delivered = runner.deliver(&job, &viewport, &full, &snapshot).await;
        assert_eq!(delivered.status(), StatusCode::OK);
        orders.push((visit, job.body["scan"].clone()));
    }
    orders.sort_by(|a, b| a.0.cmp(&b.0));
    orders
}

fn finding_fingerprints(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_compliance_scan_runs_its_visits_as_scans_and_its_findings_raise_and_resolve_alerts() {
    let app = TestApp::spawn().await;
    let (owner, api) = admin(&app).await;
    let target = new_target(&api, &format!("http://shop-{}.test/", unique())).await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "visits").await);

    let asked = request_compliance(&api, target).await;
    assert_eq!(asked["state"], "running");
    let visits: Vec<&str> = asked["visits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["visit"].as_str().unwrap())
        .collect();
    assert_eq!(visits, ["first_visit", "reject_all", "accept_all", "gpc"]);

    // Each visit's order answers the banner its own way; only the GPC visit sends GPC.
    let orders = run_visits(&runner, &app, &["tracker.test"]).await;
    let by_visit = |name: &str| orders.iter().find(|(v, _)| v == name).unwrap().1.clone();
    assert_eq!(by_visit("first_visit")["consent_mode"], "no_interaction");
    assert_eq!(by_visit("reject_all")["consent_mode"], "reject_all");
    assert_eq!(by_visit("accept_all")["consent_mode"], "accept_all");
    assert_eq!(by_visit("gpc")["consent_mode"], "no_interaction");
    for (visit, order) in &orders {
        assert_eq!(order["global_privacy_control"], visit == "gpc", "{visit}");
    }

    let first = finished_compliance(&api, target).await;
    let latest = &first["latest"];
    assert_eq!(latest["state"], "done", "{first}");
    assert_eq!(
        finding_fingerprints(&latest["report"]),
        ["tracking_after_reject:reject_all:tracker.test"]
    );
    let finding = &latest["report"]["findings"][0];
    assert_eq!(finding["severity"], "critical");
    assert_eq!(
        finding["evidence"][0]["initiators"][0],
        "http://analytics.test/a.js"
    );
    assert_eq!(latest["finding_count"], 1);
    assert_eq!(latest["worst_severity"], "critical");

    // The finding raised its alert, under its own rule.
    let alerts: serde_json::Value = api
        .get(&format!("/api/v1/alerts?target_id={target}"))
        .await
        .json()
        .await
        .unwrap();
    let live: Vec<(&str, &str)> = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap(),
                a["fingerprint"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        live,
        [(
            "tracking_after_reject",
            "compliance:tracking_after_reject:reject_all:tracker.test"
        )]
    );

    // The dashboard shows the report and the client page the target's state at a glance.
    let page = owner.get(&format!("/targets/{target}/compliance")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let text = page.text().await.unwrap();
    assert!(text.contains("tracker.test tracks visitors after they rejected all"));
    assert!(text.contains("reject-all visit"));

    // The site is fixed: the next compliance scan has no finding, the alert resolves, and the
    // history says what went away. Each visit was compared with the same visit before.
    request_compliance(&api, target).await;
    run_visits(&runner, &app, &[]).await;
    let second = finished_compliance(&api, target).await;
    assert_eq!(second["latest"]["finding_count"], 0, "{second}");
    assert!(second["latest"]["worst_severity"].is_null());
    let history = second["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0]["gone"][0]["fingerprint"],
        "tracking_after_reject:reject_all:tracker.test"
    );
    assert!(history[0]["appeared"].as_array().unwrap().is_empty());
    let resolved = app
        .count(&format!(
            "SELECT count(*) AS n FROM alerts WHERE target_id = {target}
             AND rule = 'tracking_after_reject' AND state = 'resolved' AND resolution = 'auto'"
        ))
        .await;
    assert_eq!(resolved, 1);
    let reject_snapshot = second["latest"]["visits"][1]["snapshot_id"]
        .as_i64()
        .unwrap();
    let changes = computed_changes(&api, reject_snapshot).await;
    let baseline = changes["previous_snapshot_id"].as_i64().unwrap();
    assert_eq!(
        baseline,
        first["latest"]["visits"][1]["snapshot_id"]
            .as_i64()
            .unwrap(),
        "the reject-all visit is compared with the previous reject-all visit"
    );
    assert_eq!(kinds(&changes), ["third_party_host_removed"]);

    // A plain scan is compared with plain scans only, and does not count the visits.
    let plain = scan_now(&api, target).await;
    let job = runner.claim(5).await.expect("the plain scan is queued");
    assert_eq!(job.scan_id, plain);
    assert_eq!(job.body["scan"]["global_privacy_control"], false);
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    let snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {plain}"
        ))
        .await;
    let changes = computed_changes(&api, snapshot).await;
    assert!(changes["previous_snapshot_id"].is_null(), "{changes}");
}

#[tokio::test]
async fn a_compliance_scan_whose_visits_all_fail_is_failed_and_other_organizations_see_nothing() {
    let app = TestApp::spawn().await;
    let (owner, api) = admin(&app).await;
    let target = new_target(&api, &format!("http://shop-{}.test/", unique())).await;
    let asked = request_compliance(&api, target).await;
    let id = asked["id"].as_i64().unwrap();

    // Another organization can neither read it nor ask for one on this target.
    let other = app.invite_and_sign_up(&owner, "member").await;
    let response = other
        .post_form("/orgs", &[("name", &format!("Other {}", unique()))])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let stranger = app.api(&app.create_key(&other, "read_write").await);
    let response = stranger
        .get(&format!("/api/v1/compliance-scans/{id}"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = stranger
        .request(
            Method::POST,
            &format!("/api/v1/targets/{target}/compliance-scans"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Every visit dies (their attempts used up): the scan is failed, with the reason, and no
    // report or alert comes of it.
    let mut conn = app.db().await;
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE jobs SET state = 'dead', last_error = 'the site did not answer', finished_at = now()
         WHERE id IN (SELECT job_id FROM scans WHERE compliance_scan_id = {id})"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // The reaper killed them, which knows nothing of compliance: the scheduler's catch-up does.
    let moved = siteward::compliance::queries::catch_up(&mut conn)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    let done = finished_compliance(&api, target).await;
    assert_eq!(done["latest"]["state"], "failed", "{done}");
    assert!(
        done["latest"]["error"]
            .as_str()
            .unwrap()
            .contains("the site did not answer")
    );
    assert!(done["latest"]["report"].is_null());
    let alerts = app
        .count(&format!(
            "SELECT count(*) AS n FROM alerts WHERE target_id = {target}"
        ))
        .await;
    assert_eq!(alerts, 0);
}
