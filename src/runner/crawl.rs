//! A crawl lane on the runner: a visitor taking the crawl's pages from the app one after
//! another — in one browsing session while the rules ask for it, so cookies and caches carry
//! over as a visitor's would — capturing each as a scan captures a page and sending its links
//! (and, from the start page, what `robots.txt` and the sitemaps list) with its snapshot.
//!
//! Each page is a job of its own with its own heartbeat: if this runner dies, the page under
//! way comes back to the crawl when its lease lapses and another lane visits it. A failure that
//! ends the session (a crashed renderer) costs only the page it happened on: the lane goes on
//! in a fresh session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanner::{Journey, NavigationRule, ScanError};
use tokio::sync::Notify;
use url::Url;

use super::client::CallError;
use super::protocol::{ClaimedJob, CrawlNext, CrawlOrder, CrawlPageResult};
use super::work::{
    Shared, deliver_document, heartbeat_loop, report_failure, scan_options, with_retries,
};

/// Pages this lane visited (delivered or reported unreachable).
type Visited = usize;

/// Takes the crawl's pages until the app says there are none left; completes the lane.
pub(super) async fn run_lane(
    shared: &Arc<Shared>,
    lane: &ClaimedJob,
    order: &CrawlOrder,
    lost: &AtomicBool,
) -> Result<Visited, CallError> {
    let deadline = Instant::now() + Duration::from_secs(order.seconds_left);
    let anywhere: NavigationRule = Arc::new(|_: &Url| true);
    let mut sessions = 0;
    let mut visited = 0;
    while let Some(first) = next_page(shared, lane, lost).await? {
        sessions += 1;
        let session = format!(
            "lane {} attempt {} session {sessions}",
            order.lane, lane.attempt
        );
        let Some(scan) = first.scan.clone() else {
            report_failure(shared, &first, "the page job has no scan order", lost).await;
            continue;
        };
        let options = scanner::ScanOptions {
            scan_timeout: deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(60)),
            ..scan_options(shared, &scan)
        };
        // The page under way, to report if the session dies under it.
        let current = Mutex::new(Some(first));
        let result = shared
            .scanner
            .journey(&scan.url, &options, anywhere.clone(), async |journey| {
                loop {
                    let page = lock(&current).clone();
                    let Some(page) = page else {
                        return Ok(());
                    };
                    visit(shared, journey, &page, &session, &current).await?;
                    visited += 1;
                    if !order.one_session {
                        return Ok(());
                    }
                    match next_page(shared, lane, lost).await {
                        Ok(Some(next)) => *lock(&current) = Some(next),
                        _ => return Ok(()),
                    }
                }
            })
            .await;
        let under_way = lock(&current).take();
        if let (Err(error), Some(page)) = (result, under_way) {
            tracing::warn!(job = page.job_id, %error, "the session died on this crawl page");
            let page_lost = AtomicBool::new(false);
            report_failure(shared, &page, &error.to_string(), &page_lost).await;
            visited += 1;
        }
        if lost.load(Ordering::SeqCst) {
            return Err(CallError::Stale);
        }
    }
    with_retries(shared, lost, || {
        shared
            .client
            .complete::<serde_json::Value>(lane, b"{}".to_vec())
    })
    .await?;
    Ok(visited)
}

fn lock(current: &Mutex<Option<ClaimedJob>>) -> std::sync::MutexGuard<'_, Option<ClaimedJob>> {
    current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The crawl's next page for this lane, waiting while other lanes' pages may add some; `None`
/// when the crawl has no page left.
async fn next_page(
    shared: &Shared,
    lane: &ClaimedJob,
    lost: &AtomicBool,
) -> Result<Option<ClaimedJob>, CallError> {
    loop {
        match with_retries(shared, lost, || shared.client.crawl_next(lane)).await? {
            CrawlNext::Page { page } => return Ok(Some(*page)),
            CrawlNext::Done => return Ok(None),
            CrawlNext::Wait { retry_ms } => {
                tokio::time::sleep(Duration::from_millis(u64::from(retry_ms.clamp(50, 5_000))))
                    .await
            }
        }
    }
}

/// Visits one page in the journey's session and delivers it, heartbeating its job meanwhile.
/// A page that fails is reported unreachable; an error is returned only when the session itself
/// is lost (the page is then still `current`, for the caller to report).
async fn visit(
    shared: &Arc<Shared>,
    journey: &Journey<'_>,
    page: &ClaimedJob,
    session: &str,
    current: &Mutex<Option<ClaimedJob>>,
) -> Result<(), ScanError> {
    let page_lost = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat_loop(
        shared.clone(),
        page.clone(),
        Arc::new(Notify::new()),
        page_lost.clone(),
    ));
    let result = visit_and_deliver(shared, journey, page, session, current, &page_lost).await;
    heartbeat.abort();
    result
}

async fn visit_and_deliver(
    shared: &Shared,
    journey: &Journey<'_>,
    page: &ClaimedJob,
    session: &str,
    current: &Mutex<Option<ClaimedJob>>,
    page_lost: &AtomicBool,
) -> Result<(), ScanError> {
    let (Some(scan), Some(crawl_page)) = (&page.scan, &page.crawl_page) else {
        *lock(current) = None;
        report_failure(shared, page, "not a crawl page", page_lost).await;
        return Ok(());
    };
    let url = Url::parse(&scan.url).map_err(|e| ScanError::InvalidUrl {
        url: scan.url.clone(),
        reason: e.to_string(),
    })?;
    let output = match journey.visit(&url, &|_| {}).await {
        Ok(output) => output,
        Err(error) if scanner::ends_the_session(&error) => return Err(error),
        Err(error) => {
            *lock(current) = None;
            report_failure(shared, page, &error.to_string(), page_lost).await;
            return Ok(());
        }
    };
    let final_url = Url::parse(&output.snapshot.final_url).unwrap_or(url);
    let robots = if crawl_page.read_robots {
        scanner::fetch_robots(journey, &final_url).await
    } else {
        None
    };
    let sitemaps = if crawl_page.read_sitemaps {
        let named = robots
            .as_ref()
            .map(|r| r.robots.sitemaps.clone())
            .unwrap_or_default();
        Some(scanner::fetch_sitemaps(journey, &final_url, &named).await)
    } else {
        None
    };
    // A page whose links cannot be read is delivered without them.
    let (links, session_error) = match scanner::page_links(journey).await {
        Ok(links) => (links, None),
        Err(error) if scanner::ends_the_session(&error) => (Vec::new(), Some(error)),
        Err(_) => (Vec::new(), None),
    };
    let scanner::ScanOutput {
        snapshot,
        viewport_png,
        full_page_png,
    } = output;
    let result = CrawlPageResult {
        snapshot,
        links,
        robots,
        sitemaps,
        session: session.to_owned(),
    };
    *lock(current) = None;
    deliver_document(
        shared,
        page,
        [viewport_png, full_page_png],
        serde_json::to_vec(&result),
        page_lost,
    )
    .await;
    match session_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
