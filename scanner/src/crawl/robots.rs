//! `robots.txt` as a crawl reads it (RFC 9309): the sitemaps it names, and what it disallows for
//! every robot (`User-agent: *`) or for siteward by name.

use url::Url;

/// Lines read at most (the RFC asks crawlers to read at least 500 KiB).
const MAX_LINES: usize = 20_000;
/// Sitemaps taken at most from one file.
const MAX_SITEMAPS: usize = 50;

/// What one site's `robots.txt` says to a crawl.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Robots {
    /// Sitemap URLs it names, as written (absolute, per the format).
    pub sitemaps: Vec<String>,
    /// `(allow, path prefix)` rules of the group that applies to siteward.
    rules: Vec<(bool, String)>,
}

impl Robots {
    /// Parses a `robots.txt`. The group for `siteward` applies when there is one, else the `*`
    /// group; unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut sitemaps = Vec::new();
        let mut named: Option<Vec<(bool, String)>> = None;
        let mut anyone: Option<Vec<(bool, String)>> = None;
        // The agents of the group being read, and whether its rules have started.
        let mut agents: Vec<String> = Vec::new();
        let mut in_rules = false;
        let mut current: Vec<(bool, String)> = Vec::new();
        let mut flush = |agents: &[String], rules: &mut Vec<(bool, String)>| {
            if agents.iter().any(|a| a == "siteward") {
                named
                    .get_or_insert_with(Vec::new)
                    .extend(rules.iter().cloned());
            }
            if agents.iter().any(|a| a == "*") {
                anyone
                    .get_or_insert_with(Vec::new)
                    .extend(rules.iter().cloned());
            }
            rules.clear();
        };
        for line in text.lines().take(MAX_LINES) {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if in_rules {
                        flush(&agents, &mut current);
                        agents.clear();
                        in_rules = false;
                    }
                    agents.push(value.to_ascii_lowercase());
                }
                "allow" | "disallow" => {
                    in_rules = true;
                    // An empty Disallow allows everything: no rule.
                    if !value.is_empty() {
                        current.push((key == "allow", value.to_owned()));
                    }
                }
                "sitemap" if sitemaps.len() < MAX_SITEMAPS && !value.is_empty() => {
                    sitemaps.push(value.to_owned());
                }
                _ => {}
            }
        }
        flush(&agents, &mut current);
        Self {
            sitemaps,
            rules: named.or(anyone).unwrap_or_default(),
        }
    }

    /// What a server error for `robots.txt` means (RFC 9309 2.3.1.4): nothing may be visited.
    pub fn disallow_all() -> Self {
        Self {
            sitemaps: Vec::new(),
            rules: vec![(false, "/".into())],
        }
    }

    /// Whether the path (and query) of `url` may be visited: the longest matching rule decides,
    /// `Allow` winning a tie; no matching rule allows.
    pub fn allows(&self, url: &Url) -> bool {
        let target = crate::url_pattern::path_and_query(url);
        self.rules
            .iter()
            .filter(|(_, rule)| rule_matches(rule, &target))
            .max_by_key(|(allow, rule)| (rule.len(), *allow))
            .is_none_or(|(allow, _)| *allow)
    }
}

/// A robots rule: a path prefix where `*` matches any run of characters and a final `$` anchors
/// the end.
fn rule_matches(rule: &str, target: &str) -> bool {
    let (rule, anchored) = match rule.strip_suffix('$') {
        Some(rule) => (rule, true),
        None => (rule, false),
    };
    let mut parts = rule.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = target.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && anchored {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    !anchored || rest.is_empty() || (parts.is_empty() && rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(path: &str) -> Url {
        Url::parse(&format!("https://shop.test{path}")).unwrap()
    }

    #[test]
    fn the_group_for_everyone_decides_with_the_longest_rule() {
        let robots = Robots::parse(
            "# shop\nUser-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /account/\nDisallow: /*.pdf$\nAllow: /account/help\nDisallow:\n\nSitemap: https://shop.test/sitemap-index.xml\n",
        );
        assert_eq!(robots.sitemaps, ["https://shop.test/sitemap-index.xml"]);
        assert!(robots.allows(&url("/")));
        assert!(robots.allows(&url("/product/a")));
        assert!(!robots.allows(&url("/account/orders")));
        assert!(robots.allows(&url("/account/help")));
        assert!(!robots.allows(&url("/files/terms.pdf")));
        assert!(robots.allows(&url("/files/terms.pdf?v=2")));
    }

    #[test]
    fn a_group_naming_siteward_wins_and_garbage_is_ignored() {
        let robots = Robots::parse(
            "User-agent: *\nDisallow: /\n\nUser-agent: other\nUser-agent: siteward\nDisallow: /private\n\x00\u{fffd}garbage line\n",
        );
        assert!(robots.allows(&url("/public")));
        assert!(!robots.allows(&url("/private/x")));
        assert!(Robots::parse("").allows(&url("/anything")));
    }
}
