//! One scan: a fresh browser context behind its own egress guard, a navigation, the wait for load
//! and network quiet, then the capture.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, EventDownloadWillBegin, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::dom_storage::{
    self, GetDomStorageItemsParams, StorageId,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::inspector::{self, EventTargetCrashed};
use chromiumoxide::cdp::browser_protocol::log::{self, EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::network::{
    self, EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    EventResponseReceivedExtraInfo, SetUserAgentOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::page::{
    self, AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat, CaptureScreenshotParams,
    CreateIsolatedWorldParams, EventFrameNavigated, EventJavascriptDialogOpening, EventLoadEventFired,
    FrameTree, GetFrameTreeParams, GetLayoutMetricsParams, HandleJavaScriptDialogParams, NavigateParams,
};
use chromiumoxide::cdp::browser_protocol::storage::GetCookiesParams;
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::cdp::js_protocol::debugger::{self, EventScriptParsed, GetScriptSourceParams};
use chromiumoxide::cdp::js_protocol::runtime::{
    self, AddBindingParams, ConsoleApiCalledType, EvaluateParams, EventBindingCalled,
    EventConsoleApiCalled, EventExceptionThrown, ExecutionContextId, RemoteObject,
};
use futures::{Stream, StreamExt};

use crate::browser::{LiveBrowser, Supervisor};
use crate::capture::cookies::{self, CookieWrite};
use crate::capture::network::{NetworkLog, host_of};
use crate::capture::scripts::{self, ParsedScript};
use crate::egress::GuardProxy;
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::party::registrable_domain;
use crate::snapshot::*;

const INSTRUMENT_JS: &str = include_str!("capture/instrument.js");
const POLICY_LINKS_JS: &str = include_str!("capture/policy_links.js");
/// How long a single capture call may take before the browser is presumed stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const POLICY_PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the waits look at the recorder.
const POLL: Duration = Duration::from_millis(25);

/// Where a scan is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Launch,
    Navigate,
    Wait,
    Capture,
    PolicyPages,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Launch => "launching browser",
            Stage::Navigate => "navigating",
            Stage::Wait => "waiting for load and network quiet",
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

/// Scans URLs in a supervised browser. Cheap to share: clone the `Arc`.
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
        let timeout = options.scan_timeout;
        let work = async {
            progress(Stage::Launch);
            let slot = self.supervisor.slot().await?;
            let browser = slot.browser.clone();
            tokio::select! {
                result = with_session(&browser, &target, options, async |session| {
                    drive(session, &target, options, progress, started).await
                }) => result,
                death = browser.died() => Err(ScanError::from(death)),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(ScanError::Timeout { seconds: timeout.as_secs(), during: "for the whole scan" }),
        }
    }
}

impl Scanner {
    /// The benchmark baseline: in the same browser and through the same guard, a fresh context, a
    /// bare navigation, the same load-and-quiet wait and one viewport screenshot — nothing else.
    /// Returns the time it took.
    pub async fn bare_navigation(&self, url: &str, options: &ScanOptions) -> Result<Duration, ScanError> {
        let target = validate_url(url)?;
        let started = Instant::now();
        let slot = self.supervisor.slot().await?;
        let browser = slot.browser.clone();
        with_session(&browser, &target, options, async |session| {
            let page = &session.page;
            call("enabling page events", page.execute(page::EnableParams::default())).await?;
            call("enabling network events", page.execute(network::EnableParams::default())).await?;
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
            call("navigating", page.execute(NavigateParams::new(target.to_string()))).await?;
            wait_for_load_and_quiet(&session.recorder, nav_started, options).await?;
            call(
                "taking the viewport screenshot",
                page.execute(CaptureScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build()),
            )
            .await?;
            Ok(started.elapsed())
        })
        .await
    }
}

/// Accepts absolute http(s) URLs with a host and without credentials.
pub fn validate_url(input: &str) -> Result<url::Url, ScanError> {
    let invalid = |reason: &str| ScanError::InvalidUrl { url: input.to_owned(), reason: reason.to_owned() };
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

/// Everything the event streams tell us during a scan.
#[derive(Default)]
struct Recorder {
    network: NetworkLog,
    /// The page's main frame id, and the request id of the main document's navigation.
    main_frame: String,
    main_request: Option<String>,
    load_fired_at: Option<Instant>,
    crashed: bool,
    scripts: Vec<ParsedScript>,
    /// Frame id → current document URL.
    frames: HashMap<String, String>,
    document_urls: HashSet<String>,
    cookie_writes: Vec<CookieWrite>,
    console_errors: Vec<ConsoleError>,
    dialogs: Vec<Dialog>,
    downloads: Vec<(String, Download)>,
    max_scripts: usize,
    scripts_dropped: bool,
    max_message_chars: usize,
}

enum Event {
    RequestWillBeSent(Arc<EventRequestWillBeSent>),
    ResponseReceived(Arc<EventResponseReceived>),
    ResponseExtra(Arc<EventResponseReceivedExtraInfo>),
    LoadingFinished(Arc<EventLoadingFinished>),
    LoadingFailed(Arc<EventLoadingFailed>),
    Load,
    Crashed,
    FrameNavigated(Arc<EventFrameNavigated>),
    ScriptParsed(Arc<EventScriptParsed>),
    Binding(Arc<EventBindingCalled>),
    Console(Arc<EventConsoleApiCalled>),
    Exception(Arc<EventExceptionThrown>),
    Log(Arc<EventEntryAdded>),
    Dialog(Arc<EventJavascriptDialogOpening>),
    Paused,
}

type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn subscribe(page: &Page) -> Result<Vec<EventStream>, ScanError> {
    macro_rules! stream {
        ($ty:ty, $map:expr) => {{
            let s: EventStream = Box::pin(
                page.event_listener::<$ty>().await.map_err(ScanError::cdp)?.map($map),
            );
            s
        }};
    }
    Ok(vec![
        stream!(EventRequestWillBeSent, Event::RequestWillBeSent),
        stream!(EventResponseReceived, Event::ResponseReceived),
        stream!(EventResponseReceivedExtraInfo, Event::ResponseExtra),
        stream!(EventLoadingFinished, Event::LoadingFinished),
        stream!(EventLoadingFailed, Event::LoadingFailed),
        stream!(EventLoadEventFired, |_| Event::Load),
        stream!(EventTargetCrashed, |_| Event::Crashed),
        stream!(EventFrameNavigated, Event::FrameNavigated),
        stream!(EventScriptParsed, Event::ScriptParsed),
        stream!(EventBindingCalled, Event::Binding),
        stream!(EventConsoleApiCalled, Event::Console),
        stream!(EventExceptionThrown, Event::Exception),
        stream!(EventEntryAdded, Event::Log),
        stream!(EventJavascriptDialogOpening, Event::Dialog),
        stream!(debugger::EventPaused, |_| Event::Paused),
    ])
}

impl Recorder {
    fn apply(&mut self, event: Event, binding: &str) {
        match event {
            Event::RequestWillBeSent(e) => {
                let is_navigation = e.r#type == Some(network::ResourceType::Document)
                    && e.request_id.inner() == e.loader_id.inner()
                    && e.frame_id.as_ref().is_some_and(|f| f.inner() == &self.main_frame);
                if is_navigation && self.main_request.is_none() {
                    self.main_request = Some(e.request_id.inner().clone());
                }
                self.network.request_will_be_sent(
                e.request_id.inner(),
                &e.request.url,
                &e.request.method,
                e.r#type.as_ref().map(|t| t.as_ref()),
                *e.timestamp.inner(),
                e.redirect_response.as_ref().map(|r| r.status as u16),
                )
            }
            Event::ResponseReceived(e) => {
                if e.r#type == network::ResourceType::Document {
                    self.document_urls.insert(e.response.url.clone());
                }
                self.network.response_received(e.request_id.inner(), e.response.status as u16, e.r#type.as_ref())
            }
            Event::ResponseExtra(e) => {
                let lines = set_cookie_lines(e.headers.inner());
                if !lines.is_empty() {
                    self.network.set_cookie_header(e.request_id.inner(), lines);
                }
            }
            Event::LoadingFinished(e) => {
                self.network.loading_finished(e.request_id.inner(), *e.timestamp.inner(), e.encoded_data_length)
            }
            Event::LoadingFailed(e) => self.network.loading_failed(
                e.request_id.inner(),
                *e.timestamp.inner(),
                &e.error_text,
                e.r#type.as_ref(),
            ),
            Event::Load => {
                self.load_fired_at.get_or_insert_with(Instant::now);
            }
            Event::Crashed => self.crashed = true,
            Event::FrameNavigated(e) => {
                self.document_urls.insert(e.frame.url.clone());
                self.frames.insert(e.frame.id.inner().clone(), e.frame.url.clone());
            }
            Event::ScriptParsed(e) => {
                let frame_id = e
                    .execution_context_aux_data
                    .as_ref()
                    .and_then(|aux| aux.get("frameId"))
                    .and_then(|f| f.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let script = ParsedScript {
                    script_id: e.script_id.inner().clone(),
                    url: e.url.clone(),
                    frame_url: frame_id,
                };
                if script.is_recordable() {
                    if self.scripts.len() < self.max_scripts {
                        self.scripts.push(script);
                    } else {
                        self.scripts_dropped = true;
                    }
                }
            }
            Event::Binding(e) if e.name == binding => {
                if let Some(write) = cookies::script_write(&e.payload) {
                    self.cookie_writes.push(write);
                }
            }
            Event::Binding(_) => {}
            Event::Console(e) if e.r#type == ConsoleApiCalledType::Error => {
                let message = e.args.iter().map(describe_remote).collect::<Vec<_>>().join(" ");
                let source_url = e
                    .stack_trace
                    .as_ref()
                    .and_then(|s| s.call_frames.first())
                    .map(|f| f.url.clone())
                    .filter(|u| !u.is_empty());
                self.push_error("console.error", message, source_url);
            }
            Event::Console(_) => {}
            Event::Exception(e) => {
                let d = &e.exception_details;
                let message = d
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                self.push_error("uncaught_exception", message, d.url.clone());
            }
            // The browser's own favicon fetch is not the page's doing.
            Event::Log(e)
                if e.entry.level == LogEntryLevel::Error
                    && !e.entry.url.as_deref().is_some_and(|u| u.ends_with("/favicon.ico")) =>
            {
                let (text, url) = (e.entry.text.clone(), e.entry.url.clone());
                self.push_error("log", text, url);
            }
            Event::Log(_) => {}
            Event::Paused => {}
            Event::Dialog(e) => self.dialogs.push(Dialog {
                kind: e.r#type.as_ref().to_owned(),
                message: truncate_chars(&e.message, self.max_message_chars),
            }),
        }
    }

    fn push_error(&mut self, kind: &str, message: String, source_url: Option<String>) {
        if self.console_errors.len() >= 500 {
            return;
        }
        self.console_errors.push(ConsoleError {
            kind: kind.to_owned(),
            message: truncate_chars(&message, self.max_message_chars),
            source_url,
        });
    }
}

fn describe_remote(value: &RemoteObject) -> String {
    match (&value.value, &value.description) {
        (Some(serde_json::Value::String(s)), _) => s.clone(),
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => d.clone(),
        _ => value.r#type.as_ref().to_owned(),
    }
}

fn set_cookie_lines(headers: &serde_json::Value) -> Vec<String> {
    let Some(map) = headers.as_object() else { return Vec::new() };
    map.iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| value.as_str())
        .flat_map(|value| value.split('\n').map(str::to_owned))
        .collect()
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    recorder.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `call` with the per-call timeout, mapping both failure kinds to `ScanError`.
async fn call<T>(
    during: &'static str,
    call: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
) -> Result<T, ScanError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(ScanError::cdp),
        Err(_) => Err(ScanError::Timeout { seconds: CALL_TIMEOUT.as_secs(), during }),
    }
}

