use askama::Template;
use scanner::crawl::SiteSnapshot;

use super::queries::{Crawl, CrawlPage};
use super::site_diff::SiteChange;
use crate::layout::Nav;
use crate::sites::queries::Target;

#[derive(Template)]
#[template(path = "crawls/history.html")]
pub struct CrawlsPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub crawls: Vec<Crawl>,
    /// Reload while a crawl is unfinished.
    pub refresh: bool,
}

/// One crawl (every string from the site is escaped by askama).
#[derive(Template)]
#[template(path = "crawls/crawl.html")]
pub struct CrawlPageView {
    pub nav: Option<Nav>,
    pub target: Target,
    pub crawl: Crawl,
    pub pages: Vec<CrawlPage>,
    pub site: Option<SiteSnapshot>,
    pub changes: Vec<SiteChange>,
    pub refresh: bool,
}
