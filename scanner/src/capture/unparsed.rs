//! DevTools messages the browser sent that chromiumoxide's protocol types could not parse.
//!
//! chromiumoxide's types are generated from one Chromium's protocol; a newer browser may send an
//! event with a renamed or added field, and such a message would be dropped without a trace. The
//! browser is launched with `surface_invalid_messages`, so every such message reaches the handler
//! pump, which hands it here. Each is counted under the DevTools session it belongs to, and a
//! scan takes its page's counts at capture: a method the scanner listens to becomes a
//! `capture_warnings` entry (the snapshot may have a hole there); others are logged only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

use crate::snapshot::CaptureWarning;

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
    order: Vec<String>,
}

/// The envelope of a DevTools message: all that is needed to file it.
#[derive(Deserialize)]
struct Envelope {
    method: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

impl UnparsedMessages {
    /// Files one message that failed to parse.
    pub(crate) fn record(&self, raw: &str) {
        let envelope: Envelope = serde_json::from_str(raw).unwrap_or(Envelope {
            method: None,
            session_id: None,
        });
        let method: String = envelope
            .method
            .unwrap_or_else(|| "(not a DevTools message)".into())
            .chars()
            .take(MAX_METHOD_CHARS)
            .collect();
        let session = envelope.session_id.unwrap_or_default();
        tracing::debug!(%method, session = %session, "DevTools message the protocol types could not parse");
        let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !sessions.counts.contains_key(&session) {
            if sessions.order.len() >= MAX_SESSIONS {
                let oldest = sessions.order.remove(0);
                sessions.counts.remove(&oldest);
            }
            sessions.order.push(session.clone());
        }
        *sessions
            .counts
            .entry(session)
            .or_default()
            .entry(method)
            .or_default() += 1;
    }

    /// The warnings of one session so far (and forgets them): one per listened method that
    /// failed to parse, with its count.
    pub(crate) fn take(&self, session: &str) -> Vec<CaptureWarning> {
        let counts = {
            let mut sessions = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            sessions.order.retain(|s| s != session);
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
}
