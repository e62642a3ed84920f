//! The network log of one scan, built from DevTools network events.
//!
//! chromiumoxide delivers each event type on its own stream, so a request's `loadingFinished` can
//! arrive before its `requestWillBeSent`, and before the `requestWillBeSent` that announces a
//! redirect. Records are keyed by request id and every event fills in what it knows, in whatever
//! order it comes:
//! - `requestWillBeSent` events (one stream, so in order) start the hops of a request; one that
//!   carries a redirect response also gives the previous hop its status;
//! - `responseReceived`, `loadingFinished` and `loadingFailed` only ever describe the request's
//!   final hop, so they are kept per request, not per hop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::party::party_of;
use crate::snapshot::{Header, OpenRequest, RedirectHop, Request, RequestTiming, ResponseDetails};

/// Header bytes (names and values) one scan records in all; a page making thousands of requests
/// with large headers must not grow its snapshot without end.
pub(crate) const MAX_HEADER_BYTES: u64 = 4 * 1024 * 1024;

/// Resource types that are open by design: a page keeps them for its whole life (event streams,
/// media) or fires them and forgets them (beacons). They never hold a scan's wait.
const LONG_LIVED_TYPES: [&str; 4] = ["EventSource", "Media", "Ping", "CSPViolationReport"];

/// Resource types whose answer the page waits for before it does more (documents, scripts and
/// style sheets): while one has no response yet, it holds the wait until the cap.
const BLOCKING_TYPES: [&str; 3] = ["Document", "Script", "Stylesheet"];

/// One hop of a request (a redirect starts a new hop under the same request id).
#[derive(Debug, Clone)]
struct Hop {
    url: String,
    method: String,
    started: f64,
    /// The status of the redirect that ended this hop; `None` for the final hop.
    redirect_status: Option<u16>,
    request_headers: Vec<Header>,
    /// The redirect response that ended this hop.
    redirect_response: Option<ResponseSeen>,
}

/// A response as `responseReceived` (or a redirect's `redirectResponse`) described it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResponseSeen {
    pub(crate) status_text: String,
    pub(crate) protocol: Option<String>,
    pub(crate) mime_type: Option<String>,
    pub(crate) headers: Vec<Header>,
    pub(crate) timing: Option<ResourceTiming>,
}

/// DevTools' `ResourceTiming`: `request_time` in seconds on the event clock, every other field
/// in milliseconds after it, `-1` where the phase did not happen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResourceTiming {
    pub(crate) request_time: f64,
    pub(crate) dns: (f64, f64),
    pub(crate) connect: (f64, f64),
    pub(crate) ssl: (f64, f64),
    pub(crate) send: (f64, f64),
    pub(crate) receive_headers_end: f64,
}

impl ResourceTiming {
    /// HAR's phases for a hop sent at `started` and ended at `ended` (seconds, event clock).
    fn phases(&self, started: f64, ended: Option<f64>) -> RequestTiming {
        let span = |(start, end): (f64, f64)| {
            if start >= 0.0 && end >= start {
                round_ms(end - start)
            } else {
                -1.0
            }
        };
        let queued = ((self.request_time - started) * 1000.0).max(0.0);
        let first_phase = [self.dns.0, self.connect.0, self.send.0]
            .into_iter()
            .find(|t| *t >= 0.0)
            .unwrap_or(0.0);
        let send = span(self.send).max(0.0);
        let wait = if self.send.1 >= 0.0 {
            round_ms((self.receive_headers_end - self.send.1).max(0.0))
        } else {
            round_ms(self.receive_headers_end.max(0.0))
        };
        let receive = ended.map_or(0.0, |end| {
            round_ms(((end - self.request_time) * 1000.0 - self.receive_headers_end).max(0.0))
        });
        RequestTiming {
            blocked: round_ms(queued + first_phase),
            dns: span(self.dns),
            connect: span(self.connect),
            ssl: span(self.ssl),
            send,
            wait,
            receive,
        }
    }
}

