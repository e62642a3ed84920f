//! Every dashboard page people read a client's state on, rendered by real Chromium at a laptop's
//! width (1366 px) and a phone's (390 px): nothing pushes the page sideways
//! (`document.documentElement.scrollWidth <= innerWidth`), and enums read as words.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use scanner::egress::EgressPolicy;
use scanner::{BrowserOptions, ScanError, ScanOptions, Scanner, Supervisor};

use super::support::*;

/// A page whose widths Chromium measured.
#[derive(Debug, serde::Deserialize)]
struct Measured {
    path: String,
    scroll_width: i64,
    inner_width: i64,
    status_text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_laptop_and_a_phone_in_chromium() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up_first(&format!("Agency {}", unique())).await;
    let api = app.api(&app.create_key(&owner, "read_write").await);
    let runner = RunnerApi::new(&app, &runner_token(&app, "layout").await);

    // A target with a real-size screenshot, a long URL and a scan with changes; a report and
    // its share link; a compliance scan asked for.
    let long = format!(
        "http://shop-{}.test/a/very/long/path/that/does/not/wrap/easily/{}",
        unique(),
        "x".repeat(120)
    );
    let target = new_target(&api, &long).await;
    let client = app
        .count(&format!(
            "SELECT client_id AS n FROM targets WHERE id = {target}"
        ))
        .await;
    // A payment page, so that its script inventory and evidence have something to show.
    let response = api
        .send_json(
            Method::PATCH,
            &format!("/api/v1/targets/{target}"),
            serde_json::json!({"page_kind": "payment", "schedule": "0 6 * * *"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut scan = 0;
    for round in 0..2 {
        scan = scan_now(&api, target).await;
        let job = runner.claim(5).await.expect("the scan is queued");
        let picture =
            image::RgbaImage::from_pixel(1366, 768, image::Rgba([40, 90 + round, 200, 255]));
        let viewport = png_of(&picture);
        let full = png_of(&image::RgbaImage::from_pixel(
            1366,
            2400,
            image::Rgba([250, 250, 250, 255]),
        ));
        let mut snapshot = sample_snapshot(&job.url, &viewport, &full);
        snapshot["screenshots"]["viewport"]["width"] = 1366.into();
        snapshot["screenshots"]["viewport"]["height"] = 768.into();
        if round == 1 {
            snapshot["third_party_hosts"]
                .as_array_mut()
                .unwrap()
                .push("a-very-long-third-party-host-name-for-tracking.analytics.example".into());
        }
        let delivered = runner.deliver(&job, &viewport, &full, &snapshot).await;
        assert_eq!(delivered.status(), StatusCode::OK);
    }
    let snapshot = app
        .count(&format!(
            "SELECT snapshot_id AS n FROM scans WHERE id = {scan}"
        ))
        .await;
    computed_changes(&api, snapshot).await;
    let report: serde_json::Value = api
        .send_json(
            Method::POST,
            &format!("/api/v1/clients/{client}/reports"),
            serde_json::json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let share: serde_json::Value = api
        .send_json(
            Method::POST,
            &format!("/api/v1/reports/{}/shares", report["id"]),
            serde_json::json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    let shared = url::Url::parse(share["url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_string();
    let response = api
        .request(
            Method::POST,
            &format!("/api/v1/targets/{target}/compliance-scans"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let paths = [
        "/overview".to_string(),
        "/clients".into(),
        format!("/clients/{client}"),
        format!("/clients/{client}/reports"),
        format!("/clients/{client}/edit"),
        format!("/targets/{target}"),
        format!("/targets/{target}/edit"),
        format!("/targets/{target}/scans"),
        format!("/targets/{target}/compliance"),
        format!("/targets/{target}/payment"),
        format!("/clients/{client}/payment-evidence"),
        "/payment-rules".into(),
        format!("/scans/{scan}"),
        format!("/reports/{}", report["id"]),
        "/settings/branding".into(),
        "/alerts".into(),
        shared,
    ];
    let chromium = std::env::var_os("SITEWARD_CHROMIUM")
        .map_or_else(|| "/usr/bin/chromium".into(), Into::into);
    let scanner = Scanner::new(Supervisor::new(BrowserOptions {
        executable: chromium,
        ..BrowserOptions::default()
    }));
    let mut failures = Vec::new();
    for (width, height) in [(1366u32, 768u32), (390, 844)] {
        let options = ScanOptions {
            viewport_width: width,
            viewport_height: height,
            egress: EgressPolicy::public_only().allowing_private(),
            scan_timeout: Duration::from_secs(120),
            ..ScanOptions::default()
        };
        let base = app.base.clone();
        let email = owner.email.clone();
        let paths = &paths;
        let measured: Vec<Measured> = scanner
            .bare_tab(&app.base, &options, async |page| {
                let cdp = |e: &dyn std::fmt::Display| ScanError::Protocol(e.to_string());
                page.goto(format!("{base}/sign-in"))
                    .await
                    .map_err(|e| cdp(&e))?;
                // Sign in as the form would, and wait for the answer before going on.
                let sign_in = format!(
                    "(async () => {{ const f = document.querySelector('form[action=\"/sign-in\"]'); \
                     f.email.value = {email:?}; f.password.value = {PASSWORD:?}; \
                     const r = await fetch('/sign-in', {{method: 'POST', body: new URLSearchParams(new FormData(f)), \
                     credentials: 'same-origin', redirect: 'manual'}}); return r.type + ' ' + r.status; }})()"
                );
                page.evaluate(sign_in).await.map_err(|e| cdp(&e))?;
                let mut out = Vec::new();
                for path in paths {
                    page.goto(format!("{base}{path}"))
                        .await
                        .map_err(|e| cdp(&e))?;
                    let json: String = page
                        .evaluate(
                            "JSON.stringify({path: location.pathname, \
                              scroll_width: document.documentElement.scrollWidth, \
                              inner_width: window.innerWidth, \
                              status_text: (performance.getEntriesByType('navigation')[0] || {}).responseStatus === 200 \
                                ? '' : 'answered ' + (performance.getEntriesByType('navigation')[0] || {}).responseStatus + ': ' + document.title})",
                        )
                        .await
                        .map_err(|e| cdp(&e))?
                        .into_value()
                        .map_err(|e| cdp(&e))?;
                    out.push(serde_json::from_str(&json).map_err(|e| cdp(&e))?);
                }
                Ok(out)
            })
            .await
            .unwrap_or_else(|e| panic!("Chromium could not render the pages: {e}"));
        let shown: Vec<&str> = measured.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            shown,
            paths.iter().map(String::as_str).collect::<Vec<_>>(),
            "each page itself, signed in"
        );
        for page in measured {
            if page.scroll_width > page.inner_width {
                failures.push(format!(
                    "{} at {width} px: {} px wide",
                    page.path, page.scroll_width
                ));
            }
            assert!(
                page.status_text.is_empty(),
                "{} at {width} px: {}",
                page.path,
                page.status_text
            );
        }
    }
    scanner.supervisor().shutdown().await;
    assert!(failures.is_empty(), "pages overflow: {failures:#?}");
}
