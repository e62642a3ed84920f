//! The scan presents itself as a visitor's browser, not an automated one: checked by an
//! open-source bot detector (FingerprintJS's BotD, installed from npm) and by what a page's
//! server and scripts see.

mod support;

use fixture_sites::SHOP;
use scanner::ScanOptions;
use scanner::profile::{Device, VisitorProfile};
use scanner::snapshot::{RecordedVisitor, Snapshot};
use serde_json::Value;
use support::Harness;

/// The JSON a fixture page wrote into `<pre id="{id}">`.
fn pre_json(snapshot: &Snapshot, id: &str) -> Value {
    let html = &snapshot.dom.html;
    let open = format!("<pre id=\"{id}\">");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the DOM capture"))
        + open.len();
    let end = start + html[start..].find("</pre>").expect("closed pre");
    let text = html[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("#{id} holds {text:?}: {e}"))
}

async fn scan(h: &Harness, path: &str, options: &ScanOptions) -> Snapshot {
    fixture_sites::packages::packages_dir();
    h.scan(&h.sites.https_url(SHOP, path), options)
        .await
        .expect("scan succeeds")
        .snapshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botd_sees_a_visitor_in_a_default_scan_and_a_bot_when_the_tell_is_put_back() {
    let h = Harness::start().await;
    let verdict = pre_json(&scan(&h, "/v/botd", &h.default_options()).await, "verdict");
    assert_eq!(verdict["bot"], Value::Bool(false), "{verdict}");

    // The control: the same page with headless Chromium's own User-Agent is a bot to BotD, so the
    // verdict above is BotD's and not an empty page's.
    let mut tell = h.default_options();
    tell.user_agent = Some(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
         HeadlessChrome/156.0.0.0 Safari/537.36"
            .into(),
    );
    let verdict = pre_json(&scan(&h, "/v/botd", &tell).await, "verdict");
    assert_eq!(verdict["bot"], Value::Bool(true), "{verdict}");
    assert_eq!(verdict["botKind"], "headless_chrome", "{verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_scan_presents_desktop_chrome_in_english_on_berlin_time() {
    let h = Harness::start().await;
    let s = scan(&h, "/v/seen", &h.default_options()).await;
    let headers = pre_json(&s, "headers");
    let seen = pre_json(&s, "navigator");
    let user_agent = headers["user-agent"].as_str().expect("a User-Agent");
    assert!(!user_agent.contains("Headless"), "{user_agent}");
    assert!(user_agent.contains("X11; Linux x86_64"), "{user_agent}");
    assert_eq!(
        s.browser.user_agent, user_agent,
        "the snapshot names what was sent"
    );
    assert_eq!(headers["accept-language"], "en-US,en;q=0.9");
    let brands = headers["sec-ch-ua"].as_str().expect("client hints");
    assert!(
        brands.contains("\"Google Chrome\"") && brands.contains("\"Chromium\""),
        "{brands}"
    );
    assert_eq!(headers["sec-ch-ua-mobile"], "?0");
    assert_eq!(headers["sec-ch-ua-platform"], "\"Linux\"");
    assert_eq!(seen["webdriver"], Value::Bool(false));
    assert_eq!(seen["languages"], serde_json::json!(["en-US", "en"]));
    assert_eq!(seen["platform"], "Linux x86_64", "{seen}");
    assert_eq!(seen["hintsPlatform"], "Linux");
    assert_eq!(seen["timezone"], "Europe/Berlin");
    assert_eq!(seen["touchPoints"], 0);
    assert_eq!(seen["screen"], serde_json::json!([1366, 768]));
    assert_eq!(
        s.options.visitor,
        Some(RecordedVisitor {
            device: Device::Desktop,
            languages: vec!["en-US".into(), "en".into()],
            accept_language: "en-US,en;q=0.9".into(),
            timezone: "Europe/Berlin".into(),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mobile_profile_is_a_phone_in_the_targets_language_and_timezone() {
    let h = Harness::start().await;
    let (width, height) = Device::Mobile.default_viewport();
    let options = ScanOptions {
        profile: VisitorProfile {
            device: Device::Mobile,
            languages: VisitorProfile::parse_languages("de-AT,de").expect("valid"),
            timezone: "Europe/Vienna".into(),
        },
        viewport_width: width,
        viewport_height: height,
        ..h.default_options()
    };
    let s = scan(&h, "/v/seen", &options).await;
    let headers = pre_json(&s, "headers");
    let seen = pre_json(&s, "navigator");
    assert!(
        headers["user-agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Android") && ua.contains("Mobile Safari")),
        "{headers}"
    );
    assert_eq!(headers["sec-ch-ua-mobile"], "?1");
    assert_eq!(headers["sec-ch-ua-platform"], "\"Android\"");
    assert_eq!(headers["accept-language"], "de-AT,de;q=0.9");
    assert_eq!(seen["mobile"], Value::Bool(true));
    assert_eq!(seen["model"], "Pixel 8");
    assert_eq!(seen["languages"], serde_json::json!(["de-AT", "de"]));
    assert_eq!(seen["timezone"], "Europe/Vienna");
    assert_eq!(seen["touchPoints"], 5);
    assert_eq!(seen["screen"], serde_json::json!([412, 915]));
    assert_eq!(seen["webdriver"], Value::Bool(false));
}