/// Milliseconds to the microsecond.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Everything known about one request id.
#[derive(Debug, Clone, Default)]
struct Record {
    hops: Vec<Hop>,
    resource_type: Option<String>,
    /// How the final hop ended.
    status: Option<u16>,
    failure: Option<String>,
    ended: Option<f64>,
    encoded_bytes: Option<u64>,
    /// Finished, failed, or never to be waited for (WebSockets).
    done: bool,
    /// When the request last showed progress (sent, response headers, a chunk of body).
    last_progress: Option<Instant>,
    /// Whether the final hop's response headers arrived.
    responded: bool,
    /// Body bytes received so far (decoded), from `dataReceived`.
    bytes_received: u64,
    /// `Set-Cookie` lines of each response the request received, in order (one per hop that got
    /// a response), with the sequence number of when they were seen.
    set_cookies: Vec<(u64, Vec<String>)>,
    /// What made the browser send it (the asking script, or the naming document).
    initiator: Option<String>,
    initiator_type: Option<String>,
    /// The final hop's response.
    response: Option<ResponseSeen>,
}

impl Record {
    fn final_hop(&self) -> Option<&Hop> {
        self.hops.last()
    }
}

#[derive(Debug, Default)]
pub(crate) struct NetworkLog {
    records: HashMap<String, Record>,
    order: Vec<String>,
    /// Monotonic DevTools time of the first request, the zero of all timings.
    origin: Option<f64>,
    /// The latest DevTools time seen, for events that carry none.
    last_timestamp: Option<f64>,
    last_activity: Option<Instant>,
    max_requests: usize,
    dropped: bool,
    /// Requests from this index on were first seen after the page was hidden ...
    hidden_from: Option<usize>,
    /// ... and until this one, when it was shown again.
    shown_from: Option<usize>,
    /// Requests from this index on were first seen after the cookie banner was answered.
    answered_from: Option<usize>,
    /// URLs workers run from (see [`NetworkLog::handed_to_worker`]).
    worker_scripts: std::collections::HashSet<String>,
    /// Header bytes recorded so far, against [`MAX_HEADER_BYTES`].
    header_bytes: u64,
    headers_dropped: bool,
}

/// Worker script URLs remembered at most (a page could start workers without end).
const MAX_WORKER_SCRIPTS: usize = 1_000;

impl NetworkLog {
    pub(crate) fn new(max_requests: usize) -> Self {
        Self {
            max_requests,
            ..Self::default()
        }
    }

    fn touch(&mut self) {
        self.last_activity = Some(Instant::now());
    }

    fn saw_time(&mut self, timestamp: f64) {
        self.last_timestamp = Some(self.last_timestamp.map_or(timestamp, |t| t.max(timestamp)));
    }

    /// The record for `id`, created on first sight; `None` past the request limit.
    fn record(&mut self, id: &str) -> Option<&mut Record> {
        if !self.records.contains_key(id) {
            if self.order.len() >= self.max_requests {
                self.dropped = true;
                return None;
            }
            self.order.push(id.to_owned());
        }
        Some(self.records.entry(id.to_owned()).or_default())
    }

    /// `requestWillBeSent`. `redirect_status` is set when this event announces a redirect of the
    /// previous hop with the same id.
    pub(crate) fn request_will_be_sent(
        &mut self,
        id: &str,
        url: &str,
        method: &str,
        resource_type: Option<&str>,
        timestamp: f64,
        redirect_status: Option<u16>,
    ) {
        self.touch();
        self.origin = Some(self.origin.map_or(timestamp, |o| o.min(timestamp)));
        self.saw_time(timestamp);
        let Some(record) = self.record(id) else {
            return;
        };
        if let (Some(status), Some(previous)) = (redirect_status, record.hops.last_mut()) {
            previous.redirect_status = Some(status);
        }
        record.hops.push(Hop {
            url: url.to_owned(),
            method: method.to_owned(),
            started: timestamp,
            redirect_status: None,
            request_headers: Vec::new(),
            redirect_response: None,
        });
        record.last_progress = Some(Instant::now());
        record.responded = false;
        if record.resource_type.is_none() {
            record.resource_type = resource_type.map(str::to_owned);
        }
    }

