//! Site targets and crawls through the service: the lanes' protocol with the app (frontier kept
//! in PostgreSQL, pages handed out as jobs, a page's links, robots.txt and sitemaps taken in,
//! an unreachable page listed at once), the site snapshot and its diff against the previous
//! crawl raising alerts that name the page, bad rules refused; and real runners crawling the
//! outdoor fixture site while one of them is killed mid-crawl.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fixture_sites::FixtureSites;
use fixture_sites::outdoor::OUTDOOR;
use reqwest::{Method, StatusCode};

use super::runner::spawn_runner_with;
use super::support::*;

async fn owner_api(app: &TestApp) -> ApiClient {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    app.api(&key)
}

/// Makes `target` a site target with `crawl` rules.
async fn make_site(api: &ApiClient, target: i64, crawl: serde_json::Value) -> reqwest::Response {
    api.send_json(
        Method::PATCH,
        &format!("/api/v1/targets/{target}"),
        serde_json::json!({"kind": "site", "crawl": crawl}),
    )
    .await
}

async fn crawl_now(api: &ApiClient, target: i64) -> serde_json::Value {
    let response = api
        .request(Method::POST, &format!("/api/v1/targets/{target}/crawls"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

/// Polls the crawl until it is `done` or `failed` (panics with the last answer after `limit`).
async fn finished(api: &ApiClient, crawl: i64, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let body: serde_json::Value = api
            .get(&format!("/api/v1/crawls/{crawl}"))
            .await
            .json()
            .await
            .unwrap();
        if body["state"] == "done" || body["state"] == "failed" {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "crawl {crawl} did not finish within {limit:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn page_urls(crawl: &serde_json::Value, state: &str) -> Vec<String> {
    crawl["pages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == state)
        .map(|p| p["url"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_take_pages_from_the_app_and_the_site_snapshot_and_its_alerts_name_the_pages() {
    let app = TestApp::spawn().await;
    let api = owner_api(&app).await;
    let start = "https://www.outdoor.example/";
    let target = new_target(&api, start).await;
    let response = make_site(
        &api,
        target,
        serde_json::json!({"max_pages": 5, "per_template": 1}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let crawl = crawl_now(&api, target).await;
    let crawl_id = crawl["id"].as_i64().unwrap();
    assert_eq!(crawl["state"], "running");
    assert_eq!(page_urls(&crawl, "queued"), [start]);
    // A second crawl waits for the first.
    let again = api
        .request(Method::POST, &format!("/api/v1/targets/{target}/crawls"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let runner = RunnerApi::new(&app, &runner_token(&app, "lanes").await);
    let lane = runner.claim(0).await.expect("a lane is queued");
    assert_eq!(lane.body["crawl"]["crawl_id"], crawl_id);
    assert_eq!(lane.body["crawl"]["one_session"], true);
    // The crawl's pages are handed to its lanes only, never claimed on their own.
    let mut lanes = vec![lane];
    while let Some(other) = runner.claim(0).await {
        assert!(other.body["crawl"].is_object(), "{}", other.body);
        lanes.push(other);
    }
    assert_eq!(
        lanes.len(),
        4,
        "the organization's default: four pages at once"
    );
    let lane = &lanes[0];

    // The start page: its links, robots.txt and sitemap come in with it.
    let first = runner.crawl_page(lane).await.expect("the start page");
    assert_eq!(first.url, start);
    assert_eq!(first.body["crawl_page"]["number"], 1);
    assert_eq!(first.body["crawl_page"]["read_robots"], true);
    assert_eq!(first.body["crawl_page"]["read_sitemaps"], true);
    // Lanes wait while the start page is under way: it may add pages.
    let waiting: serde_json::Value = runner.crawl_next(&lanes[1]).await.json().await.unwrap();
    assert_eq!(waiting["next"], "wait");
    let finished_first = runner
        .finish_crawl_page(
            &first,
            |s| s,
            serde_json::json!({
                "links": ["/a", "/b#top", "/b?utm_source=x", "https://elsewhere.example/",
                          "mailto:shop@outdoor.example", "/private/x", "/product/one",
                          "/product/two", "https://blog.outdoor.example/"],
                "robots": {"origin": "https://www.outdoor.example",
                           "robots": {"sitemaps": [], "rules": [[false, "/private/"]]}},
                "sitemaps": {"read": [{"url": "https://www.outdoor.example/sitemap.xml",
                                       "entries": 1, "error": null}],
                             "pages": [["https://www.outdoor.example/sitemap.xml",
                                        "https://www.outdoor.example/from-sitemap"]]},
            }),
        )
        .await;
    assert_eq!(finished_first.status(), StatusCode::OK);
    let now: serde_json::Value = api
        .get(&format!("/api/v1/crawls/{crawl_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page_urls(&now, "queued"),
        [
            "https://www.outdoor.example/a",
            "https://www.outdoor.example/b",
            "https://www.outdoor.example/product/one",
            "https://blog.outdoor.example/",
        ],
        "first-party links normalized, deduplicated, sampled, robots applied, within 5 pages: {now}"
    );
    assert_eq!(page_urls(&now, "visited"), [start]);

    // A page the runner cannot visit is unreachable at once, with its reason.
    let second = runner.crawl_page(lane).await.unwrap();
    let failed = runner
        .request(
            Method::POST,
            &format!("/internal/v1/jobs/{}/fail", second.id),
        )
        .header("siteward-attempt", &second.token)
        .json(&serde_json::json!({"error": "net::ERR_NAME_NOT_RESOLVED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::OK);
    assert_eq!(
        failed.json::<serde_json::Value>().await.unwrap()["outcome"],
        "dead"
    );
    // Only the attempt holding the lane takes pages.
    let mut stale = lanes[1].clone();
    stale.token = "not-the-token".into();
    assert_eq!(
        runner.crawl_next(&stale).await.status(),
        StatusCode::CONFLICT
    );

    // The rest, one of them with a tracker no page had.
    while let Some(page) = runner.crawl_page(lane).await {
        let response = runner
            .finish_crawl_page(&page, |s| s, serde_json::json!({}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
    }
    let done = finished(&api, crawl_id, Duration::from_secs(30)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["page_count"], 4);
    assert_eq!(done["unreachable_count"], 1);
    let site = &done["site"];
    assert_eq!(site["site"], "outdoor.example");
    assert_eq!(site["pages"].as_array().unwrap().len(), 4);
    assert_eq!(
        site["unreachable"][0]["url"],
        "https://www.outdoor.example/a"
    );
    assert_eq!(
        site["unreachable"][0]["reason"],
        "net::ERR_NAME_NOT_RESOLVED"
    );
    let skipped: BTreeSet<(String, String)> = site["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["url"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("https://www.outdoor.example/private/x", "robots"),
        ("https://elsewhere.example/", "other_site"),
        ("https://www.outdoor.example/product/two", "sampled"),
        ("https://www.outdoor.example/from-sitemap", "page_cap"),
    ] {
        assert!(
            skipped.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {skipped:?}"
        );
    }
    assert_eq!(site["sitemaps"][0]["entries"], 1);
    let analytics = site["third_party_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "analytics.test")
        .expect("the pages' host is in the union");
    assert_eq!(analytics["pages"].as_array().unwrap().len(), 4);
    assert_eq!(done["previous_crawl_id"], serde_json::Value::Null);
    // The lanes left are told the crawl is over, and complete.
    for other in &lanes[1..] {
        let next: serde_json::Value = runner.crawl_next(other).await.json().await.unwrap();
        assert_eq!(next["next"], "done");
    }

    // The next crawl finds a tracker on one page: one alert, pointing to that page.
    let second_crawl = crawl_now(&api, target).await["id"].as_i64().unwrap();
    let lane = runner.claim(0).await.expect("a lane of the second crawl");
    let mut tracked_page = None;
    while let Some(page) = runner.crawl_page(&lane).await {
        let on_blog = page.url.starts_with("https://blog.");
        let links = if page.url == start {
            serde_json::json!({"links": ["/b", "/product/one", "https://blog.outdoor.example/"]})
        } else {
            serde_json::json!({})
        };
        let response = runner
            .finish_crawl_page(
                &page,
                |mut s| {
                    if on_blog {
                        s["third_party_hosts"]
                            .as_array_mut()
                            .unwrap()
                            .push("pixel.tracker.example".into());
                    }
                    s
                },
                links,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        if on_blog {
            tracked_page = Some(page.scan_id);
        }
    }
    let done = finished(&api, second_crawl, Duration::from_secs(30)).await;
    assert_eq!(done["previous_crawl_id"], crawl_id);
    let changes = done["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["change"] == "third_party_host_added"
                && c["host"] == "pixel.tracker.example"
                && c["pages"] == serde_json::json!(["https://blog.outdoor.example/"])),
        "{changes:?}"
    );
    let alerts: serde_json::Value = api
        .get(&format!("/api/v1/alerts?target_id={target}"))
        .await
        .json()
        .await
        .unwrap();
    let alerts = alerts["items"]
        .as_array()
        .or(alerts.as_array())
        .cloned()
        .unwrap_or_default();
    let pixel: Vec<&serde_json::Value> = alerts
        .iter()
        .filter(|a| a["rule"] == "new_third_party_host")
        .collect();
    assert_eq!(pixel.len(), 1, "one alert for the new host: {alerts:?}");
    assert!(
        pixel[0]["title"]
            .as_str()
            .unwrap()
            .contains("on 1 page (/)"),
        "{:?}",
        pixel[0]["title"]
    );
    let tracked_snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {}",
            tracked_page.unwrap()
        ))
        .await;
    assert_eq!(
        pixel[0]["first_snapshot_id"], tracked_snapshot,
        "the alert points to the page"
    );
    // A crawl page's own comparison raised nothing besides: the site speaks for its pages.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM alerts WHERE target_id = {target}"
        ))
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crawl_rules_are_refused_with_reasons_and_a_page_target_is_not_crawled() {
    let app = TestApp::spawn().await;
    let api = owner_api(&app).await;
    let target = new_target(&api, "https://shop.example/").await;
    for (crawl, field) in [
        (serde_json::json!({"max_pages": 0}), "crawl.max_pages"),
        (serde_json::json!({"max_pages": 500}), "crawl.max_pages"),
        (serde_json::json!({"include": ["blog/*"]}), "crawl.include"),
        (serde_json::json!({"max_depth": -1}), "crawl.max_depth"),
    ] {
        let response = make_site(&api, target, crawl.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{crawl}"
        );
        let body = response.text().await.unwrap();
        assert!(body.contains(field), "{crawl}: {body}");
    }
    let unknown = make_site(&api, target, serde_json::json!({"max_pagez": 3})).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    // Nothing was saved: it is still a page target, and a page target is not crawled.
    let saved: serde_json::Value = api
        .get(&format!("/api/v1/targets/{target}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(saved["kind"], "page");
    assert_eq!(saved["crawl_rules"], serde_json::Value::Null);
    let refused = api
        .request(Method::POST, &format!("/api/v1/targets/{target}/crawls"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    // The organization's cap is the limit, not the ceiling.
    app.count(
        "WITH c AS (UPDATE orgs SET max_crawl_pages = 10 RETURNING 1) SELECT count(*) AS n FROM c",
    )
    .await;
    let over = make_site(&api, target, serde_json::json!({"max_pages": 11})).await;
    assert_eq!(over.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(over.text().await.unwrap().contains("organization's cap"));
    let within = make_site(
        &api,
        target,
        serde_json::json!({"max_pages": 10, "exclude": ["/cart*"]}),
    )
    .await;
    assert_eq!(within.status(), StatusCode::OK);
    let saved: serde_json::Value = within.json().await.unwrap();
    assert_eq!(saved["kind"], "site");
    assert_eq!(saved["crawl_rules"]["max_pages"], 10);
    assert_eq!(
        saved["crawl_rules"]["exclude"],
        serde_json::json!(["/cart*"])
    );
    // A plain scan of a site target is a crawl, asked for as one.
    let scan = api
        .request(Method::POST, &format!("/api/v1/targets/{target}/scans"))
        .send()
        .await
        .unwrap();
    assert_eq!(scan.status(), StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_crawl_the_outdoor_site_and_one_killed_mid_crawl_loses_only_its_page() {
    let sites = FixtureSites::start().await.unwrap();
    let app = TestApp::spawn_with(&[("SITEWARD_RUNNER_LEASE", "3s")]).await;
    let api = owner_api(&app).await;
    let start = sites.url(OUTDOOR, "/");
    let target = new_target(&api, &start).await;
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"kind": "site", "wait_ms": 300, "dwell_ms": 200}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut doomed = spawn_runner_with(&app, &runner_token(&app, "doomed").await, &sites, 2);
    let _survivor = spawn_runner_with(&app, &runner_token(&app, "survivor").await, &sites, 2);
    let crawl_id = crawl_now(&api, target).await["id"].as_i64().unwrap();

    // Kill the doomed runner while it visits a page (after the start page).
    let started = Instant::now();
    loop {
        let busy = app
            .count(
                "SELECT count(*) AS n FROM jobs j JOIN scans s ON s.job_id = j.id
                 WHERE j.kind = 'crawl_page' AND j.state = 'running'
                   AND j.holder LIKE '%doomed%' AND s.id <> (SELECT min(id) FROM scans)",
            )
            .await;
        if busy > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the doomed runner never took a page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.kill_hard().await;

    let done = finished(&api, crawl_id, Duration::from_secs(240)).await;
    assert_eq!(done["state"], "done", "{done}");
    let short = |url: &str| {
        let url = url::Url::parse(url).unwrap();
        match url.query() {
            Some(q) => format!("{}{}?{q}", url.host_str().unwrap(), url.path()),
            None => format!("{}{}", url.host_str().unwrap(), url.path()),
        }
    };
    let www = |p: &str| format!("{OUTDOOR}{p}");
    // The same pages a crawl on the command line visits (scanner/tests/crawl.rs).
    let expected: BTreeSet<String> = fixture_sites::outdoor::DEFAULT_CRAWL
        .iter()
        .map(|(host, path)| format!("{host}{path}"))
        .collect();
    let site = &done["site"];
    let visited: BTreeSet<String> = site["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| short(p["url"].as_str().unwrap()))
        .collect();
    assert_eq!(visited, expected);
    let unreachable: Vec<String> = site["unreachable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{} {}", short(u["url"].as_str().unwrap()), u["reason"]))
        .collect();
    assert_eq!(unreachable.len(), 1, "{unreachable:?}");
    assert!(
        unreachable[0].starts_with(&www("/loop-a")) && unreachable[0].contains("REDIRECT"),
        "{unreachable:?}"
    );

    // The killed runner's page was visited again, by a lane of the survivor.
    assert!(
        app.count(
            "SELECT count(*) AS n FROM jobs WHERE kind = 'crawl_page' AND attempts > 1
               AND last_error LIKE '%doomed%' AND holder LIKE '%survivor%'"
        )
        .await
            >= 1,
        "a page of the doomed runner was retried by the survivor"
    );
    // One snapshot per visited page, however the pages were retried.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM snapshots sn JOIN scans s ON s.id = sn.scan_id WHERE s.crawl_id = {crawl_id}"
        ))
        .await,
        expected.len() as i64
    );

    // The tracker only the contact page loads is the site's, with that page.
    let contact = sites.url(OUTDOOR, "/contact");
    let ads = site["third_party_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == fixture_sites::ADS)
        .expect("ads.test is in the site's hosts");
    assert_eq!(ads["pages"], serde_json::json!([contact]));
    let ide = site["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "IDE")
        .expect("the pixel's cookie is in the site snapshot");
    assert_eq!(ide["pages"], serde_json::json!([contact]));

    // Each page is an ordinary scan: its HAR is there.
    let contact_page = done["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["final_url"] == contact.as_str())
        .expect("the contact page");
    let har = api
        .get(&format!(
            "/api/v1/snapshots/{}/har",
            contact_page["snapshot_id"]
        ))
        .await;
    assert_eq!(har.status(), StatusCode::OK);
    let har: serde_json::Value = har.json().await.unwrap();
    assert!(har["log"]["entries"].as_array().unwrap().iter().any(|e| {
        e["request"]["url"]
            .as_str()
            .unwrap()
            .contains(fixture_sites::ADS)
    }));
}
