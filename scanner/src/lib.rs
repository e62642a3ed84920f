//! siteward's capture engine.
//!
//! Turns one URL into a [`Snapshot`] of what a first-time visitor's browser receives, in a
//! supervised headless Chromium, behind an egress guard that keeps hostile pages away from private
//! networks. Knows nothing of databases, tenants or storage.
#![forbid(unsafe_code)]

mod browser;
mod capture;
pub mod classify;
pub mod crawl;
pub mod egress;
mod error;
pub mod har;
mod options;
pub mod party;
pub mod profile;
mod scan;
pub mod snapshot;
pub mod url_pattern;

pub use browser::{BrowserOptions, Identity, NOBODY, Supervisor};
pub use error::ScanError;
pub use options::{DEFAULT_MIN_DWELL, DEFAULT_QUIET_PERIOD, Limits, ScanOptions};
pub use scan::{
    Activity, ActivityMark, CrawlOutput, CrawlStep, FrameInfo, Journey, NavigationRule, RobotsRead,
    ScanOutput, Scanner, Settled, SitemapsRead, Stage, ends_the_session, fetch_robots,
    fetch_sitemaps, offer_links, offer_sitemap_pages, page_links, validate_url,
};
pub use snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot};

/// The JSON Schema of [`Snapshot`], as committed in `docs/snapshot.schema.json`.
pub fn snapshot_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Snapshot)).unwrap_or_default()
}
