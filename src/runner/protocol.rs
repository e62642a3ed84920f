//! The contract between the app's internal API (`/internal/v1`) and `siteward runner`: what a
//! claimed job looks like, what a runner sends back, and the header that carries the attempt.

use scanner::profile::Device;
use scanner::snapshot::ConsentMode;
use serde::{Deserialize, Serialize};

/// The header every job request carries: the claimed attempt's token.
pub const ATTEMPT_HEADER: &str = "siteward-attempt";

/// A page scan.
pub const SCAN_JOB: &str = "scan";
/// A checkout test run.
pub const CHECKOUT_JOB: &str = "checkout";
/// A report's PDF.
pub const PDF_JOB: &str = "pdf";
/// A lane of a crawl: a visitor taking the crawl's pages one after another.
pub const CRAWL_JOB: &str = "crawl";
/// A page of a crawl: never claimed on its own, handed to a lane of its crawl.
pub const CRAWL_PAGE_JOB: &str = "crawl_page";
/// The job kinds runners claim.
pub const RUNNER_JOBS: [&str; 4] = [SCAN_JOB, CHECKOUT_JOB, PDF_JOB, CRAWL_JOB];

/// The artifact a PDF job uploads.
pub const PDF_ARTIFACT: &str = "report.pdf";
/// The most a report's PDF may be.
pub const MAX_PDF_BYTES: usize = 48 * 1024 * 1024;

/// What a PDF job asks for, assembled when a runner claims it: the report's self-contained
/// document (no network is needed or allowed to print it) and the line every page's header
/// carries.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PdfOrder {
    pub report_id: i64,
    pub html: String,
    pub header: String,
}

impl std::fmt::Debug for PdfOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfOrder")
            .field("report_id", &self.report_id)
            .field("html_bytes", &self.html.len())
            .finish_non_exhaustive()
    }
}

/// The most a checkout result (report and captured pages) may be.
pub const MAX_CHECKOUT_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// The artifacts a scan uploads, with their content types.
pub const SCAN_ARTIFACTS: [(&str, &str); 2] =
    [("viewport.png", "image/png"), ("fullpage.png", "image/png")];

/// The sealed blob that holds the whole snapshot (DOM, requests, policy text).
pub const SNAPSHOT_ARTIFACT: &str = "snapshot.json";

/// The most an artifact upload may be.
pub const MAX_ARTIFACT_BYTES: usize = 48 * 1024 * 1024;
/// The most a snapshot document may be.
pub const MAX_SNAPSHOT_BYTES: usize = 48 * 1024 * 1024;
/// The longest a claim waits for a job.
pub const MAX_CLAIM_WAIT_SECONDS: u32 = 30;

/// `POST /internal/v1/jobs/claim`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Wait up to this long (at most 30 s) for a job before answering 204.
    pub wait_seconds: u32,
}

/// What a scan job asks for; it is the job's payload, fixed when the scan was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanOrder {
    pub scan_id: i64,
    pub url: String,
    pub viewport_width: u32,
    pub viewport_height: u32,
    pub consent_mode: ConsentMode,
    pub policy_pages: bool,
    /// Nothing new may happen for this long before capture (the quiet period).
    pub wait_ms: u32,
    /// The least time waited after `load` before capture. Orders queued before it existed
    /// carry none and get the scanner's default.
    #[serde(default = "default_dwell_ms")]
    pub dwell_ms: u32,
    /// The visitor's device. Orders queued before targets had one get desktop.
    #[serde(default)]
    pub device: Device,
    /// The visitor's languages, most preferred first; orders queued before get the default.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// The IANA timezone the pages see; orders queued before get the default.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Send `Sec-GPC: 1` and set `navigator.globalPrivacyControl` (a compliance scan's GPC
    /// visit); orders queued before it existed send none.
    #[serde(default)]
    pub global_privacy_control: bool,
}

fn default_languages() -> Vec<String> {
    scanner::profile::VisitorProfile::default().languages
}

fn default_timezone() -> String {
    scanner::profile::DEFAULT_TIMEZONE.to_owned()
}

fn default_dwell_ms() -> u32 {
    scanner::DEFAULT_MIN_DWELL.as_millis() as u32
}

/// What a crawl lane asks for: take the crawl's pages from
/// `POST /internal/v1/jobs/{job_id}/crawl/next` until it answers `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlOrder {
    pub crawl_id: i64,
    /// Which of the crawl's lanes, from 1.
    pub lane: i32,
    /// Visit the lane's pages in one browsing session (cookies and caches carried over); false:
    /// a fresh session per page.
    pub one_session: bool,
    /// The crawl's time budget left, in seconds: no session outlives it.
    pub seconds_left: u64,
}

