//! Compliance scans of shops wired the way real sites wire consent (a real consent manager,
//! Google Tag Manager with Consent Mode, the Meta pixel, served under the trackers' own names),
//! classified with the real EasyList/EasyPrivacy from Debian's package: each fixture gets exactly
//! the findings it deserves, with evidence that points at the right script.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use fixture_sites::compliance_sites::{FACEBOOK_CONNECT, GOOGLE_TAG_MANAGER, PAGES};
use fixture_sites::{FixtureSites, SHOP};
use scanner::classify::{CookieDatabase, DEBIAN_LIST_FOLDER, FilterLists};
use scanner::egress::EgressPolicy;
use scanner::snapshot::ConsentState;
use scanner::{BrowserOptions, ScanOptions, Scanner, Snapshot, Supervisor};
use siteward::compliance::visits::{self, Visit, VisitOutcomes};
use siteward::compliance::{ComplianceReport, Evidence, Finding, GpcVerdict};

/// The Open Cookie Database, from the shared test data.
static COOKIE_DATABASE: LazyLock<Arc<CookieDatabase>> = LazyLock::new(|| {
    Arc::new(
        CookieDatabase::load(&fixture_sites::open_cookie_database())
            .expect("the Open Cookie Database loads"),
    )
});

/// Loaded once for the whole binary, as a runner does.
static LISTS: LazyLock<Arc<FilterLists>> = LazyLock::new(|| {
    Arc::new(
        FilterLists::load_folder(std::path::Path::new(DEBIAN_LIST_FOLDER)).unwrap_or_else(|e| {
            panic!("{e}: install Debian's webext-ublock-origin-chromium (scripts/test does)")
        }),
    )
});

struct Journey {
    url: String,
    pairs: Vec<(Visit, Result<Snapshot, String>)>,
}

impl Journey {
    fn report(&self) -> ComplianceReport {
        ComplianceReport::new(&self.url, &VisitOutcomes::from_pairs(&self.pairs))
    }

    fn snapshot(&self, visit: Visit) -> &Snapshot {
        let (_, outcome) = self
            .pairs
            .iter()
            .find(|(v, _)| *v == visit)
            .expect("visit ran");
        outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{visit:?} failed: {e}"))
    }
}

/// A compliance scan of `path` on the shop, with the GPC visit.
async fn journey(path: &str) -> Journey {
    let sites = FixtureSites::start().await.expect("fixture sites start");
    let chromium = std::env::var_os("SITEWARD_CHROMIUM")
        .map_or_else(|| "/usr/bin/chromium".into(), Into::into);
    let scanner = Scanner::new(Supervisor::new(BrowserOptions {
        executable: chromium,
        trusted_spki: vec![sites.spki().to_owned()],
        max_concurrent_scans: 4,
        ..BrowserOptions::default()
    }));
    let mut egress = EgressPolicy::public_only();
    for arg in sites.resolve_args() {
        egress = egress
            .with_resolve_arg(&arg)
            .expect("fixture resolve args parse");
    }
    let options = ScanOptions {
        egress: egress.with_dns_server(sites.dns_server()),
        quiet_period: Duration::from_millis(1_000),
        load_timeout: Duration::from_secs(10),
        scan_timeout: Duration::from_secs(45),
        filter_lists: Some(LISTS.clone()),
        cookie_database: Some(COOKIE_DATABASE.clone()),
        ..ScanOptions::default()
    };
    let url = sites.url(SHOP, path);
    let outcomes = visits::run(&scanner, &url, &options, &visits::planned(true), &|_, _| {}).await;
    scanner.supervisor().shutdown().await;
    sites.stop().await;
    let pairs = outcomes
        .into_iter()
        .map(|(visit, outcome)| (visit, outcome.map(|o| o.snapshot)))
        .collect();
    Journey { url, pairs }
}

fn fingerprints(findings: &[Finding]) -> BTreeSet<&str> {
    findings.iter().map(|f| f.fingerprint.as_str()).collect()
}

