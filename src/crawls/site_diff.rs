//! What changed on a site between two crawls: the unions of their pages compared (a tracker
//! new on any page is new to the site), each change with the pages it shows on, and the alerts
//! those changes raise.

use std::collections::BTreeSet;

use scanner::crawl::SiteSnapshot;
use serde::{Deserialize, Serialize};

use crate::alerts::rules::Finding;

/// Pages named in an alert's title at most.
const PAGES_IN_TITLE: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SiteChange {
    /// A third-party host no page contacted before, with the pages that contact it now.
    ThirdPartyHostAdded {
        host: String,
        /// The filter list naming it a tracker, if one does.
        tracker_list: Option<String>,
        pages: Vec<String>,
    },
    ThirdPartyHostRemoved {
        host: String,
    },
    /// A cookie no page's visit set before (every crawl page is a first visit, before consent).
    CookieAdded {
        name: String,
        domain: String,
        category: Option<String>,
        pages: Vec<String>,
    },
    CookieRemoved {
        name: String,
        domain: String,
    },
    /// A script (by URL) no page loaded before.
    ScriptAdded {
        url: String,
        pages: Vec<String>,
    },
    /// A page the last crawl visited that this one could not reach.
    PageUnreachable {
        url: String,
        reason: String,
    },
}

impl SiteChange {
    /// The change in words, for people.
    pub fn sentence(&self) -> String {
        match self {
            SiteChange::ThirdPartyHostAdded {
                host,
                tracker_list,
                pages,
            } => format!(
                "New third-party host {host}{} on {}",
                tracker_list
                    .as_ref()
                    .map(|l| format!(" (a tracker on {l})"))
                    .unwrap_or_default(),
                on_pages(pages)
            ),
            SiteChange::ThirdPartyHostRemoved { host } => {
                format!("No page contacts {host} any more")
            }
            SiteChange::CookieAdded {
                name,
                domain,
                pages,
                ..
            } => format!(
                "New cookie {name} ({domain}) set before consent on {}",
                on_pages(pages)
            ),
            SiteChange::CookieRemoved { name, domain } => {
                format!("No page sets cookie {name} ({domain}) any more")
            }
            SiteChange::ScriptAdded { url, pages } => {
                format!("New script {url} on {}", on_pages(pages))
            }
            SiteChange::PageUnreachable { url, reason } => {
                format!("{url} could not be reached: {reason}")
            }
        }
    }

    /// The page it is best seen on (the first of its pages).
    pub fn first_page(&self) -> Option<&str> {
        match self {
            SiteChange::ThirdPartyHostAdded { pages, .. }
            | SiteChange::CookieAdded { pages, .. }
            | SiteChange::ScriptAdded { pages, .. } => pages.first().map(String::as_str),
            SiteChange::PageUnreachable { url, .. } => Some(url),
            _ => None,
        }
    }
}

fn on_pages(pages: &[String]) -> String {
    let mut named: Vec<&str> = pages
        .iter()
        .take(PAGES_IN_TITLE)
        .map(|p| path_of(p))
        .collect();
    if pages.len() > PAGES_IN_TITLE {
        named.push("…");
    }
    let count = pages.len();
    format!(
        "{count} page{} ({})",
        if count == 1 { "" } else { "s" },
        named.join(", ")
    )
}

/// A page's path and query, shorter than its URL in a title.
fn path_of(url: &str) -> &str {
    url.find("://")
        .and_then(|scheme| url[scheme + 3..].find('/').map(|p| &url[scheme + 3 + p..]))
        .unwrap_or(url)
}

/// What changed from `before` to `after`.
pub fn compare(before: &SiteSnapshot, after: &SiteSnapshot) -> Vec<SiteChange> {
    let mut changes = Vec::new();
    let hosts_before: BTreeSet<&str> = before
        .third_party_hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    let hosts_after: BTreeSet<&str> = after
        .third_party_hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    for host in &after.third_party_hosts {
        if !hosts_before.contains(host.name.as_str()) {
            changes.push(SiteChange::ThirdPartyHostAdded {
                host: host.name.clone(),
                tracker_list: after
                    .trackers
                    .iter()
                    .find(|t| t.host == host.name)
                    .map(|t| t.list.clone()),
                pages: host.pages.clone(),
            });
        }
    }
    for host in hosts_before.difference(&hosts_after) {
        changes.push(SiteChange::ThirdPartyHostRemoved {
            host: (*host).to_owned(),
        });
    }
    let key =
        |name: &str, domain: &str| (name.to_owned(), domain.trim_start_matches('.').to_owned());
    let cookies_before: BTreeSet<(String, String)> = before
        .cookies
        .iter()
        .map(|c| key(&c.name, &c.domain))
        .collect();
    let cookies_after: BTreeSet<(String, String)> = after
        .cookies
        .iter()
        .map(|c| key(&c.name, &c.domain))
        .collect();
    for cookie in &after.cookies {
        if !cookies_before.contains(&key(&cookie.name, &cookie.domain)) {
            changes.push(SiteChange::CookieAdded {
                name: cookie.name.clone(),
                domain: cookie.domain.trim_start_matches('.').to_owned(),
                category: cookie.category.clone(),
                pages: cookie.pages.clone(),
            });
        }
    }
    for (name, domain) in cookies_before.difference(&cookies_after) {
        changes.push(SiteChange::CookieRemoved {
            name: name.clone(),
            domain: domain.clone(),
        });
    }
    let scripts_before: BTreeSet<&str> = before.scripts.iter().map(|s| s.url.as_str()).collect();
    for script in &after.scripts {
        if script.url != "inline" && !scripts_before.contains(script.url.as_str()) {
            changes.push(SiteChange::ScriptAdded {
                url: script.url.clone(),
                pages: script.pages.clone(),
            });
        }
    }
    let visited_before: BTreeSet<&str> = before.pages.iter().map(|p| p.url.as_str()).collect();
    for page in &after.unreachable {
        if visited_before.contains(page.url.as_str()) {
            changes.push(SiteChange::PageUnreachable {
                url: page.url.clone(),
                reason: page.reason.clone(),
            });
        }
    }
    changes
}

