//! DevTools messages the browser sent that chromiumoxide's protocol types could not parse.
//!
//! chromiumoxide's types are generated from one Chromium's protocol; a newer browser may send an
//! event with a renamed or added field, and such a message would be dropped without a trace. The
//! browser is launched with `surface_invalid_messages`, so every such message reaches the handler
//! pump, which hands it here. Each is counted under the DevTools session it belongs to, and a
//! scan takes its page's counts at capture: a method the scanner listens to becomes a
//! `capture_warnings` entry (the snapshot may have a hole there); others are logged only.
//!
//! One method is read here instead: Chromium 156's `Network.requestWillBeSentExtraInfo` (the
//! headers a request really sent, `Cookie` included) fails to parse as a whole, since its
//! `clientSecurityState` renamed a required field. Its request id and headers are all the scan
//! needs, so they are taken from the raw message (redacted at once) and kept for the session's
//! capture ([`UnparsedMessages::take_sent_headers`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

use crate::snapshot::{CaptureWarning, Header};

/// The method whose raw messages are read rather than counted.
const SENT_HEADERS_METHOD: &str = "Network.requestWillBeSentExtraInfo";

/// Requests per session whose sent headers are kept at most (a page could send without end).
const MAX_SENT_HEADERS: usize = 5_000;
/// Header bytes kept per session at most: what one scan records in all.
const MAX_SENT_BYTES_PER_SESSION: u64 = crate::capture::network::MAX_HEADER_BYTES;
/// Header bytes kept for all sessions together at most (sessions nobody takes, such as a frame's
/// or a failed scan's, wait for eviction).
const MAX_SENT_BYTES: u64 = 16 * MAX_SENT_BYTES_PER_SESSION;

/// The headers each hop of a request sent (the n-th entry is the n-th hop), by request id.
pub(crate) type SentHeaders = HashMap<String, Vec<Vec<Header>>>;

/// The DevTools events the scanner listens to (see `scan::events::subscribe`).
pub(crate) const LISTENED_METHODS: [&str; 21] = [
    "Network.requestWillBeSent",
    "Network.responseReceived",
    "Network.responseReceivedExtraInfo",
    "Network.loadingFinished",
    "Network.loadingFailed",
    "Network.webSocketCreated",
    "Network.webSocketHandshakeResponseReceived",
    "Network.webSocketClosed",
    "Network.dataReceived",
    "Page.loadEventFired",
    "Page.frameNavigated",
    "Page.navigatedWithinDocument",
    "Page.javascriptDialogOpening",
    "Inspector.targetCrashed",
    "Debugger.scriptParsed",
    "Debugger.paused",
    "Runtime.bindingCalled",
    "Runtime.consoleAPICalled",
    "Runtime.exceptionThrown",
    "Log.entryAdded",
    "Target.attachedToTarget",
];

/// Sessions tracked at most; past it the oldest counts are forgotten (scans that died before
/// capture never take theirs).
const MAX_SESSIONS: usize = 1_000;

/// Method names longer than this are cut (the browser is trusted less than that).
const MAX_METHOD_CHARS: usize = 100;

#[derive(Default)]
pub(crate) struct UnparsedMessages {
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    counts: HashMap<String, BTreeMap<String, u64>>,
    sent_headers: HashMap<String, SentHeaders>,
    /// Bytes of `sent_headers`, per session and in all.
    sent_bytes: HashMap<String, u64>,
    sent_bytes_total: u64,
    order: Vec<String>,
}

impl Sessions {
    /// Starts tracking `session` if it is new, forgetting the oldest past [`MAX_SESSIONS`].
    fn track(&mut self, session: &str) {
        if self.order.iter().any(|s| s == session) {
            return;
        }
        if self.order.len() >= MAX_SESSIONS {
            let oldest = self.order.remove(0);
            self.counts.remove(&oldest);
            self.forget_sent(&oldest);
        }
        self.order.push(session.to_owned());
    }

    fn forget_sent(&mut self, session: &str) -> SentHeaders {
        let bytes = self.sent_bytes.remove(session).unwrap_or_default();
        self.sent_bytes_total = self.sent_bytes_total.saturating_sub(bytes);
        self.sent_headers.remove(session).unwrap_or_default()
    }
}

/// The envelope of a DevTools message: all that is needed to file it.
#[derive(Deserialize)]
struct Envelope {
    method: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    #[serde(default)]
    params: Option<SentParams>,
}

/// The part of `requestWillBeSentExtraInfo` the scan uses.
#[derive(Deserialize)]
struct SentParams {
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    headers: Option<serde_json::Value>,
}

