//! Real scans of the fixture sites in real Chromium.

mod support;

use scanner::snapshot::{CookieSource, Party, Script};
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_fixture_captures_exactly_what_a_visitor_receives() {
    let h = Harness::start().await;
    let mut options = h.options();
    options.quiet_period = std::time::Duration::from_millis(2_000);
    let out = h.scan(&h.sites.url("shop.test", "/"), &options).await.expect("scan succeeds");
    let s = &out.snapshot;
    println!("{}", serde_json::to_string_pretty(s).unwrap().chars().filter(|_| true).take(20000).collect::<String>());
    assert_eq!(s.title, "Fixture Shop");
    assert_eq!(s.status, Some(200));
}
