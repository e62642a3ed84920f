use scanner::snapshot::{
    ConsentClick, ConsentMode, ConsentOutcome, ConsentState, ConsoleError, Cookie,
    CookieClassification, GoogleConsentSignal, ListMatch, Party, Request, SameSite, Snapshot,
};

use super::*;
use crate::compliance::report::{ComplianceReport, GpcVerdict};

const PAGE: &str = "https://shop.test/";
const GTM: &str = "https://www.googletagmanager.com/gtm.js?id=GTM-X";
const GTAG: &str = "https://www.googletagmanager.com/gtag/js?id=G-X";
const COLLECT: &str = "https://www.google-analytics.com/g/collect?v=2&tid=G-X";
const FBEVENTS: &str = "https://connect.facebook.net/en_US/fbevents.js";
const PIXEL: &str = "https://www.facebook.com/tr/?id=1&ev=PageView";

fn snapshot() -> Snapshot {
    serde_json::from_value(serde_json::json!({
        "format_version": 1, "scanner_version": "test",
        "requested_url": PAGE, "final_url": PAGE,
        "redirect_chain": [], "status": 200, "title": "Shop", "first_party_domain": "shop.test",
        "started_at": "2026-12-06T10:00:00Z", "finished_at": "2026-12-06T10:00:01Z",
        "timings": {"load_ms": 1, "network_quiet_ms": 1, "total_ms": 2},
        "browser": {"product": "p", "user_agent": "u", "third_party_cookies_allowed": true},
        "options": {"viewport_width": 1280, "viewport_height": 800, "quiet_period_ms": 1,
            "load_timeout_ms": 1, "scan_timeout_ms": 1, "consent_mode": "no_interaction",
            "policy_pages": false, "resolve": [], "private_destinations_allowed": false},
        "dom": {"size_bytes": 0, "html": "", "truncated": false},
        "scripts": [], "cookies": [], "storage": [], "requests": [],
        "blocked": [], "console_errors": [], "dialogs": [], "downloads": [],
        "third_party_hosts": [], "listed_hosts": [],
        "screenshots": {"viewport": {"width": 1, "height": 1, "sha256": "a", "size_bytes": 1},
            "full_page": {"width": 1, "height": 1, "sha256": "b", "size_bytes": 1},
            "page_height": 1, "full_page_truncated": false, "full_page_max_height": 1},
        "policy_pages": [], "consent": null, "limits_hit": []
    }))
    .expect("a valid synthetic snapshot")
}

fn request(url: &str, initiator: &str, rule: Option<&str>, after_answer: bool) -> Request {
    let host = url::Url::parse(url).unwrap().host_str().unwrap().to_owned();
    Request {
        url: url.into(),
        method: "GET".into(),
        resource_type: "Script".into(),
        party: if host.ends_with("shop.test") {
            Party::First
        } else {
            Party::Third
        },
        host,
        status: Some(200),
        failure: None,
        blocked: false,
        started_ms: 0,
        duration_ms: Some(1),
        encoded_bytes: None,
        after_hide: false,
        after_answer,
        initiator: Some(initiator.into()),
        listed: rule.map(|rule| ListMatch {
            list: "easyprivacy".into(),
            rule: rule.into(),
        }),
        initiator_type: None,
        request_headers: Vec::new(),
        response: None,
        timing: None,
    }
}

/// The page loads GTM, GTM loads gtag, gtag beacons to Google Analytics.
fn google_tags(after_answer: bool) -> Vec<Request> {
    vec![
        request(GTM, PAGE, Some("||googletagmanager.com^"), after_answer),
        request(GTAG, GTM, Some("||googletagmanager.com^"), after_answer),
        request(COLLECT, GTAG, Some("||google-analytics.com^"), after_answer),
    ]
}

fn facebook(after_answer: bool) -> Vec<Request> {
    vec![
        request(
            FBEVENTS,
            PAGE,
            Some("||connect.facebook.net^"),
            after_answer,
        ),
        request(PIXEL, FBEVENTS, Some("||facebook.com/tr/"), after_answer),
    ]
}

