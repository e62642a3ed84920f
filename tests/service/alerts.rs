//! Alerts from changes: rules and severities, deduplication, automatic resolution, flapping,
//! acknowledgement by members, resolution by admins, rule overrides, failed scans.

use reqwest::{Method, StatusCode};

use super::support::*;

struct World {
    app: TestApp,
    owner: Browser,
    api: ApiClient,
    read: ApiClient,
    runner: RunnerApi,
    target: i64,
}

async fn world(settings: &[(&str, &str)]) -> World {
    let app = TestApp::spawn_with(settings).await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let read = app.api(&app.create_key(&owner, "read").await);
    let target = new_target(&api, "https://shop.example.com/").await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    World {
        app,
        owner,
        api,
        read,
        runner,
        target,
    }
}

impl World {
    /// One scan of the target delivering the sample snapshot, edited; waits for the comparison.
    async fn scan(&self, edit: impl Fn(&mut serde_json::Value)) -> i64 {
        let scan = scan_now(&self.api, self.target).await;
        let job = self.runner.claim(5).await.unwrap();
        assert_eq!(job.scan_id, scan);
        let png = fake_png("steady");
        let mut doc = sample_snapshot(&job.url, &png, &png);
        edit(&mut doc);
        assert_eq!(
            self.runner.deliver(&job, &png, &png, &doc).await.status(),
            StatusCode::OK
        );
        let snapshot = self
            .app
            .count(&format!(
                "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
            ))
            .await;
        computed_changes(&self.api, snapshot).await;
        snapshot
    }

    async fn alerts(&self, query: &str) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .api
            .get(&format!("/api/v1/alerts?{query}"))
            .await
            .json()
            .await
            .unwrap();
        body["items"].as_array().unwrap().clone()
    }
}