    /// What made the browser send request `id` (kept from its first hop).
    pub(crate) fn set_initiator(&mut self, id: &str, initiator: &str) {
        if let Some(record) = self.records.get_mut(id)
            && record.initiator.is_none()
        {
            record.initiator = Some(initiator.chars().take(2_000).collect());
        }
    }

    /// `headers` within the scan's header budget: all of them, or none once it is spent.
    fn budgeted(&mut self, headers: Vec<Header>) -> Vec<Header> {
        let bytes: u64 = headers
            .iter()
            .map(|h| (h.name.len() + h.value.len()) as u64)
            .sum();
        if self.header_bytes + bytes > MAX_HEADER_BYTES {
            self.headers_dropped |= !headers.is_empty();
            return Vec::new();
        }
        self.header_bytes += bytes;
        headers
    }

    /// The details of the hop `requestWillBeSent` just started for `id`: the headers it sent,
    /// how it was initiated, and the redirect response that ended the hop before it, if any.
    pub(crate) fn hop_details(
        &mut self,
        id: &str,
        request_headers: Vec<Header>,
        initiator_type: Option<&str>,
        redirect_response: Option<ResponseSeen>,
    ) {
        let request_headers = self.budgeted(request_headers);
        let redirect_response = redirect_response.map(|mut seen| {
            seen.headers = self.budgeted(std::mem::take(&mut seen.headers));
            seen
        });
        let Some(record) = self.records.get_mut(id) else {
            return;
        };
        if record.initiator_type.is_none() {
            record.initiator_type = initiator_type.map(str::to_owned);
        }
        let hops = record.hops.len();
        if let Some(hop) = record.hops.last_mut() {
            hop.request_headers = request_headers;
        }
        if let (Some(seen), Some(previous)) = (
            redirect_response,
            hops.checked_sub(2).and_then(|i| record.hops.get_mut(i)),
        ) {
            previous.redirect_response = Some(seen);
        }
    }

    /// The headers each hop of request `id` really sent (from `requestWillBeSentExtraInfo`, the
    /// n-th for the n-th hop): they replace what the page's `requestWillBeSent` announced, which
    /// lacks what the network stack adds (`Cookie` above all).
    pub(crate) fn sent_headers(&mut self, id: &str, hops: Vec<Vec<Header>>) {
        for (index, headers) in hops.into_iter().enumerate() {
            let headers = self.budgeted(headers);
            if let Some(hop) = self
                .records
                .get_mut(id)
                .and_then(|record| record.hops.get_mut(index))
                && !headers.is_empty()
            {
                hop.request_headers = headers;
            }
        }
    }

    /// The final response of request `id`, as `responseReceived` described it.
    pub(crate) fn response_details(&mut self, id: &str, mut seen: ResponseSeen) {
        seen.headers = self.budgeted(std::mem::take(&mut seen.headers));
        if let Some(record) = self.record(id) {
            record.response = Some(seen);
        }
    }

    /// Whether some headers went unrecorded because the scan's budget was spent.
    pub(crate) fn hit_header_limit(&self) -> bool {
        self.headers_dropped
    }

    /// A WebSocket the page opened. It is recorded but never counts as in flight: a socket may
    /// stay open for the page's whole life.
    pub(crate) fn web_socket_created(&mut self, id: &str, url: &str) {
        self.touch();
        let started = self.last_timestamp.unwrap_or_default();
        let Some(record) = self.record(id) else {
            return;
        };
        record.hops.push(Hop {
            url: url.to_owned(),
            method: "GET".into(),
            started,
            redirect_status: None,
            request_headers: Vec::new(),
            redirect_response: None,
        });
        record.resource_type = Some("WebSocket".into());
        record.done = true;
    }