fn cookie(name: &str, domain: &str, set_by_script: Option<&str>) -> Cookie {
    Cookie {
        name: name.into(),
        domain: domain.into(),
        path: "/".into(),
        expires: None,
        session: true,
        secure: true,
        http_only: false,
        same_site: SameSite::Lax,
        party: Party::First,
        set_by_host: set_by_script
            .map(|s| url::Url::parse(s).unwrap().host_str().unwrap().to_owned()),
        set_by: None,
        set_by_script: set_by_script.map(str::to_owned),
        value_size: 10,
        classification: None,
    }
}

fn answered(mode: ConsentMode, label: &str, layer: u8, before: Vec<Cookie>) -> ConsentOutcome {
    ConsentOutcome {
        mode,
        clicked: Some(ConsentClick {
            matched_by: "text".into(),
            label: label.into(),
            frame_url: PAGE.into(),
            layer,
        }),
        settings: None,
        unticked: Vec::new(),
        cookies_before: before,
        consent_managers: vec!["klaro".into()],
    }
}

/// A site that waits for consent: nothing before the answer or after rejecting, tags after
/// accepting.
struct Journey {
    first: Snapshot,
    reject: Snapshot,
    accept: Snapshot,
    gpc: Option<Snapshot>,
}

impl Journey {
    fn behaving() -> Self {
        let first = snapshot();
        let mut reject = snapshot();
        reject.consent = Some(answered(ConsentMode::RejectAll, "Reject all", 1, vec![]));
        let mut accept = snapshot();
        accept.consent = Some(answered(ConsentMode::AcceptAll, "Accept all", 1, vec![]));
        accept.requests = google_tags(true);
        accept.cookies = vec![cookie("_ga", "shop.test", Some(GTAG))];
        Journey {
            first,
            reject,
            accept,
            gpc: None,
        }
    }

    fn findings(&self) -> Vec<Finding> {
        findings(&self.outcomes())
    }

    fn outcomes(&self) -> VisitOutcomes<'_> {
        VisitOutcomes {
            first_visit: Ok(&self.first),
            reject_all: Ok(&self.reject),
            accept_all: Ok(&self.accept),
            gpc: self.gpc.as_ref().map(Ok),
        }
    }
}

fn fingerprints(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.fingerprint.as_str()).collect()
}

#[test]
fn a_site_that_waits_for_consent_has_no_findings() {
    assert_eq!(Journey::behaving().findings(), vec![]);
}

#[test]
fn trackers_before_the_answer_are_found_with_their_script_chain() {
    let mut journey = Journey::behaving();
    journey.first.requests = google_tags(false);
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        [
            "tracking_before_consent:first_visit:google-analytics.com",
            "tracking_before_consent:first_visit:googletagmanager.com"
        ]
    );
    let analytics = &found[0];
    assert_eq!(analytics.severity, Severity::High);
    assert_eq!(
        analytics.evidence,
        vec![Evidence::Request {
            url: COLLECT.into(),
            resource_type: "Script".into(),
            list: "easyprivacy".into(),
            list_rule: "||google-analytics.com^".into(),
            initiators: vec![GTAG.into(), GTM.into(), PAGE.into()],
        }]
    );
}

#[test]
fn tracking_after_reject_counts_only_what_followed_the_answer() {
    let mut journey = Journey::behaving();
    // Before the answer: nothing listed. After rejecting: the Facebook pixel fires anyway, and
    // its script sets a cookie whose name no database knows.
    journey.reject.requests = facebook(true);
    journey
        .reject
        .requests
        .push(request("https://shop.test/app.js", PAGE, None, false));
    let first_party = cookie("session", "shop.test", None);
    journey.reject.cookies = vec![
        first_party.clone(),
        cookie("_fbp", "shop.test", Some(FBEVENTS)),
    ];
    journey.reject.consent = Some(answered(
        ConsentMode::RejectAll,
        "Reject all",
        1,
        vec![first_party],
    ));
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        [
            "tracking_after_reject:reject_all:facebook.com",
            "tracking_after_reject:reject_all:facebook.net"
        ]
    );
    assert!(found.iter().all(|f| f.severity == Severity::Critical));
    let net = &found[1];
    let cookie_evidence = net
        .evidence
        .iter()
        .find(|e| matches!(e, Evidence::Cookie { .. }))
        .expect("the cookie fbevents set is evidence");
    let Evidence::Cookie {
        name,
        reason,
        initiators,
        ..
    } = cookie_evidence
    else {
        unreachable!()
    };
    assert_eq!(name, "_fbp");
    assert!(
        reason.contains("EasyPrivacy") && reason.contains("||connect.facebook.net^"),
        "{reason}"
    );
    assert_eq!(initiators, &vec![FBEVENTS.to_owned(), PAGE.to_owned()]);
}

