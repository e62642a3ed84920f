//! One scan: a fresh browser context behind its own egress guard, a navigation, the wait for load
//! and network quiet, then the capture.

mod consent;
mod crawl;
mod drive;
mod events;
mod frames;
mod journey;
mod navigation;
mod page_reads;
mod policy;
mod session;
mod visitor;
mod worker_tap;

use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::network::{self};
use chromiumoxide::cdp::browser_protocol::page::{
    self, CaptureScreenshotFormat, CaptureScreenshotParams, NavigateParams,
};

use crate::browser::Supervisor;
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use consent::*;
pub use crawl::ends_the_session;
pub use crawl::{
    CrawlOutput, CrawlStep, RobotsRead, SitemapsRead, fetch_robots, fetch_sitemaps, offer_links,
    offer_sitemap_pages, page_links,
};
use drive::*;
use events::*;
pub use frames::FrameInfo;
pub use journey::{Activity, ActivityMark, Journey, NavigationRule, Settled};
use navigation::*;
use page_reads::*;
use policy::*;
use session::*;

const INSTRUMENT_JS: &str = include_str!("../capture/instrument.js");
const POLICY_LINKS_JS: &str = include_str!("../capture/policy_links.js");
/// How long a single capture call may take before the browser is presumed stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const POLICY_PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed past the deadline for disposing of a context.
const CLEANUP_GRACE: Duration = Duration::from_secs(10);
/// How often the waits look at the recorder.
const POLL: Duration = Duration::from_millis(25);

/// The scan's time budget: one deadline for the whole scan. Each wait takes its share but stops
/// early enough to leave time to capture, so a slow page gives a partial snapshot, not a timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    deadline: Instant,
    /// Time kept back for capturing after the waits.
    reserve: Duration,
}

impl Budget {
    pub(super) fn new(started: Instant, scan_timeout: Duration) -> Self {
        Self {
            deadline: started + scan_timeout,
            reserve: (scan_timeout / 4).min(Duration::from_secs(15)),
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When a wait of `wanted` starting at `from` must end: at `wanted`, or when capture must start.
    pub(super) fn wait_until(&self, from: Instant, wanted: Duration) -> Instant {
        (from + wanted).min(self.deadline.checked_sub(self.reserve).unwrap_or(from))
    }

    /// Time left for optional work (policy pages) beyond the capture reserve.
    pub(super) fn spare(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.reserve)
    }
}

/// Where a scan is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Launch,
    Navigate,
    Wait,
    Consent,
    Capture,
    PolicyPages,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Launch => "launching browser",
            Stage::Navigate => "navigating",
            Stage::Wait => "waiting for the page to settle",
            Stage::Consent => "answering the cookie banner",
            Stage::Capture => "capturing",
            Stage::PolicyPages => "reading policy pages",
        }
    }
}

/// A finished scan: the snapshot and its screenshots.
#[derive(Debug, Clone)]
pub struct ScanOutput {
    pub snapshot: Snapshot,
    pub viewport_png: Vec<u8>,
    pub full_page_png: Vec<u8>,
}

/// Scans URLs in a supervised browser; share one behind an `Arc` for concurrent scans.
pub struct Scanner {
    supervisor: Supervisor,
}

