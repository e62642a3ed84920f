//! What a checkout run reports: the contract between runner and app, like `Snapshot` for scans.
//! Nothing in it ever holds a secret's value: every text a page could echo a secret into is
//! redacted before it gets here.

use serde::{Deserialize, Serialize};

pub const REPORT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    pub format_version: u32,
    pub outcome: Outcome,
    /// The step that failed, and why.
    pub failure: Option<Failure>,
    /// The `stop` step that ended the run, if one did.
    pub stopped_at: Option<usize>,
    pub steps: Vec<StepResult>,
    /// Pages captured as a scan would (one per page the journey reached).
    pub pages: Vec<PageRef>,
    pub started_at: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub step: usize,
    pub error: StepError,
    /// One line for people: which step, what it did, why it failed.
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    pub number: usize,
    pub line: usize,
    pub kind: String,
    pub name: Option<String>,
    /// What the step does, with secrets named, never shown.
    pub description: String,
    pub status: StepStatus,
    /// The whole step, its screenshot included.
    pub duration_ms: u64,
    /// Of `duration_ms`, the time spent masking secrets and taking the screenshot: the runner's
    /// own cost, not the site's.
    #[serde(default)]
    pub screenshot_ms: u64,
    /// For a click or key press: of `duration_ms`, the time from the input until the page had
    /// settled (a navigation loaded, a route changed, its requests answered).
    #[serde(default)]
    pub settle_ms: Option<u64>,
    /// How long the requests the step set off (from its click or key press, if it had one) kept
    /// the network busy, from the first one's start to the last one's end; event streams and
    /// requests still open left out: the site's share. `None` when it set off none.
    #[serde(default)]
    pub network_ms: Option<u64>,
    /// The page's URL when the step ended.
    pub url: String,
    /// The artifact name of the screenshot taken when the step ended (`step-3.png`).
    pub screenshot: Option<ScreenshotRef>,
    pub console_errors: Vec<PageError>,
    pub failed_requests: Vec<FailedRequest>,
    /// Requests the egress guard refused during the step (the page's complaints about them are
    /// not among `console_errors`): the scan's own doing, rarely why a step failed.
    #[serde(default)]
    pub refused_requests: Vec<String>,
    /// For a failed step, the errors the page showed when it failed (alerts, invalid fields'
    /// messages, error boxes), redacted.
    #[serde(default)]
    pub page_says: Vec<String>,
    pub error: Option<StepError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Not run: an earlier step failed or stopped the run.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenshotRef {
    pub artifact: String,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageError {
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedRequest {
    pub url: String,
    pub status: Option<u16>,
    pub failure: Option<String>,
}

/// A page the journey reached, captured as a scan: `page-N` names its artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRef {
    pub index: usize,
    /// The step after which the page was captured.
    pub after_step: usize,
    pub url: String,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepError {
    #[error("no element matches {selector}")]
    SelectorNotFound { selector: String },
    #[error("{selector} is on the page but not visible")]
    NotVisible { selector: String },
    #[error("{selector} cannot be used: {reason}")]
    NotInteractable { selector: String, reason: String },
    #[error("expected {target} to show {expected:?}, found {found:?}")]
    TextMismatch {
        target: String,
        expected: String,
        found: String,
    },
    #[error("expected the URL to match {expected}, found {found}")]
    UrlMismatch { expected: String, found: String },
    #[error("expected {expected} × {selector}, found {found}")]
    CountMismatch {
        selector: String,
        expected: usize,
        found: usize,
    },
    #[error("{selector} has no option {option:?} (it has {available})")]
    OptionNotFound {
        selector: String,
        option: String,
        available: String,
    },
    #[error("{selector} did not keep what was typed: it holds {found:?}")]
    ValueNotKept { selector: String, found: String },
    #[error("{selector} did not keep the secret typed into it: it is empty")]
    SecretNotKept { selector: String },
    #[error("{selector} did not keep the option {option:?}: it shows {found:?}")]
    OptionNotKept {
        selector: String,
        option: String,
        found: String,
    },
    #[error("expected {selector} not to be visible, and it is")]
    StillVisible { selector: String },
    #[error("expected {target} not to show {text:?}, and it does")]
    TextPresent { target: String, text: String },
    #[error("the page threw a JavaScript error: {message}")]
    ConsoleError { message: String },
    #[error("timed out after {seconds} s waiting for {condition}")]
    WaitTimedOut { condition: String, seconds: u64 },
    #[error("navigation to {url} timed out after {seconds} s")]
    NavigationTimeout { url: String, seconds: u64 },
    #[error("navigation to {url} failed: {reason}")]
    NavigationFailed { url: String, reason: String },
    #[error("the test may not open {url}: its host is not in allowed_hosts")]
    NavigationRefused { url: String },
    #[error("the secret {name:?} has not been set for this test")]
    MissingSecret { name: String },
    #[error("the run used up its time budget of {seconds} s")]
    BudgetExhausted { seconds: u64 },
    #[error("the step did not finish within its timeout of {seconds} s")]
    StepTimeout { seconds: u64 },
    #[error("the browser failed: {message}")]
    Browser { message: String },
}