/// The scan proper, inside a scan slot. The context is disposed whatever happens.
/// Everything a scan works with inside its slot: the browser, its own context behind its own
/// guard, the tab, and the recorder fed by the tab's events.
struct Session<'a> {
    browser: &'a LiveBrowser,
    context: BrowserContextId,
    guard: GuardProxy,
    page: Page,
    recorder: Arc<Mutex<Recorder>>,
    binding: String,
}

/// Opens a session for `target`, runs `body` in it and disposes of the context whatever happens.
async fn with_session<T>(
    browser: &LiveBrowser,
    target: &url::Url,
    options: &ScanOptions,
    body: impl AsyncFnOnce(&Session<'_>) -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    let guard = GuardProxy::start(options.egress.clone(), options.limits.max_transfer_bytes)
        .await
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot start the egress guard: {e}")))?;
    let host = target.host_str().unwrap_or_default().to_owned();
    let port = target.port_or_known_default().unwrap_or(80);
    if let Err(refusal) = options.egress.destination(&host, port).await {
        return Err(match refusal {
            crate::egress::Refusal::Unresolvable { reason, .. } => {
                ScanError::Unreachable { url: target.to_string(), reason: format!("cannot resolve {host}: {reason}") }
            }
            other => ScanError::Refused { url: target.to_string(), reason: other.to_string() },
        });
    }
    let context = browser.create_context(&guard).await?;
    let result = in_context(browser, context.clone(), guard, options, body).await;
    let disposed = browser
        .with_browser(async |b| {
            tokio::time::timeout(CALL_TIMEOUT, b.dispose_browser_context(context.clone()))
                .await
                .unwrap_or(Ok(()))
        })
        .await;
    if let Err(error) = disposed {
        tracing::warn!(%error, "could not dispose of a browser context");
    }
    result
}

async fn in_context<T>(
    browser: &LiveBrowser,
    context: BrowserContextId,
    guard: GuardProxy,
    options: &ScanOptions,
    body: impl AsyncFnOnce(&Session<'_>) -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    let downloads = browser
        .with_browser(async |b| {
            b.execute(
                SetDownloadBehaviorParams::builder()
                    .behavior(SetDownloadBehaviorBehavior::Deny)
                    .browser_context_id(context.clone())
                    .events_enabled(true)
                    .build()
                    .map_err(chromiumoxide::error::CdpError::msg)?,
            )
            .await?;
            b.event_listener::<EventDownloadWillBegin>().await
        })
        .await?;
    let page = browser
        .with_browser(async |b| {
            b.new_page(
                CreateTargetParams::builder()
                    .url("about:blank")
                    .browser_context_id(context.clone())
                    .build()
                    .map_err(chromiumoxide::error::CdpError::msg)?,
            )
            .await
        })
        .await?;

    let binding = format!("__siteward_{}", hex::encode(rand_bytes()));
    let recorder = Arc::new(Mutex::new(Recorder {
        network: NetworkLog::new(options.limits.max_requests),
        max_scripts: options.limits.max_scripts,
        max_message_chars: options.limits.max_message_chars,
        ..Recorder::default()
    }));
    let streams = subscribe(&page).await?;
    let pump = {
        let recorder = recorder.clone();
        let page = page.clone();
        let binding = binding.clone();
        tokio::spawn(async move {
            let mut events = futures::stream::select_all(streams);
            while let Some(event) = events.next().await {
                match &event {
                    // A dialog blocks the page until answered: dismiss it at once.
                    Event::Dialog(_) => {
                        let page = page.clone();
                        tokio::spawn(async move {
                            let _ = page.execute(HandleJavaScriptDialogParams::new(false)).await;
                        });
                    }
                    // The debugger pauses before an out-of-memory crash (and raises the heap
                    // limit to let a person look); a scan must never stay paused.
                    Event::Paused => {
                        let page = page.clone();
                        tokio::spawn(async move {
                            let _ = page.execute(debugger::ResumeParams::default()).await;
                        });
                    }
                    _ => {}
                }
                lock(&recorder).apply(event, &binding);
            }
        })
    };
    let download_pump = {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let mut downloads = downloads;
            while let Some(e) = downloads.next().await {
                lock(&recorder).downloads.push((
                    e.frame_id.inner().clone(),
                    Download { url: e.url.clone(), suggested_filename: e.suggested_filename.clone() },
                ));
            }
        })
    };
    let session = Session { browser, context, guard, page, recorder, binding };
    let result = body(&session).await;
    pump.abort();
    download_pump.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), session.page.close()).await;
    result
}

fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = seed ^ (std::process::id() as u128) << 64;
    bytes.copy_from_slice(&mixed.to_le_bytes()[..8]);
    bytes
}

async fn drive(
    session: &Session<'_>,
    target: &url::Url,
    options: &ScanOptions,
    progress: &(dyn Fn(Stage) + Send + Sync),
    started: Instant,
) -> Result<ScanOutput, ScanError> {
    let Session { browser, context, guard, page, recorder, binding } = session;
    let started_at = now_rfc3339();
    // Domains and instrumentation, all before the first byte of the site arrives.
    call("enabling page events", page.execute(page::EnableParams::default())).await?;
    call("enabling crash events", page.execute(inspector::EnableParams::default())).await?;
    call("enabling network events", page.execute(network::EnableParams::default())).await?;
    call("enabling runtime events", page.execute(runtime::EnableParams::default())).await?;
    call("enabling log events", page.execute(log::EnableParams::default())).await?;
    call("enabling storage", page.execute(dom_storage::EnableParams::default())).await?;
    call("enabling the debugger", page.execute(debugger::EnableParams::default())).await?;
    // A hostile `debugger;` statement must not pause the page.
    call("disabling pauses", page.execute(debugger::SetSkipAllPausesParams::new(true))).await?;
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
    if let Some(user_agent) = &options.user_agent {
        call("setting the user agent", page.execute(SetUserAgentOverrideParams::new(user_agent.clone()))).await?;
    }
    call("adding the cookie binding", page.execute(AddBindingParams::new(binding))).await?;
    call(
        "installing instrumentation",
        page.execute(AddScriptToEvaluateOnNewDocumentParams::new(
            INSTRUMENT_JS.replace("__SITEWARD_BINDING__", binding),
        )),
    )
    .await?;

    progress(Stage::Navigate);
    let nav_started = Instant::now();
    let main_frame = page::FrameId::new(page.target_id().inner().clone());
    lock(recorder).main_frame = main_frame.inner().clone();
    let main_request = navigate(page, recorder, guard, target, nav_started, options).await?;

    progress(Stage::Wait);
    let Waited { load_ms, network_quiet_ms, mut limits_hit } = wait_for_load_and_quiet(recorder, nav_started, options).await?;

    progress(Stage::Capture);
    let world = isolated_world(page, &main_frame).await?;
    let title = evaluate_string(page, world, "document.title").await?.unwrap_or_default();
    let final_url = evaluate_string(page, world, "location.href").await?.unwrap_or_else(|| target.to_string());
    let first_party_domain = registrable_domain(&host_of(&final_url));
    let dom = capture_dom(page, world, options.limits.max_dom_bytes).await?;
    if dom.truncated {
        limits_hit.push(LimitHit::DomSize { max_bytes: options.limits.max_dom_bytes as u64 });
    }

    let context_cookies = browser_context_cookies(browser, context).await?;
    let frame_tree = call("reading frames", page.execute(GetFrameTreeParams::default())).await?.result.frame_tree;
    let mut frame_urls = HashMap::new();
    collect_frames(&frame_tree, &mut frame_urls);
    let storage = storage_keys(page, &frame_urls).await;
    let viewport_png = call(
        "taking the viewport screenshot",
        page.execute(CaptureScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build()),
    )
    .await?
    .result
    .data;
    let viewport_png = decode_base64(viewport_png.as_ref())?;
    let (full_page_png, page_height) = full_page_screenshot(page, options).await?;
    let full_page_truncated = page_height > options.limits.max_full_page_height;
    if full_page_truncated {
        limits_hit.push(LimitHit::ScreenshotHeight { max_height: options.limits.max_full_page_height });
    }

    // Scripts: read each source once, within the byte budget.
    let (parsed, scripts_dropped, document_urls) = {
        let r = lock(recorder);
        (r.scripts.clone(), r.scripts_dropped, r.document_urls.clone())
    };
    let mut scripts = Vec::new();
    let mut script_bytes = 0usize;
    for mut script in parsed {
        if script_bytes >= options.limits.max_script_bytes {
            limits_hit.push(LimitHit::ScriptCount { max: scripts.len() });
            break;
        }
        let Ok(Ok(source)) = tokio::time::timeout(
            CALL_TIMEOUT,
            page.execute(GetScriptSourceParams::new(script.script_id.clone())),
        )
        .await
        else {
            continue;
        };
        let source = source.result.script_source;
        script_bytes += source.len();
        let frame_url = frame_urls.get(&script.frame_url).cloned();
        script.frame_url = match frame_url {
            Some(url) => url,
            // The frame is gone; an inline script's URL is its document's.
            None if document_urls.contains(&script.url) => script.url.clone(),
            None => final_url.clone(),
        };
        scripts.push(scripts::describe(&script, &source, &first_party_domain));
    }
    if scripts_dropped {
        limits_hit.push(LimitHit::ScriptCount { max: options.limits.max_scripts });
    }
    let scripts = scripts::normalize(scripts);

    let (cookie_list, requests, redirect_chain, console_errors, dialogs, downloads, request_limit) = {
        let r = lock(recorder);
        let mut writes: Vec<CookieWrite> = r
            .network
            .set_cookie_sources()
            .iter()
            .filter_map(|(url, line)| cookies::header_write(url, line))
            .collect();
        writes.extend(r.cookie_writes.iter().cloned());
        let cookie_list = cookies::attribute(&context_cookies, &writes, &first_party_domain);
        let frames: HashSet<&String> = frame_urls.keys().chain(r.frames.keys()).collect();
        let downloads = r
            .downloads
            .iter()
            .filter(|(frame, _)| frames.contains(frame))
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>();
        (
            cookie_list,
            r.network.requests(&first_party_domain),
            r.network.chain(&main_request),
            r.console_errors.clone(),
            r.dialogs.clone(),
            downloads,
            r.network.hit_request_limit(),
        )
    };
    if request_limit {
        limits_hit.push(LimitHit::RequestCount { max: options.limits.max_requests });
    }

    let blocked = guard.blocked();
    let requests = mark_blocked(requests, &blocked);
    let mut third_party_hosts: Vec<String> = requests
        .iter()
        .filter(|r| r.party == Party::Third && !r.host.is_empty())
        .map(|r| r.host.clone())
        .collect();
    third_party_hosts.sort();
    third_party_hosts.dedup();

    let policy_pages = if options.policy_pages {
        progress(Stage::PolicyPages);
        read_policy_pages(page, world, options).await
    } else {
        Vec::new()
    };
    if let Some(max_bytes) = guard.budget_exhausted() {
        limits_hit.push(LimitHit::TransferBytes { max_bytes });
    }

    let status = redirect_chain.last().and_then(|h| h.status);
    let redirect_chain = if redirect_chain.is_empty() {
        vec![RedirectHop { url: final_url.clone(), status }]
    } else {
        redirect_chain
    };
    let snapshot = Snapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        scanner_version: env!("CARGO_PKG_VERSION").to_owned(),
        requested_url: target.to_string(),
        final_url,
        redirect_chain,
        status,
        title: truncate_chars(&title, 1_000),
        first_party_domain,
        started_at,
        finished_at: now_rfc3339(),
        timings: Timings { load_ms, network_quiet_ms, total_ms: started.elapsed().as_millis() as u64 },
        browser: BrowserInfo {
            product: browser.product().to_owned(),
            user_agent: options.user_agent.clone().unwrap_or_else(|| browser.user_agent().to_owned()),
            third_party_cookies_allowed: browser.third_party_cookies(),
        },
        options: RecordedOptions {
            viewport_width: options.viewport_width,
            viewport_height: options.viewport_height,
            quiet_period_ms: options.quiet_period.as_millis() as u64,
            load_timeout_ms: options.load_timeout.as_millis() as u64,
            scan_timeout_ms: options.scan_timeout.as_millis() as u64,
            consent_mode: ConsentMode::NoInteraction,
            policy_pages: options.policy_pages,
            resolve: options.egress.resolve_entries(),
            private_destinations_allowed: options.egress.allows_private(),
        },
        dom,
        scripts,
        cookies: cookie_list,
        storage,
        requests,
        blocked,
        console_errors,
        dialogs,
        downloads,
        third_party_hosts,
        screenshots: Screenshots {
            viewport: screenshot_info(&viewport_png),
            full_page: screenshot_info(&full_page_png),
            page_height,
            full_page_truncated,
            full_page_max_height: options.limits.max_full_page_height,
        },
        policy_pages,
        limits_hit,
    };
    Ok(ScanOutput { snapshot, viewport_png, full_page_png })
}