    /// The page's WebSocket `id` closed.
    pub(crate) fn web_socket_closed(&mut self, id: &str, timestamp: f64) {
        self.saw_time(timestamp);
        if let Some(record) = self.records.get_mut(id) {
            record.ended = Some(timestamp);
        }
    }

    pub(crate) fn web_socket_handshake(&mut self, id: &str, status: u16) {
        self.touch();
        if let Some(record) = self.record(id) {
            record.status = Some(status);
        }
    }

    pub(crate) fn response_received(&mut self, id: &str, status: u16, resource_type: &str) {
        self.touch();
        if let Some(record) = self.record(id) {
            record.status = Some(status);
            record
                .resource_type
                .get_or_insert_with(|| resource_type.to_owned());
            record.responded = true;
            record.last_progress = Some(Instant::now());
        }
    }

    /// A worker (dedicated, shared or service) runs from `url`. The page asked for its script,
    /// but the worker's own DevTools session reports how that request ends, so the page's events
    /// never will: from now on it holds nothing.
    pub(crate) fn handed_to_worker(&mut self, url: &str) {
        if self.worker_scripts.len() < MAX_WORKER_SCRIPTS {
            self.worker_scripts.insert(url.to_owned());
        }
    }

    fn is_worker_script(&self, record: &Record) -> bool {
        record
            .final_hop()
            .is_some_and(|hop| self.worker_scripts.contains(&hop.url))
    }

    /// `dataReceived`: a chunk of request `id`'s body arrived. Not activity of the page (a stream
    /// may trickle forever), only progress of that request.
    pub(crate) fn data_received(&mut self, id: &str, data_length: i64) {
        if let Some(record) = self.records.get_mut(id) {
            record.bytes_received = record
                .bytes_received
                .saturating_add(data_length.max(0) as u64);
            record.last_progress = Some(Instant::now());
        }
    }

    pub(crate) fn loading_finished(&mut self, id: &str, timestamp: f64, encoded_bytes: f64) {
        self.touch();
        self.saw_time(timestamp);
        if let Some(record) = self.record(id) {
            record.ended = Some(timestamp);
            record.encoded_bytes = Some(encoded_bytes.max(0.0) as u64);
            record.done = true;
        }
    }

    pub(crate) fn loading_failed(
        &mut self,
        id: &str,
        timestamp: f64,
        error: &str,
        resource_type: &str,
    ) {
        self.touch();
        self.saw_time(timestamp);
        if let Some(record) = self.record(id) {
            record.ended = Some(timestamp);
            record.failure = Some(error.to_owned());
            record
                .resource_type
                .get_or_insert_with(|| resource_type.to_owned());
            record.done = true;
        }
    }

    /// The `Set-Cookie` lines of the next response request `id` received (redirects included),
    /// seen as event number `seq`.
    pub(crate) fn set_cookie_header(&mut self, id: &str, seq: u64, lines: Vec<String>) {
        self.touch();
        if let Some(record) = self.record(id) {
            record.set_cookies.push((seq, lines));
        }
    }