#[test]
fn the_same_trackers_before_the_reject_click_are_not_after_reject() {
    let mut journey = Journey::behaving();
    journey.reject.requests = facebook(false);
    let found = journey.findings();
    assert!(
        found.iter().all(|f| f.rule != Rule::TrackingAfterReject),
        "{found:#?}"
    );
}

#[test]
fn a_cookie_the_database_calls_marketing_is_tracking_whoever_set_it() {
    let mut journey = Journey::behaving();
    let mut fbp = cookie("_fbp", "shop.test", None);
    fbp.classification = Some(CookieClassification {
        category: "Marketing".into(),
        platform: "Facebook".into(),
        data_controller: "Meta".into(),
        retention: "3 months".into(),
    });
    journey.first.cookies = vec![fbp];
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        ["tracking_before_consent:first_visit:shop.test"]
    );
    let Evidence::Cookie { reason, .. } = &found[0].evidence[0] else {
        panic!("{found:#?}")
    };
    assert_eq!(reason, "Open Cookie Database: Marketing cookie of Facebook");
}

#[test]
fn reject_only_on_the_second_layer_is_harder_than_accept() {
    let mut journey = Journey::behaving();
    let mut consent = answered(ConsentMode::RejectAll, "Save choices", 2, vec![]);
    consent.settings = Some(ConsentClick {
        matched_by: "text".into(),
        label: "Manage preferences".into(),
        frame_url: PAGE.into(),
        layer: 1,
    });
    journey.reject.consent = Some(consent);
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        ["reject_harder_than_accept:reject_all:banner"]
    );
    assert_eq!(found[0].severity, Severity::Medium);
    assert_eq!(
        found[0].evidence,
        vec![Evidence::Banner {
            label: Some("Save choices".into()),
            layer: Some(2),
            consent_managers: vec!["klaro".into()],
        }]
    );
}

#[test]
fn no_banner_to_answer_while_tracking_cookies_are_set() {
    let mut journey = Journey::behaving();
    journey.first.requests = google_tags(false);
    journey.reject.requests = google_tags(false);
    journey.reject.cookies = vec![cookie("_ga", "shop.test", Some(GTAG))];
    journey.reject.consent = Some(ConsentOutcome {
        mode: ConsentMode::RejectAll,
        clicked: None,
        settings: None,
        unticked: vec![],
        cookies_before: vec![],
        consent_managers: vec![],
    });
    journey.accept.consent = None;
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        [
            "tracking_before_consent:first_visit:google-analytics.com",
            "tracking_before_consent:first_visit:googletagmanager.com",
            "no_banner_while_tracking:reject_all:banner"
        ]
    );
}

#[test]
fn consent_mode_granted_before_an_answer_or_after_reject() {
    let signal = |after_answer, state| GoogleConsentSignal {
        request_url: COLLECT.into(),
        after_answer,
        gcs: Some("G111".into()),
        gcd: None,
        ad_storage: Some(state),
        analytics_storage: Some(state),
        ad_user_data: None,
        ad_personalization: None,
    };
    let mut journey = Journey::behaving();
    journey.first.consent_signals.google = vec![signal(false, ConsentState::Granted)];
    journey.reject.consent_signals.google = vec![
        signal(false, ConsentState::DeniedByDefault),
        signal(true, ConsentState::Granted),
    ];
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        [
            "consent_signal_granted_after_reject:reject_all:signals",
            "consent_signal_granted_before_answer:first_visit:signals"
        ]
    );
    assert_eq!(
        found[0].evidence,
        vec![Evidence::ConsentMode {
            request_url: COLLECT.into(),
            granted: vec!["ad_storage".into(), "analytics_storage".into()],
        }]
    );
}