/// Starts the navigation and waits until the main document has answered (or failed). The
/// DevTools `Page.navigate` call itself may not return before the page has loaded, so the answer
/// is read from the network events instead. Returns the main document's request id.
async fn navigate(
    page: &Page,
    recorder: &Mutex<Recorder>,
    guard: &GuardProxy,
    target: &url::Url,
    nav_started: Instant,
    options: &ScanOptions,
) -> Result<String, ScanError> {
    let mut navigation = {
        let page = page.clone();
        let url = target.to_string();
        tokio::spawn(async move { page.execute(NavigateParams::new(url)).await })
    };
    let deadline = nav_started + options.load_timeout;
    let outcome = loop {
        if navigation.is_finished() {
            if let Ok(Ok(response)) = (&mut navigation).await {
                if let Some(error) = response.result.error_text.as_deref() {
                    break Err(navigation_error(target, error, guard));
                }
            }
        }
        {
            let r = lock(recorder);
            if r.crashed {
                break Err(ScanError::RendererCrashed);
            }
            if let Some(id) = &r.main_request {
                match r.network.outcome(id) {
                    Some(Ok(_)) => break Ok(id.clone()),
                    Some(Err(error)) => break Err(navigation_error(target, &error, guard)),
                    None => {}
                }
            }
        }
        if Instant::now() >= deadline {
            break Err(ScanError::Timeout {
                seconds: options.load_timeout.as_secs(),
                during: "waiting for the page to respond",
            });
        }
        tokio::time::sleep(POLL).await;
    };
    if outcome.is_err() {
        navigation.abort();
    }
    outcome
}

