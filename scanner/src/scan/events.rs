//! The recorder: what the page's DevTools events tell us during a scan, in whatever order they come.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::network::{
    self, EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    EventResponseReceivedExtraInfo,
};
use chromiumoxide::cdp::browser_protocol::page::{
    EventFrameNavigated, EventJavascriptDialogOpening, EventLoadEventFired,
    EventNavigatedWithinDocument,
};
use chromiumoxide::cdp::browser_protocol::target;
use chromiumoxide::cdp::js_protocol::debugger::{self, EventScriptParsed};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventBindingCalled, EventConsoleApiCalled, EventExceptionThrown,
    RemoteObject,
};
use futures::{Stream, StreamExt};

use crate::capture::cookies::{self, CookieWrite};
use crate::capture::headers;
use crate::capture::network::{NetworkLog, ResourceTiming, ResponseSeen};
use crate::capture::scripts::ParsedScript;
use crate::error::ScanError;
use crate::snapshot::*;

/// Caps on what a page can make a scan record; reaching one is reported as a limit hit.
const MAX_CONSOLE_ERRORS: usize = 500;
const MAX_DIALOGS: usize = 100;
pub(super) const MAX_DOWNLOADS: usize = 100;
const MAX_FRAMES: usize = 1_000;
const MAX_COOKIE_WRITES: usize = 2_000;

/// The script that asked for a request (the innermost frame of its stack that has a URL, through
/// async parents), or the document whose markup named it.
fn initiator_url(initiator: &network::Initiator) -> Option<&str> {
    let mut stack = initiator.stack.as_ref();
    while let Some(trace) = stack {
        if let Some(frame) = trace.call_frames.iter().find(|f| !f.url.is_empty()) {
            return Some(&frame.url);
        }
        stack = trace.parent.as_deref();
    }
    initiator.url.as_deref().filter(|u| !u.is_empty())
}

/// What a HAR reader wants of a DevTools response.
fn response_seen(response: &network::Response) -> ResponseSeen {
    ResponseSeen {
        status_text: truncate_chars(&response.status_text, 200),
        protocol: response.protocol.as_deref().map(|p| truncate_chars(p, 50)),
        mime_type: Some(truncate_chars(&response.mime_type, 200)).filter(|m| !m.is_empty()),
        headers: headers::all_headers(response.headers.inner()),
        timing: response.timing.as_ref().map(|t| ResourceTiming {
            request_time: t.request_time,
            dns: (t.dns_start, t.dns_end),
            connect: (t.connect_start, t.connect_end),
            ssl: (t.ssl_start, t.ssl_end),
            send: (t.send_start, t.send_end),
            receive_headers_end: t.receive_headers_end,
        }),
    }
}

/// Everything the event streams tell us during a scan.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) network: NetworkLog,
    /// The page's main frame id, and the request id of the main document's navigation.
    pub(super) main_frame: String,
    pub(super) main_request: Option<String>,
    pub(super) load_fired_at: Option<Instant>,
    pub(super) crashed: bool,
    pub(super) scripts: Vec<ParsedScript>,
    /// Frame id → current document URL.
    pub(super) frames: HashMap<String, String>,
    pub(super) document_urls: HashSet<String>,
    /// Script cookie writes, the latest per cookie name and domain.
    pub(super) cookie_writes: HashMap<(String, String), CookieWrite>,
    /// Numbers the events as they are applied, to order cookie writes in time.
    pub(super) seq: u64,
    /// Lists cut at their cap, for the snapshot's `limits_hit`.
    pub(super) truncated: std::collections::BTreeMap<&'static str, usize>,
    pub(super) console_errors: Vec<ConsoleError>,
    pub(super) dialogs: Vec<Dialog>,
    pub(super) downloads: Vec<(String, Download)>,
    pub(super) max_scripts: usize,
    pub(super) scripts_dropped: bool,
    pub(super) max_message_chars: usize,
    /// Every main-frame navigation, in order: where each page's requests, errors and scripts
    /// start in the lists above.
    pub(super) navigations: Vec<NavigationMark>,
    /// When `load` last fired (`load_fired_at` keeps the first).
    pub(super) last_load_at: Option<Instant>,
    /// Documents committed in the main frame so far.
    pub(super) main_frame_commits: usize,
    /// Same-document navigations of the main frame so far (History API, fragment changes):
    /// single-page apps change their route this way.
    pub(super) same_document_navigations: usize,
    /// Main-frame navigations refused because the journey may not go there.
    pub(super) refused_navigations: Vec<String>,
    /// When the page last did something new: started a request or socket, parsed a script,
    /// committed a frame, wrote a cookie. The wait before capture ends on its silence.
    pub(super) last_change: Option<Instant>,
    /// Workers' network events that did not parse, by method (see `worker_tap`).
    pub(super) worker_unparsed: std::collections::BTreeMap<String, u64>,
    /// Why the scan could not follow its workers, if it could not.
    pub(super) worker_tap_error: Option<String>,
    /// Response headers of main-frame navigations, by request id.
    pub(super) document_headers: HashMap<String, DocumentHeaders>,
}

