//! Pages built the way real sites are (`fixture_sites::real_world`), scanned with default
//! options: each captured whole, with no DevTools message lost, and the wait ending because the
//! page settled — not because it ran into its cap.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fixture_sites::dns::CLOAKED_METRICS;
use fixture_sites::{ADS, ANALYTICS, CDN, SHOP, WIDGET};
use scanner::snapshot::{DnsAlias, LimitHit, Party, Script, Settle, SettleReason, Snapshot};
use support::Harness;

fn cookie_names(s: &Snapshot) -> BTreeSet<String> {
    s.cookies.iter().map(|c| c.name.clone()).collect()
}

fn external_scripts(s: &Snapshot) -> BTreeSet<String> {
    s.scripts
        .iter()
        .filter_map(|script| match script {
            Script::External { url, .. } => Some(url.clone()),
            Script::Inline { .. } => None,
        })
        .collect()
}

/// Scans `url` with the scanner's default options.
async fn scan_with_defaults(h: &Harness, url: &str) -> Snapshot {
    h.scan(url, &h.default_options())
        .await
        .expect("scan succeeds")
        .snapshot
}

/// The wait ended because the page settled, with nothing cut short.
fn assert_settled(s: &Snapshot) -> &Settle {
    assert!(
        s.limits_hit.is_empty(),
        "{:?}, still open: {:#?}",
        s.limits_hit,
        s.settle
    );
    let settle = s
        .settle
        .as_ref()
        .expect("the snapshot says how the wait ended");
    assert!(
        matches!(settle.reason, SettleReason::Quiet | SettleReason::Dwell),
        "{settle:?}"
    );
    assert!(s.timings.network_quiet_ms.is_some());
    settle
}

