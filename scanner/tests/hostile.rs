//! Pages that fight back: never finish, open dialogs, start downloads, are huge, crash the
//! renderer or never answer. Each scan ends, says what happened, and leaves the browser usable.

mod support;

use std::time::{Duration, Instant};

use fixture_sites::SHOP;
use scanner::ScanError;
use scanner::snapshot::LimitHit;
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_finishes_loading_is_captured_at_the_load_timeout() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.load_timeout = Duration::from_secs(3);
    let out = h
        .scan(&h.sites.url(SHOP, "/hang"), &options)
        .await
        .expect("scan completes");
    let s = &out.snapshot;
    assert_eq!(s.title, "Never finishes");
    assert!(
        s.limits_hit
            .contains(&LimitHit::LoadTimeout { after_ms: 3000 }),
        "{:?}",
        s.limits_hit
    );
    let pending = s
        .requests
        .iter()
        .find(|r| r.url.ends_with("/slow-forever"))
        .expect("pending request recorded");
    assert_eq!(pending.duration_ms, None, "it never finished");
    assert!(s.timings.load_ms.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialogs_are_dismissed_and_recorded() {
    let h = Harness::start().await;
    let out = h
        .scan(&h.sites.url(SHOP, "/dialogs"), &h.options())
        .await
        .expect("scan completes");
    let dialogs: Vec<(String, String)> = out
        .snapshot
        .dialogs
        .iter()
        .map(|d| (d.kind.clone(), d.message.clone()))
        .collect();
    assert_eq!(
        dialogs,
        vec![
            ("alert".to_owned(), "first alert".to_owned()),
            ("confirm".to_owned(), "are you sure?".to_owned()),
            ("prompt".to_owned(), "your name?".to_owned()),
            ("alert".to_owned(), "after load".to_owned()),
        ]
    );
    assert_eq!(out.snapshot.title, "Dialogs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_denied_and_recorded() {
    let h = Harness::start().await;
    let out = h
        .scan(&h.sites.url(SHOP, "/download"), &h.options())
        .await
        .expect("scan completes");
    let downloads: Vec<(String, String)> = out
        .snapshot
        .downloads
        .iter()
        .map(|d| (d.url.clone(), d.suggested_filename.clone()))
        .collect();
    assert_eq!(
        downloads,
        vec![(h.sites.url(SHOP, "/file.bin"), "report.bin".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_page_is_captured_with_its_dom_truncated() {
    let h = Harness::start().await;
    let out = h
        .scan(&h.sites.url(SHOP, "/huge"), &h.options())
        .await
        .expect("scan completes");
    let dom = &out.snapshot.dom;
    assert!(dom.truncated);
    assert!(
        dom.size_bytes > 50 * 1024 * 1024,
        "full size is reported: {}",
        dom.size_bytes
    );
    assert!(dom.html.len() <= 5 * 1024 * 1024);
    assert!(
        out.snapshot
            .limits_hit
            .iter()
            .any(|l| matches!(l, LimitHit::DomSize { .. }))
    );
    assert!(
        out.snapshot.screenshots.full_page_truncated,
        "the page is far taller than the cap"
    );
    assert_eq!(out.snapshot.screenshots.full_page.height, 16_384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_crash_fails_the_scan_and_the_browser_serves_the_next_one() {
    let h = Harness::start().await;
    let started = Instant::now();
    let error = match h.scan(&h.sites.url(SHOP, "/crash"), &h.options()).await {
        Ok(out) => panic!(
            "the renderer should have died; limits hit: {:?}",
            out.snapshot.limits_hit
        ),
        Err(error) => error,
    };
    assert!(matches!(error, ScanError::RendererCrashed), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "failed promptly: {:?}",
        started.elapsed()
    );
    let next = h
        .scan(&h.sites.url(SHOP, "/simple"), &h.options())
        .await
        .expect("next scan works");
    assert_eq!(next.snapshot.title, "Simple");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_never_answers_times_out_with_a_clear_error() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.load_timeout = Duration::from_secs(2);
    let Err(error) = h.scan(&h.sites.url(SHOP, "/no-response"), &options).await else {
        panic!("a document that never answers cannot be scanned");
    };
    assert!(matches!(error, ScanError::Timeout { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "timed out after 2 s waiting for the page to respond"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_errors_and_uncaught_exceptions_are_recorded_with_their_source() {
    let h = Harness::start().await;
    let out = h
        .scan(&h.sites.url(SHOP, "/errors"), &h.options())
        .await
        .expect("scan completes");
    let errors: Vec<(String, String, Option<String>)> = out
        .snapshot
        .console_errors
        .iter()
        .map(|e| (e.kind.clone(), e.message.clone(), e.source_url.clone()))
        .collect();
    let page = h.sites.url(SHOP, "/errors");
    assert!(
        errors.contains(&(
            "console.error".into(),
            "logged problem".into(),
            Some(page.clone())
        )),
        "{errors:?}"
    );
    let uncaught: Vec<&(String, String, Option<String>)> = errors
        .iter()
        .filter(|e| e.0 == "uncaught_exception")
        .collect();
    assert_eq!(uncaught.len(), 2, "{errors:?}");
    assert!(
        uncaught
            .iter()
            .any(|e| e.1.contains("fixture uncaught") && e.2.as_deref() == Some(page.as_str())),
        "{errors:?}"
    );
    let broken = h.sites.url(fixture_sites::CDN, "/broken.js");
    assert!(
        uncaught
            .iter()
            .any(|e| e.1.contains("undefinedFunctionFromCdn")
                && e.2.as_deref() == Some(broken.as_str())),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.0 == "log"
                && e.2.as_deref() == Some(h.sites.url(SHOP, "/missing.png").as_str())),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_shrink_to_fit_the_scan_timeout_so_a_slow_page_still_gives_a_snapshot() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.load_timeout = Duration::from_secs(30);
    options.scan_timeout = Duration::from_secs(12);
    options.policy_pages = true;
    let started = Instant::now();
    let out = h
        .scan(&h.sites.url(SHOP, "/hang"), &options)
        .await
        .expect("a partial snapshot, not a timeout");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "within the scan timeout: {:?}",
        started.elapsed()
    );
    let load = out.snapshot.limits_hit.iter().find_map(|l| match l {
        LimitHit::LoadTimeout { after_ms } => Some(*after_ms),
        _ => None,
    });
    // A quarter of the 12 s is kept for capture, so the load wait ends by 9 s, not at 30 s.
    assert!(
        load.is_some_and(|ms| ms <= 9_000),
        "{:?}",
        out.snapshot.limits_hit
    );
}