fn with_tracker(doc: &mut serde_json::Value) {
    doc["third_party_hosts"] = serde_json::json!(["analytics.test", "tracker.example"]);
    doc["cookies"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "_trk",
        "domain": ".tracker.example", "path": "/", "expires": null, "session": true, "secure": true,
        "http_only": false, "same_site": "none", "party": "third", "set_by_host": "tracker.example",
        "set_by": "script", "value_size": 20, "classification": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tracker_opens_alerts_once_that_resolve_when_it_goes_and_reopen_when_it_flaps() {
    let w = world(&[]).await;
    w.scan(|_| {}).await;
    assert!(
        w.alerts("").await.is_empty(),
        "a first snapshot raises nothing"
    );
    let with = w.scan(with_tracker).await;
    let open = w.alerts("").await;
    let mut rules: Vec<(String, String)> = open
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap().into(),
                a["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            ("cookie_before_consent".to_string(), "high".to_string()),
            ("new_third_party_host".to_string(), "high".to_string()),
        ]
    );
    assert!(
        open.iter()
            .all(|a| a["first_snapshot_id"] == with && a["state"] == "open")
    );
    // The same snapshot again: no change, nothing new.
    w.scan(with_tracker).await;
    assert_eq!(w.app.count("SELECT count(*) AS n FROM alerts").await, 2);

    // The tracker goes: both alerts resolve themselves.
    w.scan(|_| {}).await;
    assert!(w.alerts("").await.is_empty());
    let resolved = w.alerts("state=resolved").await;
    assert_eq!(resolved.len(), 2);
    assert!(resolved.iter().all(|a| a["resolution"] == "auto"));
    // It comes back the same day: the same alerts reopen (flapping), no new ones.
    w.scan(with_tracker).await;
    let back = w.alerts("").await;
    assert_eq!(back.len(), 2);
    assert!(
        back.iter()
            .all(|a| a["reopened"] == 1 && a["occurrences"] == 2),
        "{back:?}"
    );
    assert_eq!(w.app.count("SELECT count(*) AS n FROM alerts").await, 2);

    // Through the API acknowledging is a write: a read key may not (it would silence repeat
    // notifications), a read-write key may; only admins resolve.
    let id = back[0]["id"].as_i64().unwrap();
    let refused = w
        .read
        .request(Method::POST, &format!("/api/v1/alerts/{id}/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        w.api
            .get(&format!("/api/v1/alerts/{id}"))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["state"],
        "open",
        "the refused acknowledgement changed nothing"
    );
    let acked = w
        .api
        .request(Method::POST, &format!("/api/v1/alerts/{id}/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), StatusCode::OK);
    assert_eq!(
        acked.json::<serde_json::Value>().await.unwrap()["state"],
        "acknowledged"
    );
    let refused = w
        .read
        .request(Method::POST, &format!("/api/v1/alerts/{id}/resolve"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let other = back[1]["id"].as_i64().unwrap();
    let inbox = w.owner.get("/alerts").await.text().await.unwrap();
    let filtered = w
        .owner
        .get(&format!("/alerts?severity=high&target_id={}", w.target))
        .await
        .text()
        .await
        .unwrap();
    assert!(filtered.contains(&format!("name=\"alert_{other}\"")));
    let elsewhere = w
        .owner
        .get("/alerts?severity=critical")
        .await
        .text()
        .await
        .unwrap();
    assert!(elsewhere.contains("No alerts."));
    assert!(
        inbox.contains(&format!("name=\"alert_{other}\"")),
        "open alerts can be selected"
    );
    let response = w
        .owner
        .post_form("/alerts/acknowledge", &[(&format!("alert_{other}"), "on")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = w
        .owner
        .post_form(&format!("/alerts/{id}/resolve"), &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let states: Vec<String> = w
        .alerts("state=all")
        .await
        .iter()
        .map(|a| format!("{}:{}", a["id"], a["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&format!("{id}:resolved")), "{states:?}");
    assert!(
        states.contains(&format!("{other}:acknowledged")),
        "{states:?}"
    );
    let resolved: serde_json::Value = w
        .api
        .get(&format!("/api/v1/alerts/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resolved["resolution"], "manual");
    assert_eq!(resolved["resolved_by"], "Olga Owner");
    assert_eq!(
        resolved["acknowledged_by"],
        serde_json::Value::Null,
        "reopening cleared the old acknowledgement; the key acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_script_changes_are_critical_and_rules_can_be_tuned_per_target() {
    let w = world(&[]).await;
    let response = w
        .api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{}", w.target),
            serde_json::json!({"page_kind": "checkout"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Hosts are watched elsewhere on this target: switch that rule off for it alone.
    let response = w
        .api
        .send_json(
            Method::PUT,
            "/api/v1/alert-rules/new_third_party_host",
            serde_json::json!({"severity": "low", "enabled": false, "target_id": w.target}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bad = w
        .api
        .send_json(
            Method::PUT,
            "/api/v1/alert-rules/new_third_party_host",
            serde_json::json!({"severity": "apocalyptic", "enabled": true}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    w.scan(|_| {}).await;
    w.scan(|doc| {
        doc["scripts"][0]["sha256"] = serde_json::json!("99".repeat(32));
        doc["third_party_hosts"] = serde_json::json!(["analytics.test", "skimmer.example"]);
    })
    .await;
    let open = w.alerts("").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "checkout_script_changed");
    assert_eq!(open[0]["severity"], "critical");
    assert_eq!(w.alerts("severity=critical").await.len(), 1);
    assert_eq!(w.alerts("severity=high").await.len(), 0);
    let rules: serde_json::Value = w.api.get("/api/v1/alert-rules").await.json().await.unwrap();
    let host_rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "new_third_party_host")
        .unwrap();
    assert_eq!(
        host_rule["enabled"], true,
        "the organization's default is untouched"
    );
    assert_eq!(host_rule["target_overrides"][0]["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failed_scans_in_a_row_raise_an_alert_that_a_success_resolves() {
    let w = world(&[("SITEWARD_SCAN_ATTEMPTS", "1")]).await;
    for round in 1..=3 {
        scan_now(&w.api, w.target).await;
        let job = w.runner.claim(5).await.unwrap();
        let reply: serde_json::Value = w
            .runner
            .fail(&job, "connection refused")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(reply["outcome"], "dead");
        let open = w.alerts("").await;
        if round < 3 {
            assert!(open.is_empty(), "round {round}: {open:?}");
        } else {
            assert_eq!(open.len(), 1);
            assert_eq!(open[0]["rule"], "scan_failed");
            assert!(
                open[0]["title"]
                    .as_str()
                    .unwrap()
                    .contains("connection refused")
            );
        }
    }
    w.scan(|_| {}).await;
    assert!(
        w.alerts("").await.is_empty(),
        "the next successful scan resolves it"
    );
}
