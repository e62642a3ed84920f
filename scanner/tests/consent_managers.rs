//! Consent answered on real consent managers: seven pages built with open-source consent
//! managers installed from the npm registry (see `fixture_sites::consent_managers`), each scanned
//! accepting, refusing and not answering. The analytics tag each one guards must load after
//! "accept" and only then.

mod support;

use std::collections::BTreeSet;

use fixture_sites::consent_managers::{ConsentManagerPage, PAGES};
use fixture_sites::{ANALYTICS, SHOP};
use scanner::snapshot::{ConsentMode, Snapshot};
use support::Harness;

async fn scan(h: &Harness, page: &ConsentManagerPage, mode: ConsentMode) -> Snapshot {
    fixture_sites::packages::packages_dir();
    let mut options = h.options();
    options.consent_mode = mode;
    h.scan(&h.sites.url(SHOP, page.path), &options)
        .await
        .unwrap_or_else(|e| panic!("scanning {} with {mode:?}: {e}", page.path))
        .snapshot
}

fn page(path: &str) -> &'static ConsentManagerPage {
    PAGES
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no consent manager page {path}"))
}

fn analytics_loaded(s: &Snapshot) -> bool {
    s.third_party_hosts.contains(&ANALYTICS.to_owned())
}

fn cookie_names(s: &Snapshot) -> BTreeSet<&str> {
    s.cookies.iter().map(|c| c.name.as_str()).collect()
}

/// Accepts, refuses and leaves the banner alone on `path`, checking each answer and that the
/// analytics tag loads after acceptance only. Returns the refusing scan.
async fn answered_both_ways(path: &str) -> Snapshot {
    let page = page(path);
    let h = Harness::start().await;

    let accepted = scan(&h, page, ConsentMode::AcceptAll).await;
    let consent = accepted.consent.as_ref().expect("consent outcome recorded");
    let clicked = consent
        .clicked
        .as_ref()
        .unwrap_or_else(|| panic!("{path}: nothing accepted: {consent:?}"));
    assert_eq!(
        (
            clicked.matched_by.as_str(),
            clicked.label.as_str(),
            clicked.layer
        ),
        (page.accept.0, page.accept.1, 1),
        "{path}"
    );
    assert!(
        consent
            .consent_managers
            .contains(&page.recognised_as.to_owned()),
        "{path}: {:?}",
        consent.consent_managers
    );
    assert!(
        analytics_loaded(&accepted),
        "{path}: the analytics tag did not load after accepting: {:?}",
        accepted.third_party_hosts
    );
    assert!(
        cookie_names(&accepted).contains("_ga"),
        "{path}: {:?}",
        cookie_names(&accepted)
    );
    assert!(
        !consent.cookies_before.iter().any(|c| c.name == "_ga"),
        "{path}: _ga before the answer"
    );

    let refused = scan(&h, page, ConsentMode::RejectAll).await;
    let consent = refused.consent.as_ref().expect("consent outcome recorded");
    let clicked = consent
        .clicked
        .as_ref()
        .unwrap_or_else(|| panic!("{path}: nothing refused: {consent:?}"));
    assert_eq!(
        (
            clicked.matched_by.as_str(),
            clicked.label.as_str(),
            clicked.layer
        ),
        page.reject,
        "{path}"
    );
    assert!(
        !analytics_loaded(&refused),
        "{path}: the analytics tag loaded although refused: {:?}",
        refused.third_party_hosts
    );
    assert!(!cookie_names(&refused).contains("_ga"), "{path}");

    let unanswered = scan(&h, page, ConsentMode::NoInteraction).await;
    assert!(unanswered.consent.is_none(), "{path}");
    assert!(
        !analytics_loaded(&unanswered),
        "{path}: the analytics tag loaded without an answer"
    );
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanilla_cookieconsent_is_answered_although_it_hides_from_robots() {
    answered_both_ways("/cmp/vanilla-cookieconsent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klaro_is_answered_that_s_ok_and_i_decline() {
    answered_both_ways("/cmp/klaro").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookieconsent_opt_in_banner_is_answered() {
    answered_both_ways("/cmp/cookieconsent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarteaucitron_in_french_is_answered_by_its_wording() {
    answered_both_ways("/cmp/tarteaucitron").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_in_a_shadow_root_that_shows_late_is_answered() {
    answered_both_ways("/cmp/cookie-though").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_banner_in_a_third_party_iframe_is_answered() {
    answered_both_ways("/cmp/cookies-eu-banner-frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_only_in_the_preferences_is_given_there_with_everything_optional_off() {
    let refused = answered_both_ways("/cmp/vanilla-cookieconsent-layers").await;
    let consent = refused.consent.expect("consent outcome recorded");
    let settings = consent.settings.expect("the second layer was opened");
    assert_eq!(
        (settings.label.as_str(), settings.layer),
        ("Manage preferences", 1)
    );
    assert_eq!(consent.unticked, ["Analytics"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_hidden_from_this_visit_is_a_finding_not_a_clean_page() {
    let h = Harness::start().await;
    let page = page("/cmp/vanilla-cookieconsent");
    let mut options = h.options();
    options.consent_mode = ConsentMode::RejectAll;
    // A crawler's User-Agent: vanilla-cookieconsent shows such visitors no banner at all.
    options.user_agent =
        Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".into());
    let s = h
        .scan(&h.sites.url(SHOP, page.path), &options)
        .await
        .expect("scan succeeds")
        .snapshot;
    let consent = s.consent.expect("consent outcome recorded");
    assert_eq!(consent.clicked, None);
    assert_eq!(consent.consent_managers, ["vanilla-cookieconsent"]);
}