impl UnparsedMessages {
    /// Files one message that failed to parse.
    pub(crate) fn record(&self, raw: &str) {
        let envelope: Envelope = serde_json::from_str(raw).unwrap_or(Envelope {
            method: None,
            session_id: None,
            params: None,
        });
        if envelope.method.as_deref() == Some(SENT_HEADERS_METHOD)
            && let Some(SentParams {
                request_id: Some(request_id),
                headers: Some(headers),
            }) = envelope.params
        {
            let headers = crate::capture::headers::all_headers(&headers);
            let bytes: u64 = headers
                .iter()
                .map(|h| (h.name.len() + h.value.len()) as u64)
                .sum();
            let session = envelope.session_id.unwrap_or_default();
            let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            sessions.track(&session);
            let session_bytes = sessions
                .sent_bytes
                .get(&session)
                .copied()
                .unwrap_or_default();
            if session_bytes + bytes > MAX_SENT_BYTES_PER_SESSION
                || sessions.sent_bytes_total + bytes > MAX_SENT_BYTES
            {
                return;
            }
            let requests = sessions.sent_headers.entry(session.clone()).or_default();
            if requests.len() < MAX_SENT_HEADERS || requests.contains_key(&request_id) {
                requests.entry(request_id).or_default().push(headers);
                *sessions.sent_bytes.entry(session).or_default() += bytes;
                sessions.sent_bytes_total += bytes;
            }
            return;
        }
        let method: String = envelope
            .method
            .unwrap_or_else(|| "(not a DevTools message)".into())
            .chars()
            .take(MAX_METHOD_CHARS)
            .collect();
        let session = envelope.session_id.unwrap_or_default();
        tracing::debug!(%method, session = %session, "DevTools message the protocol types could not parse");
        let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        sessions.track(&session);
        *sessions
            .counts
            .entry(session)
            .or_default()
            .entry(method)
            .or_default() += 1;
    }

    /// The headers the requests of one session sent so far (and forgets them).
    pub(crate) fn take_sent_headers(&self, session: &str) -> SentHeaders {
        let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        sessions.forget_sent(session)
    }

    /// The warnings of one session so far (and forgets them): one per listened method that
    /// failed to parse, with its count.
    pub(crate) fn take(&self, session: &str) -> Vec<CaptureWarning> {
        let counts = {
            let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if !sessions.sent_headers.contains_key(session) {
                sessions.order.retain(|s| s != session);
            }
            sessions.counts.remove(session).unwrap_or_default()
        };
        let mut warnings = Vec::new();
        for (method, count) in counts {
            if LISTENED_METHODS.contains(&method.as_str()) {
                warnings.push(CaptureWarning {
                    kind: "devtools_event_unparsed".into(),
                    count,
                    example: method,
                });
            } else {
                tracing::debug!(%method, count, "unparsed DevTools events the scanner does not use");
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listened_methods_become_warnings_per_session_and_others_do_not() {
        let unparsed = UnparsedMessages::default();
        let raw = |method: &str, session: &str| {
            format!(r#"{{"method":"{method}","sessionId":"{session}","params":{{"bad":1}}}}"#)
        };
        unparsed.record(&raw("Network.requestWillBeSent", "A"));
        unparsed.record(&raw("Network.requestWillBeSent", "A"));
        unparsed.record(&raw("Network.requestWillBeSentExtraInfo", "A"));
        unparsed.record(&raw("Network.loadingFinished", "B"));
        unparsed.record("not json");
        let a = unparsed.take("A");
        assert_eq!(
            a,
            vec![CaptureWarning {
                kind: "devtools_event_unparsed".into(),
                count: 2,
                example: "Network.requestWillBeSent".into(),
            }]
        );
        assert!(unparsed.take("A").is_empty(), "taken once");
        assert_eq!(unparsed.take("B")[0].count, 1);
    }

    #[test]
    fn sent_headers_are_kept_per_hop_redacted_and_not_counted_as_unparsed() {
        let unparsed = UnparsedMessages::default();
        let sent = |id: &str, cookie: &str| {
            format!(
                r#"{{"method":"Network.requestWillBeSentExtraInfo","sessionId":"S","params":{{"requestId":"{id}","headers":{{"Cookie":"{cookie}","Accept":"*/*"}},"clientSecurityState":{{"localNetworkAccessRequestPolicy":"Allow"}}}}}}"#
            )
        };
        unparsed.record(&sent("1", "sid=s3cr3t-a"));
        unparsed.record(&sent("1", "sid=s3cr3t-b; x=s3cr3t-c"));
        unparsed.record(&sent("2", "z=s3cr3t-d"));
        assert!(unparsed.take("S").is_empty(), "read, not counted");
        let headers = unparsed.take_sent_headers("S");
        assert_eq!(headers["1"].len(), 2, "one entry per hop");
        assert_eq!(
            headers["1"][1][1],
            Header {
                name: "cookie".into(),
                value: "sid=[redacted]; x=[redacted]".into()
            }
        );
        assert!(!format!("{headers:?}").contains("s3cr3t"));
        assert!(unparsed.take_sent_headers("S").is_empty(), "taken once");
    }
}
