//! Real scans of the fixture sites in real Chromium: the exact sets a correct scan must find.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fixture_sites::{ADS, ANALYTICS, CDN, COOKIE_VALUES, SHOP, STORAGE_VALUES, WIDGET};
use scanner::classify::{CookieDatabase, HostList};
use scanner::snapshot::{ConsentMode, CookieSource, LimitHit, Party, Script, StorageKind};
use support::Harness;

/// Name, domain, party, setter host and how it was set.
type CookieFacts = (String, String, Party, Option<String>, Option<CookieSource>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_fixture_captures_exactly_what_a_visitor_receives() {
    let h = Harness::start().await;
    let mut options = h.options();
    // The ads script is injected 1.5 s after load; the quiet period must outlast that gap.
    options.quiet_period = Duration::from_millis(2_000);
    let database = CookieDatabase::load(&fixture_sites::open_cookie_database())
        .expect("cookie database loads");
    options.cookie_database = Some(std::sync::Arc::new(database));
    let trackers =
        HostList::parse(fixture_sites::TRACKER_LIST_JSON.as_bytes()).expect("tracker list parses");
    options.host_list = Some(std::sync::Arc::new(trackers));
    let url = h.sites.url(SHOP, "/");
    let out = h.scan(&url, &options).await.expect("scan succeeds");
    let s = &out.snapshot;

    assert_eq!(s.title, "Fixture Shop");
    assert_eq!(s.status, Some(200));
    assert_eq!(s.final_url, url);
    assert_eq!(s.first_party_domain, SHOP);
    assert!(s.limits_hit.is_empty(), "{:?}", s.limits_hit);
    assert!(s.blocked.is_empty(), "{:?}", s.blocked);

    let external: BTreeSet<String> = s
        .scripts
        .iter()
        .filter_map(|script| match script {
            Script::External { url, party, .. } => {
                assert_eq!(*party, Party::Third, "{url}");
                Some(url.clone())
            }
            Script::Inline { .. } => None,
        })
        .collect();
    let expected: BTreeSet<String> = [
        h.sites.url(CDN, "/lib.js"),
        h.sites.url(ANALYTICS, "/a.js"),
        h.sites.https_url(ADS, "/ads.js"),
    ]
    .into();
    assert_eq!(
        external, expected,
        "external scripts, including the one injected after load"
    );
    let inline = s
        .scripts
        .iter()
        .filter(|s| matches!(s, Script::Inline { .. }))
        .count();
    assert_eq!(inline, 2, "the two inline scripts of the page");
    let lib = s
        .scripts
        .iter()
        .find(|s| matches!(s, Script::External { url, .. } if url.ends_with("/lib.js")))
        .expect("lib");
    assert_eq!(
        lib.sha256(),
        hex_sha256("window.fixtureLib = { version: '1.2.3' };"),
        "the script hash is the SHA-256 of the body served"
    );

    let cookies: BTreeSet<CookieFacts> = s
        .cookies
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.domain.trim_start_matches('.').to_owned(),
                c.party,
                c.set_by_host.clone(),
                c.set_by,
            )
        })
        .collect();
    let expected: BTreeSet<_> = [
        ("session_id", SHOP, Party::First, SHOP, CookieSource::Header),
        (
            "inline_pref",
            SHOP,
            Party::First,
            SHOP,
            CookieSource::Script,
        ),
        ("_ga", SHOP, Party::First, ANALYTICS, CookieSource::Script),
        ("IDE", ADS, Party::Third, ADS, CookieSource::Header),
        (
            "widget_session",
            WIDGET,
            Party::Third,
            WIDGET,
            CookieSource::Header,
        ),
    ]
    .into_iter()
    .map(|(n, d, p, by, via)| {
        (
            n.to_owned(),
            d.to_owned(),
            p,
            Some(by.to_owned()),
            Some(via),
        )
    })
    .collect();
    assert_eq!(cookies, expected);
    let session = s
        .cookies
        .iter()
        .find(|c| c.name == "session_id")
        .expect("session cookie");
    assert!(session.session && session.http_only && !session.secure);
    let ad = s
        .cookies
        .iter()
        .find(|c| c.name == "IDE")
        .expect("ad cookie");
    assert!(!ad.session && ad.secure && ad.expires.is_some());
    assert!(s.browser.third_party_cookies_allowed);
    let classified: BTreeSet<(String, String, String)> = s
        .cookies
        .iter()
        .filter_map(|c| {
            c.classification
                .as_ref()
                .map(|k| (c.name.clone(), k.category.clone(), k.platform.clone()))
        })
        .collect();
    assert_eq!(
        classified,
        [
            (
                "IDE".to_owned(),
                "Marketing".to_owned(),
                "DoubleClick/Google Marketing".to_owned()
            ),
            (
                "_ga".to_owned(),
                "Analytics".to_owned(),
                "Google Analytics".to_owned()
            ),
        ]
        .into(),
        "only the cookies the database knows are classified"
    );

    let storage: BTreeSet<(StorageKind, Vec<String>)> = s
        .storage
        .iter()
        .map(|st| (st.kind, st.keys.clone()))
        .collect();
    assert_eq!(
        storage,
        [
            (StorageKind::Local, vec!["cart_token".to_owned()]),
            (StorageKind::Session, vec!["visit_id".to_owned()])
        ]
        .into()
    );

    assert_eq!(s.third_party_hosts, vec![ADS, ANALYTICS, CDN, WIDGET]);
    let listed: Vec<(&str, &str, &str)> = s
        .listed_hosts
        .iter()
        .map(|h| (h.host.as_str(), h.category.as_str(), h.entity.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ADS, "Advertising", "Fixture Ads Inc."),
            (ANALYTICS, "Analytics", "Fixture Analytics")
        ]
    );
    let beacon = s
        .requests
        .iter()
        .find(|r| r.url == h.sites.url(ANALYTICS, "/collect"))
        .expect("the analytics beacon is recorded");
    assert_eq!(
        (
            beacon.method.as_str(),
            beacon.resource_type.as_str(),
            beacon.status
        ),
        ("POST", "Ping", Some(204))
    );
    assert!(
        s.requests
            .iter()
            .any(|r| r.url == h.sites.https_url(WIDGET, "/frame") && r.resource_type == "Document")
    );
    assert!(s.requests.iter().all(|r| !r.blocked));
    let errors: Vec<&str> = s
        .console_errors
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(errors, vec!["fixture console error"]);

    assert_eq!(
        (s.screenshots.viewport.width, s.screenshots.viewport.height),
        (1366, 768)
    );
    assert_eq!(s.screenshots.full_page.width, 1366);
    assert!(
        s.screenshots.full_page.height > 1400,
        "the page is taller than the viewport"
    );
    assert!(out.viewport_png.starts_with(b"\x89PNG"));

    support::assert_matches_schema(&serde_json::to_value(s).expect("serializes"));
    let json = serde_json::to_string(s).expect("serializes");
    for secret in COOKIE_VALUES.iter().chain(STORAGE_VALUES.iter()) {
        assert!(!json.contains(secret), "{secret} leaked into the snapshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_chain_is_recorded_hop_by_hop() {
    let h = Harness::start().await;
    let out = h
        .scan(&h.sites.url(SHOP, "/hop"), &h.options())
        .await
        .expect("scan succeeds");
    let chain: Vec<(String, Option<u16>)> = out
        .snapshot
        .redirect_chain
        .iter()
        .map(|hop| (hop.url.clone(), hop.status))
        .collect();
    assert_eq!(
        chain,
        vec![
            (h.sites.url(SHOP, "/hop"), Some(301)),
            (h.sites.url(SHOP, "/old"), Some(301)),
            (h.sites.url(SHOP, "/"), Some(200)),
        ]
    );
    assert_eq!(out.snapshot.final_url, h.sites.url(SHOP, "/"));
    assert_eq!(out.snapshot.status, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scan_gets_a_fresh_context_with_nothing_left_from_the_last() {
    let h = Harness::start().await;
    let first = h
        .scan(&h.sites.url(SHOP, "/"), &h.options())
        .await
        .expect("first scan");
    assert!(!first.snapshot.cookies.is_empty());
    let second = h
        .scan(&h.sites.url(SHOP, "/simple"), &h.options())
        .await
        .expect("second scan");
    assert!(
        second.snapshot.cookies.is_empty(),
        "cookies leaked between scans: {:?}",
        second.snapshot.cookies
    );
    assert!(
        second.snapshot.storage.is_empty(),
        "storage leaked between scans: {:?}",
        second.snapshot.storage
    );
    assert_eq!(
        h.scanner.supervisor().launches(),
        1,
        "one browser served both scans"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_pages_are_followed_and_kept_as_text() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.policy_pages = true;
    let out = h
        .scan(&h.sites.url(SHOP, "/"), &options)
        .await
        .expect("scan succeeds");
    let pages: Vec<(String, String, Option<u16>)> = out
        .snapshot
        .policy_pages
        .iter()
        .map(|p| (format!("{:?}", p.kind), p.url.clone(), p.status))
        .collect();
    assert_eq!(
        pages,
        vec![
            (
                "Privacy".to_owned(),
                h.sites.url(SHOP, "/privacy"),
                Some(200)
            ),
            (
                "Cookies".to_owned(),
                h.sites.url(SHOP, "/cookie-policy"),
                Some(200)
            ),
            ("Terms".to_owned(), h.sites.url(SHOP, "/terms"), Some(200)),
        ]
    );
    assert!(
        out.snapshot.policy_pages[0]
            .text
            .contains("We process your personal data")
    );
    assert!(
        out.snapshot.policy_pages[2]
            .text
            .contains("All sales are final")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_run_concurrently_in_one_browser() {
    let h = Harness::start().await;
    let options = h.options();
    let urls: Vec<String> = (0..4).map(|_| h.sites.url(SHOP, "/simple")).collect();
    let scans = urls.iter().map(|u| h.scan(u, &options));
    let results = futures::future::join_all(scans).await;
    for result in results {
        assert_eq!(result.expect("scan succeeds").snapshot.title, "Simple");
    }
    assert_eq!(h.scanner.supervisor().launches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_tracker_is_caught_by_the_dwell_and_missed_without_one() {
    // The ads are injected 1.5 s after load. The minimum dwell after load catches them even with
    // a quiet period far shorter than that gap; with neither, they are missed.
    let h = Harness::start().await;
    let mut options = h.options();
    options.quiet_period = Duration::from_millis(300);
    let caught = h
        .scan(&h.sites.url(SHOP, "/"), &options)
        .await
        .expect("scan succeeds");
    assert!(caught.snapshot.third_party_hosts.contains(&ADS.to_owned()));
    options.min_dwell = Duration::ZERO;
    let missed = h
        .scan(&h.sites.url(SHOP, "/"), &options)
        .await
        .expect("scan succeeds");
    assert!(!missed.snapshot.third_party_hosts.contains(&ADS.to_owned()));
    assert!(
        !missed
            .snapshot
            .limits_hit
            .iter()
            .any(|l| matches!(l, LimitHit::NetworkNeverQuiet { .. }))
    );
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Scans `path` with `mode` and returns the snapshot.
async fn scan_with_consent(h: &Harness, path: &str, mode: ConsentMode) -> scanner::Snapshot {
    let mut options = h.options();
    options.consent_mode = mode;
    h.scan(&h.sites.url(SHOP, path), &options)
        .await
        .expect("scan succeeds")
        .snapshot
}

fn cookie_names(cookies: &[scanner::snapshot::Cookie]) -> BTreeSet<String> {
    cookies.iter().map(|c| c.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_known_platform_banner_records_what_consent_unlocks() {
    let h = Harness::start().await;
    let s = scan_with_consent(&h, "/consent", ConsentMode::AcceptAll).await;
    let consent = s.consent.as_ref().expect("consent outcome recorded");
    let clicked = consent.clicked.as_ref().expect("the banner was answered");
    assert_eq!(
        (clicked.matched_by.as_str(), clicked.label.as_str()),
        ("onetrust", "Sure thing")
    );
    assert_eq!(
        cookie_names(&consent.cookies_before),
        ["session_id".to_owned()].into()
    );
    assert_eq!(
        cookie_names(&s.cookies),
        ["_ga", "cmp_choice", "session_id"].map(String::from).into()
    );
    assert!(
        s.third_party_hosts.contains(&ANALYTICS.to_owned()),
        "the tracker loaded after consent"
    );
    assert_eq!(s.options.consent_mode, ConsentMode::AcceptAll);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_by_wording_keeps_the_tracker_out() {
    let h = Harness::start().await;
    let s = scan_with_consent(&h, "/consent-generic", ConsentMode::RejectAll).await;
    let clicked = s
        .consent
        .as_ref()
        .and_then(|c| c.clicked.as_ref())
        .expect("the banner was answered");
    assert_eq!(
        (clicked.matched_by.as_str(), clicked.label.as_str()),
        ("text", "Alle ablehnen")
    );
    assert_eq!(
        cookie_names(&s.cookies),
        ["cmp_choice", "session_id"].map(String::from).into()
    );
    assert!(!s.third_party_hosts.contains(&ANALYTICS.to_owned()));

    let accepted = scan_with_consent(&h, "/consent-generic", ConsentMode::AcceptAll).await;
    let clicked = accepted
        .consent
        .as_ref()
        .and_then(|c| c.clicked.as_ref())
        .expect("answered");
    assert_eq!(
        clicked.label, "Alle akzeptieren",
        "the decoy link was not taken for the button"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interaction_leaves_the_banner_alone_and_a_missing_banner_is_reported() {
    let h = Harness::start().await;
    let untouched = scan_with_consent(&h, "/consent", ConsentMode::NoInteraction).await;
    assert!(untouched.consent.is_none());
    assert_eq!(
        cookie_names(&untouched.cookies),
        ["session_id".to_owned()].into()
    );
    let no_banner = scan_with_consent(&h, "/simple", ConsentMode::AcceptAll).await;
    let consent = no_banner.consent.expect("outcome recorded");
    assert!(consent.clicked.is_none());
}

/// The payment page's security headers as the browser received them, values of cookies cut.
fn header_lines(out: &scanner::ScanOutput) -> Vec<String> {
    out.snapshot
        .document_headers
        .as_ref()
        .expect("the document's headers are recorded")
        .iter()
        .map(|h| format!("{}: {}", h.name, h.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documents_security_headers_are_kept_as_received_and_follow_the_page() {
    use fixture_sites::{PAY, payment_page};
    let h = Harness::start().await;
    let options = h.options();
    let url = h.sites.url(SHOP, "/payment");
    let cdn = h.sites.url(CDN, "");
    let pay = h.sites.url(PAY, "");
    let (cdn, pay) = (cdn.trim_end_matches('/'), pay.trim_end_matches('/'));
    let out = h.scan(&url, &options).await.expect("scan succeeds");
    let csp = format!(
        "content-security-policy: default-src 'self'; script-src 'self' {cdn} 'unsafe-inline'; frame-src {pay}; frame-ancestors 'none'"
    );
    assert_eq!(
        header_lines(&out),
        [
            "cache-control: no-store".to_owned(),
            csp.clone(),
            format!("permissions-policy: payment=(self \"{pay}\")"),
            "referrer-policy: strict-origin-when-cross-origin".to_owned(),
            "set-cookie: checkout_session; Path=/; HttpOnly; SameSite=Strict".to_owned(),
            "strict-transport-security: max-age=31536000".to_owned(),
            "x-frame-options: DENY".to_owned(),
        ]
    );
    h.sites.set_version(payment_page::CSP_DROPPED);
    let dropped = h.scan(&url, &options).await.expect("scan succeeds");
    assert!(!header_lines(&dropped).contains(&csp));
    assert_eq!(header_lines(&dropped).len(), 6);
    h.sites.set_version(payment_page::CSP_LOOSENED);
    let loosened = h.scan(&url, &options).await.expect("scan succeeds");
    assert!(
        header_lines(&loosened)
            .iter()
            .any(|l| l.contains("script-src * 'unsafe-inline' 'unsafe-eval'")),
        "{:?}",
        header_lines(&loosened)
    );
    // After redirects, the headers are the final document's: `/old` redirects to `/`, which
    // sets the session cookie.
    let redirected = h
        .scan(&h.sites.url(SHOP, "/old"), &options)
        .await
        .expect("scan succeeds");
    assert_eq!(
        header_lines(&redirected),
        ["set-cookie: session_id; Path=/; HttpOnly; SameSite=Lax"]
    );
}