struct Waited {
    load_ms: Option<u64>,
    network_quiet_ms: Option<u64>,
    limits_hit: Vec<LimitHit>,
}

/// Waits for the `load` event, then for the network to be quiet for the quiet period. Neither wait
/// is fatal when it runs out: what has loaded is captured and the limit is reported.
async fn wait_for_load_and_quiet(
    recorder: &Mutex<Recorder>,
    nav_started: Instant,
    options: &ScanOptions,
) -> Result<Waited, ScanError> {
    let mut limits_hit = Vec::new();
    let load_deadline = nav_started + options.load_timeout;
    let load_ms = loop {
        {
            let r = lock(recorder);
            if r.crashed {
                return Err(ScanError::RendererCrashed);
            }
            if let Some(at) = r.load_fired_at {
                break Some(at.duration_since(nav_started).as_millis() as u64);
            }
        }
        if Instant::now() >= load_deadline {
            limits_hit.push(LimitHit::LoadTimeout { after_ms: options.load_timeout.as_millis() as u64 });
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    let quiet_from = Instant::now();
    let quiet_deadline = quiet_from + options.load_timeout;
    let network_quiet_ms = loop {
        {
            let r = lock(recorder);
            if r.crashed {
                return Err(ScanError::RendererCrashed);
            }
            let last = r.network.last_activity().map_or(quiet_from, |t| t.max(quiet_from));
            if r.network.in_flight() == 0 && last.elapsed() >= options.quiet_period {
                break Some((last + options.quiet_period).duration_since(nav_started).as_millis() as u64);
            }
        }
        if Instant::now() >= quiet_deadline {
            limits_hit.push(LimitHit::NetworkNeverQuiet { after_ms: options.load_timeout.as_millis() as u64 });
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(Waited { load_ms, network_quiet_ms, limits_hit })
}

fn navigation_error(target: &url::Url, error: &str, guard: &GuardProxy) -> ScanError {
    let url = target.to_string();
    let host = target.host_str().unwrap_or_default();
    if let Some(blocked) = guard.blocked().into_iter().find(|b| b.host.trim_matches(['[', ']']) == host.trim_matches(['[', ']'])) {
        return ScanError::Refused { url, reason: blocked.reason };
    }
    let reason = error.to_owned();
    if error.contains("CERT") || error.contains("SSL") {
        ScanError::Tls { url, reason }
    } else if error.contains("TIMED_OUT") {
        ScanError::Timeout { seconds: 0, during: "connecting to the site" }
    } else {
        ScanError::Unreachable { url, reason }
    }
}

/// A request failed because the guard refused its connection when the guard refused its host and
/// port and the browser reports a proxy-level failure for it.
fn mark_blocked(mut requests: Vec<Request>, blocked: &[BlockedConnection]) -> Vec<Request> {
    for request in &mut requests {
        let Some(failure) = request.failure.as_deref() else { continue };
        if !(failure.contains("SOCKS") || failure.contains("PROXY") || failure.contains("TUNNEL")) {
            continue;
        }
        let Ok(url) = url::Url::parse(&request.url) else { continue };
        let port = url.port_or_known_default().unwrap_or(0);
        let host = request.host.as_str();
        request.blocked = blocked
            .iter()
            .any(|b| b.port == port && b.host.trim_matches(['[', ']']).eq_ignore_ascii_case(host));
    }
    requests
}

async fn isolated_world(page: &Page, frame: &page::FrameId) -> Result<ExecutionContextId, ScanError> {
    let world = call(
        "creating an isolated world",
        page.execute(
            CreateIsolatedWorldParams::builder()
                .frame_id(frame.clone())
                .world_name("siteward")
                .build()
                .map_err(ScanError::Protocol)?,
        ),
    )
    .await?;
    Ok(world.result.execution_context_id)
}

/// Evaluates `expression` in our isolated world, where the page's scripts cannot tamper with the
/// DOM APIs we read through.
async fn evaluate(
    page: &Page,
    world: ExecutionContextId,
    expression: &str,
) -> Result<Option<serde_json::Value>, ScanError> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .context_id(world)
        .return_by_value(true)
        .build()
        .map_err(ScanError::Protocol)?;
    let result = call("reading the page", page.execute(params)).await?.result;
    if result.exception_details.is_some() {
        return Ok(None);
    }
    Ok(result.result.value)
}

async fn evaluate_string(page: &Page, world: ExecutionContextId, expression: &str) -> Result<Option<String>, ScanError> {
    Ok(evaluate(page, world, expression).await?.and_then(|v| v.as_str().map(str::to_owned)))
}

async fn capture_dom(page: &Page, world: ExecutionContextId, max_bytes: usize) -> Result<DomCapture, ScanError> {
    // Truncate in the page so a 50 MB document never crosses the DevTools connection whole. The
    // limit is in UTF-16 units there; it is enforced in bytes here.
    let expression = format!(
        "(() => {{ const root = document.documentElement; const html = root ? root.outerHTML : ''; \
         const doctype = document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>\\n' : ''; \
         return [new Blob([doctype, html]).size, (doctype + html).slice(0, {max_bytes})]; }})()"
    );
    let value = evaluate(page, world, &expression).await?.unwrap_or_default();
    let size_bytes = value.get(0).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut html = value.get(1).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    if html.len() > max_bytes {
        let mut cut = max_bytes;
        while !html.is_char_boundary(cut) {
            cut -= 1;
        }
        html.truncate(cut);
    }
    Ok(DomCapture { truncated: (html.len() as u64) < size_bytes, html, size_bytes })
}

/// Every cookie in the scan's browser context, from every domain the page touched.
async fn browser_context_cookies(
    browser: &LiveBrowser,
    context: &BrowserContextId,
) -> Result<Vec<chromiumoxide::cdp::browser_protocol::network::Cookie>, ScanError> {
    let params = GetCookiesParams::builder().browser_context_id(context.clone()).build();
    browser
        .with_browser(async |b| Ok(b.execute(params).await?.result.cookies))
        .await
}

fn collect_frames(tree: &FrameTree, out: &mut HashMap<String, String>) {
    out.insert(tree.frame.id.inner().clone(), tree.frame.url.clone());
    for child in tree.child_frames.iter().flatten() {
        collect_frames(child, out);
    }
}

async fn storage_keys(page: &Page, frame_urls: &HashMap<String, String>) -> Vec<StorageKeys> {
    let mut origins: Vec<String> = frame_urls
        .values()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .collect();
    origins.sort();
    origins.dedup();
    let mut out = Vec::new();
    for origin in origins {
        for (kind, is_local) in [(StorageKind::Local, true), (StorageKind::Session, false)] {
            let id = StorageId::builder().security_origin(origin.clone()).is_local_storage(is_local).build();
            let Ok(id) = id else { continue };
            let Ok(Ok(items)) = tokio::time::timeout(CALL_TIMEOUT, page.execute(GetDomStorageItemsParams::new(id))).await
            else {
                continue;
            };
            let mut keys: Vec<String> =
                items.result.entries.iter().filter_map(|item| item.inner().first().cloned()).collect();
            if keys.is_empty() {
                continue;
            }
            keys.sort();
            out.push(StorageKeys { origin: origin.clone(), kind, keys });
        }
    }
    out
}

async fn full_page_screenshot(page: &Page, options: &ScanOptions) -> Result<(Vec<u8>, u32), ScanError> {
    let metrics = call("measuring the page", page.execute(GetLayoutMetricsParams::default())).await?.result;
    let page_height = metrics.css_content_size.height.ceil().max(1.0) as u32;
    let height = page_height.min(options.limits.max_full_page_height);
    let clip = page::Viewport {
        x: 0.0,
        y: 0.0,
        width: f64::from(options.viewport_width),
        height: f64::from(height),
        scale: 1.0,
    };
    let shot = call(
        "taking the full-page screenshot",
        page.execute(
            CaptureScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .clip(clip)
                .capture_beyond_viewport(true)
                .build(),
        ),
    )
    .await?;
    Ok((decode_base64(shot.result.data.as_ref())?, page_height))
}

async fn read_policy_pages(page: &Page, world: ExecutionContextId, options: &ScanOptions) -> Vec<PolicyPage> {
    let Ok(Some(links)) = evaluate(page, world, POLICY_LINKS_JS).await else { return Vec::new() };
    let links: Vec<(PolicyKind, String, String)> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let kind = match l.get("kind")?.as_str()? {
                "privacy" => PolicyKind::Privacy,
                "cookies" => PolicyKind::Cookies,
                "terms" => PolicyKind::Terms,
                _ => return None,
            };
            Some((kind, l.get("url")?.as_str()?.to_owned(), l.get("text")?.as_str()?.to_owned()))
        })
        .collect();
    let mut pages = Vec::new();
    for (kind, url, link_text) in links {
        let mut entry = PolicyPage { kind, url: url.clone(), link_text, status: None, text: String::new(), truncated: false, error: None };
        match tokio::time::timeout(POLICY_PAGE_TIMEOUT, policy_text(page, &url, options)).await {
            Ok(Ok((status, text, truncated))) => {
                entry.status = status;
                entry.text = text;
                entry.truncated = truncated;
            }
            Ok(Err(error)) => entry.error = Some(error.to_string()),
            Err(_) => entry.error = Some(format!("timed out after {} s", POLICY_PAGE_TIMEOUT.as_secs())),
        }
        pages.push(entry);
    }
    pages
}

/// Loads a policy page in the scan's own tab (after the capture) and reads its visible text.
async fn policy_text(page: &Page, url: &str, options: &ScanOptions) -> Result<(Option<u16>, String, bool), ScanError> {
    let mut responses = page.event_listener::<EventResponseReceived>().await.map_err(ScanError::cdp)?;
    let mut loads = page.event_listener::<EventLoadEventFired>().await.map_err(ScanError::cdp)?;
    let nav = page.execute(NavigateParams::new(url.to_owned())).await.map_err(ScanError::cdp)?.result;
    if let Some(error) = nav.error_text {
        return Err(ScanError::Unreachable { url: url.to_owned(), reason: error });
    }
    let loader = nav.loader_id.map(|l| l.inner().clone()).unwrap_or_default();
    let _ = loads.next().await;
    let mut status = None;
    while let Some(Some(response)) = futures::FutureExt::now_or_never(responses.next()) {
        if response.request_id.inner() == &loader {
            status = Some(response.response.status as u16);
        }
    }
    let world = isolated_world(page, &nav.frame_id).await?;
    let text = evaluate_string(page, world, "document.body ? document.body.innerText : ''").await?.unwrap_or_default();
    let max = options.limits.max_policy_text_bytes;
    let truncated = text.len() > max;
    let mut text = text;
    if truncated {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok((status, text, truncated))
}

fn decode_base64(data: &str) -> Result<Vec<u8>, ScanError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ScanError::Protocol(format!("screenshot is not base64: {e}")))
}

fn screenshot_info(png: &[u8]) -> ScreenshotInfo {
    use sha2::Digest;
    let dimension = |at: usize| {
        png.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    ScreenshotInfo {
        width: dimension(16),
        height: dimension(20),
        sha256: hex::encode(sha2::Sha256::digest(png)),
        size_bytes: png.len() as u64,
    }
}

fn now_rfc3339() -> String {
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
        for bad in ["ftp://example.com/", "javascript:alert(1)", "file:///etc/passwd", "example.com", "https://user:pw@example.com/", "http://"] {
            assert!(matches!(validate_url(bad), Err(ScanError::InvalidUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn set_cookie_headers_split_into_lines() {
        let headers = serde_json::json!({"Content-Type": "text/html", "set-cookie": "a=1; Path=/\nb=2"});
        assert_eq!(set_cookie_lines(&headers), vec!["a=1; Path=/".to_string(), "b=2".to_string()]);
    }

    #[test]
    fn screenshot_dimensions_come_from_the_png_header() {
        let mut png = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        png.extend_from_slice(&1280u32.to_be_bytes());
        png.extend_from_slice(&720u32.to_be_bytes());
        let info = screenshot_info(&png);
        assert_eq!((info.width, info.height), (1280, 720));
    }
}
