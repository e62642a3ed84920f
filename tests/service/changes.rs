//! What changed between two snapshots of a target: computed by the app after each snapshot,
//! exactly the expected typed changes and no others, readable over the API and in the dashboard.

use reqwest::StatusCode;

use super::support::*;

async fn admin(app: &TestApp) -> (Browser, ApiClient) {
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let key = app.create_key(&owner, "read_write").await;
    let api = app.api(&key);
    (owner, api)
}

/// A page-like picture; `banner` recolours a band across its top.
fn page(banner: [u8; 3]) -> Vec<u8> {
    png_of(&image::RgbaImage::from_fn(320, 240, |x, y| {
        if y < 40 {
            image::Rgba([banner[0], banner[1], banner[2], 255])
        } else if (y / 12) % 2 == 0 && x % 7 < 5 {
            image::Rgba([30, 30, 30, 255])
        } else {
            image::Rgba([250, 250, 250, 255])
        }
    }))
}

/// Scans the target once with this snapshot and screenshot; returns the snapshot id.
async fn snapshot(
    app: &TestApp,
    api: &ApiClient,
    runner: &RunnerApi,
    target: i64,
    png: &[u8],
    edit: impl Fn(&mut serde_json::Value),
) -> i64 {
    let scan = scan_now(api, target).await;
    let job = runner.claim(5).await.unwrap();
    assert_eq!(job.scan_id, scan);
    let mut doc = sample_snapshot(&job.url, png, png);
    edit(&mut doc);
    assert_eq!(
        runner.deliver(&job, png, png, &doc).await.status(),
        StatusCode::OK
    );
    app.count(&format!(
        "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_snapshot_is_compared_with_the_previous_one_into_exactly_the_expected_changes() {
    let app = TestApp::spawn().await;
    let (owner, api) = admin(&app).await;
    let target = new_target(&api, "https://shop.example.com/").await;
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let calm = page([240, 240, 240]);

    let first = snapshot(&app, &api, &runner, target, &calm, |_| {}).await;
    let changes = computed_changes(&api, first).await;
    assert!(
        changes["previous_snapshot_id"].is_null(),
        "the first snapshot has nothing before it"
    );
    assert_eq!(kinds(&changes), Vec::<String>::new());

    // Unchanged: nothing to report.
    let same = snapshot(&app, &api, &runner, target, &calm, |_| {}).await;
    let changes = computed_changes(&api, same).await;
    assert_eq!(changes["previous_snapshot_id"], first);
    assert_eq!(kinds(&changes), Vec::<String>::new(), "{changes}");

    // A new tracker and its cookie, the library changed at the same URL, a banner recoloured.
    let loud = page([200, 20, 20]);
    let changed = snapshot(&app, &api, &runner, target, &loud, |doc| {
        doc["scripts"][0]["sha256"] = serde_json::json!("ef".repeat(32));
        doc["scripts"].as_array_mut().unwrap().push(serde_json::json!({"kind": "external",
            "url": "https://tracker.example/t.js", "host": "tracker.example", "party": "third",
            "sha256": "aa".repeat(32), "size_bytes": 10, "frame_url": "https://shop.example.com/"}));
        doc["cookies"].as_array_mut().unwrap().push(serde_json::json!({"name": "_trk",
            "domain": ".tracker.example", "path": "/", "expires": null, "session": true,
            "secure": true, "http_only": false, "same_site": "none", "party": "third",
            "set_by_host": "tracker.example", "set_by": "script", "value_size": 20, "classification": null}));
        doc["third_party_hosts"] = serde_json::json!(["analytics.test", "tracker.example"]);
        doc["requests"].as_array_mut().unwrap().push(serde_json::json!({"url": "https://tracker.example/t.js",
            "method": "GET", "resource_type": "Script", "host": "tracker.example", "party": "third",
            "status": 200, "failure": null, "blocked": false, "started_ms": 9, "duration_ms": 1, "encoded_bytes": 10}));
    })
    .await;
    let changes = computed_changes(&api, changed).await;
    assert_eq!(
        kinds(&changes),
        [
            "cookie_added",
            "third_party_host_added",
            "request_host_added",
            "script_content_changed",
            "script_added",
            "visual_changed",
            "visual_changed",
        ],
        "{changes}"
    );
    let viewport_share = changes["visual"]["viewport"]["changed_share"]
        .as_f64()
        .unwrap();
    assert!(
        (0.15..0.2).contains(&viewport_share),
        "the banner is a sixth of the picture: {viewport_share}"
    );

    // Any two snapshots compare on demand, and the dashboard shows it.
    let diff: serde_json::Value = api
        .get(&format!(
            "/api/v1/targets/{target}/diff?from={first}&to={changed}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(diff["changes"].as_array().unwrap().len(), 7);
    assert!(
        diff["sentences"]
            .to_string()
            .contains("New third-party script https://tracker.example/t.js")
    );
    let latest: serde_json::Value = api
        .get(&format!("/api/v1/targets/{target}/diff"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (latest["from"].as_i64(), latest["to"].as_i64()),
        (Some(same), Some(changed))
    );
    let page_html = owner
        .get(&format!(
            "/targets/{target}/compare?from={first}&to={changed}"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page_html.contains("now serves different code"),
        "{page_html}"
    );
    // The history is a timeline: each snapshot with its count of changes and a link to them.
    let history = owner
        .get(&format!("/targets/{target}/scans"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        history.contains(&format!(
            "compare?from={same}&amp;to={changed}\">7 since #{same}"
        )),
        "{history}"
    );
    let image = owner.get(&format!("/snapshots/{changed}/diff.png")).await;
    assert_eq!(image.status(), StatusCode::OK);
    let picture = image::load_from_memory(&image.bytes().await.unwrap())
        .unwrap()
        .to_rgba8();
    assert_eq!(
        picture.get_pixel(10, 10).0[0],
        230,
        "the banner is painted as changed"
    );
    assert!(
        picture.get_pixel(10, 200).0[0] > 150 && picture.get_pixel(10, 200).0[1] > 150,
        "the rest is grey"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_regions_and_a_higher_threshold_keep_a_rotating_banner_quiet() {
    let app = TestApp::spawn().await;
    let (_, api) = admin(&app).await;
    let target = new_target(&api, "https://shop.example.com/").await;
    let response = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"ignore_regions": [{"x": 0, "y": 0, "width": 320, "height": 40}],
                               "ignore_selectors": ["#clock"], "page_kind": "checkout"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bad = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"ignore_selectors": ["div[[["], "visual_threshold": 300}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let runner = RunnerApi::new(&app, &runner_token(&app, "r").await);
    let clock = |time: &'static str| {
        move |doc: &mut serde_json::Value| {
            doc["dom"]["html"] =
                format!("<html><body><p>Shop</p><span id=\"clock\">{time}</span></body></html>")
                    .into();
        }
    };
    snapshot(
        &app,
        &api,
        &runner,
        target,
        &page([10, 10, 200]),
        clock("10:00"),
    )
    .await;
    let later = snapshot(
        &app,
        &api,
        &runner,
        target,
        &page([10, 200, 10]),
        clock("10:05"),
    )
    .await;
    let changes = computed_changes(&api, later).await;
    assert_eq!(kinds(&changes), Vec::<String>::new(), "{changes}");
    assert_eq!(changes["visual"]["viewport"]["changed_pixels"], 0);
}
