//! The crawl's to-do list: candidates in, pages to visit out (breadth first), with every refusal
//! and its reason kept.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use url::Url;

use super::robots::Robots;
use super::rules::CrawlRules;
use super::url_norm::{normalize, path_template};
use crate::party::registrable_domain;

/// Refusals listed one by one at most; past it they are only counted.
const MAX_LISTED_SKIPS: usize = 500;
/// Distinct URLs remembered at most (a site can link to endless generated pages).
const MAX_SEEN: usize = 100_000;

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Start,
    /// A link on this page.
    Link {
        on: String,
    },
    /// A sitemap.
    Sitemap {
        sitemap: String,
    },
}

/// A page to visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub url: Url,
    /// Clicks from the start page (sitemap pages count as one).
    pub depth: u32,
    pub source: Source,
}

/// Why a candidate is not visited.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// On another registrable domain.
    OtherSite,
    /// Matches an exclude pattern.
    Excluded { pattern: String },
    /// Matches no include pattern.
    NotIncluded,
    /// The site's `robots.txt` disallows it.
    Robots,
    /// Deeper than the rules allow.
    TooDeep,
    /// Enough pages of its template were already taken.
    Sampled { template: String },
    /// The page cap was reached before it.
    PageCap,
}

impl SkipReason {
    /// In words, for people.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::OtherSite => "on another site".into(),
            SkipReason::Excluded { pattern } => format!("excluded by {pattern}"),
            SkipReason::NotIncluded => "matches no include pattern".into(),
            SkipReason::Robots => "disallowed by robots.txt".into(),
            SkipReason::TooDeep => "deeper than the crawl goes".into(),
            SkipReason::Sampled { template } => format!("sampled: another page like {template}"),
            SkipReason::PageCap => "the page cap was reached".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub url: String,
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// What became of an offered candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Already queued, visited or refused.
    Known,
    /// Not a URL a crawl can visit (`mailto:`, malformed...).
    Unusable,
    Skipped(SkipReason),
}

/// The frontier serializes, so a crawl split between runners keeps it in the database between
/// pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frontier {
    rules: CrawlRules,
    site: String,
    /// The `robots.txt` read, and the origin it speaks for (as ASCII).
    robots: Option<(String, Robots)>,
    seen: HashSet<String>,
    queue: VecDeque<Planned>,
    handed_out: usize,
    templates: HashMap<String, usize>,
    skipped: Vec<Skipped>,
    #[serde(with = "counts_as_pairs")]
    skip_counts: BTreeMap<SkipReason, usize>,
}