impl Scanner {
    pub fn new(supervisor: Supervisor) -> Self {
        Self { supervisor }
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Scans `url`. `progress` is told as the scan moves from stage to stage.
    pub async fn scan(
        &self,
        url: &str,
        options: &ScanOptions,
        progress: &(dyn Fn(Stage) + Send + Sync),
    ) -> Result<ScanOutput, ScanError> {
        let target = validate_url(url)?;
        let started = Instant::now();
        let budget = Budget::new(started, options.scan_timeout);
        let work = async {
            progress(Stage::Launch);
            let slot = self.supervisor.slot().await?;
            let browser = slot.browser.clone();
            tokio::select! {
                result = with_session(&browser, &target, options, budget, async |session| {
                    drive(session, &target, options, progress, started).await
                }) => result,
                death = browser.died() => Err(ScanError::from(death)),
            }
        };
        // The session enforces the deadline itself and cleans up; this outer limit only catches a
        // cleanup that hangs.
        match tokio::time::timeout_at((budget.deadline() + CLEANUP_GRACE).into(), work).await {
            Ok(result) => result,
            Err(_) => Err(ScanError::Timeout {
                seconds: options.scan_timeout.as_secs(),
                during: "for the whole scan",
            }),
        }
    }

    /// The benchmark baseline: in the same browser and through the same guard, a fresh context, a
    /// bare navigation, the same load-and-quiet wait and one viewport screenshot — nothing else.
    /// Returns the time it took.
    pub async fn bare_navigation(
        &self,
        url: &str,
        options: &ScanOptions,
    ) -> Result<Duration, ScanError> {
        let target = validate_url(url)?;
        let started = Instant::now();
        let budget = Budget::new(started, options.scan_timeout);
        let slot = self.supervisor.slot().await?;
        let browser = slot.browser.clone();
        with_session(&browser, &target, options, budget, async |session| {
            let page = &session.page;
            call(
                "enabling page events",
                page.execute(page::EnableParams::default()),
            )
            .await?;
            call(
                "enabling network events",
                page.execute(network::EnableParams::default()),
            )
            .await?;
            call(
                "setting the viewport",
                page.execute(SetDeviceMetricsOverrideParams::new(
                    i64::from(options.viewport_width),
                    i64::from(options.viewport_height),
                    1.0,
                    false,
                )),
            )
            .await?;
            let nav_started = Instant::now();
            call(
                "navigating",
                page.execute(NavigateParams::new(target.to_string())),
            )
            .await?;
            wait_for_load_and_quiet(session, nav_started, options, Scroll::Stay).await?;
            call(
                "taking the viewport screenshot",
                page.execute(
                    CaptureScreenshotParams::builder()
                        .format(CaptureScreenshotFormat::Png)
                        .build(),
                ),
            )
            .await?;
            Ok(started.elapsed())
        })
        .await
    }
}

impl Scanner {
    /// The checkout benchmark's baseline: a fresh context behind the same guard and a blank tab,
    /// handed to `body` with nothing of siteward's instrumentation — for driving it bare through
    /// DevTools.
    pub async fn bare_tab<T>(
        &self,
        site: &str,
        options: &ScanOptions,
        body: impl AsyncFnOnce(&chromiumoxide::Page) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let target = validate_url(site)?;
        let budget = Budget::new(Instant::now(), options.scan_timeout);
        let slot = self.supervisor.slot().await?;
        let browser = slot.browser.clone();
        with_session(&browser, &target, options, budget, async |session| {
            call(
                "setting the viewport",
                session.page.execute(SetDeviceMetricsOverrideParams::new(
                    i64::from(options.viewport_width),
                    i64::from(options.viewport_height),
                    1.0,
                    false,
                )),
            )
            .await?;
            body(&session.page).await
        })
        .await
    }
}

impl Scanner {
    /// A blank tab in a fresh context that can fetch nothing (its guard relays no byte), for
    /// rendering documents that carry everything they show — printing a report to PDF.
    pub async fn offline_tab<T>(
        &self,
        options: &ScanOptions,
        body: impl AsyncFnOnce(&chromiumoxide::Page) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let budget = Budget::new(Instant::now(), options.scan_timeout);
        let slot = self.supervisor.slot().await?;
        let browser = slot.browser.clone();
        session::with_offline_session(&browser, options, budget, async |session| {
            body(&session.page).await
        })
        .await
    }
}

/// Accepts absolute http(s) URLs with a host and without credentials.
pub fn validate_url(input: &str) -> Result<url::Url, ScanError> {
    let invalid = |reason: &str| ScanError::InvalidUrl {
        url: input.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(input.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http and https URLs can be scanned"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in URLs are not accepted"));
    }
    Ok(url)
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_and_https_urls_are_accepted() {
        assert!(validate_url("https://example.com/path?q=1").is_ok());
        assert!(validate_url(" http://shop.test:8080/ ").is_ok());
        for bad in [
            "ftp://example.com/",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "example.com",
            "https://user:pw@example.com/",
            "http://",
        ] {
            assert!(
                matches!(validate_url(bad), Err(ScanError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn set_cookie_headers_split_into_lines() {
        let headers =
            serde_json::json!({"Content-Type": "text/html", "set-cookie": "a=1; Path=/\nb=2"});
        assert_eq!(
            set_cookie_lines(&headers),
            vec!["a=1; Path=/".to_string(), "b=2".to_string()]
        );
    }

    #[test]
    fn screenshot_dimensions_come_from_the_png_header() {
        let mut png = vec![
            0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
        ];
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&720u32.to_be_bytes());
        let info = screenshot_info(&png);
        assert_eq!((info.width, info.height), (1280, 720));
    }
}
