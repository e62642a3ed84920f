//! A journey: one fresh browser context, behind the same egress guard and recorder as a scan, in
//! which a caller drives the page step by step (checkout tests) and captures any page it reaches
//! the way a scan would.
//!
//! Which pages the journey may open is the caller's rule, enforced in the browser's network stack
//! (the DevTools Fetch domain pauses every main-frame document request), so neither a link nor a
//! script nor a redirect can take the journey elsewhere.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, ContinueRequestParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::{
    self, CaptureScreenshotFormat, CaptureScreenshotParams,
};
use chromiumoxide::cdp::js_protocol::runtime::ExecutionContextId;
use futures::StreamExt;

use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use super::*;

/// How long a request a step set off may go without answering or progressing before the step
/// stops waiting for it (a long poll): the next step waits for what it needs.
const STEP_REQUEST_IDLE: Duration = Duration::from_secs(2);
/// How often a step's wait looks at the records: a click's settling is on a person's clock,
/// finer than a scan's.
const STEP_POLL: Duration = Duration::from_millis(10);

/// Decides whether the journey may open a page at this URL (main frame only).
pub type NavigationRule = Arc<dyn Fn(&url::Url) -> bool + Send + Sync>;

/// A page being driven inside a journey.
pub struct Journey<'s> {
    session: &'s Session<'s>,
    options: &'s ScanOptions,
    main_frame: page::FrameId,
    /// The isolated world of the current document, with the document's commit number: making a
    /// new world waits while a navigation is pending, using the current one does not.
    world: std::sync::Mutex<Option<(usize, ExecutionContextId)>>,
    /// An isolated world per frame journeys reached into, made once; a world that is gone with
    /// its document is made again (see `frames.rs`).
    pub(super) frame_worlds:
        std::sync::Mutex<std::collections::HashMap<String, ExecutionContextId>>,
}

/// A point in the journey's records, to ask what happened since.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivityMark {
    requests: usize,
    console: usize,
    navigations: usize,
    route_changes: usize,
}

/// How a wait for the page to settle ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Loaded, and the network quiet for the quiet period.
    Quiet,
    /// Still loading or talking when the time ran out.
    Busy,
    /// A page was asked for and its server has not answered.
    NavigationPending { url: String },
}

/// What the page did since a mark.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub console_errors: Vec<ConsoleError>,
    /// Requests that failed or were answered with 4xx/5xx (not those the egress guard refused).
    pub failed_requests: Vec<Request>,
    /// Requests the egress guard refused, and which the page may complain of in its console:
    /// noise of the scan's own making, kept apart from the page's errors.
    pub refused_requests: Vec<Request>,
    /// Main-frame navigations that started.
    pub navigations: usize,
    /// Same-document navigations of the main frame (a single-page app changing its route).
    pub route_changes: usize,
    /// From the first request the page sent since the mark to the end of the last one (event
    /// streams, beacons and requests still open left out): how long the network kept a step
    /// busy. `None` when no such request ended.
    pub network_busy: Option<Duration>,
    /// Where the records stood when this was read: the next window starts here, so nothing
    /// falls between two.
    pub end: ActivityMark,
}

impl Scanner {
    /// Opens a fresh context for a journey on `site` (checked against the egress guard first),
    /// runs `body` in it and disposes of the context whatever happens. The whole journey is
    /// bounded by `options.scan_timeout`.
    pub async fn journey<T>(
        &self,
        site: &str,
        options: &ScanOptions,
        may_open: NavigationRule,
        body: impl AsyncFnOnce(&Journey<'_>) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let target = validate_url(site)?;
        let budget = Budget::new(Instant::now(), options.scan_timeout);
        let work = async {
            let slot = self.supervisor().slot().await?;
            let browser = slot.browser.clone();
            tokio::select! {
                result = with_session(&browser, &target, options, budget, async |session| {
                    instrument(session, options).await?;
                    let main_frame = page::FrameId::new(session.page.target_id().inner().clone());
                    lock(&session.recorder).main_frame = main_frame.inner().clone();
                    let _guard = guard_navigations(session, &main_frame, may_open).await?;
                    let journey = Journey {
                        session,
                        options,
                        main_frame,
                        world: std::sync::Mutex::new(None),
                        frame_worlds: std::sync::Mutex::default(),
                    };
                    body(&journey).await
                }) => result,
                death = browser.died() => Err(ScanError::from(death)),
            }
        };
        match tokio::time::timeout_at((budget.deadline() + CLEANUP_GRACE).into(), work).await {
            Ok(result) => result,
            Err(_) => Err(ScanError::Timeout {
                seconds: options.scan_timeout.as_secs(),
                during: "for the whole journey",
            }),
        }
    }
}

/// Pauses every document request; main-frame ones the rule refuses fail as blocked by the client.
async fn guard_navigations(
    session: &Session<'_>,
    main_frame: &page::FrameId,
    may_open: NavigationRule,
) -> Result<AbortOnDrop, ScanError> {
    let page = &session.page;
    let mut paused = page
        .event_listener::<EventRequestPaused>()
        .await
        .map_err(ScanError::cdp)?;
    call(
        "guarding navigations",
        page.execute(
            fetch::EnableParams::builder()
                .pattern(
                    RequestPattern::builder()
                        .url_pattern("*")
                        .resource_type(ResourceType::Document)
                        .request_stage(RequestStage::Request)
                        .build(),
                )
                .build(),
        ),
    )
    .await?;
    let page = page.clone();
    let recorder = session.recorder.clone();
    let main_frame = main_frame.clone();
    Ok(AbortOnDrop(tokio::spawn(async move {
        while let Some(event) = paused.next().await {
            let allowed = event.frame_id != main_frame
                || url::Url::parse(&event.request.url).is_ok_and(|u| may_open(&u));
            let page = page.clone();
            if allowed {
                let continued = ContinueRequestParams::new(event.request_id.clone());
                tokio::spawn(async move { page.execute(continued).await });
            } else {
                {
                    let mut r = lock(&recorder);
                    if r.refused_navigations.len() < 100 {
                        r.refused_navigations.push(event.request.url.clone());
                    }
                }
                let failed =
                    FailRequestParams::new(event.request_id.clone(), ErrorReason::BlockedByClient);
                tokio::spawn(async move { page.execute(failed).await });
            }
        }
    })))
}

impl Journey<'_> {
    /// The tab, for input events.
    pub fn page(&self) -> &Page {
        &self.session.page
    }

