//! The egress guard against a page that tries every way to reach private addresses. Each probe must
//! be refused, recorded, and a listener on the probed port must receive no connection at all.

mod support;

use fixture_sites::SHOP;
use scanner::ScanError;
use scanner::egress::EgressPolicy;
use support::{Harness, Trap};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_recorded_and_never_connected() {
    let h = Harness::start().await;
    let trap = Trap::start().await;
    let url = h.sites.url(SHOP, &format!("/egress?trap={}", trap.port));
    let out = h.scan(&url, &h.options()).await.expect("scan succeeds");
    let s = &out.snapshot;

    let blocked: Vec<(String, u16)> = s.blocked.iter().map(|b| (b.host.clone(), b.port)).collect();
    let port = trap.port;
    for expected in [
        ("127.0.0.1".to_owned(), port),
        ("169.254.169.254".to_owned(), 80),
        ("::1".to_owned(), port),
        ("localhost".to_owned(), port),
        ("::ffff:7f00:1".to_owned(), port),
    ] {
        assert!(
            blocked.contains(&expected),
            "{expected:?} not refused; refused: {blocked:?}"
        );
    }
    let metadata = s
        .blocked
        .iter()
        .find(|b| b.host == "169.254.169.254")
        .expect("metadata refusal");
    assert!(
        metadata.reason.contains("link-local"),
        "{}",
        metadata.reason
    );
    let localhost = s
        .blocked
        .iter()
        .find(|b| b.host == "localhost")
        .expect("name refusal");
    assert!(
        localhost.reason.contains("resolves to a "),
        "{}",
        localhost.reason
    );
    // Which private address a name leads to is not shown to whoever reads the scan.
    assert!(
        !localhost.reason.contains("127.0.0.1") && localhost.address.is_none(),
        "{localhost:?}"
    );
    assert!(
        s.blocked.iter().all(|b| b.host != SHOP),
        "the mapped first party must stay reachable"
    );

    // The redirect from the first party to a private address is followed to the guard and stops.
    let redirect = s
        .requests
        .iter()
        .find(|r| r.url.ends_with("/redirected"))
        .expect("redirect hop recorded");
    assert!(redirect.blocked, "{redirect:?}");
    let blocked_requests = s.requests.iter().filter(|r| r.blocked).count();
    assert!(
        blocked_requests >= 6,
        "img, v6, name, mapped, redirect, iframe, fetch: got {blocked_requests}"
    );
    let socket = s
        .requests
        .iter()
        .find(|r| r.resource_type == "WebSocket")
        .expect("the WebSocket is recorded");
    assert!(socket.blocked, "{socket:?}");

    assert_eq!(
        trap.connections(),
        0,
        "a refused destination received a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_first_urls_are_refused_before_the_browser_loads_them() {
    let h = Harness::start().await;
    let trap = Trap::start().await;
    for url in [
        format!("http://127.0.0.1:{}/", trap.port),
        format!("http://localhost:{}/", trap.port),
        format!("http://[::1]:{}/", trap.port),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ] {
        let Err(error) = h.scan(&url, &h.options()).await else {
            panic!("{url} was scanned")
        };
        assert!(matches!(error, ScanError::Refused { .. }), "{url}: {error}");
    }
    assert_eq!(trap.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_private_turns_the_guard_off() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.egress = EgressPolicy::public_only().allowing_private();
    let url = h.sites.url("127.0.0.1", "/simple");
    let out = h
        .scan(&url, &options)
        .await
        .expect("loopback is allowed when the guard is off");
    assert_eq!(out.snapshot.title, "Simple");
    assert!(out.snapshot.options.private_destinations_allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfer_budget_cuts_a_scan_that_downloads_too_much() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.limits.max_transfer_bytes = 2 * 1024 * 1024;
    let out = h
        .scan(&h.sites.url(SHOP, "/huge"), &options)
        .await
        .expect("scan completes with what it got");
    assert!(
        out.snapshot.limits_hit.iter().any(|l| matches!(l, scanner::snapshot::LimitHit::TransferBytes { max_bytes } if *max_bytes == 2 * 1024 * 1024)),
        "{:?}",
        out.snapshot.limits_hit
    );
    assert!(
        out.snapshot.dom.size_bytes < 4 * 1024 * 1024,
        "the page was cut off: {}",
        out.snapshot.dom.size_bytes
    );
}
