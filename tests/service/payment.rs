//! Payment-page script decisions through the API and the dashboard, with a runner speaking the
//! protocol: justifications are required and bounded, decisions are append-only and the latest
//! stands (also when two admins decide at once), rules cover their host only.

use reqwest::{Method, StatusCode};

use super::support::*;

struct World {
    app: TestApp,
    owner: Browser,
    api: ApiClient,
    target: i64,
}

/// A payment target scanned once with the sample snapshot (an external and an inline script).
async fn world() -> World {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&api, &format!("http://pay-{}.test/checkout", unique())).await;
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let runner = RunnerApi::new(&app, &runner_token(&app, "pay").await);
    let scan = scan_now(&api, target).await;
    let job = runner.claim(5).await.unwrap();
    assert_eq!(job.scan_id, scan);
    assert_eq!(runner.finish(&job).await.status(), StatusCode::OK);
    let snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
        ))
        .await;
    computed_changes(&api, snapshot).await;
    World {
        app,
        owner,
        api,
        target,
    }
}

impl World {
    async fn inventory(&self) -> serde_json::Value {
        let response = self
            .api
            .get(&format!("/api/v1/targets/{}/payment-scripts", self.target))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The version of the external sample script.
    async fn external_version(&self) -> i64 {
        let inventory = self.inventory().await;
        inventory["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "external")
            .unwrap()["versions"][0]["id"]
            .as_i64()
            .unwrap()
    }

    async fn decide(&self, version: i64, decision: &str, why: &str) -> reqwest::Response {
        self.api
            .send_json(
                Method::POST,
                &format!("/api/v1/payment-script-versions/{version}/decisions"),
                serde_json::json!({"decision": decision, "justification": why}),
            )
            .await
    }
}

#[tokio::test]
async fn a_justification_is_required_and_bounded_and_refusals_change_nothing() {
    let w = world().await;
    let version = w.external_version().await;
    for (why, status) in [
        ("", StatusCode::UNPROCESSABLE_ENTITY),
        ("   ", StatusCode::UNPROCESSABLE_ENTITY),
        (&"x".repeat(2_001), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = w.decide(version, "authorized", why).await;
        assert_eq!(response.status(), status);
        let body = response.text().await.unwrap();
        assert!(body.contains("justification"), "{body}");
    }
    let response = w.decide(version, "maybe", "Because").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        w.app
            .count("SELECT count(*) AS n FROM payment_script_decisions")
            .await,
        0
    );
    // The dashboard's form shows the refusal beside the version, with 422.
    let page = w
        .owner
        .post_form(
            &format!("/payment-script-versions/{version}/decisions"),
            &[("decision", "authorized"), ("justification", "")],
        )
        .await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("is required: say why the script is needed"),
        "{html}"
    );
    // Another organization's version is not found, and says nothing about it.
    let other = w.app.invite_and_sign_up(&w.owner, "member").await;
    let response = other
        .post_form("/orgs", &[("name", &format!("Other {}", unique()))])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let other_api = w.app.api(&w.app.create_key(&other, "read_write").await);
    let response = other_api
        .send_json(
            Method::POST,
            &format!("/api/v1/payment-script-versions/{version}/decisions"),
            serde_json::json!({"decision": "authorized", "justification": "Mine now"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = other_api
        .get(&format!("/api/v1/targets/{}/payment-scripts", w.target))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn decisions_are_append_only_and_two_admins_at_once_leave_one_clear_latest() {
    let w = world().await;
    let version = w.external_version().await;
    // Unreviewed at first, and alerted.
    let inventory = w.inventory().await;
    assert!(
        inventory["scripts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["versions"][0]["standing"] == "unreviewed")
    );
    let open = w
        .app
        .count(&format!(
            "SELECT count(*) AS n FROM alerts WHERE target_id = {} AND rule = 'payment_script_unauthorized' AND state = 'open'",
            w.target
        ))
        .await;
    assert_eq!(open, 2);
    // Two admins decide at the same moment.
    let (a, b) = tokio::join!(
        w.decide(version, "authorized", "Our analytics, reviewed"),
        w.decide(version, "rejected", "Not needed on the payment page"),
    );
    assert_eq!(a.status(), StatusCode::CREATED);
    assert_eq!(b.status(), StatusCode::CREATED);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (a.json().await.unwrap(), b.json().await.unwrap());
    let later = if a["id"].as_i64() > b["id"].as_i64() {
        &a
    } else {
        &b
    };
    let inventory = w.inventory().await;
    let script = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "external")
        .unwrap();
    let decisions = script["versions"][0]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[0]["id"], later["id"], "newest first");
    assert_eq!(
        script["versions"][0]["standing"], later["decision"],
        "the later decision stands"
    );
    // A decision cannot be edited, only superseded.
    let mut conn = w.app.db().await;
    use diesel_async::RunQueryDsl;
    let edited = diesel::sql_query(
        "UPDATE payment_script_decisions SET justification = 'changed afterwards'",
    )
    .execute(&mut conn)
    .await;
    assert!(edited.is_err(), "decisions are append-only");
    // Both decisions are in the audit log.
    assert_eq!(
        w.app
            .count("SELECT count(*) AS n FROM audit_log WHERE action LIKE 'payment_script.%'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_rule_covers_its_host_only_and_bad_rules_are_refused() {
    let w = world().await;
    // The sample's external script comes from analytics.test.
    for (host, why) in [
        ("analytics", "x"),
        ("https://analytics.test/", "x"),
        ("analytics.test", ""),
        // A whole top-level domain is too wide to authorize.
        ("*.test", "Every test host"),
    ] {
        let page = w
            .owner
            .post_form("/payment-rules", &[("host", host), ("justification", why)])
            .await;
        assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY, "{host}");
    }
    assert_eq!(
        w.app
            .count("SELECT count(*) AS n FROM payment_script_rules")
            .await,
        0
    );
    let page = w
        .owner
        .post_form(
            "/payment-rules",
            &[
                ("host", "other.test"),
                ("justification", "Another provider"),
            ],
        )
        .await;
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "{}",
        page.text().await.unwrap()
    );
    let inventory = w.inventory().await;
    assert!(
        inventory
            .to_string()
            .contains("\"standing\":\"unreviewed\"")
    );
    let page = w
        .owner
        .post_form(
            "/payment-rules",
            &[
                ("host", "Analytics.test"),
                ("justification", "Our analytics, reviewed"),
            ],
        )
        .await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let inventory = w.inventory().await;
    let external = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "external")
        .unwrap();
    assert_eq!(external["versions"][0]["standing"], "authorized");
    assert_eq!(
        external["versions"][0]["decisions"][0]["decided_by_name"],
        "rule for analytics.test"
    );
    // The inline script has no host: no rule covers it.
    let inline = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "inline")
        .unwrap();
    assert_eq!(inline["versions"][0]["standing"], "unreviewed");
    let rules: serde_json::Value = w
        .api
        .get("/api/v1/payment-script-rules")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 2);
    // Admins may not set rules; owners may.
    let response = w
        .api
        .send_json(
            Method::POST,
            "/api/v1/payment-script-rules",
            serde_json::json!({"host": "js.stripe.com", "justification": "Stripe"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_payment_page_is_scheduled_at_least_weekly_and_a_missed_week_shows() {
    let w = world().await;
    let other = new_target(&w.api, &format!("http://pay-{}.test/pay", unique())).await;
    for body in [
        serde_json::json!({"page_kind": "payment"}),
        serde_json::json!({"page_kind": "payment", "schedule": "0 6 1 * *"}),
        serde_json::json!({"page_kind": "payment", "schedule": "0 6 * 1 *"}),
    ] {
        let response = w
            .api
            .send_json(
                Method::PATCH,
                &format!("/api/v1/targets/{other}"),
                body.clone(),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert!(response.text().await.unwrap().contains("at least weekly"));
    }
    let response = w
        .api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{other}"),
            serde_json::json!({"page_kind": "payment", "schedule": "30 2 * * 1"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Nor can a payment page's schedule be dropped later.
    let response = w
        .api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{other}"),
            serde_json::json!({"schedule": ""}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Scanned today: within the window.
    let inventory = w.inventory().await;
    assert!(inventory["window"]["last_scan_at"].is_string());
    assert!(inventory["window"]["missed"].is_null());
    // Eight days later (the scan moved back in time): the window is missed, on the API and the
    // target's page.
    w.app
        .count(&format!(
            "WITH moved AS (UPDATE snapshots SET captured_at = now() - interval '8 days'
               WHERE target_id = {} RETURNING 1) SELECT count(*) AS n FROM moved",
            w.target
        ))
        .await;
    let inventory = w.inventory().await;
    assert!(
        inventory["window"]["missed"]
            .as_str()
            .unwrap()
            .contains("weekly check was missed"),
        "{}",
        inventory["window"]
    );
    let page = w.owner.get(&format!("/targets/{}", w.target)).await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("weekly check was missed")
    );
    // A paused payment target misses it too.
    let response = w
        .api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{}", w.target),
            serde_json::json!({"enabled": false}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let inventory = w.inventory().await;
    assert!(
        inventory["window"]["missed"]
            .as_str()
            .unwrap()
            .contains("paused")
    );
}

#[tokio::test]
async fn the_evidence_holds_the_clients_payment_pages_their_decisions_and_alerts_and_is_audited() {
    let w = world().await;
    let client = w
        .app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {}",
            w.target
        ))
        .await;
    // Another client's payment page stays out of this client's evidence.
    let elsewhere = new_target(&w.api, &format!("http://elsewhere-{}.test/pay", unique())).await;
    let response = w
        .api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{elsewhere}"),
            serde_json::json!({"page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // The owner authorizes the external script in the dashboard; the inline one stays open.
    let version = w.external_version().await;
    let form = w
        .owner
        .post_form(
            &format!("/payment-script-versions/{version}/decisions"),
            &[
                ("decision", "authorized"),
                (
                    "justification",
                    "Analytics of the checkout funnel, reviewed by Olga",
                ),
            ],
        )
        .await;
    assert_eq!(form.status(), StatusCode::SEE_OTHER);

    let json: serde_json::Value = w
        .api
        .get(&format!(
            "/api/v1/clients/{client}/payment-evidence?days=30"
        ))
        .await
        .json()
        .await
        .unwrap();
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{json}");
    assert_eq!(targets[0]["target_id"], w.target);
    assert_eq!(targets[0]["scans"].as_array().unwrap().len(), 1);
    assert_eq!(targets[0]["alerts"].as_array().unwrap().len(), 2);
    let text = json.to_string();
    assert!(text.contains("Analytics of the checkout funnel"));
    assert!(!text.contains("elsewhere-"));

    let csv = w
        .api
        .get(&format!(
            "/api/v1/clients/{client}/payment-evidence/csv?days=30"
        ))
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    let mut rows = ::csv::Reader::from_reader(csv.as_bytes());
    let records: Vec<::csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    let of = |kind: &str| records.iter().filter(|r| &r[0] == kind).count();
    assert_eq!(of("scan"), 1);
    assert_eq!(of("script_version"), 2);
    assert_eq!(of("decision"), 1);
    assert_eq!(of("alert"), 2);
    let decision = records.iter().find(|r| &r[0] == "decision").unwrap();
    assert_eq!(&decision[5], "authorized");
    assert!(
        decision[7].contains("agency.example"),
        "who decided: {decision:?}"
    );
    let alert = records
        .iter()
        .find(|r| &r[0] == "alert" && r[5].contains("resolved"))
        .expect("the authorized script's alert, resolved");
    assert!(alert[7].contains("resolved by Olga Owner"), "{alert:?}");

    let page = w
        .owner
        .get(&format!("/clients/{client}/payment-evidence"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Analytics of the checkout funnel")
    );
    let bad = w
        .api
        .get(&format!("/api/v1/clients/{client}/payment-evidence?days=0"))
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Frozen as a report: stored sealed like every report, a PDF queued, the content fixed.
    let frozen = w
        .api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{client}/payment-evidence/reports"),
            serde_json::json!({"days": 30}),
        )
        .await;
    assert_eq!(frozen.status(), StatusCode::CREATED);
    let report: serde_json::Value = frozen.json().await.unwrap();
    assert!(
        report["title"]
            .as_str()
            .unwrap()
            .contains("payment-page evidence")
    );
    let document = w
        .api
        .get(&format!("/api/v1/reports/{}/document", report["id"]))
        .await
        .text()
        .await
        .unwrap();
    assert!(document.contains("Analytics of the checkout funnel"));
    assert!(document.contains("PCI DSS 4.0"));
    assert!(
        !document.contains("<script"),
        "a frozen report runs nothing"
    );
    assert!(!document.contains("elsewhere-"));
    assert_eq!(
        w.app
            .count(&format!(
                "SELECT count(*) AS n FROM jobs WHERE kind = 'pdf' AND payload->>'report_id' = '{}'",
                report["id"]
            ))
            .await,
        1
    );
    // Every export is in the audit log: the JSON, the CSV, the page and the report.
    assert_eq!(
        w.app
            .count("SELECT count(*) AS n FROM audit_log WHERE action = 'payment_evidence.exported'")
            .await,
        4
    );
}