    /// Opens `url` in the tab and waits for load, then until the network has been idle for
    /// `quiet` (neither wait is fatal).
    pub async fn goto(&self, url: &url::Url, quiet: Duration) -> Result<(), ScanError> {
        let started = Instant::now();
        self.open(url, started).await?;
        // A step waits for its navigation to settle, not for timers: no dwell.
        let options = ScanOptions {
            quiet_period: quiet,
            min_dwell: std::time::Duration::ZERO,
            ..self.options.clone()
        };
        wait_for_load_and_quiet(self.session, started, &options, Scroll::Stay).await?;
        Ok(())
    }

    /// Navigates the tab to `url` (started at `started`), forgetting the previous document's
    /// load; a refusal by the journey's rule is reported as such. Returns the navigation's
    /// request id.
    async fn open(&self, url: &url::Url, started: Instant) -> Result<String, ScanError> {
        {
            let mut r = lock(&self.session.recorder);
            r.main_request = None;
            r.load_fired_at = None;
        }
        navigate(
            &self.session.page,
            &self.session.recorder,
            &self.session.guard,
            url,
            started,
            self.options,
            self.session.budget,
        )
        .await
        .map_err(|error| self.refusal_of(url.as_str()).unwrap_or(error))
    }

    /// Opens `url` the way a scan does — the same waits, the dwell, a scroll through the page,
    /// a moment hidden after the capture — and captures it: what a visitor moving on to this page
    /// in the same session receives (a crawl's page).
    pub async fn visit(
        &self,
        url: &url::Url,
        progress: &(dyn Fn(Stage) + Send + Sync),
    ) -> Result<ScanOutput, ScanError> {
        let started_at = now_rfc3339();
        let started = Instant::now();
        progress(Stage::Navigate);
        let main_request = self.open(url, started).await?;
        progress(Stage::Wait);
        let Waited {
            load_ms,
            network_quiet_ms,
            settle,
            limits_hit,
        } = wait_for_load_and_quiet(self.session, started, self.options, Scroll::ThroughPage)
            .await?;
        let from = lock(&self.session.recorder)
            .navigations
            .iter()
            .rev()
            .find(|mark| mark.request_id == main_request)
            .cloned()
            .unwrap_or_default();
        capture(
            self.session,
            self.options,
            progress,
            PageVisit {
                requested_url: url.to_string(),
                main_request: Some(main_request),
                from,
                started_at,
                started,
                load_ms,
                network_quiet_ms,
                settle: Some(settle),
                limits_hit,
                consent: None,
                leave: Leave::HidePage,
            },
        )
        .await
    }

    /// The refusal of a navigation to `url` by the journey's rule, if that is what happened.
    pub fn refusal_of(&self, url: &str) -> Option<ScanError> {
        let r = lock(&self.session.recorder);
        r.refused_navigations
            .iter()
            .any(|refused| refused == url)
            .then(|| ScanError::Refused {
                url: url.to_owned(),
                reason: "this journey may not open pages on that host".into(),
            })
    }

    /// Main-frame navigations refused by the journey's rule, in order.
    pub fn refused_navigations(&self) -> Vec<String> {
        lock(&self.session.recorder).refused_navigations.clone()
    }