/// What a crawl page asks for beyond its scan: which crawl, and whether to read the site's
/// `robots.txt` (for its rules and the sitemaps it names) and sitemaps from it (the start page
/// does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CrawlPageOrder {
    pub crawl_id: i64,
    /// In the order the crawl's frontier handed pages out, from 1.
    pub number: i32,
    pub read_robots: bool,
    pub read_sitemaps: bool,
}

/// The answer to `crawl/next`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum CrawlNext {
    /// Visit this page (a claimed `crawl_page` job: heartbeat, upload and complete it).
    Page { page: Box<ClaimedJob> },
    /// Nothing to visit now, but pages under way may add some: ask again shortly.
    Wait { retry_ms: u32 },
    /// The crawl has no page left: complete the lane.
    Done,
}

/// What a runner sends to complete a crawl page: its snapshot, the links on it and, from the
/// start page, what `robots.txt` and the sitemaps said.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlPageResult {
    pub snapshot: scanner::Snapshot,
    /// The page's links as the browser resolved them (at most 2,000 are read).
    pub links: Vec<String>,
    #[serde(default)]
    pub robots: Option<scanner::RobotsRead>,
    #[serde(default)]
    pub sitemaps: Option<scanner::SitemapsRead>,
    /// The browsing session it was visited in (lane and session number), to credit cookies.
    pub session: String,
}

/// The most a crawl page's result may be: the snapshot's limit and room for links and sitemaps.
pub const MAX_CRAWL_PAGE_RESULT_BYTES: usize = MAX_SNAPSHOT_BYTES + 4 * 1024 * 1024;

/// What a checkout job asks for, assembled when a runner claims it.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutOrder {
    pub run_id: i64,
    pub test_id: i64,
    /// The target's URL: relative `goto`s resolve against it.
    pub base_url: String,
    /// The test as written (YAML); the runner checks it again before running.
    pub script: String,
    pub viewport_width: u32,
    pub viewport_height: u32,
    /// The test's secrets, sealed to the runners' key; only a runner can open them.
    pub secrets: Vec<SealedSecret>,
}

impl std::fmt::Debug for CheckoutOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckoutOrder")
            .field("run_id", &self.run_id)
            .field("test_id", &self.test_id)
            .field("base_url", &self.base_url)
            .field(
                "secrets",
                &self.secrets.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One sealed secret of a checkout test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedSecret {
    pub name: String,
    /// Base64 of the HPKE-sealed value, bound to the test and the name.
    pub sealed: String,
}

/// What a runner sends when a checkout run is over (passed or failed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutResult {
    pub report: checkout_runner::RunReport,
    /// The captured pages, in the order of `report.pages`.
    pub pages: Vec<scanner::Snapshot>,
}

/// The answer to a completed checkout run.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutCompleted {
    pub run_id: i64,
    pub duplicate: bool,
}

/// The answer to a completed PDF job.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PdfCompleted {
    pub report_id: i64,
    pub duplicate: bool,
}

/// A job handed to a runner.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimedJob {
    pub job_id: i64,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Send it as the `siteward-attempt` header on every request about this job.
    pub attempt_token: String,
    /// Heartbeat well within this, or the job returns to the queue.
    pub lease_seconds: u64,
    /// Set for a scan job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanOrder>,
    /// Set for a checkout job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<CheckoutOrder>,
    /// Set for a PDF job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf: Option<PdfOrder>,
    /// Set for a crawl lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawl: Option<CrawlOrder>,
    /// Set, beside `scan`, for a page of a crawl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawl_page: Option<CrawlPageOrder>,
}

impl std::fmt::Debug for ClaimedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedJob")
            .field("job_id", &self.job_id)
            .field("attempt", &self.attempt)
            .field("attempt_token", &"[redacted]")
            .field("scan", &self.scan)
            .field("checkout", &self.checkout)
            .field("pdf", &self.pdf)
            .field("crawl", &self.crawl)
            .field("crawl_page", &self.crawl_page)
            .finish_non_exhaustive()
    }
}

/// The answer to a completed scan: the snapshot it became. `duplicate` is true when this
/// attempt had already completed (a retried request): nothing new was written.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Completed {
    pub snapshot_id: i64,
    pub duplicate: bool,
}

/// `POST /internal/v1/jobs/{job_id}/fail`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    /// Shown to the people who asked for the scan; at most 2,000 characters are kept.
    pub error: String,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailReply {
    /// `retrying` or `dead`.
    pub outcome: String,
    /// When the next attempt may start (RFC 3339), while retrying.
    pub retry_at: Option<String>,
}