/// The headers of a main-frame document's response, as DevTools told them twice.
#[derive(Default)]
pub(super) struct DocumentHeaders {
    /// From `responseReceivedExtraInfo`: raw, as received (with `Set-Cookie`); the last hop's.
    raw: Option<serde_json::Value>,
    /// From `responseReceived`: the final response's, as the page sees them.
    seen: Option<serde_json::Value>,
}

impl DocumentHeaders {
    /// The raw headers when DevTools sent them, else those the page saw.
    pub(super) fn best(&self) -> Option<&serde_json::Value> {
        self.raw.as_ref().or(self.seen.as_ref())
    }
}

impl Recorder {
    /// The warnings the recorder itself holds, for the snapshot's `capture_warnings`.
    pub(super) fn capture_warnings(&self) -> Vec<CaptureWarning> {
        let mut warnings: Vec<CaptureWarning> = self
            .worker_unparsed
            .iter()
            .map(|(method, count)| CaptureWarning {
                kind: "devtools_event_unparsed".into(),
                count: *count,
                example: format!("{method} (of a worker)"),
            })
            .collect();
        if let Some(error) = &self.worker_tap_error {
            warnings.push(CaptureWarning {
                kind: "workers_not_followed".into(),
                count: 1,
                example: error.clone(),
            });
        }
        warnings
    }
}

/// Where one page's share of a session's records begins.
#[derive(Debug, Clone, Default)]
pub(super) struct NavigationMark {
    pub(super) request_id: String,
    /// When the navigation started; `None` for the mark of a whole session.
    pub(super) at: Option<Instant>,
    pub(super) requests_from: usize,
    pub(super) console_from: usize,
    pub(super) scripts_from: usize,
}

pub(super) enum Event {
    RequestWillBeSent(Arc<EventRequestWillBeSent>),
    ResponseReceived(Arc<EventResponseReceived>),
    ResponseExtra(Arc<EventResponseReceivedExtraInfo>),
    LoadingFinished(Arc<EventLoadingFinished>),
    LoadingFailed(Arc<EventLoadingFailed>),
    Load,
    Crashed,
    FrameNavigated(Arc<EventFrameNavigated>),
    NavigatedWithinDocument(Arc<EventNavigatedWithinDocument>),
    ScriptParsed(Arc<EventScriptParsed>),
    Binding(Arc<EventBindingCalled>),
    Console(Arc<EventConsoleApiCalled>),
    Exception(Arc<EventExceptionThrown>),
    Log(Arc<EventEntryAdded>),
    Dialog(Arc<EventJavascriptDialogOpening>),
    Paused,
    WebSocketCreated(Arc<network::EventWebSocketCreated>),
    WebSocketHandshake(Arc<network::EventWebSocketHandshakeResponseReceived>),
    WebSocketClosed(Arc<network::EventWebSocketClosed>),
    DataReceived(Arc<network::EventDataReceived>),
    /// A worker the page started (dedicated or shared) or a service worker it registered.
    WorkerAttached(Arc<target::EventAttachedToTarget>),
}

impl Event {
    /// Whether the event is the page doing something new (as opposed to progress of something
    /// it started, or a report).
    fn is_change(&self) -> bool {
        matches!(
            self,
            Event::RequestWillBeSent(_)
                | Event::WebSocketCreated(_)
                | Event::ScriptParsed(_)
                | Event::FrameNavigated(_)
                | Event::Binding(_)
        )
    }
}

pub(super) type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