/// JSON keys are strings: the counts per reason go as `[reason, count]` pairs.
mod counts_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::SkipReason;

    pub fn serialize<S: Serializer>(
        counts: &BTreeMap<SkipReason, usize>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        counts.iter().collect::<Vec<_>>().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<SkipReason, usize>, D::Error> {
        Ok(Vec::<(SkipReason, usize)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

impl Frontier {
    /// A frontier holding the start page, which is always visited.
    pub fn new(start: Url, rules: CrawlRules) -> Self {
        let site = registrable_domain(start.host_str().unwrap_or_default());
        let start = normalize(start.as_str(), &start).unwrap_or(start);
        let mut frontier = Self {
            rules,
            site,
            robots: None,
            seen: HashSet::new(),
            queue: VecDeque::new(),
            handed_out: 0,
            templates: HashMap::new(),
            skipped: Vec::new(),
            skip_counts: BTreeMap::new(),
        };
        frontier.seen.insert(start.to_string());
        *frontier.templates.entry(path_template(&start)).or_default() += 1;
        frontier.queue.push_back(Planned {
            url: start,
            depth: 0,
            source: Source::Start,
        });
        frontier
    }

    pub fn rules(&self) -> &CrawlRules {
        &self.rules
    }

    /// The `robots.txt` of `origin`, applied to every candidate of that origin offered from now
    /// on (when the rules respect it). Other hosts of the site answer for themselves: their pages
    /// are not held to it.
    pub fn set_robots(&mut self, origin: String, robots: Robots) {
        if self.rules.respect_robots {
            self.robots = Some((origin, robots));
        }
    }

    /// Offers `href` (resolved against `base`) found at `depth` clicks from the start.
    pub fn offer(&mut self, href: &str, base: &Url, depth: u32, source: Source) -> Offer {
        let Some(url) = normalize(href, base) else {
            return Offer::Unusable;
        };
        let key = url.to_string();
        if self.seen.contains(&key) {
            return Offer::Known;
        }
        if self.seen.len() >= MAX_SEEN {
            return Offer::Skipped(SkipReason::PageCap);
        }
        self.seen.insert(key);
        let refusal = if registrable_domain(url.host_str().unwrap_or_default()) != self.site {
            Some(SkipReason::OtherSite)
        } else if let Err(pattern) = self.rules.admits(&url) {
            Some(SkipReason::Excluded {
                pattern: pattern.as_str().to_owned(),
            })
        } else if !self.rules.included(&url) {
            Some(SkipReason::NotIncluded)
        } else if self.robots.as_ref().is_some_and(|(origin, robots)| {
            url.origin().ascii_serialization() == *origin && !robots.allows(&url)
        }) {
            Some(SkipReason::Robots)
        } else if depth > self.rules.max_depth {
            Some(SkipReason::TooDeep)
        } else {
            let template = path_template(&url);
            let taken = self.templates.entry(template.clone()).or_default();
            if *taken >= self.rules.per_template {
                Some(SkipReason::Sampled { template })
            } else {
                *taken += 1;
                None
            }
        };
        match refusal {
            Some(reason) => {
                self.skip(url.to_string(), reason.clone());
                Offer::Skipped(reason)
            }
            None => {
                self.queue.push_back(Planned { url, depth, source });
                Offer::Queued
            }
        }
    }

    /// A visited page ended up at `final_url` (a redirect): links to that URL are the same page.
    pub fn arrived_at(&mut self, final_url: &Url) {
        if let Some(url) = normalize(final_url.as_str(), final_url)
            && self.seen.len() < MAX_SEEN
        {
            self.seen.insert(url.to_string());
        }
    }

    /// Whether `url` is on the crawled site.
    pub fn on_site(&self, url: &Url) -> bool {
        registrable_domain(url.host_str().unwrap_or_default()) == self.site
    }

    /// The next page to visit, breadth first; `None` once the queue is empty or the page cap is
    /// reached.
    pub fn next_page(&mut self) -> Option<Planned> {
        if self.handed_out >= self.rules.max_pages {
            return None;
        }
        let next = self.queue.pop_front()?;
        self.handed_out += 1;
        Some(next)
    }

    /// Whether the page cap leaves room for more pages.
    pub fn has_room(&self) -> bool {
        self.handed_out < self.rules.max_pages
    }

    /// Pages handed out so far.
    pub fn handed_out(&self) -> usize {
        self.handed_out
    }

    fn skip(&mut self, url: String, reason: SkipReason) {
        let counted = match &reason {
            // Counted per kind, not per pattern or template.
            SkipReason::Excluded { .. } => SkipReason::Excluded {
                pattern: String::new(),
            },
            SkipReason::Sampled { .. } => SkipReason::Sampled {
                template: String::new(),
            },
            other => other.clone(),
        };
        *self.skip_counts.entry(counted).or_default() += 1;
        if self.skipped.len() < MAX_LISTED_SKIPS {
            self.skipped.push(Skipped { url, reason });
        }
    }

    /// Ends the crawl: what was still queued is skipped for the page cap. Returns every refusal
    /// listed (up to a cap) and how many there were of each kind.
    pub fn finish(mut self) -> (Vec<Skipped>, BTreeMap<SkipReason, usize>) {
        while let Some(left) = self.queue.pop_front() {
            self.skip(left.url.to_string(), SkipReason::PageCap);
        }
        (self.skipped, self.skip_counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::Pattern;

    fn start() -> Url {
        Url::parse("https://www.shop.test/").unwrap()
    }

    fn link(frontier: &mut Frontier, href: &str, depth: u32) -> Offer {
        frontier.offer(
            href,
            &start(),
            depth,
            Source::Link {
                on: start().to_string(),
            },
        )
    }

    #[test]
    fn a_frontier_read_back_from_json_goes_on_where_it_was() {
        let mut frontier = Frontier::new(
            start(),
            CrawlRules {
                max_pages: 3,
                per_template: 1,
                ..CrawlRules::default()
            },
        );
        frontier.set_robots(
            start().origin().ascii_serialization(),
            Robots::parse("User-agent: *\nDisallow: /private/\n"),
        );
        assert!(frontier.next_page().is_some());
        assert_eq!(link(&mut frontier, "/product/a", 1), Offer::Queued);
        assert_eq!(
            link(&mut frontier, "/private/x", 1),
            Offer::Skipped(SkipReason::Robots)
        );
        let json = serde_json::to_string(&frontier).unwrap();
        let mut back: Frontier = serde_json::from_str(&json).unwrap();
        assert_eq!(link(&mut back, "/product/a", 1), Offer::Known);
        assert_eq!(
            link(&mut back, "/product/b", 1),
            Offer::Skipped(SkipReason::Sampled {
                template: "www.shop.test/product/{slug}".into()
            })
        );
        assert_eq!(
            link(&mut back, "/private/y", 1),
            Offer::Skipped(SkipReason::Robots)
        );
        assert_eq!(back.handed_out(), 1);
        assert_eq!(back.next_page().unwrap().url.path(), "/product/a");
        let (_, counts) = back.finish();
        assert_eq!(counts[&SkipReason::Robots], 2);
    }

    #[test]
    fn first_party_links_are_queued_once_breadth_first_within_the_cap() {
        let mut frontier = Frontier::new(
            start(),
            CrawlRules {
                max_pages: 3,
                ..CrawlRules::default()
            },
        );
        assert_eq!(link(&mut frontier, "/about", 1), Offer::Queued);
        assert_eq!(link(&mut frontier, "/about#team", 1), Offer::Known);
        assert_eq!(link(&mut frontier, "/about?utm_source=x", 1), Offer::Known);
        assert_eq!(
            link(&mut frontier, "https://blog.shop.test/", 1),
            Offer::Queued,
            "same registrable domain"
        );
        assert_eq!(
            link(&mut frontier, "https://other.test/", 1),
            Offer::Skipped(SkipReason::OtherSite)
        );
        assert_eq!(link(&mut frontier, "/contact", 1), Offer::Queued);
        assert_eq!(
            link(&mut frontier, "mailto:a@shop.test", 1),
            Offer::Unusable
        );
        assert_eq!(link(&mut frontier, "/", 1), Offer::Known, "the start page");
        let order: Vec<String> = std::iter::from_fn(|| frontier.next_page())
            .map(|p| p.url.path().to_owned())
            .collect();
        assert_eq!(order, ["/", "/about", "/"]);
        let (skipped, counts) = frontier.finish();
        assert_eq!(counts[&SkipReason::PageCap], 1);
        assert!(
            skipped.iter().any(
                |s| s.url == "https://www.shop.test/contact" && s.reason == SkipReason::PageCap
            )
        );
    }

    #[test]
    fn patterns_robots_depth_and_templates_decide_with_reasons() {
        let mut frontier = Frontier::new(
            start(),
            CrawlRules {
                max_depth: 2,
                exclude: vec![Pattern::try_from("/cart*".to_owned()).unwrap()],
                per_template: 2,
                ..CrawlRules::default()
            },
        );
        frontier.set_robots(
            start().origin().ascii_serialization(),
            Robots::parse("User-agent: *\nDisallow: /account/\n"),
        );
        assert_eq!(
            link(&mut frontier, "/cart?add=1", 1),
            Offer::Skipped(SkipReason::Excluded {
                pattern: "/cart*".into()
            })
        );
        assert_eq!(
            link(&mut frontier, "/account/orders", 1),
            Offer::Skipped(SkipReason::Robots)
        );
        assert_eq!(
            link(&mut frontier, "/deep", 3),
            Offer::Skipped(SkipReason::TooDeep)
        );
        assert_eq!(link(&mut frontier, "/product/a", 1), Offer::Queued);
        assert_eq!(link(&mut frontier, "/product/b", 2), Offer::Queued);
        assert_eq!(
            link(&mut frontier, "/product/c", 1),
            Offer::Skipped(SkipReason::Sampled {
                template: "www.shop.test/product/{slug}".into()
            })
        );
        let (_, counts) = frontier.finish();
        assert_eq!(
            counts[&SkipReason::Sampled {
                template: String::new()
            }],
            1
        );

        let mut only_blog = Frontier::new(
            start(),
            CrawlRules {
                include: vec![Pattern::try_from("/blog/*".to_owned()).unwrap()],
                respect_robots: false,
                ..CrawlRules::default()
            },
        );
        only_blog.set_robots(
            start().origin().ascii_serialization(),
            Robots::parse("User-agent: *\nDisallow: /\n"),
        );
        assert_eq!(link(&mut only_blog, "/blog/a", 1), Offer::Queued);
        assert_eq!(
            link(&mut only_blog, "/about", 1),
            Offer::Skipped(SkipReason::NotIncluded)
        );
    }
}
