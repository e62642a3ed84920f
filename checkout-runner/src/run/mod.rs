//! Runs a checked plan on a scanner journey: one step at a time, each within its timeout and the
//! run within its budget, recording per step its status, duration, URL, a screenshot (with
//! secret fields masked), console errors and failed requests.

mod redact;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams, DispatchMouseEventType,
    InsertTextParams, MouseButton,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, StopLoadingParams, Viewport,
};
use scanner::{
    ActivityMark, Journey, NavigationRule, ScanError, ScanOptions, ScanOutput, Scanner, Settled,
};
use serde_json::{Value, json};

pub use redact::{MIN_REDACTED_CHARS, Redactor};

use crate::plan::{Action, Condition, FillValue, FrameRef, HostPattern, Key, Plan, Selector, Step};
use crate::report::*;
use crate::sealing::SecretValue;

const PAGE_JS: &str = include_str!("page.js");
/// How often a waiting step looks again.
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// The longest a step waits for the page to settle after acting.
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// Time allowed past the budget for the last screenshot and cleanup.
const BUDGET_GRACE: Duration = Duration::from_secs(30);
/// The longest a step's screenshot may take.
const SCREENSHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often masking is tried before a screenshot is given up.
const MASK_TRIES: usize = 5;
/// The longest one call of the page helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(3);
/// While waiting for a navigation an input started, how often the page is asked whether it is
/// still under way (a script may cancel it).
const NAVIGATING_ASK_EVERY: Duration = Duration::from_millis(100);
/// How long a field may take to show what was typed into it (formatting, validation).
const KEPT_WITHIN: Duration = Duration::from_millis(500);

/// The opened secrets of one run, by name. Zeroized when dropped; `Debug` shows names only.
#[derive(Default)]
pub struct Secrets(BTreeMap<String, SecretValue>);

impl Secrets {
    pub fn insert(&mut self, name: String, value: SecretValue) {
        self.0.insert(name, value);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(SecretValue::expose)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Where a run starts and what it records besides its steps.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The target's URL: relative `goto`s resolve against it, and its host is the default
    /// allow-list.
    pub base_url: url::Url,
    /// Capture every page reached as a scan would, for the diff engine.
    pub capture_pages: bool,
    /// Scan options for the journey (viewport, egress policy, limits); the budget and quiet
    /// period are set from the plan.
    pub options: ScanOptions,
}

/// A finished run: the report, the step screenshots and the captured pages.
pub struct RunOutput {
    pub report: RunReport,
    /// `(artifact name, PNG)` per step that took one.
    pub screenshots: Vec<(String, Vec<u8>)>,
    /// In the order of `report.pages`.
    pub pages: Vec<ScanOutput>,
}

/// The hosts a run may open pages on: the plan's, or the target's own host.
pub fn allowed_hosts(plan: &Plan, base_url: &url::Url) -> Vec<HostPattern> {
    if plan.allowed_hosts.is_empty() {
        vec![HostPattern(
            base_url.host_str().unwrap_or_default().to_ascii_lowercase(),
        )]
    } else {
        plan.allowed_hosts.clone()
    }
}

/// Runs `plan`. A failing step is a finished run with a failed report; `Err` means the run could
/// not take place at all (the browser would not start, the site is refused by the egress guard).
pub async fn run(
    scanner: &Scanner,
    plan: &Plan,
    secrets: &Secrets,
    settings: &RunSettings,
) -> Result<RunOutput, ScanError> {
    let hosts = allowed_hosts(plan, &settings.base_url);
    let rule: NavigationRule = {
        let hosts = hosts.clone();
        std::sync::Arc::new(move |url: &url::Url| {
            matches!(url.scheme(), "http" | "https")
                && url
                    .host_str()
                    .is_some_and(|h| hosts.iter().any(|p| p.matches(h)))
        })
    };
    let mut options = settings.options.clone();
    options.scan_timeout = plan.budget + BUDGET_GRACE;
    let redactor = Redactor::new(plan.secret_names().iter().filter_map(|n| secrets.get(n)));
    let started_at = now_rfc3339();
    let started = Instant::now();
    let deadline = started + plan.budget;
    scanner
        .journey(
            settings.base_url.as_str(),
            &options,
            rule.clone(),
            async |journey| {
                let mut run = Run {
                    journey,
                    plan,
                    secrets,
                    settings,
                    rule: &rule,
                    redactor: &redactor,
                    deadline,
                    screenshots: Vec::new(),
                    pages: Vec::new(),
                    page_refs: Vec::new(),
                    armed: std::sync::Mutex::new(None),
                    input: std::sync::Mutex::new(None),
                    next_mark: None,
                };
                let (steps, failure, stopped_at) = run.all_steps().await;
                let outcome = if failure.is_some() {
                    Outcome::Failed
                } else {
                    Outcome::Passed
                };
                Ok(RunOutput {
                    report: RunReport {
                        format_version: REPORT_FORMAT_VERSION,
                        outcome,
                        failure,
                        stopped_at,
                        steps,
                        pages: run.page_refs,
                        started_at,
                        duration_ms: started.elapsed().as_millis() as u64,
                    },
                    screenshots: run.screenshots,
                    pages: run.pages,
                })
            },
        )
        .await
}

struct Run<'r> {
    journey: &'r Journey<'r>,
    plan: &'r Plan,
    secrets: &'r Secrets,
    settings: &'r RunSettings,
    rule: &'r NavigationRule,
    redactor: &'r Redactor,
    deadline: Instant,
    screenshots: Vec<(String, Vec<u8>)>,
    pages: Vec<ScanOutput>,
    page_refs: Vec<PageRef>,
    /// Where navigation stood before the last input that may navigate (none: nothing pending).
    armed: std::sync::Mutex<Option<Armed>>,
    /// When the step's last input that may navigate was sent, and the records then: what the
    /// step's settling and its requests are measured from.
    input: std::sync::Mutex<Option<(Instant, ActivityMark)>>,
    /// Where the last step's records ended: the next step's start, so that a route change
    /// landing while a step is photographed is the next step's, not nobody's.
    next_mark: Option<ActivityMark>,
}