#[test]
fn gpc_ignored_when_the_signal_changes_nothing_and_honoured_when_it_stops_tracking() {
    let mut journey = Journey::behaving();
    journey.first.requests = facebook(false);
    journey.gpc = Some(snapshot());
    let honoured = ComplianceReport::new(PAGE, &journey.outcomes());
    assert_eq!(honoured.gpc, GpcVerdict::Honoured);
    assert!(honoured.findings.iter().all(|f| f.rule != Rule::GpcIgnored));

    journey.gpc.as_mut().unwrap().requests = facebook(false);
    let ignored = ComplianceReport::new(PAGE, &journey.outcomes());
    assert_eq!(ignored.gpc, GpcVerdict::Ignored);
    let gpc = ignored
        .findings
        .iter()
        .find(|f| f.rule == Rule::GpcIgnored)
        .expect("a gpc finding");
    assert_eq!(gpc.evidence.len(), 2, "{gpc:#?}");

    let clean = Journey {
        gpc: Some(snapshot()),
        ..Journey::behaving()
    };
    assert_eq!(
        ComplianceReport::new(PAGE, &clean.outcomes()).gpc,
        GpcVerdict::NothingToOptOutOf
    );
}

#[test]
fn a_failed_visit_and_an_answer_that_navigates_away_are_findings() {
    let mut journey = Journey::behaving();
    journey.reject.final_url = "https://shop.test/privacy?from=banner".into();
    let accept = journey.accept.clone();
    let outcomes = VisitOutcomes {
        accept_all: Err("the page crashed"),
        ..journey.outcomes()
    };
    let found = findings(&outcomes);
    assert_eq!(
        fingerprints(&found),
        [
            "consent_manager_broken:accept_all:visit",
            "consent_manager_broken:reject_all:navigation"
        ]
    );
    assert_eq!(
        found[0].evidence,
        vec![Evidence::Failure {
            message: "the page crashed".into()
        }]
    );
    drop(accept);
}

#[test]
fn a_consent_manager_that_shows_nothing_to_answer_is_broken() {
    let mut journey = Journey::behaving();
    let nothing = ConsentOutcome {
        mode: ConsentMode::RejectAll,
        clicked: None,
        settings: None,
        unticked: vec![],
        cookies_before: vec![],
        consent_managers: vec!["vanilla-cookieconsent".into()],
    };
    journey.reject.consent = Some(nothing.clone());
    journey.accept.consent = Some(ConsentOutcome {
        mode: ConsentMode::AcceptAll,
        consent_managers: vec![],
        ..nothing.clone()
    });
    journey.accept.console_errors = vec![ConsoleError {
        kind: "uncaught_exception".into(),
        message: "TypeError: cannot read siteSettings".into(),
        source_url: Some(PAGE.into()),
    }];
    let found = journey.findings();
    assert_eq!(
        fingerprints(&found),
        [
            "consent_manager_broken:accept_all:banner",
            "consent_manager_broken:reject_all:banner"
        ]
    );
    assert_eq!(
        found[0].evidence[1],
        Evidence::Failure {
            message: format!("TypeError: cannot read siteSettings (in {PAGE})")
        }
    );

    // No consent manager and nothing thrown: a page without a banner, not a broken one.
    journey.reject.consent = Some(ConsentOutcome {
        consent_managers: vec![],
        ..nothing
    });
    journey.accept.console_errors.clear();
    assert_eq!(journey.findings(), vec![]);
}

#[test]
fn initiator_chains_stop_at_cycles() {
    let mut journey = Journey::behaving();
    journey.first.requests = vec![
        request(
            "https://a.tracker.test/a.js",
            "https://b.tracker.test/b.js",
            Some("||tracker.test^"),
            false,
        ),
        request(
            "https://b.tracker.test/b.js",
            "https://a.tracker.test/a.js",
            None,
            false,
        ),
    ];
    let found = journey.findings();
    let Evidence::Request { initiators, .. } = &found[0].evidence[0] else {
        panic!("{found:#?}")
    };
    assert_eq!(
        initiators,
        &vec![
            "https://b.tracker.test/b.js".to_owned(),
            "https://a.tracker.test/a.js".to_owned()
        ]
    );
}

#[test]
fn every_rule_has_a_distinct_name() {
    let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Rule::ALL.len());
    for rule in Rule::ALL {
        let json = serde_json::to_value(rule).unwrap();
        assert_eq!(json, rule.as_str());
    }
}