    /// Requests sent and not yet finished or failed (the tests' view; waits use [`Self::holding`]).
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.records
            .values()
            .filter(|r| !r.hops.is_empty() && !r.done)
            .count()
    }

    /// Whether a request the page is waiting on is a script that has not answered: the case a
    /// worker started from it would explain (see [`NetworkLog::handed_to_worker`]).
    pub(crate) fn awaits_a_script(&self) -> bool {
        self.records.values().any(|r| {
            !r.hops.is_empty()
                && !r.done
                && !r.responded
                && r.resource_type.as_deref() == Some("Script")
                && !self.is_worker_script(r)
        })
    }

    /// Requests still open that a visitor's page is still waiting on, as of `now`: a document,
    /// script or style sheet that has not answered yet, or any other request that showed
    /// progress within `idle_after`. Requests open by design (event streams, media, beacons,
    /// WebSockets) never hold; neither does a long poll or a response whose body is idle or never
    /// read, once it has been silent for `idle_after`.
    pub(crate) fn holding(&self, now: Instant, idle_after: Duration) -> usize {
        self.records
            .values()
            .filter(|r| !r.hops.is_empty() && !r.done && !self.is_worker_script(r))
            .filter(|r| {
                let kind = r.resource_type.as_deref().unwrap_or("Other");
                if LONG_LIVED_TYPES.contains(&kind) {
                    return false;
                }
                if BLOCKING_TYPES.contains(&kind) && !r.responded {
                    return true;
                }
                r.last_progress
                    .is_some_and(|at| now.saturating_duration_since(at) < idle_after)
            })
            .count()
    }

    /// How long the requests first seen from index `from` on kept the network busy: from the
    /// first one's start to the last one's end. Requests open by design (event streams, media,
    /// beacons, WebSockets) and those still open do not count; `None` when none did.
    pub(crate) fn busy_from(&self, from: usize) -> Option<Duration> {
        let (first, last) = self
            .order
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.records.get(id))
            .filter(|r| {
                let kind = r.resource_type.as_deref().unwrap_or("Other");
                !LONG_LIVED_TYPES.contains(&kind) && kind != "WebSocket"
            })
            .filter_map(|r| Some((r.hops.first()?.started, r.ended?)))
            .fold(None, |span: Option<(f64, f64)>, (start, end)| {
                Some(span.map_or((start, end), |(a, b)| (a.min(start), b.max(end))))
            })?;
        Some(Duration::from_millis(
            ((last - first) * 1000.0).max(0.0).round() as u64,
        ))
    }

    /// Requests still open, in the order they started (WebSockets included).
    pub(crate) fn open_requests(&self, now: Instant) -> Vec<OpenRequest> {
        self.order
            .iter()
            .filter_map(|id| self.records.get(id))
            .filter(|r| {
                let socket = r.resource_type.as_deref() == Some("WebSocket");
                let socket_open = socket && r.failure.is_none() && r.ended.is_none();
                !r.hops.is_empty() && (!r.done || socket_open)
            })
            .filter_map(|r| {
                let hop = r.final_hop()?;
                Some(OpenRequest {
                    url: hop.url.clone(),
                    resource_type: r.resource_type.clone().unwrap_or_else(|| "Other".into()),
                    responded: r.responded || r.status.is_some(),
                    bytes_received: r.bytes_received,
                    idle_ms: r
                        .last_progress
                        .map_or(0, |at| now.saturating_duration_since(at).as_millis() as u64),
                })
            })
            .collect()
    }

    /// How request `id` ended: its final status, or the browser's error. `None` while it has not
    /// answered.
    pub(crate) fn outcome(&self, id: &str) -> Option<Result<u16, String>> {
        let record = self.records.get(id)?;
        if let Some(failure) = &record.failure {
            return Some(Err(failure.clone()));
        }
        record.status.map(Ok)
    }

    pub(crate) fn last_activity(&self) -> Option<Instant> {
        self.last_activity
    }

    pub(crate) fn hit_request_limit(&self) -> bool {
        self.dropped
    }

    /// The redirect chain of request `id` (the main document's navigation).
    pub(crate) fn chain(&self, id: &str) -> Vec<RedirectHop> {
        let Some(record) = self.records.get(id) else {
            return Vec::new();
        };
        let last = record.hops.len().saturating_sub(1);
        record
            .hops
            .iter()
            .enumerate()
            .map(|(i, hop)| RedirectHop {
                url: hop.url.clone(),
                status: if i == last {
                    record.status
                } else {
                    hop.redirect_status
                },
            })
            .collect()
    }

    /// Each `Set-Cookie` line with the URL of the response that carried it and when it was seen.
    /// The n-th response of a request belongs to its n-th hop.
    pub(crate) fn set_cookie_sources(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for record in self.order.iter().filter_map(|id| self.records.get(id)) {
            for (index, (seq, lines)) in record.set_cookies.iter().enumerate() {
                let Some(hop) = record.hops.get(index).or(record.final_hop()) else {
                    continue;
                };
                out.extend(
                    lines
                        .iter()
                        .map(|line| (hop.url.clone(), line.clone(), *seq)),
                );
            }
        }
        out
    }

    /// The first URL a request asked for (before any redirect).
    pub(crate) fn first_url(&self, id: &str) -> Option<String> {
        self.records.get(id)?.hops.first().map(|h| h.url.clone())
    }

    /// The cookie banner is being answered: requests seen from now on are marked `after_answer`.
    pub(crate) fn mark_answered(&mut self) {
        self.answered_from = Some(self.order.len());
    }

    /// The page is being hidden: requests seen from now on are marked `after_hide`.
    pub(crate) fn mark_hidden(&mut self) {
        self.hidden_from = Some(self.order.len());
        self.shown_from = None;
    }

    /// The page is shown again: requests seen from now on are not `after_hide` (the next page of
    /// a session).
    pub(crate) fn mark_shown(&mut self) {
        self.shown_from = Some(self.order.len());
    }

    /// How many requests have been seen so far: a mark to read later requests from.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// The hops of the requests first seen after the first `from`.
    pub(crate) fn requests_from(&self, from: usize, first_party_domain: &str) -> Vec<Request> {
        // Times count from the first of these requests: a page's own start, also when it is
        // one of several pages of a session.
        let origin = self
            .order
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.records.get(id)?.hops.first())
            .map(|hop| hop.started)
            .reduce(f64::min)
            .or(self.origin)
            .unwrap_or(0.0);
        let ms = |t: f64| ((t - origin) * 1000.0).max(0.0).round() as u64;
        let mut out = Vec::new();
        let later = self.order.get(from..).unwrap_or_default();
        let hidden = self.hidden_from.unwrap_or(usize::MAX)..self.shown_from.unwrap_or(usize::MAX);
        let answered_from = self.answered_from.unwrap_or(usize::MAX);
        for (index, record) in later
            .iter()
            .enumerate()
            .filter_map(|(i, id)| Some((from + i, self.records.get(id)?)))
        {
            let last = record.hops.len().saturating_sub(1);
            for (i, hop) in record.hops.iter().enumerate() {
                let is_final = i == last;
                let ended = if is_final {
                    record.ended
                } else {
                    record.hops.get(i + 1).map(|next| next.started)
                };
                let host = host_of(&hop.url);
                let seen = if is_final {
                    record.response.as_ref()
                } else {
                    hop.redirect_response.as_ref()
                };
                let body_bytes = (is_final && record.done && record.failure.is_none())
                    .then_some(record.bytes_received);
                out.push(Request {
                    party: party_of(&host, first_party_domain),
                    host,
                    url: hop.url.clone(),
                    method: hop.method.clone(),
                    resource_type: record
                        .resource_type
                        .clone()
                        .unwrap_or_else(|| "Other".into()),
                    status: if is_final {
                        record.status
                    } else {
                        hop.redirect_status
                    },
                    failure: if is_final {
                        record.failure.clone()
                    } else {
                        None
                    },
                    blocked: false,
                    started_ms: ms(hop.started),
                    duration_ms: ended
                        .map(|e| ((e - hop.started) * 1000.0).max(0.0).round() as u64),
                    encoded_bytes: if is_final { record.encoded_bytes } else { None },
                    after_hide: hidden.contains(&index),
                    after_answer: index >= answered_from,
                    initiator: record.initiator.clone(),
                    listed: None,
                    initiator_type: record.initiator_type.clone(),
                    request_headers: hop.request_headers.clone(),
                    response: seen.map(|seen| ResponseDetails {
                        status_text: seen.status_text.clone(),
                        protocol: seen.protocol.clone(),
                        mime_type: seen.mime_type.clone(),
                        headers: with_set_cookies(&seen.headers, record.set_cookies.get(i)),
                        body_bytes,
                    }),
                    timing: seen
                        .and_then(|seen| seen.timing)
                        .map(|timing| timing.phases(hop.started, ended)),
                });
            }
        }
        out
    }
}