/// Navigations and route changes before an input that may navigate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Armed {
    navigations: usize,
    route_changes: usize,
}

impl Run<'_> {
    async fn all_steps(&mut self) -> (Vec<StepResult>, Option<Failure>, Option<usize>) {
        let mut results = Vec::new();
        let mut failure = None;
        let mut stopped_at = None;
        for step in &self.plan.steps {
            if failure.is_some() || stopped_at.is_some() {
                results.push(self.skipped(step));
                continue;
            }
            if let Action::Stop { .. } = step.action {
                stopped_at = Some(step.number);
                results.push(StepResult {
                    status: StepStatus::Passed,
                    url: self.redactor.text(&self.journey.url()),
                    ..self.skipped(step)
                });
                continue;
            }
            let result = self.step(step).await;
            if let Some(error) = &result.error {
                // A script error in the step before is often why this one failed.
                let mut errors: Vec<PageError> = results
                    .last()
                    .map(|r: &StepResult| r.console_errors.clone())
                    .unwrap_or_default();
                errors.extend(result.console_errors.iter().cloned());
                failure = Some(Failure {
                    step: step.number,
                    error: error.clone(),
                    summary: summary(step, error, &result.page_says, &errors),
                });
            }
            results.push(result);
        }
        (results, failure, stopped_at)
    }

    fn skipped(&self, step: &Step) -> StepResult {
        StepResult {
            number: step.number,
            line: step.line,
            kind: step.action.kind().to_owned(),
            name: step.name.clone(),
            description: step.action.describe(),
            status: StepStatus::Skipped,
            duration_ms: 0,
            url: String::new(),
            screenshot: None,
            screenshot_ms: 0,
            settle_ms: None,
            network_ms: None,
            console_errors: Vec::new(),
            failed_requests: Vec::new(),
            refused_requests: Vec::new(),
            page_says: Vec::new(),
            error: None,
        }
    }

    async fn step(&mut self, step: &Step) -> StepResult {
        let started = Instant::now();
        let mark = self.next_mark.take().unwrap_or_else(|| self.journey.mark());
        self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        let refused_before = self.journey.refused_navigations().len();
        let left = self.deadline.saturating_duration_since(started);
        let error = if left.is_zero() {
            Some(StepError::BudgetExhausted {
                seconds: self.plan.budget.as_secs(),
            })
        } else {
            let limit = step.timeout.min(left);
            let until = started + limit;
            let acted = tokio::time::timeout(limit + Duration::from_secs(2), self.act(step, until))
                .await
                .unwrap_or(Err(StepError::StepTimeout {
                    seconds: limit.as_secs(),
                }));
            match acted {
                Err(_) if left < step.timeout && Instant::now() >= self.deadline => {
                    Some(StepError::BudgetExhausted {
                        seconds: self.plan.budget.as_secs(),
                    })
                }
                Err(error) => Some(error),
                Ok(()) => None,
            }
        };
        let activity = self.journey.activity_since(mark);
        self.next_mark = Some(activity.end);
        // A click's or key press's own time: from the input until the page settled, beside the
        // requests it set off.
        let input = self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
        let settle_ms = input.map(|(at, _)| at.elapsed().as_millis() as u64);
        let network_busy = match input {
            Some((_, at_input)) => self.journey.activity_since(at_input).network_busy,
            None => activity.network_busy,
        };
        let url = self.journey.url();
        // A page that never answers keeps the tab busy (scripts wait for the new document): when
        // a step failed with a navigation still pending, stop loading it, so the failure can be
        // read, masked and photographed.
        let pending_at_failure = error.is_some()
            && matches!(
                self.journey.settle(Duration::ZERO, Duration::ZERO).await,
                Ok(Settled::NavigationPending { .. })
            );
        if pending_at_failure {
            let stop = self.journey.page().execute(StopLoadingParams::default());
            let _ = tokio::time::timeout(HELPER_TIMEOUT, stop).await;
        }
        // A navigation the allow-list refused during the step fails it, whatever else happened.
        let error = match self.journey.refused_navigations().get(refused_before..) {
            Some([refused, ..]) => Some(StepError::NavigationRefused {
                url: refused.clone(),
            }),
            _ => error,
        };
        // A test that asks for it fails on the page's own JavaScript errors.
        let error = error.or_else(|| {
            self.plan
                .fail_on_console_errors
                .then(|| {
                    activity
                        .console_errors
                        .iter()
                        .find(|e| is_script_error(&e.kind))
                })
                .flatten()
                .map(|e| StepError::ConsoleError {
                    message: excerpt(&e.message, 300),
                })
        });
        // The failure's screenshot shows the element in question, wherever the page was scrolled.
        if error.is_some()
            && let Some(target) = step.action.target()
        {
            let _ = self.helper("reveal", Some(target), Value::Null).await;
        }
        // What the page shows as wrong is usually the reason a person needs.
        let page_says = match &error {
            Some(_) => self.page_says().await,
            None => Vec::new(),
        };
        // Full size where it is evidence (a failure, a `screenshot` step); half size for the
        // timeline otherwise, which is four times less to encode.
        let full = error.is_some() || matches!(step.action, Action::Screenshot { .. });
        let shooting = Instant::now();
        let screenshot = self.screenshot(step.number, full).await;
        let screenshot_ms = shooting.elapsed().as_millis() as u64;
        let pending = matches!(
            self.journey.settle(Duration::ZERO, Duration::ZERO).await,
            Ok(Settled::NavigationPending { .. })
        );
        let reached_page = activity.navigations > 0 || activity.route_changes > 0;
        if self.settings.capture_pages && reached_page && !pending {
            self.capture_page(step.number, &url).await;
        }
        StepResult {
            number: step.number,
            line: step.line,
            kind: step.action.kind().to_owned(),
            name: step.name.clone(),
            description: step.action.describe(),
            status: if error.is_some() {
                StepStatus::Failed
            } else {
                StepStatus::Passed
            },
            duration_ms: started.elapsed().as_millis() as u64,
            url: self.redactor.text(&url),
            screenshot,
            screenshot_ms,
            settle_ms,
            network_ms: network_busy.map(|d| d.as_millis() as u64),
            console_errors: activity
                .console_errors
                .iter()
                .take(50)
                .map(|e| PageError {
                    kind: e.kind.clone(),
                    message: self.redactor.text(&e.message),
                })
                .collect(),
            failed_requests: activity
                .failed_requests
                .iter()
                .take(50)
                .map(|r| FailedRequest {
                    url: self.redactor.text(&r.url),
                    status: r.status,
                    failure: r.failure.clone(),
                })
                .collect(),
            refused_requests: activity
                .refused_requests
                .iter()
                .take(50)
                .map(|r| self.redactor.text(&r.url))
                .collect(),
            page_says,
            error: error.map(|e| self.redact_error(e)),
        }
    }

    /// The error messages the page shows now (already redacted by the helper, and again here).
    async fn page_says(&self) -> Vec<String> {
        let Ok(answer) = self.helper("alerts", None, Value::Null).await else {
            return Vec::new();
        };
        answer
            .get("alerts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(5)
            .map(|s| self.redactor.text(&excerpt(s, 300)))
            .collect()
    }

    /// The error with what the page said redacted, and what the step itself said (its selector,
    /// its expected text or URL, its condition) left as written. Redacting the step's own words
    /// would be an oracle: a guess that equals a secret would come back as `[secret]`.
    fn redact_error(&self, error: StepError) -> StepError {
        let page = |text: String| self.redactor.text(&text);
        match error {
            StepError::NotInteractable { selector, reason } => StepError::NotInteractable {
                selector,
                reason: page(reason),
            },
            StepError::TextMismatch {
                target,
                expected,
                found,
            } => StepError::TextMismatch {
                target,
                expected,
                found: page(found),
            },
            StepError::UrlMismatch { expected, found } => StepError::UrlMismatch {
                expected,
                found: page(found),
            },
            StepError::OptionNotFound {
                selector,
                option,
                available,
            } => StepError::OptionNotFound {
                selector,
                option,
                available: page(available),
            },
            StepError::NavigationTimeout { url, seconds } => StepError::NavigationTimeout {
                url: page(url),
                seconds,
            },
            StepError::NavigationFailed { url, reason } => StepError::NavigationFailed {
                url: page(url),
                reason: page(reason),
            },
            StepError::NavigationRefused { url } => StepError::NavigationRefused { url: page(url) },
            StepError::Browser { message } => StepError::Browser {
                message: page(message),
            },
            StepError::ValueNotKept { selector, found } => StepError::ValueNotKept {
                selector,
                found: page(found),
            },
            StepError::OptionNotKept {
                selector,
                option,
                found,
            } => StepError::OptionNotKept {
                selector,
                option,
                found: page(found),
            },
            StepError::ConsoleError { message } => StepError::ConsoleError {
                message: page(message),
            },
            step_words @ (StepError::SelectorNotFound { .. }
            | StepError::NotVisible { .. }
            | StepError::CountMismatch { .. }
            | StepError::WaitTimedOut { .. }
            | StepError::MissingSecret { .. }
            | StepError::SecretNotKept { .. }
            | StepError::StillVisible { .. }
            | StepError::TextPresent { .. }
            | StepError::BudgetExhausted { .. }
            | StepError::StepTimeout { .. }) => step_words,
        }
    }

    /// Masks secrets on the page, then takes the step's screenshot.
    async fn screenshot(&mut self, number: usize, full: bool) -> Option<ScreenshotRef> {
        // No screenshot unless the masks are known to be in place.
        let (scroll_x, scroll_y) = self.mask().await?;
        let mut params = CaptureScreenshotParams::builder()
            .format(CaptureScreenshotFormat::Png)
            .optimize_for_speed(true);
        if !full {
            let options = &self.settings.options;
            params = params.clip(Viewport {
                x: scroll_x,
                y: scroll_y,
                width: f64::from(options.viewport_width),
                height: f64::from(options.viewport_height),
                scale: 0.5,
            });
        }
        let shot = tokio::time::timeout(
            SCREENSHOT_TIMEOUT,
            self.journey.page().execute(params.build()),
        )
        .await;
        let shot = shot.ok()?.ok()?;
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.result.data.as_ref() as &str)
            .ok()?;
        let artifact = format!("step-{number}.png");
        let reference = ScreenshotRef {
            artifact: artifact.clone(),
            sha256: sha256_hex(&png),
            width: png_dimension(&png, 16),
            height: png_dimension(&png, 20),
        };
        self.screenshots.push((artifact, png));
        Some(reference)
    }

    /// Hides every field and text holding a secret; returns the page's scroll position, or
    /// `None` if the page did not confirm the masks.
    async fn mask(&self) -> Option<(f64, f64)> {
        let values = self.redactor.values();
        // A document being replaced does not answer; the next one will, a moment later.
        for _ in 0..MASK_TRIES {
            if let Ok(answer) = self.helper("mask", None, json!(values)).await {
                if answer.get("leaked").and_then(Value::as_bool) != Some(false)
                    || !self.mask_frames(&values).await
                {
                    tracing::warn!(
                        "a secret still shows on the page after masking (split across elements, or in a frame that did not answer?); no screenshot taken"
                    );
                    return None;
                }
                let at = |key: &str| answer.get(key).and_then(Value::as_f64).unwrap_or(0.0);
                return Some((at("scroll_x"), at("scroll_y")));
            }
            tokio::time::sleep(RETRY_EVERY * 2).await;
        }
        tracing::warn!("the page did not confirm its masks; no screenshot taken");
        None
    }

    /// Masks every child frame as the tab's own document (fields filled from secrets in a
    /// payment frame too); false unless each frame with a document confirmed it.
    async fn mask_frames(&self, values: &[&str]) -> bool {
        let Ok(frames) = self.journey.frames().await else {
            return false;
        };
        let expression = self.helper_expression("mask", None, &json!(values));
        for frame in frames.iter().filter(|f| f.parent.is_some()) {
            // A frame without a document yet has nothing to show.
            if !frame.url.starts_with("http") {
                continue;
            }
            let answer = tokio::time::timeout(
                HELPER_TIMEOUT,
                self.journey.evaluate_in_frame(&frame.id, &expression),
            )
            .await;
            let confirmed = matches!(&answer, Ok(Ok(Some(a))) if a.get("leaked").and_then(Value::as_bool) == Some(false));
            if !confirmed {
                return false;
            }
        }
        true
    }

    async fn capture_page(&mut self, after_step: usize, url: &str) {
        // A capture, unlike a step, waits for the network to be idle, as a scan does, so late
        // scripts are in it.
        let quiet = self.settings.options.quiet_period;
        let _ = self.journey.settle(SETTLE_MAX, quiet).await;
        if self.mask().await.is_none() {
            return;
        }
        match self.journey.capture().await {
            Ok(mut output) => {
                let mut value = serde_json::to_value(&output.snapshot).unwrap_or(Value::Null);
                self.redactor.json(&mut value);
                let Ok(snapshot) = serde_json::from_value(value) else {
                    return;
                };
                output.snapshot = snapshot;
                self.page_refs.push(PageRef {
                    index: self.pages.len(),
                    after_step,
                    url: self.redactor.text(url),
                });
                self.pages.push(output);
            }
            Err(error) => tracing::warn!(%error, after_step, "could not capture a checkout page"),
        }
    }

    /// The text in a helper's answer with every secret replaced: assertions see it so, so a
    /// test cannot be written to find out a secret's characters by passing or failing.
    fn shown_text(&self, answer: &Value) -> String {
        self.redactor.text(
            answer
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
    }

    /// Calls the page helper in the isolated world.
    async fn helper(
        &self,
        op: &str,
        selector: Option<&Selector>,
        arg: Value,
    ) -> Result<Value, ScanError> {
        let expression = self.helper_expression(op, selector, &arg);
        let frame = match selector.filter(|s| !s.frames.is_empty()) {
            None => None,
            Some(selector) => match self.frame_of(selector).await? {
                Some(frame) => Some(frame),
                None => return Ok(json!({"missing": true})),
            },
        };
        // Script evaluation waits while a navigation is pending; never wait long for it.
        let answer = match &frame {
            None => tokio::time::timeout(HELPER_TIMEOUT, self.journey.evaluate(&expression)).await,
            Some((frame, _)) => {
                tokio::time::timeout(
                    HELPER_TIMEOUT,
                    self.journey.evaluate_in_frame(frame, &expression),
                )
                .await
            }
        };
        let mut answer = answer
            .map_err(|_| ScanError::Protocol("the page did not answer".into()))??
            .ok_or_else(|| ScanError::Protocol("the page helper failed".into()))?;
        // A position inside a frame is the frame's; the tab's is offset by where the frame sits.
        if let (Some((_, (dx, dy))), Some(fields)) = (&frame, answer.as_object_mut()) {
            for (key, delta) in [("x", dx), ("y", dy)] {
                if let Some(v) = fields.get(key).and_then(Value::as_f64) {
                    fields.insert(key.to_owned(), json!(v + delta));
                }
            }
        }
        Ok(answer)
    }

    fn helper_expression(&self, op: &str, selector: Option<&Selector>, arg: &Value) -> String {
        format!(
            "({PAGE_JS})({}, {}, {}, {})",
            json!(op),
            selector.map_or(Value::Null, Selector::to_json),
            arg,
            json!(self.redactor.forms())
        )
    }

    /// The frame a selector's chain leads to and where its document starts in the tab's
    /// viewport; `None` while a frame of the chain is not there.
    async fn frame_of(
        &self,
        selector: &Selector,
    ) -> Result<Option<(String, (f64, f64))>, ScanError> {
        let frames = self.journey.frames().await?;
        let Some(mut current) = frames.first().map(|f| f.id.clone()) else {
            return Ok(None);
        };
        for frame in &selector.frames {
            let next = match frame {
                FrameRef::Css(css) => self.journey.child_frame(&current, css).await?,
                FrameRef::Url(pattern) => frames
                    .iter()
                    .find(|f| {
                        f.parent.as_deref() == Some(current.as_str()) && pattern.matches(&f.url)
                    })
                    .map(|f| f.id.clone()),
            };
            let Some(next) = next else {
                return Ok(None);
            };
            current = next;
        }
        Ok(self
            .journey
            .frame_origin(&frames, &current)
            .await?
            .map(|origin| (current, origin)))
    }

    /// Asks the helper until `check` accepts its answer or `until` passes; then the last reason.
    async fn poll<T>(
        &self,
        until: Instant,
        op: &str,
        selector: Option<&Selector>,
        arg: Value,
        check: impl Fn(&Value) -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        loop {
            let last = match self.helper(op, selector, arg.clone()).await {
                Ok(answer) => match element_problem(&answer, selector) {
                    Some(problem) => problem,
                    None => match check(&answer) {
                        Ok(value) => return Ok(value),
                        Err(error) => error,
                    },
                },
                // The page is between documents: look again.
                Err(ScanError::Protocol(message)) => StepError::Browser { message },
                Err(other) => {
                    return Err(StepError::Browser {
                        message: other.to_string(),
                    });
                }
            };
            if Instant::now() + RETRY_EVERY >= until {
                return Err(last);
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    async fn act(&self, step: &Step, until: Instant) -> Result<(), StepError> {
        match &step.action {
            Action::Goto { url } => self.goto(url, until).await,
            Action::Click { target } => {
                self.click(target, until).await?;
                self.settle(until).await
            }
            Action::Hover { target } => {
                let (x, y) = self.point(target, until).await?;
                self.mouse(&[DispatchMouseEventType::MouseMoved], x, y)
                    .await?;
                self.settle(until).await
            }
            Action::Fill { target, value } => {
                let (text, secret) = match value {
                    FillValue::Literal(text) => (text.as_str(), false),
                    FillValue::Secret(name) => (
                        self.secrets
                            .get(name)
                            .ok_or_else(|| StepError::MissingSecret { name: name.clone() })?,
                        true,
                    ),
                };
                // Typing goes to the focused frame: a field in a frame is clicked into first,
                // as a visitor would.
                if !target.frames.is_empty() {
                    self.click(target, until).await?;
                    self.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
                    self.input.lock().unwrap_or_else(|e| e.into_inner()).take();
                }
                self.poll(until, "focus", Some(target), Value::Null, |_| Ok(()))
                    .await?;
                if !text.is_empty() {
                    self.journey
                        .page()
                        .execute(InsertTextParams::new(text))
                        .await
                        .map_err(|e| StepError::Browser {
                            message: e.to_string(),
                        })?;
                }
                self.poll(
                    until,
                    "changed",
                    Some(target),
                    json!({"secret": secret}),
                    |_| Ok(()),
                )
                .await?;
                self.verify_kept(target, text, secret, until).await
            }
            Action::Select { target, option } => {
                let selector = target.to_string();
                self.poll(
                    until,
                    "select",
                    Some(target),
                    json!(option),
                    |answer| match answer.get("no_option").and_then(Value::as_str) {
                        Some(available) => Err(StepError::OptionNotFound {
                            selector: selector.clone(),
                            option: option.clone(),
                            available: available.to_owned(),
                        }),
                        None => Ok(()),
                    },
                )
                .await?;
                self.settle(until).await?;
                // A shop's script may put the old choice back (a controlled field that refused it).
                let kept = self.helper("selected", Some(target), json!(option)).await;
                match kept {
                    Ok(answer) if answer.get("kept").and_then(Value::as_bool) == Some(false) => {
                        Err(StepError::OptionNotKept {
                            selector,
                            option: option.clone(),
                            found: answer
                                .get("found")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        })
                    }
                    _ => Ok(()),
                }
            }
            Action::Check { target, checked } => {
                let is_checked = |answer: &Value| answer.get("checked").and_then(Value::as_bool);
                let now = self
                    .poll(until, "checked", Some(target), Value::Null, |a| {
                        Ok(is_checked(a).unwrap_or(false))
                    })
                    .await?;
                if now != *checked {
                    self.click(target, until).await?;
                }
                let selector = target.to_string();
                self.poll(until, "checked", Some(target), Value::Null, |a| {
                    if is_checked(a) == Some(*checked) {
                        Ok(())
                    } else {
                        Err(StepError::NotInteractable {
                            selector: selector.clone(),
                            reason: format!(
                                "clicking it did not {} it",
                                if *checked { "check" } else { "uncheck" }
                            ),
                        })
                    }
                })
                .await
            }
            Action::Press { key, target } => {
                if let Some(target) = target {
                    self.click(target, until).await?;
                }
                self.press(*key).await?;
                self.settle(until).await
            }
            Action::WaitFor(condition) => self.wait_for(condition, until, step).await,
            Action::AssertText { target, text } => {
                let shown = target
                    .as_ref()
                    .map_or_else(|| "the page".to_owned(), ToString::to_string);
                let want = normalize(text);
                self.poll(until, "text", target.as_ref(), Value::Null, |answer| {
                    let found = self.shown_text(answer);
                    if normalize(&found).contains(&want) {
                        Ok(())
                    } else {
                        Err(StepError::TextMismatch {
                            target: shown.clone(),
                            expected: text.clone(),
                            found: excerpt(&found, 300),
                        })
                    }
                })
                .await
            }
            Action::AssertUrl { pattern } => loop {
                let url = self.journey.url();
                if pattern.matches(&url) {
                    return Ok(());
                }
                if Instant::now() + RETRY_EVERY >= until {
                    return Err(StepError::UrlMismatch {
                        expected: pattern.0.clone(),
                        found: url,
                    });
                }
                tokio::time::sleep(RETRY_EVERY).await;
            },
            Action::AssertVisible { target } => {
                self.poll(until, "point", Some(target), Value::Null, |_| Ok(()))
                    .await
                    .or_else(|e| match e {
                        // Covered or disabled is still visible.
                        StepError::NotInteractable { .. } => Ok(()),
                        other => Err(other),
                    })
            }
            Action::AssertNotVisible { target } => {
                self.until_hidden(target, until, || StepError::StillVisible {
                    selector: target.to_string(),
                })
                .await
            }
            Action::AssertNoText { target, text } => {
                let shown = target
                    .as_ref()
                    .map_or_else(|| "the page".to_owned(), ToString::to_string);
                let unwanted = normalize(text);
                self.poll(until, "text", target.as_ref(), Value::Null, |answer| {
                    if normalize(&self.shown_text(answer)).contains(&unwanted) {
                        Err(StepError::TextPresent {
                            target: shown.clone(),
                            text: text.clone(),
                        })
                    } else {
                        Ok(())
                    }
                })
                .await
                .or_else(|e| match e {
                    // No such element shows no such text.
                    StepError::SelectorNotFound { .. } | StepError::NotVisible { .. } => Ok(()),
                    other => Err(other),
                })
            }
            Action::AssertCount { target, count } => {
                let selector = target.to_string();
                self.poll(until, "count", Some(target), Value::Null, |answer| {
                    let found = answer.get("visible").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if found == *count {
                        Ok(())
                    } else {
                        Err(StepError::CountMismatch {
                            selector: selector.clone(),
                            expected: *count,
                            found,
                        })
                    }
                })
                .await
            }
            Action::Screenshot { .. } => self.settle(until).await,
            Action::Stop { .. } => Ok(()),
        }
    }

    async fn goto(&self, url: &str, until: Instant) -> Result<(), StepError> {
        let url = self
            .settings
            .base_url
            .join(url)
            .map_err(|e| StepError::NavigationFailed {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        if !(self.rule)(&url) {
            return Err(StepError::NavigationRefused {
                url: url.to_string(),
            });
        }
        let limit = until.saturating_duration_since(Instant::now());
        let mark = self.journey.mark();
        // Loaded and nothing in flight, as after a click: the next step waits for what it needs.
        match tokio::time::timeout(limit, self.journey.goto(&url, Duration::ZERO)).await {
            Err(_) | Ok(Err(ScanError::Timeout { .. })) => Err(StepError::NavigationTimeout {
                url: url.to_string(),
                seconds: limit.as_secs().max(1),
            }),
            Ok(Err(ScanError::Refused { url, .. })) => Err(StepError::NavigationRefused { url }),
            Ok(Err(error)) => Err(StepError::NavigationFailed {
                url: url.to_string(),
                reason: error.to_string(),
            }),
            Ok(Ok(())) => {
                let activity = self.journey.activity_since(mark);
                match activity
                    .failed_requests
                    .iter()
                    .find(|r| r.resource_type == "Document" && r.status.is_some())
                {
                    Some(document) => Err(StepError::NavigationFailed {
                        url: url.to_string(),
                        reason: format!(
                            "the server answered {}",
                            document.status.unwrap_or_default()
                        ),
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// Where to point at the element in the tab's viewport, once it is visible, enabled and not
    /// covered (scrolled into view).
    async fn point(&self, target: &Selector, until: Instant) -> Result<(f64, f64), StepError> {
        self.poll(until, "point", Some(target), Value::Null, |answer| {
            match (
                answer.get("x").and_then(Value::as_f64),
                answer.get("y").and_then(Value::as_f64),
            ) {
                (Some(x), Some(y)) => Ok((x, y)),
                _ => Err(StepError::Browser {
                    message: "the page helper gave no position".into(),
                }),
            }
        })
        .await
    }

    async fn click(&self, target: &Selector, until: Instant) -> Result<(), StepError> {
        let (x, y) = self.point(target, until).await?;
        self.arm().await;
        self.mouse(
            &[
                DispatchMouseEventType::MouseMoved,
                DispatchMouseEventType::MousePressed,
                DispatchMouseEventType::MouseReleased,
            ],
            x,
            y,
        )
        .await
    }

    /// Sends mouse events at a point of the tab's viewport (presses with the left button).
    async fn mouse(
        &self,
        kinds: &[DispatchMouseEventType],
        x: f64,
        y: f64,
    ) -> Result<(), StepError> {
        for kind in kinds {
            let mut event = DispatchMouseEventParams::builder()
                .r#type(kind.clone())
                .x(x)
                .y(y);
            if *kind != DispatchMouseEventType::MouseMoved {
                event = event.button(MouseButton::Left).click_count(1);
            }
            let event = event
                .build()
                .map_err(|message| StepError::Browser { message })?;
            self.journey
                .page()
                .execute(event)
                .await
                .map_err(|e| StepError::Browser {
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Waits until no element matching `target` is visible; `error` when time runs out.
    async fn until_hidden(
        &self,
        target: &Selector,
        until: Instant,
        error: impl Fn() -> StepError,
    ) -> Result<(), StepError> {
        self.poll(until, "count", Some(target), Value::Null, |answer| {
            if answer.get("visible").and_then(Value::as_u64).unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(error())
            }
        })
        .await
        .map_err(|e| match e {
            StepError::Browser { .. } => e,
            _ => error(),
        })
    }

    /// After typing: the field holds what was typed (a secret: holds something), within a
    /// moment for fields that format or validate as they go; else the step fails here, where
    /// the cause is, with what the field holds (redacted).
    async fn verify_kept(
        &self,
        target: &Selector,
        typed: &str,
        secret: bool,
        until: Instant,
    ) -> Result<(), StepError> {
        let until = until.min(Instant::now() + KEPT_WITHIN);
        let arg = if secret {
            json!({"secret": true})
        } else {
            json!({"value": typed})
        };
        self.poll(until, "kept", Some(target), arg, |answer| {
            if answer.get("kept").and_then(Value::as_bool) != Some(false) {
                return Ok(());
            }
            Err(if secret {
                StepError::SecretNotKept {
                    selector: target.to_string(),
                }
            } else {
                StepError::ValueNotKept {
                    selector: target.to_string(),
                    found: answer
                        .get("found")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }
            })
        })
        .await
    }

    async fn press(&self, key: Key) -> Result<(), StepError> {
        self.arm().await;
        let (name, code, text) = key.dom();
        let page = self.journey.page();
        for kind in [DispatchKeyEventType::KeyDown, DispatchKeyEventType::KeyUp] {
            let mut event = DispatchKeyEventParams::builder()
                .r#type(kind.clone())
                .key(name)
                .code(key.name())
                .windows_virtual_key_code(code)
                .native_virtual_key_code(code);
            if let (DispatchKeyEventType::KeyDown, Some(text)) = (&kind, text) {
                event = event.text(text);
            }
            let event = event
                .build()
                .map_err(|message| StepError::Browser { message })?;
            page.execute(event).await.map_err(|e| StepError::Browser {
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    async fn wait_for(
        &self,
        condition: &Condition,
        until: Instant,
        step: &Step,
    ) -> Result<(), StepError> {
        let timed_out = || StepError::WaitTimedOut {
            condition: condition.to_string(),
            seconds: step.timeout.as_secs().max(1),
        };
        match condition {
            Condition::Visible(target) => self
                .poll(until, "count", Some(target), Value::Null, |answer| {
                    if answer.get("visible").and_then(Value::as_u64).unwrap_or(0) > 0 {
                        Ok(())
                    } else {
                        Err(timed_out())
                    }
                })
                .await
                .map_err(|_| timed_out()),
            Condition::Hidden(target) => self.until_hidden(target, until, timed_out).await,
            Condition::Url(pattern) => loop {
                if pattern.matches(&self.journey.url()) {
                    return self.settle(until).await;
                }
                if Instant::now() + RETRY_EVERY >= until {
                    return Err(timed_out());
                }
                tokio::time::sleep(RETRY_EVERY).await;
            },
            Condition::Text(text) => {
                let want = normalize(text);
                self.poll(until, "text", None, Value::Null, |answer| {
                    if normalize(&self.shown_text(answer)).contains(&want) {
                        Ok(())
                    } else {
                        Err(timed_out())
                    }
                })
                .await
                .map_err(|_| timed_out())
            }
        }
    }

    /// Before an input that may navigate: remembers how many navigations and route changes
    /// there were and asks the page to note a navigation the input starts.
    async fn arm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.navigation_state());
        let _ = self.helper("arm", None, Value::Null).await;
        *self.input.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), self.journey.mark()));
    }

    fn navigation_state(&self) -> Armed {
        Armed {
            navigations: self.journey.navigations(),
            route_changes: self.journey.route_changes(),
        }
    }

    /// Lets a navigation or request the step set off finish, within the step's time. A
    /// same-document navigation (a single-page app's route change) is done when the route has
    /// changed: it has no `load` to wait for.
    async fn settle(&self, until: Instant) -> Result<(), StepError> {
        // A click's fetch starts a moment after the click.
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A navigation the input started may not have committed yet: wait until it has (a new
        // document, or a new route in this one), or the page says it was cancelled.
        let armed = self.armed.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(armed) = armed {
            let mut asked = Instant::now() - NAVIGATING_ASK_EVERY;
            while self.navigation_state() == armed && Instant::now() < until {
                if asked.elapsed() >= NAVIGATING_ASK_EVERY {
                    asked = Instant::now();
                    // A document that is being replaced answers late or not at all.
                    let ask = self.helper("navigating", None, Value::Null);
                    let navigating = tokio::time::timeout(NAVIGATING_ASK_EVERY, ask)
                        .await
                        .unwrap_or(Err(ScanError::Protocol("busy".into())))
                        .map(|a| a.get("navigating").and_then(Value::as_bool) == Some(true))
                        // The document is already gone: a navigation is under way.
                        .unwrap_or(true);
                    if !navigating {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let max = until
            .saturating_duration_since(Instant::now())
            .min(SETTLE_MAX);
        // Loaded and nothing in flight is enough: the next step waits for what it needs.
        match self.journey.settle(max, Duration::ZERO).await {
            Ok(Settled::NavigationPending { url }) => Err(StepError::NavigationTimeout {
                url,
                seconds: max.as_secs().max(1),
            }),
            Ok(Settled::Quiet | Settled::Busy) => Ok(()),
            Err(e) => Err(StepError::Browser {
                message: e.to_string(),
            }),
        }
    }
}

/// A missing, hidden or blocked element, as the step's error.
fn element_problem(answer: &Value, selector: Option<&Selector>) -> Option<StepError> {
    let selector = selector.map(ToString::to_string).unwrap_or_default();
    if answer.get("missing").is_some() {
        Some(StepError::SelectorNotFound { selector })
    } else if answer.get("hidden").is_some() {
        Some(StepError::NotVisible { selector })
    } else {
        answer
            .get("blocked")
            .and_then(Value::as_str)
            .map(|reason| StepError::NotInteractable {
                selector,
                reason: reason.to_owned(),
            })
    }
}

fn summary(
    step: &Step,
    error: &StepError,
    page_says: &[String],
    console_errors: &[PageError],
) -> String {
    let mut summary = format!(
        "step {} ({}, line {}) failed: {error}",
        step.number,
        step.action.describe(),
        step.line
    );
    if !page_says.is_empty() {
        let said: Vec<String> = page_says
            .iter()
            .map(|s| format!("\"{}\"", excerpt(s, 200)))
            .collect();
        summary.push_str(&format!("; the page says: {}", said.join(", ")));
    }
    let script_errors: Vec<&PageError> = console_errors
        .iter()
        .filter(|e| is_script_error(&e.kind))
        .collect();
    if let (Some(first), false) = (
        script_errors.first(),
        matches!(error, StepError::ConsoleError { .. }),
    ) {
        summary.push_str(&format!(
            "; the page logged {} JavaScript error{} in this step or the one before, first: {}",
            script_errors.len(),
            if script_errors.len() == 1 { "" } else { "s" },
            excerpt(&first.message, 200)
        ));
    }
    summary
}

/// Whether a console entry is the page's script failing (an uncaught exception or
/// `console.error`), as opposed to the browser's own messages (a failed load, a CSP report).
pub fn is_script_error(kind: &str) -> bool {
    matches!(kind, "uncaught_exception" | "console.error")
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn png_dimension(png: &[u8], at: usize) -> u32 {
    png.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