/// An alert a site's change raises, and the page it is best seen on.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteFinding {
    pub finding: Finding,
    pub page: Option<String>,
}

/// The alerts a site's changes raise: the same rules, and fingerprints, as a page's, so an
/// alert about a host is one alert however many pages show it.
pub fn findings(changes: &[SiteChange]) -> Vec<SiteFinding> {
    let mut found = Vec::new();
    for change in changes {
        let detail = serde_json::to_value(change).unwrap_or_default();
        let finding = |rule: &'static str, fingerprint: String| SiteFinding {
            finding: Finding {
                rule,
                fingerprint,
                title: change.sentence(),
                detail: detail.clone(),
            },
            page: change.first_page().map(str::to_owned),
        };
        match change {
            SiteChange::ThirdPartyHostAdded { host, .. } => {
                found.push(finding("new_third_party_host", format!("host:{host}")))
            }
            SiteChange::CookieAdded { name, domain, .. } => found.push(finding(
                "cookie_before_consent",
                format!("cookie:{name}@{domain}"),
            )),
            _ => {}
        }
    }
    found
}

/// Whether the site still shows what a live alert with `fingerprint` is about; `None` when the
/// site snapshot cannot tell (an alert about an event, not a state).
pub fn still_shows(fingerprint: &str, site: &SiteSnapshot) -> Option<bool> {
    if let Some(host) = fingerprint.strip_prefix("host:") {
        return Some(
            site.third_party_hosts
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(host)),
        );
    }
    if let Some(cookie) = fingerprint.strip_prefix("cookie:") {
        return Some(
            site.cookies
                .iter()
                .any(|c| format!("{}@{}", c.name, c.domain.trim_start_matches('.')) == cookie),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanner::crawl::{CrawlRules, SiteCookie, SiteItem, SiteTracker, Unreachable};
    use scanner::snapshot::Party;

    fn site() -> SiteSnapshot {
        SiteSnapshot {
            format_version: 1,
            start_url: "https://www.shop.test/".into(),
            site: "shop.test".into(),
            rules: CrawlRules::default(),
            started_at: String::new(),
            finished_at: String::new(),
            pages: Vec::new(),
            unreachable: Vec::new(),
            skipped: Vec::new(),
            skipped_counts: Default::default(),
            sitemaps: Vec::new(),
            cookies: Vec::new(),
            third_party_hosts: vec![SiteItem {
                name: "cdn.test".into(),
                pages: vec!["https://www.shop.test/".into()],
            }],
            scripts: Vec::new(),
            trackers: Vec::new(),
        }
    }

    #[test]
    fn a_tracker_new_on_one_page_is_new_to_the_site_and_names_that_page() {
        let before = site();
        let mut after = site();
        let contact = "https://www.shop.test/contact".to_owned();
        after.third_party_hosts.push(SiteItem {
            name: "ads.test".into(),
            pages: vec![contact.clone()],
        });
        after.trackers.push(SiteTracker {
            host: "ads.test".into(),
            list: "EasyPrivacy".into(),
            rule: "||ads.test^".into(),
            pages: vec![contact.clone()],
        });
        after.cookies.push(SiteCookie {
            name: "IDE".into(),
            domain: ".ads.test".into(),
            party: Party::Third,
            category: Some("advertising".into()),
            pages: vec![contact.clone()],
        });
        let changes = compare(&before, &after);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let findings = findings(&changes);
        assert_eq!(findings[0].finding.fingerprint, "host:ads.test");
        assert_eq!(
            findings[0].finding.title,
            "New third-party host ads.test (a tracker on EasyPrivacy) on 1 page (/contact)"
        );
        assert_eq!(findings[0].page.as_deref(), Some(contact.as_str()));
        assert_eq!(findings[1].finding.fingerprint, "cookie:IDE@ads.test");
        assert_eq!(still_shows("host:ads.test", &after), Some(true));
        assert_eq!(still_shows("host:ads.test", &before), Some(false));
        assert_eq!(still_shows("visual:viewport", &after), None);
        // Nothing changed: nothing to say.
        assert!(compare(&after, &after).is_empty());
    }

    #[test]
    fn hosts_and_pages_that_went_away_are_changes_too_but_raise_nothing() {
        let before = site();
        let mut after = site();
        after.third_party_hosts.clear();
        after.unreachable.push(Unreachable {
            url: "https://www.shop.test/".into(),
            reason: "net::ERR_CONNECTION_REFUSED".into(),
        });
        let mut with_page = before.clone();
        with_page.pages.push(scanner::crawl::SitePage {
            url: "https://www.shop.test/".into(),
            final_url: "https://www.shop.test/".into(),
            title: String::new(),
            status: Some(200),
            depth: 0,
            found_by: scanner::crawl::Source::Start,
            links: 0,
        });
        let changes = compare(&with_page, &after);
        assert_eq!(
            changes,
            vec![
                SiteChange::ThirdPartyHostRemoved {
                    host: "cdn.test".into()
                },
                SiteChange::PageUnreachable {
                    url: "https://www.shop.test/".into(),
                    reason: "net::ERR_CONNECTION_REFUSED".into()
                }
            ]
        );
        assert!(findings(&changes).is_empty());
    }
}
