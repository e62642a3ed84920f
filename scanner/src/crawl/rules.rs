//! What a crawl may visit: page cap, depth, URL patterns, sitemaps, sessions.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::url_pattern::{glob_matches, path_and_query};

/// Patterns per list at most, and characters per pattern.
const MAX_PATTERNS: usize = 50;
const MAX_PATTERN_CHARS: usize = 200;

/// Hard ceiling of pages per crawl, whatever an organization's cap says.
pub const MAX_PAGES_CEILING: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("at most {max} pages: {got} is too many")]
    TooManyPages { got: usize, max: usize },
    #[error("a crawl visits at least one page")]
    NoPages,
    #[error(
        "pattern {0:?} is not a path pattern: it must start with / and be at most {MAX_PATTERN_CHARS} characters"
    )]
    BadPattern(String),
    #[error("at most {MAX_PATTERNS} patterns per list")]
    TooManyPatterns,
}

/// A URL path pattern: `*` matches any run of characters (`/blog/*`, `*/checkout*`); anything
/// else matches itself. Matched against the path and query (`/search?q=1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl TryFrom<String> for Pattern {
    type Error = RulesError;
    fn try_from(text: String) -> Result<Self, RulesError> {
        let text = text.trim().to_owned();
        let starts_right = text.starts_with('/') || text.starts_with('*');
        if !starts_right
            || text.chars().count() > MAX_PATTERN_CHARS
            || text.chars().any(char::is_control)
        {
            return Err(RulesError::BadPattern(text));
        }
        Ok(Self(text))
    }
}

impl From<Pattern> for String {
    fn from(pattern: Pattern) -> String {
        pattern.0
    }
}

impl Pattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the URL's path (with its query) matches.
    pub fn matches(&self, url: &Url) -> bool {
        glob_matches(&self.0, &path_and_query(url))
    }
}

/// How a crawl moves through a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrawlRules {
    /// Pages visited at most, the start page included.
    pub max_pages: usize,
    /// Links followed at most this many clicks away from the start page (0: the start page only).
    pub max_depth: u32,
    /// When not empty, only pages matching one of these are visited (the start page always is).
    pub include: Vec<Pattern>,
    /// Pages matching one of these are never visited.
    pub exclude: Vec<Pattern>,
    /// Also take pages from the sitemaps `robots.txt` names and from `/sitemap.xml`.
    pub sitemaps: bool,
    /// Pages visited at most per path template (`/product/{slug}`).
    pub per_template: usize,
    /// Visit every page in one browsing session, cookies carried over as a visitor's would be;
    /// `false` gives each page a fresh one.
    pub one_session: bool,
    /// Leave out what the site's `robots.txt` disallows for every robot.
    pub respect_robots: bool,
}

impl Default for CrawlRules {
    fn default() -> Self {
        Self {
            max_pages: 20,
            max_depth: 3,
            include: Vec::new(),
            exclude: Vec::new(),
            sitemaps: true,
            per_template: 2,
            one_session: true,
            respect_robots: true,
        }
    }
}

impl CrawlRules {
    /// Checks the rules against an organization's cap of pages per crawl.
    pub fn validate(&self, page_cap: usize) -> Result<(), RulesError> {
        let max = page_cap.min(MAX_PAGES_CEILING);
        if self.max_pages == 0 {
            return Err(RulesError::NoPages);
        }
        if self.max_pages > max {
            return Err(RulesError::TooManyPages {
                got: self.max_pages,
                max,
            });
        }
        if self.include.len() > MAX_PATTERNS || self.exclude.len() > MAX_PATTERNS {
            return Err(RulesError::TooManyPatterns);
        }
        Ok(())
    }

    /// Whether the patterns let `url` be visited.
    pub fn admits(&self, url: &Url) -> Result<(), &Pattern> {
        if let Some(pattern) = self.exclude.iter().find(|p| p.matches(url)) {
            return Err(pattern);
        }
        Ok(())
    }

    /// Whether `url` is among the included pages (always, when no include pattern is set).
    pub fn included(&self, url: &Url) -> bool {
        self.include.is_empty() || self.include.iter().any(|p| p.matches(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::try_from(text.to_owned()).unwrap()
    }

    fn url(path: &str) -> Url {
        Url::parse(&format!("https://shop.test{path}")).unwrap()
    }

    #[test]
    fn patterns_match_path_and_query_with_stars() {
        assert!(pattern("/blog/*").matches(&url("/blog/a-post")));
        assert!(!pattern("/blog/*").matches(&url("/blogroll")));
        assert!(pattern("*/checkout*").matches(&url("/shop/checkout/pay")));
        assert!(pattern("/search?q=*").matches(&url("/search?q=shoes")));
        assert!(pattern("/about").matches(&url("/about")));
        assert!(!pattern("/about").matches(&url("/about/team")));
        assert!(pattern("/a*b*c").matches(&url("/axxbyyc")));
        assert!(!pattern("/a*b*c").matches(&url("/axxbyy")));
        // Pathological patterns stay quick.
        let long = format!("/{}", "a".repeat(150));
        assert!(!pattern("/*a*a*a*a*a*a*b").matches(&url(&long)));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        assert!(Pattern::try_from("blog".to_owned()).is_err());
        assert!(Pattern::try_from(format!("/{}", "a".repeat(300))).is_err());
        assert!(Pattern::try_from("/a\nb".to_owned()).is_err());
        let rules = CrawlRules {
            max_pages: 500,
            ..CrawlRules::default()
        };
        assert_eq!(
            rules.validate(100),
            Err(RulesError::TooManyPages { got: 500, max: 100 })
        );
        assert_eq!(
            CrawlRules {
                max_pages: 0,
                ..CrawlRules::default()
            }
            .validate(100),
            Err(RulesError::NoPages)
        );
        assert_eq!(CrawlRules::default().validate(100), Ok(()));
        let parsed: Result<CrawlRules, _> =
            serde_json::from_value(serde_json::json!({"exclude": ["no-slash"]}));
        assert!(parsed.is_err());
    }
}
