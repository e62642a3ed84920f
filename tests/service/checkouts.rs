//! Checkout tests in the service, with a real `siteward runner` and real Chromium on the demo
//! shop: runs pass and fail where they should, raise and resolve alerts, catch a script change on
//! the payment page — and the test data appears nowhere: not in any table, blob, log, screenshot
//! or API answer.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fixture_sites::demo_shop::{self, CARD_TEXT_RGB, DEMO_SECRETS, steps};
use fixture_sites::{FixtureSites, SHOP};
use reqwest::{Method, StatusCode};

use super::support::*;

/// A runner process whose whole log (at trace level) goes to a file.
struct LoggedRunner {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl LoggedRunner {
    fn start(app: &TestApp, token: &str, sites: &FixtureSites, log_dir: &std::path::Path) -> Self {
        let log = log_dir.join("runner.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siteward"))
            .arg("runner")
            .args(["--allow-private", "--concurrency", "1"])
            .arg("--resolve")
            .arg(sites.resolve_args().join(","))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("SITEWARD_LOG", "trace")
            .env("SITEWARD_APP_URL", &app.base)
            .env("SITEWARD_RUNNER_TOKEN", token)
            .env("SITEWARD_RUNNER_KEY_FILE", app.runner_key_file())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("siteward runner starts");
        LoggedRunner { child, log }
    }
}

