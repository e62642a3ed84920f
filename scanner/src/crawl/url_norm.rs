//! One spelling per page: how crawl candidates are normalized and grouped by template.

use url::Url;

/// Query parameters that only say where a visitor came from; a page is the same page without them.
const TRACKING_PARAMETERS: [&str; 14] = [
    "gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "twclid", "ttclid", "yclid",
    "mc_cid", "mc_eid", "_ga", "_gl", "igshid",
];

/// Prefixes of tracking parameters (`utm_source`, `utm_medium`, ...).
const TRACKING_PREFIXES: [&str; 3] = ["utm_", "pk_", "mtm_"];

/// Longest URL a crawl accepts (a page can link to anything).
const MAX_URL_CHARS: usize = 2_048;

fn is_tracking(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    TRACKING_PARAMETERS.contains(&name.as_str())
        || TRACKING_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// `href` resolved against `base` and normalized: http(s) only, no credentials, no fragment, no
/// tracking parameters, the remaining query sorted, default port and empty query dropped. `None`
/// for anything a crawl cannot visit (`mailto:`, `javascript:`, a malformed or overlong URL).
pub fn normalize(href: &str, base: &Url) -> Option<Url> {
    let href = href.trim();
    if href.is_empty() || href.len() > MAX_URL_CHARS {
        return None;
    }
    let mut url = base.join(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.set_fragment(None);
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !is_tracking(name))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        pairs.sort();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    (url.as_str().len() <= MAX_URL_CHARS).then_some(url)
}

/// The template a page's path belongs to: numbers become `{n}`, and in paths two or more
/// segments deep the last segment becomes `{slug}` — `/product/red-shoe` and `/product/blue-hat`
/// are both `/product/{slug}`, `/blog/2026/11/a-post` is `/blog/{n}/{n}/{slug}`. Top-level pages
/// (`/about`, `/contact`) are their own template. The query is not part of it.
pub fn path_template(url: &Url) -> String {
    let segments: Vec<&str> = url
        .path()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let last = segments.len().saturating_sub(1);
    let template: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            if segment.chars().all(|c| c.is_ascii_digit()) {
                "{n}"
            } else if i == last && segments.len() >= 2 {
                "{slug}"
            } else {
                segment
            }
        })
        .collect();
    format!(
        "{}/{}",
        url.host_str().unwrap_or_default(),
        template.join("/")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://shop.test/products/").unwrap()
    }

    #[test]
    fn links_are_resolved_stripped_of_tracking_and_sorted() {
        let n = |href: &str| normalize(href, &base()).map(String::from);
        assert_eq!(
            n("red-shoe?utm_source=mail&size=42&gclid=x&color=red#reviews").as_deref(),
            Some("https://shop.test/products/red-shoe?color=red&size=42")
        );
        assert_eq!(
            n("/?fbclid=abc").as_deref(),
            Some("https://shop.test/"),
            "an emptied query goes"
        );
        assert_eq!(
            n("HTTPS://Shop.TEST:443/a").as_deref(),
            Some("https://shop.test/a")
        );
        for unusable in [
            "mailto:a@shop.test",
            "javascript:void(0)",
            "tel:+100",
            "",
            "https://user:pw@shop.test/",
            "data:text/html,hi",
        ] {
            assert_eq!(n(unusable), None, "{unusable}");
        }
        assert_eq!(n(&format!("/{}", "a".repeat(3_000))), None);
    }

    #[test]
    fn templates_group_pages_that_look_alike() {
        let t =
            |path: &str| path_template(&Url::parse(&format!("https://shop.test{path}")).unwrap());
        assert_eq!(t("/product/red-shoe"), t("/product/blue-hat"));
        assert_eq!(t("/product/red-shoe"), "shop.test/product/{slug}");
        assert_eq!(t("/blog/2026/11/a-post"), "shop.test/blog/{n}/{n}/{slug}");
        assert_ne!(t("/about"), t("/contact"));
        assert_eq!(t("/"), "shop.test/");
        assert_eq!(t("/order/1234"), "shop.test/order/{n}");
    }
}