fn open_request<'a>(settle: &'a Settle, url: &str) -> &'a scanner::snapshot::OpenRequest {
    settle
        .open_requests
        .iter()
        .find(|r| r.url == url)
        .unwrap_or_else(|| panic!("{url} is listed as still open: {:?}", settle.open_requests))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_fetch_whose_body_is_never_read_does_not_hold_the_scan() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/ad-unread-fetch")).await;
    let settle = assert_settled(s);
    assert_eq!(cookie_names(s), ["_adl".to_string()].into());
    assert!(external_scripts(s).contains(&h.sites.https_url(ADS, "/rw/ad-loader.js")));
    let bid = open_request(settle, &h.sites.https_url(ADS, "/rw/bid"));
    assert!(bid.responded, "its headers arrived: {bid:?}");
    assert!(
        s.requests.iter().any(|r| r.url == bid.url),
        "and it is in the request list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_long_polls_and_heartbeats_do_not_hold_the_scan() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/live")).await;
    let settle = assert_settled(s);
    assert_eq!(
        settle.reason,
        SettleReason::Quiet,
        "the tracker injected 2.5 s after load moves the end past the dwell"
    );
    assert_eq!(cookie_names(s), ["_late".to_string()].into());
    assert!(external_scripts(s).contains(&h.sites.url(ANALYTICS, "/rw/late.js")));
    let stream = open_request(settle, &h.sites.url(SHOP, "/rw/events"));
    assert_eq!(stream.resource_type, "EventSource");
    assert!(stream.responded);
    let poll = open_request(settle, &h.sites.url(SHOP, "/rw/poll"));
    assert!(!poll.responded, "the long poll has not answered: {poll:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_a_tag_manager_injects_on_timers_and_on_load_is_captured() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/tag-manager")).await;
    assert_settled(s);
    let expected: BTreeSet<String> = ["_tag_load", "_tag1", "_tag2", "_tag3"]
        .map(String::from)
        .into();
    assert_eq!(cookie_names(s), expected);
    let expected: BTreeSet<String> = [
        h.sites.url(CDN, "/rw/gtm.js"),
        h.sites.url(ANALYTICS, "/rw/tag-load.js"),
        h.sites.https_url(ADS, "/rw/tag-1.js"),
        h.sites.url(ANALYTICS, "/rw/tag-2.js"),
        h.sites.https_url(ADS, "/rw/tag-3.js"),
    ]
    .into();
    assert_eq!(external_scripts(s), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_never_settles_ends_at_the_cap_and_says_so() {
    let h = Harness::start().await;
    let options = scanner::ScanOptions {
        load_timeout: Duration::from_secs(5),
        ..h.default_options()
    };
    let out = h
        .scan(&h.sites.url(SHOP, "/rw/never-settles"), &options)
        .await
        .expect("scan succeeds");
    let s = &out.snapshot;
    let settle = s.settle.as_ref().expect("settle recorded");
    assert_eq!(settle.reason, SettleReason::Cap, "{settle:?}");
    assert!(s.timings.network_quiet_ms.is_none());
    assert!(
        s.limits_hit
            .iter()
            .any(|l| matches!(l, LimitHit::NetworkNeverQuiet { .. })),
        "{:?}",
        s.limits_hit
    );
    let pings = s
        .requests
        .iter()
        .filter(|r| r.url.contains("/rw/ping"))
        .count();
    assert!(pings >= 10, "the page kept asking: {pings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_of_dedicated_shared_and_service_workers_are_listed() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.https_url(SHOP, "/rw/workers")).await;
    assert_settled(s);
    let urls: BTreeSet<&str> = s.requests.iter().map(|r| r.url.as_str()).collect();
    for expected in [
        h.sites.https_url(ANALYTICS, "/rw/worker-hit"),
        h.sites.https_url(ANALYTICS, "/rw/shared-hit"),
        h.sites.https_url(ADS, "/rw/sw-hit"),
    ] {
        assert!(urls.contains(expected.as_str()), "{expected} in {urls:#?}");
    }
    assert!(s.third_party_hosts.contains(&ADS.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_third_party_frames_each_set_their_cookie() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.https_url(SHOP, "/rw/frames")).await;
    assert_settled(s);
    let cookies: BTreeSet<(String, String)> = s
        .cookies
        .iter()
        .map(|c| (c.name.clone(), c.domain.trim_start_matches('.').to_owned()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("widget_id".to_string(), WIDGET.to_string()),
        ("ad_id".to_string(), ADS.to_string()),
    ]
    .into();
    assert_eq!(cookies, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_images_far_down_the_page_are_loaded_by_scrolling_through_it() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/lazy")).await;
    assert_settled(s);
    let images: BTreeSet<String> = s
        .requests
        .iter()
        .filter(|r| r.url.contains("/rw/lazy-"))
        .map(|r| r.url.clone())
        .collect();
    let expected: BTreeSet<String> = (0..10)
        .map(|n| h.sites.url(SHOP, &format!("/rw/lazy-{n}.gif")))
        .collect();
    assert_eq!(images, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keepalive_fetch_is_listed() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/keepalive")).await;
    assert_settled(s);
    let hit = h.sites.url(ANALYTICS, "/rw/keepalive-hit");
    let request = s
        .requests
        .iter()
        .find(|r| r.url == hit)
        .unwrap_or_else(|| panic!("{hit} in {:#?}", s.requests));
    assert_eq!(request.method, "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_through_a_tracker_is_in_the_chain_with_its_cookie() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/bounce")).await;
    assert_settled(s);
    let landed = h.sites.url(SHOP, "/rw/landed");
    assert_eq!(s.final_url, landed);
    let chain: Vec<(String, Option<u16>)> = s
        .redirect_chain
        .iter()
        .map(|hop| (hop.url.clone(), hop.status))
        .collect();
    assert_eq!(
        chain,
        vec![
            (h.sites.url(SHOP, "/rw/bounce"), Some(302)),
            (
                format!("{}?to={landed}", h.sites.url(ADS, "/rw/bounce")),
                Some(302)
            ),
            (landed.clone(), Some(200)),
        ]
    );
    let bounce = s
        .cookies
        .iter()
        .find(|c| c.name == "bounce_id")
        .expect("the tracker's cookie");
    assert_eq!(bounce.domain.trim_start_matches('.'), ADS);
    assert_eq!(bounce.set_by_host.as_deref(), Some(ADS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_widget_whose_socket_stays_open_does_not_hold_the_scan() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/chat")).await;
    let settle = assert_settled(s);
    assert_eq!(cookie_names(s), ["chat_seen".to_string()].into());
    let socket = open_request(settle, &h.sites.ws_url(WIDGET, "/chat"));
    assert_eq!(socket.resource_type, "WebSocket");
    assert!(
        s.dom.html.contains("How can we help?"),
        "the greeting arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_in_a_closed_shadow_root_is_in_the_dom_capture() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/shadow-banner")).await;
    assert_settled(s);
    let html = &s.dom.html;
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..80.min(html.len())]
    );
    assert!(html.contains("shadowrootmode=\"closed\""), "{html}");
    assert!(html.contains("We value your privacy"), "{html}");
    assert!(html.contains("<h1>Welcome</h1>"), "the light DOM too");
    assert!(!s.dom.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_beacon_sent_when_the_page_is_hidden_is_listed() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/exit-beacon")).await;
    assert_settled(s);
    let exit = h.sites.url(ANALYTICS, "/rw/exit");
    let beacon = s
        .requests
        .iter()
        .find(|r| r.url == exit)
        .unwrap_or_else(|| panic!("{exit} in {:#?}", s.requests));
    assert!(beacon.after_hide, "{beacon:?}");
    assert!(
        s.requests.iter().filter(|r| r.after_hide).count() == 1,
        "only the beacon was sent after the page was hidden"
    );
    assert!(s.third_party_hosts.contains(&ANALYTICS.to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_behind_a_first_party_cname_is_listed_as_a_cloaked_third_party() {
    let h = Harness::start().await;
    let s = &scan_with_defaults(&h, &h.sites.url(SHOP, "/rw/cname-metrics")).await;
    assert_settled(s);
    let hit = h.sites.url(CLOAKED_METRICS, "/rw/m-hit");
    let beacon = s
        .requests
        .iter()
        .find(|r| r.url == hit)
        .unwrap_or_else(|| panic!("{hit} in {:#?}", s.requests));
    assert_eq!(beacon.party, Party::First, "first party by name");
    assert_eq!(
        s.dns_aliases,
        vec![DnsAlias {
            host: CLOAKED_METRICS.to_owned(),
            chain: vec![ANALYTICS.to_owned()],
            canonical_party: Party::Third,
            cloaked: true,
        }]
    );
    assert!(
        s.third_party_hosts.contains(&CLOAKED_METRICS.to_owned()),
        "{:?}",
        s.third_party_hosts
    );
    let cookie = s
        .cookies
        .iter()
        .find(|c| c.name == "_cm_id")
        .unwrap_or_else(|| panic!("_cm_id in {:#?}", s.cookies));
    assert_eq!(cookie.party, Party::First);
    assert_eq!(cookie.set_by_host.as_deref(), Some(CLOAKED_METRICS));
}