/// Most `Set-Cookie` lines added to one response's recorded headers.
const MAX_SET_COOKIE_HEADERS: usize = 50;

/// A response's headers with its `Set-Cookie` lines (values redacted) added from the raw headers
/// when `responseReceived` left them out, as it does.
fn with_set_cookies(headers: &[Header], raw: Option<&(u64, Vec<String>)>) -> Vec<Header> {
    let mut headers = headers.to_vec();
    if headers.is_empty() || headers.iter().any(|h| h.name == "set-cookie") {
        return headers;
    }
    if let Some((_, lines)) = raw {
        headers.extend(
            lines
                .iter()
                .take(MAX_SET_COOKIE_HEADERS)
                .map(|line| Header {
                    name: "set-cookie".into(),
                    value: crate::capture::headers::redact("set-cookie", line.trim()),
                }),
        );
    }
    headers
}

/// The host of a URL, lowercased, without brackets; empty for URLs without one (`data:`).
pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_from_spans_the_later_requests_that_ended_and_ignores_streams() {
        let mut log = NetworkLog::new(100);
        let send = |log: &mut NetworkLog, id: &str, kind: &str, at: f64| {
            log.request_will_be_sent(id, "https://shop.example/x", "GET", Some(kind), at, None);
        };
        send(&mut log, "page", "Document", 1.0);
        log.loading_finished("page", 1.2, 10.0);
        assert_eq!(log.busy_from(1), None, "nothing after the mark");
        send(&mut log, "login", "Fetch", 2.0);
        log.loading_finished("login", 2.03, 10.0);
        send(&mut log, "stream", "EventSource", 2.04);
        send(&mut log, "products", "Fetch", 2.05);
        log.loading_failed("products", 2.09, "net::ERR_FAILED", "Fetch");
        send(&mut log, "poll", "XHR", 2.06);
        let busy = log.busy_from(1).expect("two requests ended");
        assert_eq!(
            busy.as_millis(),
            90,
            "from the login's start to the products' end"
        );
        assert_eq!(log.busy_from(0).map(|d| d.as_millis()), Some(1090));
    }

    #[test]
    fn events_in_any_order_make_one_complete_request() {
        let mut log = NetworkLog::new(100);
        log.loading_finished("1", 2.5, 1234.0);
        log.response_received("1", 200, "Script");
        log.request_will_be_sent(
            "1",
            "https://cdn.example.net/lib.js",
            "GET",
            Some("Script"),
            2.0,
            None,
        );
        log.request_will_be_sent(
            "0",
            "https://example.com/",
            "GET",
            Some("Document"),
            1.0,
            None,
        );
        assert_eq!(log.in_flight(), 1, "only the document is still loading");
        let requests = log.requests_from(0, "example.com");
        assert_eq!(requests.len(), 2);
        let lib = &requests[0];
        assert_eq!(lib.url, "https://cdn.example.net/lib.js");
        assert_eq!(lib.status, Some(200));
        assert_eq!(lib.started_ms, 1000);
        assert_eq!(lib.duration_ms, Some(500));
        assert_eq!(lib.encoded_bytes, Some(1234));
        assert_eq!(lib.party, crate::snapshot::Party::Third);
        assert_eq!(requests[1].party, crate::snapshot::Party::First);
    }

    #[test]
    fn redirects_become_hops_of_one_chain() {
        let mut log = NetworkLog::new(100);
        log.request_will_be_sent("nav", "http://a.test/", "GET", Some("Document"), 1.0, None);
        log.request_will_be_sent(
            "nav",
            "http://b.test/",
            "GET",
            Some("Document"),
            1.1,
            Some(301),
        );
        log.request_will_be_sent(
            "nav",
            "http://b.test/final",
            "GET",
            Some("Document"),
            1.2,
            Some(302),
        );
        log.response_received("nav", 200, "Document");
        log.loading_finished("nav", 1.3, 10.0);
        let chain = log.chain("nav");
        let urls: Vec<_> = chain.iter().map(|h| (h.url.as_str(), h.status)).collect();
        assert_eq!(
            urls,
            vec![
                ("http://a.test/", Some(301)),
                ("http://b.test/", Some(302)),
                ("http://b.test/final", Some(200))
            ]
        );
        assert_eq!(log.in_flight(), 0);
    }

    #[test]
    fn web_sockets_are_recorded_but_never_keep_the_network_busy() {
        let mut log = NetworkLog::new(100);
        log.request_will_be_sent("doc", "https://a.test/", "GET", Some("Document"), 1.0, None);
        log.loading_finished("doc", 1.2, 10.0);
        log.web_socket_created("ws", "wss://live.a.test/socket");
        log.web_socket_handshake("ws", 101);
        assert_eq!(log.in_flight(), 0);
        let ws = &log.requests_from(0, "a.test")[1];
        assert_eq!(
            (ws.resource_type.as_str(), ws.status, ws.started_ms),
            ("WebSocket", Some(101), 200)
        );
    }

    #[test]
    fn a_final_answer_that_arrives_before_its_redirect_still_lands_on_the_final_hop() {
        let mut log = NetworkLog::new(100);
        log.request_will_be_sent("nav", "http://a.test/", "GET", Some("Document"), 1.0, None);
        // The final hop's answer overtakes the event announcing the redirect.
        log.response_received("nav", 200, "Document");
        log.loading_finished("nav", 1.3, 10.0);
        log.request_will_be_sent(
            "nav",
            "http://b.test/",
            "GET",
            Some("Document"),
            1.1,
            Some(301),
        );
        let chain: Vec<_> = log
            .chain("nav")
            .into_iter()
            .map(|h| (h.url, h.status))
            .collect();
        assert_eq!(
            chain,
            vec![
                ("http://a.test/".into(), Some(301)),
                ("http://b.test/".into(), Some(200))
            ]
        );
        assert_eq!(log.in_flight(), 0);
        assert_eq!(log.outcome("nav"), Some(Ok(200)));
    }

    #[test]
    fn set_cookie_lines_belong_to_the_hop_whose_response_carried_them() {
        let mut log = NetworkLog::new(100);
        log.request_will_be_sent(
            "nav",
            "http://shop.test/",
            "GET",
            Some("Document"),
            1.0,
            None,
        );
        log.set_cookie_header("nav", 1, vec!["first=1".into()]);
        log.request_will_be_sent(
            "nav",
            "http://tracker.test/sync",
            "GET",
            Some("Document"),
            1.1,
            Some(302),
        );
        log.set_cookie_header("nav", 2, vec!["uid=1".into()]);
        log.request_will_be_sent(
            "nav",
            "http://shop.test/home",
            "GET",
            Some("Document"),
            1.2,
            Some(302),
        );
        let sources: Vec<(String, String)> = log
            .set_cookie_sources()
            .into_iter()
            .map(|(u, l, _)| (u, l))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("http://shop.test/".into(), "first=1".into()),
                ("http://tracker.test/sync".into(), "uid=1".into())
            ]
        );
    }

    #[test]
    fn request_limit_is_enforced_and_reported() {
        let mut log = NetworkLog::new(2);
        for i in 0..5 {
            log.request_will_be_sent(&i.to_string(), "http://a.test/x", "GET", None, 1.0, None);
        }
        assert_eq!(log.requests_from(0, "a.test").len(), 2);
        assert!(log.hit_request_limit());
    }
}
