//! The network log of one scan, built from DevTools network events.
//!
//! chromiumoxide delivers each event type on its own stream, so a request's `loadingFinished` can
//! arrive before its `requestWillBeSent`. Records are keyed by request id and every event fills in
//! what it knows, in whatever order it comes.

use std::collections::HashMap;
use std::time::Instant;

use crate::party::party_of;
use crate::snapshot::{RedirectHop, Request};

/// One hop of one request (a redirect starts a new hop under the same request id).
#[derive(Debug, Clone, Default)]
struct Hop {
    url: Option<String>,
    method: Option<String>,
    resource_type: Option<String>,
    status: Option<u16>,
    failure: Option<String>,
    started: Option<f64>,
    ended: Option<f64>,
    encoded_bytes: Option<u64>,
    /// The request has been sent (we saw `requestWillBeSent`).
    sent: bool,
    /// The request has finished or failed (or was redirected).
    done: bool,
}

#[derive(Debug, Default)]
pub(crate) struct NetworkLog {
    /// Hops per request id, in order: earlier ones were redirected.
    hops: HashMap<String, Vec<Hop>>,
    order: Vec<String>,
    /// Monotonic DevTools time of the first request, the zero of all timings.
    origin: Option<f64>,
    /// The latest DevTools time seen, for events that carry none.
    last_timestamp: Option<f64>,
    last_activity: Option<Instant>,
    /// Set-Cookie lines by request id, from `responseReceivedExtraInfo`.
    set_cookie_headers: HashMap<String, Vec<String>>,
    max_requests: usize,
    dropped: bool,
}

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

    fn current(&mut self, id: &str) -> Option<&mut Hop> {
        if !self.hops.contains_key(id) {
            if self.order.len() >= self.max_requests {
                self.dropped = true;
                return None;
            }
            self.order.push(id.to_owned());
        }
        let hops = self.hops.entry(id.to_owned()).or_default();
        if hops.is_empty() {
            hops.push(Hop::default());
        }
        hops.last_mut()
    }

    /// `requestWillBeSent`. `redirect_status` is set when this event announces a redirect of an
    /// earlier hop with the same id.
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
        if let Some(status) = redirect_status {
            if let Some(hop) = self.current(id) {
                hop.status = Some(status);
                hop.ended = Some(timestamp);
                hop.done = true;
            }
            if let Some(hops) = self.hops.get_mut(id) {
                hops.push(Hop::default());
            }
        }
        let Some(hop) = self.current(id) else { return };
        // A hop already started means the events came out of order: the later hop is this one.
        if hop.sent
            && let Some(hops) = self.hops.get_mut(id)
        {
            hops.push(Hop::default());
        }
        let Some(hop) = self.current(id) else { return };
        hop.url = Some(url.to_owned());
        hop.method = Some(method.to_owned());
        hop.resource_type = resource_type
            .map(str::to_owned)
            .or(hop.resource_type.take());
        hop.started = Some(timestamp);
        hop.sent = true;
    }

    /// A WebSocket the page opened. It is recorded but never counts as in flight: a socket may
    /// stay open for the page's whole life.
    pub(crate) fn web_socket_created(&mut self, id: &str, url: &str) {
        self.touch();
        let started = self.last_timestamp;
        if let Some(hop) = self.current(id) {
            hop.url = Some(url.to_owned());
            hop.method = Some("GET".into());
            hop.resource_type = Some("WebSocket".into());
            hop.started = started;
            hop.sent = true;
            hop.done = true;
        }
    }

    pub(crate) fn web_socket_handshake(&mut self, id: &str, status: u16) {
        self.touch();
        if let Some(hop) = self.current(id) {
            hop.status = Some(status);
        }
    }

    pub(crate) fn response_received(&mut self, id: &str, status: u16, resource_type: &str) {
        self.touch();
        if let Some(hop) = self.current(id) {
            hop.status = Some(status);
            hop.resource_type
                .get_or_insert_with(|| resource_type.to_owned());
        }
    }

    pub(crate) fn loading_finished(&mut self, id: &str, timestamp: f64, encoded_bytes: f64) {
        self.touch();
        self.saw_time(timestamp);
        if let Some(hop) = self.current(id) {
            hop.ended = Some(timestamp);
            hop.encoded_bytes = Some(encoded_bytes.max(0.0) as u64);
            hop.done = true;
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
        if let Some(hop) = self.current(id) {
            hop.ended = Some(timestamp);
            hop.failure = Some(error.to_owned());
            hop.resource_type
                .get_or_insert_with(|| resource_type.to_owned());
            hop.done = true;
        }
    }

    pub(crate) fn set_cookie_header(&mut self, id: &str, lines: Vec<String>) {
        self.touch();
        self.set_cookie_headers
            .entry(id.to_owned())
            .or_default()
            .extend(lines);
    }

    /// Requests sent and not yet finished or failed.
    pub(crate) fn in_flight(&self) -> usize {
        self.hops
            .values()
            .filter_map(|hops| hops.last())
            .filter(|hop| hop.sent && !hop.done)
            .count()
    }

    /// How request `id` ended: its final status, or the browser's error. `None` while it has not
    /// answered (a redirect hop is not an answer).
    pub(crate) fn outcome(&self, id: &str) -> Option<Result<u16, String>> {
        let hop = self.hops.get(id)?.last()?;
        if let Some(failure) = &hop.failure {
            return Some(Err(failure.clone()));
        }
        hop.status.map(Ok)
    }

    pub(crate) fn last_activity(&self) -> Option<Instant> {
        self.last_activity
    }

    pub(crate) fn hit_request_limit(&self) -> bool {
        self.dropped
    }

    /// The redirect chain of request `id` (the main document's navigation).
    pub(crate) fn chain(&self, id: &str) -> Vec<RedirectHop> {
        self.hops
            .get(id)
            .map(|hops| {
                hops.iter()
                    .filter_map(|hop| {
                        Some(RedirectHop {
                            url: hop.url.clone()?,
                            status: hop.status,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The URL of the response that carried each Set-Cookie line.
    pub(crate) fn set_cookie_sources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for id in &self.order {
            let Some(lines) = self.set_cookie_headers.get(id) else {
                continue;
            };
            // The header belongs to the hop that received a response; for a redirect hop the
            // extra info arrives in order too, so attribute to the last hop with a status.
            let url = self.hops.get(id).and_then(|hops| {
                hops.iter()
                    .rev()
                    .find(|h| h.status.is_some())
                    .or(hops.last())?
                    .url
                    .clone()
            });
            if let Some(url) = url {
                out.extend(lines.iter().map(|line| (url.clone(), line.clone())));
            }
        }
        out
    }

    /// Every request hop, in the order requests were first seen.
    pub(crate) fn requests(&self, first_party_domain: &str) -> Vec<Request> {
        let origin = self.origin.unwrap_or(0.0);
        let ms = |t: f64| ((t - origin) * 1000.0).max(0.0).round() as u64;
        let mut out = Vec::new();
        for id in &self.order {
            for hop in self.hops.get(id).into_iter().flatten() {
                let Some(url) = hop.url.clone() else { continue };
                let host = host_of(&url);
                out.push(Request {
                    party: party_of(&host, first_party_domain),
                    host,
                    method: hop.method.clone().unwrap_or_else(|| "GET".into()),
                    resource_type: hop.resource_type.clone().unwrap_or_else(|| "Other".into()),
                    status: hop.status,
                    failure: hop.failure.clone(),
                    blocked: false,
                    started_ms: hop.started.map(ms).unwrap_or(0),
                    duration_ms: match (hop.started, hop.ended) {
                        (Some(s), Some(e)) => Some(((e - s) * 1000.0).max(0.0).round() as u64),
                        _ => None,
                    },
                    encoded_bytes: hop.encoded_bytes,
                    url,
                });
            }
        }
        out
    }
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
        let requests = log.requests("example.com");
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
        let ws = &log.requests("a.test")[1];
        assert_eq!(
            (ws.resource_type.as_str(), ws.status, ws.started_ms),
            ("WebSocket", Some(101), 200)
        );
    }

    #[test]
    fn request_limit_is_enforced_and_reported() {
        let mut log = NetworkLog::new(2);
        for i in 0..5 {
            log.request_will_be_sent(&i.to_string(), "http://a.test/x", "GET", None, 1.0, None);
        }
        assert_eq!(log.requests("a.test").len(), 2);
        assert!(log.hit_request_limit());
    }
}