pub(super) async fn subscribe(page: &Page) -> Result<Vec<EventStream>, ScanError> {
    macro_rules! stream {
        ($ty:ty, $map:expr) => {{
            // Unparsed messages of these methods become capture warnings; keep the list true.
            debug_assert!(
                crate::capture::unparsed::LISTENED_METHODS
                    .contains(&<$ty as chromiumoxide::MethodType>::method_id().as_ref()),
                "{} is missing from LISTENED_METHODS",
                <$ty as chromiumoxide::MethodType>::method_id()
            );
            let s: EventStream = Box::pin(
                page.event_listener::<$ty>()
                    .await
                    .map_err(ScanError::cdp)?
                    .map($map),
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
        stream!(EventNavigatedWithinDocument, Event::NavigatedWithinDocument),
        stream!(EventScriptParsed, Event::ScriptParsed),
        stream!(EventBindingCalled, Event::Binding),
        stream!(EventConsoleApiCalled, Event::Console),
        stream!(EventExceptionThrown, Event::Exception),
        stream!(EventEntryAdded, Event::Log),
        stream!(EventJavascriptDialogOpening, Event::Dialog),
        stream!(debugger::EventPaused, |_| Event::Paused),
        stream!(network::EventWebSocketCreated, Event::WebSocketCreated),
        stream!(
            network::EventWebSocketHandshakeResponseReceived,
            Event::WebSocketHandshake
        ),
        stream!(network::EventWebSocketClosed, Event::WebSocketClosed),
        stream!(network::EventDataReceived, Event::DataReceived),
        stream!(target::EventAttachedToTarget, Event::WorkerAttached),
    ])
}

impl Recorder {
    /// The header record of a main-frame navigation's request, made on first use; `None` for
    /// any other request.
    fn document_headers_of(&mut self, request_id: &str) -> Option<&mut DocumentHeaders> {
        let navigation = self.main_request.as_deref() == Some(request_id)
            || self.navigations.iter().any(|n| n.request_id == request_id);
        if !navigation
            || (!self.document_headers.contains_key(request_id)
                && self.document_headers.len() >= MAX_FRAMES)
        {
            return None;
        }
        Some(
            self.document_headers
                .entry(request_id.to_owned())
                .or_default(),
        )
    }

    pub(super) fn apply(&mut self, event: Event, binding: &str) {
        self.seq += 1;
        if event.is_change() {
            self.last_change = Some(Instant::now());
        }
        match event {
            Event::RequestWillBeSent(e) => {
                let is_navigation = e.r#type == Some(network::ResourceType::Document)
                    && e.request_id.inner() == e.loader_id.inner()
                    && e.frame_id
                        .as_ref()
                        .is_some_and(|f| f.inner() == &self.main_frame);
                if is_navigation && self.main_request.is_none() {
                    self.main_request = Some(e.request_id.inner().clone());
                }
                let new_navigation = is_navigation
                    && self
                        .navigations
                        .last()
                        .is_none_or(|n| &n.request_id != e.request_id.inner());
                if new_navigation && self.navigations.len() < MAX_FRAMES {
                    self.navigations.push(NavigationMark {
                        request_id: e.request_id.inner().clone(),
                        at: Some(Instant::now()),
                        requests_from: self.network.len(),
                        console_from: self.console_errors.len(),
                        scripts_from: self.scripts.len(),
                    });
                }
                self.network.request_will_be_sent(
                    e.request_id.inner(),
                    &e.request.url,
                    &e.request.method,
                    e.r#type.as_ref().map(|t| t.as_ref()),
                    *e.timestamp.inner(),
                    e.redirect_response.as_ref().map(|r| r.status as u16),
                );
                if let Some(initiator) = initiator_url(&e.initiator) {
                    self.network.set_initiator(e.request_id.inner(), initiator);
                }
                self.network.hop_details(
                    e.request_id.inner(),
                    headers::all_headers(e.request.headers.inner()),
                    Some(e.initiator.r#type.as_ref()),
                    e.redirect_response.as_ref().map(response_seen),
                );
            }
            Event::ResponseReceived(e) => {
                if e.r#type == network::ResourceType::Document {
                    self.document_urls.insert(e.response.url.clone());
                }
                if let Some(headers) = self.document_headers_of(e.request_id.inner()) {
                    headers.seen = Some(e.response.headers.inner().clone());
                }
                self.network.response_received(
                    e.request_id.inner(),
                    e.response.status as u16,
                    e.r#type.as_ref(),
                );
                self.network
                    .response_details(e.request_id.inner(), response_seen(&e.response));
            }
            Event::ResponseExtra(e) => {
                // A redirect's hop is not the document: only a final response's headers count.
                let redirect = (300..400).contains(&e.status_code);
                if let Some(headers) = self.document_headers_of(e.request_id.inner())
                    && !redirect
                {
                    headers.raw = Some(e.headers.inner().clone());
                }
                // Recorded even without cookies: the n-th response of a request is its n-th hop.
                let lines = set_cookie_lines(e.headers.inner());
                self.network
                    .set_cookie_header(e.request_id.inner(), self.seq, lines);
            }
            Event::LoadingFinished(e) => self.network.loading_finished(
                e.request_id.inner(),
                *e.timestamp.inner(),
                e.encoded_data_length,
            ),
            Event::LoadingFailed(e) => self.network.loading_failed(
                e.request_id.inner(),
                *e.timestamp.inner(),
                &e.error_text,
                e.r#type.as_ref(),
            ),
            Event::Load => {
                self.load_fired_at.get_or_insert_with(Instant::now);
                self.last_load_at = Some(Instant::now());
            }
            Event::Crashed => self.crashed = true,
            Event::FrameNavigated(e) => {
                if self.frames.len() >= MAX_FRAMES && !self.frames.contains_key(e.frame.id.inner())
                {
                    self.truncated.insert("frames", MAX_FRAMES);
                    return;
                }
                if self.document_urls.len() < MAX_FRAMES {
                    self.document_urls.insert(e.frame.url.clone());
                }
                if e.frame.id.inner() == &self.main_frame {
                    self.main_frame_commits += 1;
                }
                self.frames
                    .insert(e.frame.id.inner().clone(), e.frame.url.clone());
            }
            Event::NavigatedWithinDocument(e) => {
                // The document stays; its URL is the route now.
                if let Some(url) = self.frames.get_mut(e.frame_id.inner()) {
                    url.clone_from(&e.url);
                }
                if e.frame_id.inner() == &self.main_frame {
                    self.same_document_navigations += 1;
                }
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
                if let Some(write) = cookies::script_write(&e.payload, self.seq) {
                    let key = (write.name.clone(), write.domain.clone());
                    if self.cookie_writes.len() >= MAX_COOKIE_WRITES
                        && !self.cookie_writes.contains_key(&key)
                    {
                        self.truncated.insert("cookie writes", MAX_COOKIE_WRITES);
                    } else {
                        self.cookie_writes.insert(key, write);
                    }
                }
            }
            Event::Binding(_) => {}
            Event::Console(e) if e.r#type == ConsoleApiCalledType::Error => {
                let message = e
                    .args
                    .iter()
                    .map(describe_remote)
                    .collect::<Vec<_>>()
                    .join(" ");
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
                    && !e
                        .entry
                        .url
                        .as_deref()
                        .is_some_and(|u| u.ends_with("/favicon.ico")) =>
            {
                let (text, url) = (e.entry.text.clone(), e.entry.url.clone());
                self.push_error("log", text, url);
            }
            Event::Log(_) => {}
            Event::Paused => {}
            Event::WebSocketCreated(e) => self
                .network
                .web_socket_created(e.request_id.inner(), &e.url),
            Event::WebSocketHandshake(e) => self
                .network
                .web_socket_handshake(e.request_id.inner(), e.response.status as u16),
            Event::WebSocketClosed(e) => self
                .network
                .web_socket_closed(e.request_id.inner(), *e.timestamp.inner()),
            Event::DataReceived(e) => self
                .network
                .data_received(e.request_id.inner(), e.data_length),
            Event::WorkerAttached(e) => {
                if e.target_info.r#type.ends_with("worker") {
                    self.network.handed_to_worker(&e.target_info.url);
                }
            }
            Event::Dialog(_) if self.dialogs.len() >= MAX_DIALOGS => {
                self.truncated.insert("dialogs", MAX_DIALOGS);
            }
            Event::Dialog(e) => self.dialogs.push(Dialog {
                kind: e.r#type.as_ref().to_owned(),
                message: truncate_chars(&e.message, self.max_message_chars),
            }),
        }
    }

    fn push_error(&mut self, kind: &str, message: String, source_url: Option<String>) {
        if self.console_errors.len() >= MAX_CONSOLE_ERRORS {
            self.truncated.insert("console errors", MAX_CONSOLE_ERRORS);
            return;
        }
        self.console_errors.push(ConsoleError {
            kind: kind.to_owned(),
            message: truncate_chars(&message, self.max_message_chars),
            source_url,
        });
    }
}

pub(super) fn describe_remote(value: &RemoteObject) -> String {
    match (&value.value, &value.description) {
        (Some(serde_json::Value::String(s)), _) => s.clone(),
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => d.clone(),
        _ => value.r#type.as_ref().to_owned(),
    }
}

pub(super) fn set_cookie_lines(headers: &serde_json::Value) -> Vec<String> {
    let Some(map) = headers.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, value)| value.as_str())
        .flat_map(|value| value.split('\n').map(str::to_owned))
        .collect()
}

pub(super) fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

pub(super) fn lock(recorder: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    recorder
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
