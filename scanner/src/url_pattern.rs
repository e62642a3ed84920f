//! `*`-only URL patterns, shared by crawl rules and checkout tests' navigation rules.

use url::Url;

/// The part of a URL a path pattern is matched against: its path, and its query if it has one
/// (`/search?q=1`).
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters and everything
/// else for itself. Linear space, O(pattern × text) time at worst: the last `*` is the only
/// backtracking point.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_and_the_rest_matches_itself() {
        assert!(glob_matches("/a*b*c", "/axxbyyc"));
        assert!(!glob_matches("/a*b*c", "/axxbyy"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("/about", "/about/team"));
        let long = format!("/{}", "a".repeat(150));
        assert!(!glob_matches("/*a*a*a*a*a*a*b", &long));
        let url = Url::parse("https://shop.test/search?q=1#top").unwrap();
        assert_eq!(path_and_query(&url), "/search?q=1");
    }
}
