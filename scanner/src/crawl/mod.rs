//! Which pages of a site a crawl visits: pure planning, no browser.
//!
//! A crawl starts at one URL and moves through the site the way a visitor would, following
//! first-party links (same registrable domain) and, if asked, the URLs the site's sitemaps list.
//! Every candidate is normalized ([`normalize`]: fragment dropped, tracking parameters removed,
//! query sorted) and deduplicated; the [`Frontier`] then applies the [`CrawlRules`] — page cap,
//! depth, include and exclude patterns, `robots.txt` — and samples pages that share a path
//! template (`/product/{slug}`) rather than visiting them all. Everything it turns down is kept
//! with its reason, so a site snapshot can say what it did not visit and why.

mod frontier;
mod robots;
mod rules;
mod site;
mod sitemap;
mod url_norm;

pub use frontier::{Frontier, Offer, Planned, SkipReason, Skipped, Source};
pub use robots::Robots;
pub use rules::{CrawlRules, MAX_PAGES_CEILING, Pattern, RulesError};
pub use site::{
    CrawlRecord, SITE_FORMAT_VERSION, SiteCookie, SiteItem, SitePage, SiteScript, SiteSnapshot,
    SiteTracker, SitemapRead, Unreachable, VisitedPage,
};
pub use sitemap::{MAX_SITEMAP_BYTES, Sitemap, SitemapError, parse_sitemap};
pub use url_norm::{normalize, path_template};
