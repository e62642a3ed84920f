//! Crawls of the outdoor fixture site (63 pages on two hosts): which pages a crawl visits for its
//! rules, template sampling, sitemaps, robots.txt, a redirect loop, and the site snapshot's union.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use fixture_sites::outdoor::{OUTDOOR, OUTDOOR_BLOG};
use scanner::crawl::{CrawlRules, Pattern, SkipReason};
use scanner::{CrawlOutput, ScanOptions};
use support::Harness;

fn fast(h: &Harness) -> ScanOptions {
    ScanOptions {
        quiet_period: Duration::from_millis(300),
        min_dwell: Duration::from_millis(200),
        ..h.options()
    }
}

async fn crawl(h: &Harness, rules: CrawlRules) -> CrawlOutput {
    h.scanner
        .crawl(
            &h.sites.url(OUTDOOR, "/"),
            &fast(h),
            rules,
            Duration::from_secs(300),
            1,
            &|_| {},
        )
        .await
        .expect("the crawl runs")
}

/// The visited pages as `host/path?query`.
fn visited(output: &CrawlOutput) -> BTreeSet<String> {
    output.site.pages.iter().map(|p| short(&p.url)).collect()
}

fn short(url: &str) -> String {
    let url = url::Url::parse(url).expect("a URL");
    let host = url.host_str().unwrap_or_default().to_owned();
    match url.query() {
        Some(query) => format!("{host}{}?{query}", url.path()),
        None => format!("{host}{}", url.path()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_crawl_visits_the_site_as_a_visitor_with_sampling_sitemaps_and_robots() {
    let h = Harness::start().await;
    let output = crawl(&h, CrawlRules::default()).await;
    let www = |p: &str| format!("{OUTDOOR}{p}");
    let expected: BTreeSet<String> = fixture_sites::outdoor::DEFAULT_CRAWL
        .iter()
        .map(|(host, path)| format!("{host}{path}"))
        .collect();
    assert_eq!(visited(&output), expected);
    assert_eq!(output.pages.len(), expected.len());
    assert_eq!(output.site.pages[0].url, h.sites.url(OUTDOOR, "/"));

    // The redirect loop is listed as unreachable, with the browser's reason.
    let unreachable: Vec<(String, String)> = output
        .site
        .unreachable
        .iter()
        .map(|u| (short(&u.url), u.reason.clone()))
        .collect();
    assert_eq!(unreachable.len(), 1, "{unreachable:?}");
    assert_eq!(unreachable[0].0, www("/loop-a"));
    assert!(unreachable[0].1.contains("REDIRECT"), "{unreachable:?}");

    // What it chose not to visit, and why.
    let skipped = |reason: &SkipReason| {
        output
            .site
            .skipped
            .iter()
            .filter(|s| &s.reason == reason)
            .map(|s| short(&s.url))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(skipped(&SkipReason::Robots), [www("/account/")].into());
    assert!(skipped(&SkipReason::OtherSite).contains(&format!("{}/", fixture_sites::SHOP)));
    assert_eq!(output.site.skipped_counts["sampled"], 38 + 8);
    assert!(output.site.skipped.iter().any(|s| s.reason
        == SkipReason::Sampled {
            template: format!("{OUTDOOR}/product/{{slug}}")
        }));
    let sitemaps: Vec<(String, usize, Option<String>)> = output
        .site
        .sitemaps
        .iter()
        .map(|s| (short(&s.url), s.entries, s.error.clone()))
        .collect();
    assert_eq!(
        sitemaps,
        [
            (www("/sitemap.xml"), 1, None),
            (www("/sitemaps/pages.xml.gz"), 5, None)
        ]
    );

    // The tracker only the contact page loads is in the site snapshot with that page alone,
    // and so is the cookie its pixel sets, though the session keeps it for the pages after.
    let contact = h.sites.url(OUTDOOR, "/contact");
    let ads = output
        .site
        .third_party_hosts
        .iter()
        .find(|h| h.name == fixture_sites::ADS)
        .expect("ads.test is in the site's third-party hosts");
    assert_eq!(ads.pages, std::slice::from_ref(&contact));
    let ide = output
        .site
        .cookies
        .iter()
        .find(|c| c.name == "IDE")
        .expect("the pixel's cookie is in the site snapshot");
    assert_eq!(ide.pages, std::slice::from_ref(&contact));
    let after_contact = output
        .pages
        .iter()
        .skip_while(|p| p.snapshot.final_url != contact)
        .nth(1)
        .expect("a page after the contact page");
    assert!(
        after_contact
            .snapshot
            .cookies
            .iter()
            .any(|c| c.name == "IDE"),
        "one session: the cookie is carried to the next page"
    );
    assert!(
        !after_contact
            .snapshot
            .third_party_hosts
            .contains(&fixture_sites::ADS.to_owned()),
        "each page holds its own requests only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_cap_pages_exclude_patterns_and_skip_sitemaps_and_fresh_sessions_keep_no_cookie() {
    let h = Harness::start().await;
    let output = crawl(
        &h,
        CrawlRules {
            max_pages: 5,
            sitemaps: false,
            per_template: 1,
            one_session: false,
            exclude: vec![
                Pattern::try_from("/cart*".to_owned()).unwrap(),
                Pattern::try_from("/checkout".to_owned()).unwrap(),
            ],
            ..CrawlRules::default()
        },
    )
    .await;
    let www = |p: &str| format!("{OUTDOOR}{p}");
    assert_eq!(
        visited(&output),
        [
            www("/"),
            www("/products"),
            format!("{OUTDOOR_BLOG}/"),
            www("/contact"),
            www("/about"),
        ]
        .into_iter()
        .collect()
    );
    assert!(output.site.sitemaps.is_empty());
    let excluded: BTreeSet<String> = output
        .site
        .skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::Excluded { .. }))
        .map(|s| short(&s.url))
        .collect();
    assert_eq!(excluded, [www("/cart"), www("/checkout")].into());
    assert!(output.site.skipped_counts["page_cap"] >= 1);
    assert!(
        !output.site.skipped.iter().any(|s| s.url.contains("/faq")),
        "without sitemaps nothing leads to /faq"
    );
    // Fresh sessions: the contact page's cookie is not on the page after it.
    let about = output
        .pages
        .iter()
        .find(|p| p.snapshot.final_url == h.sites.url(OUTDOOR, "/about"))
        .expect("about");
    assert!(!about.snapshot.cookies.iter().any(|c| c.name == "IDE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lanes_visit_the_same_pages_as_one() {
    let h = Harness::start().await;
    let one = crawl(&h, CrawlRules::default()).await;
    let four = h
        .scanner
        .crawl(
            &h.sites.url(OUTDOOR, "/"),
            &fast(&h),
            CrawlRules::default(),
            Duration::from_secs(300),
            4,
            &|_| {},
        )
        .await
        .expect("the crawl runs");
    assert_eq!(visited(&four), visited(&one));
    assert_eq!(
        four.site.unreachable.len(),
        1,
        "{:?}",
        four.site.unreachable
    );
    assert_eq!(
        four.site.skipped_counts, one.site.skipped_counts,
        "the same candidates are turned down for the same reasons"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_kills_its_session_costs_only_that_page() {
    let h = Harness::start().await;
    let output = h
        .scanner
        .crawl(
            &h.sites.url(OUTDOOR, "/crash-tour"),
            &fast(&h),
            CrawlRules {
                max_depth: 1,
                sitemaps: false,
                ..CrawlRules::default()
            },
            Duration::from_secs(300),
            1,
            &|_| {},
        )
        .await
        .expect("the crawl runs");
    let www = |p: &str| format!("{OUTDOOR}{p}");
    // The tour, then the crashing page, then the rest in a fresh session.
    assert_eq!(
        visited(&output),
        [
            www("/crash-tour"),
            www("/"),
            www("/products"),
            format!("{OUTDOOR_BLOG}/"),
            www("/faq"),
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(
        output.site.unreachable.len(),
        1,
        "{:?}",
        output.site.unreachable
    );
    assert_eq!(short(&output.site.unreachable[0].url), www("/crashing"));
    assert!(
        output.site.unreachable[0].reason.contains("crashed")
            || output.site.unreachable[0].reason.contains("timed out"),
        "{:?}",
        output.site.unreachable
    );
}