/// Scans the fixture and checks its findings are exactly the ones documented for it.
async fn exact_findings(path: &str) -> (Journey, ComplianceReport) {
    let page = PAGES
        .iter()
        .find(|p| p.path == path)
        .expect("a compliance fixture");
    let journey = journey(path).await;
    let report = journey.report();
    assert_eq!(
        fingerprints(&report.findings),
        page.findings.iter().copied().collect::<BTreeSet<_>>(),
        "{path}: {:#?}",
        report.findings
    );
    for (visit, outcome) in &journey.pairs {
        let snapshot = outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{visit:?}: {e}"));
        assert_eq!(
            snapshot.filter_lists,
            LISTS.infos(),
            "each snapshot says what classified it"
        );
        assert!(
            snapshot.capture_warnings.is_empty(),
            "{:?}",
            snapshot.capture_warnings
        );
    }
    (journey, report)
}

fn finding<'a>(report: &'a ComplianceReport, fingerprint: &str) -> &'a Finding {
    report
        .findings
        .iter()
        .find(|f| f.fingerprint == fingerprint)
        .unwrap_or_else(|| panic!("no {fingerprint}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_waits_for_consent_has_no_findings() {
    let (journey, report) = exact_findings("/compliance/behaves").await;
    let accept = journey.snapshot(Visit::AcceptAll);
    // Accepting releases the tags: Analytics collects, with Consent Mode updated to granted.
    let signal = accept
        .consent_signals
        .google
        .iter()
        .find(|s| s.after_answer)
        .expect("a Consent Mode hit after accepting");
    assert_eq!(
        signal.analytics_storage,
        Some(ConsentState::GrantedByUpdate)
    );
    assert!(accept.cookies.iter().any(|c| c.name == "_ga"));
    let accepted = &report.visits[2];
    assert_eq!(accepted.visit, Visit::AcceptAll);
    assert!(
        accepted
            .tracking_hosts
            .iter()
            .any(|h| h.host == "www.google-analytics.com"),
        "{:?}",
        accepted.tracking_hosts
    );
    assert!(report.visits[0].tracking_hosts.is_empty());
    assert_eq!(report.gpc, GpcVerdict::NothingToOptOutOf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackers_before_the_answer_are_traced_to_the_tag_manager() {
    let (journey, report) = exact_findings("/compliance/early-trackers").await;
    let page = journey.url.as_str();
    let analytics = finding(
        &report,
        "tracking_before_consent:first_visit:google-analytics.com",
    );
    let Some(Evidence::Request {
        url,
        list,
        list_rule,
        initiators,
        ..
    }) = analytics
        .evidence
        .iter()
        .find(|e| matches!(e, Evidence::Request { url, .. } if url.contains("/g/collect")))
    else {
        panic!("{analytics:#?}")
    };
    assert!(url.contains("gcs=G111"), "{url}");
    assert_eq!(list, "easyprivacy");
    assert!(!list_rule.is_empty());
    let chain: Vec<&str> = initiators.iter().map(String::as_str).collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(chain[0].contains(&format!("{GOOGLE_TAG_MANAGER}:")) && chain[0].contains("/gtag/js"));
    assert!(chain[1].contains("/gtm.js?id=GTM-FIXTURE"), "{chain:?}");
    assert_eq!(chain[2], page);

    let tag_manager = finding(
        &report,
        "tracking_before_consent:first_visit:googletagmanager.com",
    );
    let ga_cookie = tag_manager
        .evidence
        .iter()
        .find_map(|e| match e {
            Evidence::Cookie {
                name,
                set_by_script,
                reason,
                ..
            } if name == "_ga" => Some((set_by_script, reason)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("_ga is evidence: {tag_manager:#?}"));
    assert!(
        ga_cookie
            .0
            .as_deref()
            .is_some_and(|s| s.contains("/gtag/js")),
        "{ga_cookie:?}"
    );
    // Both witnesses: the cookie database knows the name, and EasyPrivacy the script that set it.
    assert!(ga_cookie.1.starts_with("Open Cookie Database: Analytics cookie of Google Analytics; set by a script EasyPrivacy names ("), "{ga_cookie:?}");
    let first = &report.visits[0];
    assert!(
        first
            .cookies
            .iter()
            .any(|c| c.name == "_ga" && c.category == "Analytics"),
        "{:?}",
        first.cookies
    );

    let signals = finding(
        &report,
        "consent_signal_granted_before_answer:first_visit:signals",
    );
    assert!(
        signals.evidence.iter().any(|e| matches!(e,
        Evidence::ConsentMode { granted, .. } if granted.len() == 4)),
        "{signals:#?}"
    );
    let first = journey.snapshot(Visit::FirstVisit);
    assert_eq!(
        first.consent_signals.google[0].ad_user_data,
        Some(ConsentState::GrantedByDefault)
    );
    assert_eq!(report.gpc, GpcVerdict::Ignored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_after_reject_points_at_the_pixel_the_consent_callback_loaded() {
    let (journey, report) = exact_findings("/compliance/tracks-after-reject").await;
    let pixel = finding(&report, "tracking_after_reject:reject_all:facebook.net");
    assert_eq!(pixel.severity.as_str(), "critical");
    let cookie = pixel
        .evidence
        .iter()
        .find_map(|e| match e {
            Evidence::Cookie {
                name, initiators, ..
            } if name == "_fbp" => Some(initiators),
            _ => None,
        })
        .unwrap_or_else(|| panic!("_fbp is evidence: {pixel:#?}"));
    assert!(
        cookie[0].contains(&format!("{FACEBOOK_CONNECT}:")),
        "{cookie:?}"
    );
    assert_eq!(
        cookie.last().map(String::as_str),
        Some(journey.url.as_str())
    );
    // Nothing before the answer, and nothing for a visitor who left the banner alone.
    assert!(report.visits[0].tracking_hosts.is_empty());
    let reject = journey.snapshot(Visit::RejectAll);
    assert!(
        reject
            .requests
            .iter()
            .filter(|r| r.listed.is_some())
            .all(|r| r.after_answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_only_in_the_preferences_is_harder_than_accept() {
    let (_, report) = exact_findings("/compliance/reject-second-layer").await;
    let banner = finding(&report, "reject_harder_than_accept:reject_all:banner");
    assert!(
        matches!(&banner.evidence[0],
        Evidence::Banner { layer: Some(2), label: Some(label), .. } if label == "Save preferences"),
        "{banner:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_site_that_ignores_global_privacy_control() {
    let (journey, report) = exact_findings("/compliance/ignores-gpc").await;
    assert_eq!(report.gpc, GpcVerdict::Ignored);
    assert!(journey.snapshot(Visit::Gpc).options.global_privacy_control);
    assert!(
        !journey
            .snapshot(Visit::FirstVisit)
            .options
            .global_privacy_control
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_site_that_honours_global_privacy_control() {
    let (journey, report) = exact_findings("/compliance/honours-gpc").await;
    assert_eq!(report.gpc, GpcVerdict::Honoured);
    let gpc = journey.snapshot(Visit::Gpc);
    assert!(
        gpc.requests.iter().all(|r| r.listed.is_none()),
        "{:?}",
        gpc.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_manager_that_throws_is_a_finding_quoting_the_exception() {
    let (_, report) = exact_findings("/compliance/broken-cmp").await;
    let broken = finding(&report, "consent_manager_broken:reject_all:banner");
    assert!(broken.evidence.iter().any(|e| matches!(e,
        Evidence::Failure { message } if message.starts_with("TypeError") && message.contains("reading 'language'"))),
        "{broken:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_manager_that_navigates_away_on_reject_is_a_finding() {
    let (journey, report) = exact_findings("/compliance/navigates-away").await;
    assert!(
        journey
            .snapshot(Visit::RejectAll)
            .final_url
            .ends_with("/compliance/sorry")
    );
    assert!(
        finding(&report, "consent_manager_broken:reject_all:navigation")
            .title
            .contains("/compliance/sorry")
    );
}

#[test]
fn every_compliance_fixture_has_a_test() {
    let source = include_str!("compliance.rs");
    for page in PAGES {
        assert!(
            source.contains(&format!("\"{}\"", page.path)),
            "{} has no test here",
            page.path
        );
    }
}