impl Drop for LoggedRunner {
    fn drop(&mut self) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

/// Every API answer the test read, to search for secrets at the end.
#[derive(Default)]
struct Seen(Vec<u8>);

impl Seen {
    async fn json(&mut self, response: reqwest::Response) -> serde_json::Value {
        let bytes = response.bytes().await.unwrap();
        self.0.extend_from_slice(&bytes);
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }
}

async fn run_and_wait(api: &ApiClient, seen: &mut Seen, test: i64) -> serde_json::Value {
    let response = api
        .request(Method::POST, &format!("/api/v1/checkout-tests/{test}/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run = seen.json(response).await["id"].as_i64().unwrap();
    let started = Instant::now();
    loop {
        let body = seen
            .json(api.get(&format!("/api/v1/checkout-runs/{run}")).await)
            .await;
        let compared = body["pages"]
            .as_array()
            .is_some_and(|pages| pages.iter().all(|p| !p["changes"].is_null()));
        if matches!(body["state"].as_str(), Some("succeeded" | "failed")) && compared {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "run {run} did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn magenta_pixels(png: &[u8]) -> usize {
    let image = image::load_from_memory(png).expect("a PNG").to_rgb8();
    image
        .pixels()
        .filter(|p| {
            p.0.iter()
                .zip(CARD_TEXT_RGB)
                .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= 40)
        })
        .count()
}

/// The secret values and their hex forms (how PostgreSQL prints bytea).
fn needles() -> Vec<(String, String)> {
    DEMO_SECRETS
        .iter()
        .flat_map(|(name, value)| {
            [
                (name.to_string(), value.to_string()),
                (format!("{name} (hex)"), hex::encode(value.as_bytes())),
            ]
        })
        .collect()
}

fn assert_absent(place: &str, haystack: &[u8]) {
    let text = String::from_utf8_lossy(haystack);
    for (name, needle) in needles() {
        assert!(!text.contains(&needle), "{place} holds the secret {name}");
    }
}

async fn open_alerts(api: &ApiClient, seen: &mut Seen, rule: &str) -> Vec<serde_json::Value> {
    let alerts = seen.json(api.get("/api/v1/alerts?state=open").await).await;
    alerts["items"]
        .as_array()
        .or(alerts.as_array())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["rule"] == rule)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_runs_pass_fail_alert_and_never_reveal_their_test_data() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let mut seen = Seen::default();
    let logs = tempfile::tempdir().unwrap();
    let runner = LoggedRunner::start(
        &app,
        &runner_token(&app, "checkout").await,
        &sites,
        logs.path(),
    );

    let target = new_target(&api, &sites.url(SHOP, "/demo/ok/")).await;
    // The shop's payment step is one of the client's payment pages: what the journey finds
    // there goes into that page's script inventory.
    let client = app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {target}"
        ))
        .await;
    let response = api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{client}/targets"),
            serde_json::json!({"url": sites.url(SHOP, "/demo/ok/checkout/payment"),
                               "page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let payment_target = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let response = api
        .send_json(
            Method::POST,
            &format!("/api/v1/targets/{target}/checkout-tests"),
            serde_json::json!({"name": "Guest checkout", "script": demo_shop::journey("ok")}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = seen.json(response).await;
    let test = created["id"].as_i64().unwrap();
    assert_eq!(created["missing_secrets"].as_array().unwrap().len(), 4);
    for (name, value) in DEMO_SECRETS {
        let response = api
            .send_json(
                Method::PUT,
                &format!("/api/v1/checkout-tests/{test}/secrets/{name}"),
                serde_json::json!({ "value": value }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(seen.json(response).await["name"], name);
    }
    let body = seen
        .json(api.get(&format!("/api/v1/checkout-tests/{test}")).await)
        .await;
    assert_eq!(body["secrets"].as_array().unwrap().len(), 4);
    assert!(body["missing_secrets"].as_array().unwrap().is_empty());

    // A passing run: stops before placing the order, every step photographed, secrets masked.
    let run = run_and_wait(&api, &mut seen, test).await;
    assert_eq!(run["outcome"], "passed", "{run}");
    assert_eq!(run["stopped_at"], steps::STOP);
    let step_list = run["steps"].as_array().unwrap();
    assert_eq!(step_list.len(), steps::COUNT);
    assert_eq!(step_list[steps::STOP]["status"], "skipped");
    let run_id = run["id"].as_i64().unwrap();
    let mut screenshots = 0;
    for step in step_list {
        let Some(name) = step["screenshot"].as_str() else {
            continue;
        };
        let png = api
            .get(&format!(
                "/api/v1/checkout-runs/{run_id}/screenshots/{name}"
            ))
            .await
            .bytes()
            .await
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(magenta_pixels(&png), 0, "{name} shows the card number");
        seen.0.extend_from_slice(&png);
        screenshots += 1;
    }
    assert_eq!(screenshots, steps::STOP - 1);
    let pages = run["pages"].as_array().unwrap();
    assert!(pages.len() >= 5, "{pages:?}");
    assert!(pages.iter().all(|p| p["previous_run_id"].is_null()));
    let inventory = seen
        .json(
            api.get(&format!("/api/v1/targets/{payment_target}/payment-scripts"))
                .await,
        )
        .await;
    let versioned = inventory["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identity"].as_str().unwrap().ends_with("/versioned.js"))
        .unwrap_or_else(|| panic!("the payment step's script is inventoried: {inventory}"));
    assert_eq!(versioned["versions"][0]["standing"], "unreviewed");
    let alerts = seen
        .json(
            api.get(&format!("/api/v1/alerts?target_id={payment_target}"))
                .await,
        )
        .await;
    assert!(
        alerts.to_string().contains("payment_script_unauthorized"),
        "{alerts}"
    );

    // The payment page's script changes: the next run's comparison raises the critical alert.
    sites.set_version(1);
    let run = run_and_wait(&api, &mut seen, test).await;
    assert_eq!(run["outcome"], "passed", "{run}");
    let payment = run["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "/demo/ok/checkout/payment")
        .cloned()
        .expect("the payment page was captured");
    let kinds = kinds(&serde_json::json!({ "changes": payment["changes"] }));
    assert!(
        kinds.contains(&"script_content_changed".to_string()),
        "{payment}"
    );
    let script_alerts = open_alerts(&api, &mut seen, "checkout_script_changed").await;
    assert_eq!(script_alerts.len(), 1, "{script_alerts:?}");
    assert_eq!(script_alerts[0]["severity"], "critical");

    // The shop's price changes: the run fails at the total and raises a critical alert …
    let response = api
        .send_json(
            Method::PUT,
            &format!("/api/v1/checkout-tests/{test}"),
            serde_json::json!({"name": "Guest checkout", "script": demo_shop::journey("price-change")}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let run = run_and_wait(&api, &mut seen, test).await;
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["failed_step"], steps::ASSERT_TOTAL);
    assert!(run["failure"].as_str().unwrap().contains("27.50"), "{run}");
    // The run page puts the failing step's screenshot first; the API lists each step's context.
    let page = owner.get(&format!("/checkout-runs/{}", run["id"])).await;
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "id=\"failure-screenshot\" src=\"/checkout-runs/{}/screenshots/step-{}.png\"",
            run["id"],
            steps::ASSERT_TOTAL
        )),
        "{html}"
    );
    // The outcome and the job's state are told apart, in words.
    assert!(
        html.contains(&format!(
            "id=\"run-outcome-words\">failed at step {}<",
            steps::ASSERT_TOTAL
        )),
        "{html}"
    );
    assert!(html.contains("id=\"run-job\">done<"), "{html}");
    assert!(!html.contains("succeeded"), "{html}");
    seen.0.extend_from_slice(html.as_bytes());
    // A person finds the tests from the target's page alone: each with its last run's
    // outcome, "Run now" and "New checkout test".
    let html = owner
        .get(&format!("/targets/{target}"))
        .await
        .text()
        .await
        .unwrap();
    for link in [
        format!("href=\"/checkout-tests/{test}\""),
        format!("href=\"/checkout-runs/{}\"", run["id"]),
        format!("action=\"/checkout-tests/{test}/runs\""),
        format!("href=\"/targets/{target}/checkout-tests/new\""),
    ] {
        assert!(
            html.contains(&link),
            "{link} is not on the target page: {html}"
        );
    }
    assert!(
        html.contains(&format!("failed at step {}", steps::ASSERT_TOTAL)),
        "{html}"
    );
    let detail = seen
        .json(
            api.get(&format!("/api/v1/checkout-runs/{}", run["id"]))
                .await,
        )
        .await;
    let failed_step = &detail["steps"][steps::ASSERT_TOTAL - 1];
    assert!(failed_step["page_says"].is_array(), "{failed_step}");
    assert!(failed_step["refused_requests"].is_array(), "{failed_step}");
    let failed = open_alerts(&api, &mut seen, "checkout_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["severity"], "critical");

    // … which the next passing run resolves.
    api.send_json(
        Method::PUT,
        &format!("/api/v1/checkout-tests/{test}"),
        serde_json::json!({"name": "Guest checkout", "script": demo_shop::journey("ok")}),
    )
    .await;
    let run = run_and_wait(&api, &mut seen, test).await;
    assert_eq!(run["outcome"], "passed");
    assert!(
        open_alerts(&api, &mut seen, "checkout_failed")
            .await
            .is_empty()
    );

    // The dashboard shows the run's timeline.
    let page = owner.get(&format!("/checkout-runs/{}", run["id"])).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("stop: before placing the order"));
    seen.0.extend_from_slice(html.as_bytes());
    let page = owner.get(&format!("/checkout-tests/{test}")).await;
    seen.0
        .extend_from_slice(page.text().await.unwrap().as_bytes());

    // Nowhere: every table, every blob on disk, the runner's trace log, every API answer.
    let log_path = runner.log.clone();
    drop(runner);
    let mut conn = app.db().await;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Dump {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dump: String,
    }
    let tables: Vec<Name> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT table_name::text AS table_name FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert!(tables.len() > 20);
    for table in tables {
        let dump: Dump = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(format!(
                "SELECT coalesce(string_agg(t::text, '|'), '') AS dump FROM \"{}\" t",
                table.table_name
            )),
            &mut conn,
        )
        .await
        .unwrap();
        assert_absent(&format!("table {}", table.table_name), dump.dump.as_bytes());
    }
    let mut blobs = 0;
    let mut stack = vec![app.data_dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|e| e != "key") {
                assert_absent(&path.display().to_string(), &std::fs::read(&path).unwrap());
                blobs += 1;
            }
        }
    }
    assert!(
        blobs > 30,
        "the runs' artifacts were stored ({blobs} files)"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 1_000, "the runner logged at trace level");
    if std::panic::catch_unwind(|| assert_absent("the runner's log", &log)).is_err() {
        let kept = std::env::temp_dir().join("siteward-leaky-runner.log");
        std::fs::write(&kept, &log).unwrap();
        panic!(
            "the runner's log holds a secret; kept at {}",
            kept.display()
        );
    }
    assert_absent("the API answers", &seen.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_checked_before_saving_and_secrets_are_sealed_never_shown() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let target = new_target(&api, "https://shop.example.com/").await;
    let path = format!("/api/v1/targets/{target}/checkout-tests");

    // A broken script is refused with every problem and its place; nothing is stored.
    let response = api
        .send_json(
            Method::POST,
            &path,
            serde_json::json!({"name": "Broken", "script": "steps:\n  - clik: '#buy'\n  - goto: cart\n"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = response.text().await.unwrap();
    assert!(
        problem.contains("line 2, column 5: unknown step `clik`; did you mean `click`?"),
        "{problem}"
    );
    assert!(problem.contains("line 3, column 11"), "{problem}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM checkout_tests").await,
        0
    );
    let checked: serde_json::Value = api
        .send_json(
            Method::POST,
            "/api/v1/checkout-tests/validate",
            serde_json::json!({"script": "steps:\n  - fill: {selector: '#c', secret: cvc}\n  - stop\n"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(checked["valid"], true);
    assert_eq!(checked["secrets"], serde_json::json!(["cvc"]));

    let response = api
        .send_json(
            Method::POST,
            &path,
            serde_json::json!({"name": "Card", "script": "steps:\n  - fill: {selector: '#c', secret: card}\n  - stop\n"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let test = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let secret = format!("/api/v1/checkout-tests/{test}/secrets/card");
    let value = "5555444433331111";
    let response = api
        .send_json(Method::PUT, &secret, serde_json::json!({"value": value}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.text().await.unwrap().contains(value));

    // Stored sealed: the runners' key opens it, bound to this test and name only.
    let sealed = {
        #[derive(diesel::QueryableByName)]
        struct Sealed {
            #[diesel(sql_type = diesel::sql_types::Bytea)]
            sealed: Vec<u8>,
        }
        let mut conn = app.db().await;
        diesel_async::RunQueryDsl::get_result::<Sealed>(
            diesel::sql_query("SELECT sealed FROM checkout_secrets"),
            &mut conn,
        )
        .await
        .unwrap()
        .sealed
    };
    assert!(!String::from_utf8_lossy(&sealed).contains(value));
    let keys = siteward::checkouts::keys::read_key_file(&app.runner_key_file()).unwrap();
    let place = checkout_runner::sealing::secret_place(test, "card", "shop.example.com");
    assert_eq!(keys.open(&place, &sealed).unwrap().expose(), value);
    let elsewhere = checkout_runner::sealing::secret_place(test + 1, "card", "shop.example.com");
    assert!(keys.open(&elsewhere, &sealed).is_err(), "bound to its test");
    let renamed = checkout_runner::sealing::secret_place(test, "cvc", "shop.example.com");
    assert!(keys.open(&renamed, &sealed).is_err(), "bound to its name");
    let widened = checkout_runner::sealing::secret_place(test, "card", "*.com,shop.example.com");
    assert!(keys.open(&widened, &sealed).is_err(), "bound to its hosts");

    // No way to read it back: the test shows the name, the dashboard a password field.
    let body = api
        .get(&format!("/api/v1/checkout-tests/{test}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"card\"") && !body.contains(value));
    let page = owner
        .get(&format!("/checkout-tests/{test}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains(value) && page.contains("type=\"password\""));

    // Widening the hosts the test may open leaves the secret sealed for the old ones: it is
    // shown as needing to be set again (and a runner could not open it for the new hosts).
    let stale = |body: serde_json::Value| body["stale_secrets"].clone();
    let test_path = format!("/api/v1/checkout-tests/{test}");
    let widen = serde_json::json!({"name": "Card", "script": "allowed_hosts: [shop.example.com, '*.com']\nsteps:\n  - fill: {selector: '#c', secret: card}\n  - stop\n"});
    assert_eq!(
        api.send_json(Method::PUT, &test_path, widen).await.status(),
        StatusCode::OK
    );
    let body: serde_json::Value = api.get(&test_path).await.json().await.unwrap();
    assert_eq!(stale(body.clone()), serde_json::json!(["card"]));
    assert_eq!(body["secrets"][0]["hosts"], "shop.example.com");
    let page = owner
        .get(&format!("/checkout-tests/{test}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("hosts have changed since"), "{page}");
    let response = api
        .send_json(Method::PUT, &secret, serde_json::json!({"value": value}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = api.get(&test_path).await.json().await.unwrap();
    assert_eq!(stale(body.clone()), serde_json::json!([]));
    assert_eq!(body["secrets"][0]["hosts"], "*.com,shop.example.com");

    // Bad values are refused; a member may not set secrets; without a runner key, nothing seals.
    for bad in [
        serde_json::json!({"value": ""}),
        serde_json::json!({"value": "12\u{7}34"}),
    ] {
        let response = api.send_json(Method::PUT, &secret, bad).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let response = api
        .send_json(
            Method::PUT,
            &format!("/api/v1/checkout-tests/{test}/secrets/card%20number"),
            serde_json::json!({"value": "x"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let member = app.invite_and_sign_up(&owner, "member").await;
    let form = member
        .post_form(
            &format!("/checkout-tests/{test}/secrets"),
            &[("name", "card"), ("value", "1")],
        )
        .await;
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    app.count("WITH d AS (DELETE FROM runner_keys RETURNING 1) SELECT count(*) AS n FROM d")
        .await;
    let response = api
        .send_json(
            Method::PUT,
            &secret,
            serde_json::json!({"value": "4000000000000002"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("runner-keys"));
    let still: i64 = app
        .count("SELECT count(*) AS n FROM checkout_secrets WHERE name = 'card'")
        .await;
    assert_eq!(still, 1, "the earlier value is kept");
}
