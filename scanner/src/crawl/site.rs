//! A site snapshot: the pages of one crawl, and for the site the union of what they held — every
//! cookie, third-party host, script and listed tracker, each with the pages it appeared on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::frontier::{SkipReason, Skipped, Source};
use super::rules::CrawlRules;
use crate::snapshot::{Party, Script, Snapshot};

/// Bumped whenever the meaning or shape of a field changes incompatibly.
pub const SITE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSnapshot {
    pub format_version: u32,
    pub start_url: String,
    /// The registrable domain crawled.
    pub site: String,
    pub rules: CrawlRules,
    pub started_at: String,
    pub finished_at: String,
    /// The pages visited, in the order they were visited.
    pub pages: Vec<SitePage>,
    /// Pages the crawl meant to visit and could not, with the reason.
    pub unreachable: Vec<Unreachable>,
    /// Candidates it chose not to visit, with the reason (listed up to a cap) ...
    pub skipped: Vec<Skipped>,
    /// ... and how many there were of each kind of reason.
    pub skipped_counts: BTreeMap<String, usize>,
    /// The sitemaps read, and what came of each.
    pub sitemaps: Vec<SitemapRead>,
    pub cookies: Vec<SiteCookie>,
    /// Third-party hosts the pages contacted.
    pub third_party_hosts: Vec<SiteItem>,
    pub scripts: Vec<SiteScript>,
    /// Requests a filter list names (tracking or advertising), by host.
    pub trackers: Vec<SiteTracker>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePage {
    pub url: String,
    pub final_url: String,
    pub title: String,
    pub status: Option<u16>,
    pub depth: u32,
    pub found_by: Source,
    /// Links to first-party pages it held.
    pub links: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unreachable {
    pub url: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitemapRead {
    pub url: String,
    /// Page URLs it listed (for an index: sitemaps it listed).
    pub entries: usize,
    pub error: Option<String>,
}

/// Something found on some pages, with those pages' final URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteItem {
    pub name: String,
    pub pages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteCookie {
    pub name: String,
    pub domain: String,
    pub party: Party,
    /// The category the cookie database gives it, if any.
    pub category: Option<String>,
    /// The pages whose visit set it. In one session, a cookie carried over from the page before
    /// is not credited again; one that was gone and came back is.
    pub pages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteScript {
    /// The script's URL, or `inline` for a script in a document.
    pub url: String,
    pub sha256: String,
    pub party: Option<Party>,
    pub pages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTracker {
    pub host: String,
    /// The list and rule that named its first request.
    pub list: String,
    pub rule: String,
    pub pages: Vec<String>,
}

/// One visited page, as the crawl hands it to [`SiteSnapshot::assemble`].
pub struct VisitedPage<'a> {
    pub url: &'a str,
    pub depth: u32,
    pub found_by: &'a Source,
    pub links: usize,
    /// The browsing session it was visited in (pages of one session share cookies).
    pub session: usize,
    pub snapshot: &'a Snapshot,
}

/// What a crawl knows at its end, besides its pages.
pub struct CrawlRecord {
    pub start_url: String,
    pub site: String,
    pub rules: CrawlRules,
    pub started_at: String,
    pub finished_at: String,
    pub unreachable: Vec<Unreachable>,
    pub skipped: Vec<Skipped>,
    pub skipped_counts: BTreeMap<SkipReason, usize>,
    pub sitemaps: Vec<SitemapRead>,
}

/// Adds `page` to the entry for `key`, once.
fn note<K: Ord>(map: &mut BTreeMap<K, Vec<String>>, key: K, page: &str) {
    let pages = map.entry(key).or_default();
    if pages.last().map(String::as_str) != Some(page) && !pages.iter().any(|p| p == page) {
        pages.push(page.to_owned());
    }
}

impl SiteSnapshot {
    /// The site snapshot of a crawl's pages: each page's summary, and the union of their cookies,
    /// hosts, scripts and trackers with the pages (final URLs) each appeared on.
    pub fn assemble(record: CrawlRecord, pages: &[VisitedPage<'_>]) -> Self {
        let mut cookies: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut cookie_info: BTreeMap<(String, String), (Party, Option<String>)> = BTreeMap::new();
        let mut hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut scripts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut script_party: BTreeMap<(String, String), Option<Party>> = BTreeMap::new();
        let mut trackers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut tracker_rule: BTreeMap<String, (String, String)> = BTreeMap::new();
        // In one session a cookie stays in the browser from page to page: it is credited to the
        // page whose visit set it, not to every later one.
        let mut before: BTreeMap<usize, std::collections::BTreeSet<(String, String)>> =
            BTreeMap::new();
        for page in pages {
            let snapshot = page.snapshot;
            let at = snapshot.final_url.as_str();
            let mut present = std::collections::BTreeSet::new();
            for cookie in &snapshot.cookies {
                let key = (cookie.name.clone(), cookie.domain.clone());
                present.insert(key.clone());
                cookie_info.entry(key.clone()).or_insert((
                    cookie.party,
                    cookie.classification.as_ref().map(|c| c.category.clone()),
                ));
                let carried_over = before
                    .get(&page.session)
                    .is_some_and(|earlier| earlier.contains(&key));
                if !carried_over {
                    note(&mut cookies, key, at);
                }
            }
            before.insert(page.session, present);
            for host in &snapshot.third_party_hosts {
                note(&mut hosts, host.clone(), at);
            }
            for script in &snapshot.scripts {
                let (key, party) = match script {
                    Script::External {
                        url, sha256, party, ..
                    } => ((url.clone(), sha256.clone()), Some(*party)),
                    Script::Inline { sha256, .. } => (("inline".into(), sha256.clone()), None),
                };
                script_party.entry(key.clone()).or_insert(party);
                note(&mut scripts, key, at);
            }
            for request in &snapshot.requests {
                if let Some(listed) = &request.listed {
                    tracker_rule
                        .entry(request.host.clone())
                        .or_insert((listed.list.clone(), listed.rule.clone()));
                    note(&mut trackers, request.host.clone(), at);
                }
            }
        }
        let skipped_counts = record
            .skipped_counts
            .iter()
            .map(|(reason, count)| (skip_kind(reason), *count))
            .collect();
        Self {
            format_version: SITE_FORMAT_VERSION,
            start_url: record.start_url,
            site: record.site,
            rules: record.rules,
            started_at: record.started_at,
            finished_at: record.finished_at,
            pages: pages
                .iter()
                .map(|page| SitePage {
                    url: page.url.to_owned(),
                    final_url: page.snapshot.final_url.clone(),
                    title: page.snapshot.title.clone(),
                    status: page.snapshot.status,
                    depth: page.depth,
                    found_by: page.found_by.clone(),
                    links: page.links,
                })
                .collect(),
            unreachable: record.unreachable,
            skipped: record.skipped,
            skipped_counts,
            sitemaps: record.sitemaps,
            cookies: cookies
                .into_iter()
                .map(|(key, pages)| {
                    let (party, category) =
                        cookie_info.remove(&key).unwrap_or((Party::Third, None));
                    SiteCookie {
                        name: key.0,
                        domain: key.1,
                        party,
                        category,
                        pages,
                    }
                })
                .collect(),
            third_party_hosts: hosts
                .into_iter()
                .map(|(name, pages)| SiteItem { name, pages })
                .collect(),
            scripts: scripts
                .into_iter()
                .map(|(key, pages)| SiteScript {
                    party: script_party.remove(&key).flatten(),
                    url: key.0,
                    sha256: key.1,
                    pages,
                })
                .collect(),
            trackers: trackers
                .into_iter()
                .map(|(host, pages)| {
                    let (list, rule) = tracker_rule.remove(&host).unwrap_or_default();
                    SiteTracker {
                        host,
                        list,
                        rule,
                        pages,
                    }
                })
                .collect(),
        }
    }
}

/// The name of a kind of skip reason, as `skipped_counts` keys it.
fn skip_kind(reason: &SkipReason) -> String {
    match reason {
        SkipReason::OtherSite => "other_site",
        SkipReason::Excluded { .. } => "excluded",
        SkipReason::NotIncluded => "not_included",
        SkipReason::Robots => "robots",
        SkipReason::TooDeep => "too_deep",
        SkipReason::Sampled { .. } => "sampled",
        SkipReason::PageCap => "page_cap",
    }
    .to_owned()
}
