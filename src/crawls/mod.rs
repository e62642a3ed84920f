//! Whole-site scans. A site target is crawled: its pages are visited the way a visitor moves
//! through the site, each page an ordinary scan (its own job, snapshot, artifacts and HAR) that
//! is compared with the same page of the previous crawl.
//!
//! The work is split between runner slots: a crawl has `lanes` jobs of kind `crawl`, each a
//! visitor with its own browsing session that asks the app for the crawl's next page
//! ([`internal`]). Each page is a `crawl_page` job with a lease, so a runner that dies mid-crawl
//! loses only the page under way, which the reaper returns to the queue for another lane. The
//! crawl's frontier (the scanner's [`scanner::crawl::Frontier`]) is kept in the crawl's row and
//! locked while a finished page's links are offered ([`progress`]). When no page is left, the
//! app builds the site snapshot, compares it with the previous crawl's and raises alerts that
//! name the pages ([`assemble`], [`site_diff`]).

pub mod assemble;
pub mod internal;
pub mod progress;
pub mod queries;
pub mod routes;
pub mod site_diff;
mod views;