    /// Waits, at most `max`, until a navigation under way has loaded, no request holds (see
    /// `NetworkLog::holding`) and the network has been idle for `quiet`. Running out of time is not an error: the page may
    /// simply be busy (a chat widget polling), and the next step will say whether it is usable.
    pub async fn settle(&self, max: Duration, quiet: Duration) -> Result<Settled, ScanError> {
        let until = Instant::now() + max;
        loop {
            {
                let r = lock(&self.session.recorder);
                if r.crashed {
                    return Err(ScanError::RendererCrashed);
                }
                let unanswered = r
                    .navigations
                    .last()
                    .filter(|n| r.network.outcome(&n.request_id).is_none());
                let loading = r.navigations.last().is_some_and(|n| {
                    r.last_load_at
                        .is_none_or(|load| n.at.is_some_and(|at| load < at))
                });
                // As for a scan's wait: connections open by design (event streams, beacons,
                // long polls gone silent) do not hold a step.
                let quiet = r
                    .network
                    .holding(Instant::now(), quiet.max(STEP_REQUEST_IDLE))
                    == 0
                    && r.network
                        .last_activity()
                        .is_none_or(|t| t.elapsed() >= quiet);
                if unanswered.is_none() && !loading && quiet {
                    return Ok(Settled::Quiet);
                }
                if Instant::now() >= until {
                    return Ok(match unanswered {
                        Some(n) => Settled::NavigationPending {
                            url: r.network.first_url(&n.request_id).unwrap_or_default(),
                        },
                        None => Settled::Busy,
                    });
                }
            }
            tokio::time::sleep(STEP_POLL).await;
        }
    }

    /// Evaluates `expression` in an isolated world of the main frame, where the page's scripts
    /// cannot tamper with the DOM APIs used. `None` when it threw.
    pub async fn evaluate(&self, expression: &str) -> Result<Option<serde_json::Value>, ScanError> {
        let commit = lock(&self.session.recorder).main_frame_commits;
        let cached = self
            .world
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .filter(|(at, _)| *at == commit)
            .map(|(_, world)| world);
        let world = match cached {
            Some(world) => world,
            None => {
                let world = isolated_world(&self.session.page, &self.main_frame).await?;
                *self.world.lock().unwrap_or_else(|e| e.into_inner()) = Some((commit, world));
                world
            }
        };
        let result = evaluate(&self.session.page, world, expression).await;
        if result.is_err() {
            // The world may have gone with its document; make a new one next time.
            *self.world.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        result
    }

    /// The URL of the document in the tab now, as its last commit or route change reported it.
    pub fn url(&self) -> String {
        let r = lock(&self.session.recorder);
        r.frames
            .get(self.main_frame.inner())
            .cloned()
            .unwrap_or_default()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>, ScanError> {
        let shot = call(
            "taking a screenshot",
            self.session.page.execute(
                CaptureScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            ),
        )
        .await?;
        decode_base64(shot.result.data.as_ref())
    }

    /// Captures the page as a scan would: its requests, scripts and errors since it was opened.
    pub async fn capture(&self) -> Result<ScanOutput, ScanError> {
        let (from, requested_url) = {
            let r = lock(&self.session.recorder);
            let from = r.navigations.last().cloned().unwrap_or_default();
            let requested = r.network.first_url(&from.request_id);
            (from, requested)
        };
        let requested_url = requested_url.unwrap_or_else(|| self.url());
        capture(
            self.session,
            self.options,
            &|_| {},
            PageVisit {
                requested_url,
                main_request: Some(from.request_id.clone()).filter(|id| !id.is_empty()),
                started_at: now_rfc3339(),
                started: Instant::now(),
                from,
                load_ms: None,
                network_quiet_ms: None,
                settle: None,
                limits_hit: Vec::new(),
                consent: None,
                leave: Leave::Stay,
            },
        )
        .await
    }

    /// Main-frame navigations so far.
    pub fn navigations(&self) -> usize {
        lock(&self.session.recorder).navigations.len()
    }

    /// Same-document navigations of the main frame so far (`pushState`, `replaceState`,
    /// fragment changes): how single-page apps change their route.
    pub fn route_changes(&self) -> usize {
        lock(&self.session.recorder).same_document_navigations
    }

    pub fn mark(&self) -> ActivityMark {
        mark_of(&lock(&self.session.recorder))
    }

    /// What the page did since `mark`.
    pub fn activity_since(&self, mark: ActivityMark) -> Activity {
        let r = lock(&self.session.recorder);
        let (refused_requests, failed_requests): (Vec<Request>, Vec<Request>) = r
            .network
            .requests_from(mark.requests, "")
            .into_iter()
            .filter(|q| q.blocked || q.failure.is_some() || q.status.is_some_and(|s| s >= 400))
            .partition(|q| q.blocked);
        let refused: HashSet<&str> = refused_requests.iter().map(|q| q.url.as_str()).collect();
        Activity {
            console_errors: r
                .console_errors
                .get(mark.console..)
                .unwrap_or_default()
                .iter()
                .filter(|e| {
                    !(e.kind == "log"
                        && e.source_url.as_deref().is_some_and(|u| refused.contains(u)))
                })
                .cloned()
                .collect(),
            failed_requests,
            refused_requests,
            navigations: r.navigations.len().saturating_sub(mark.navigations),
            route_changes: r
                .same_document_navigations
                .saturating_sub(mark.route_changes),
            network_busy: r.network.busy_from(mark.requests),
            end: mark_of(&r),
        }
    }
}

fn mark_of(r: &Recorder) -> ActivityMark {
    ActivityMark {
        requests: r.network.len(),
        console: r.console_errors.len(),
        navigations: r.navigations.len(),
        route_changes: r.same_document_navigations,
    }
}
