//! Navigating to the target and waiting until the page has loaded and settled.

use std::sync::Mutex;
use std::time::Instant;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::{self, NavigateParams};
use chromiumoxide::cdp::browser_protocol::target::GetTargetsParams;

use crate::egress::GuardProxy;
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use super::*;

/// Starts the navigation and waits until the main document has answered (or failed). The
/// DevTools `Page.navigate` call itself may not return before the page has loaded, so the answer
/// is read from the network events instead. Returns the main document's request id.
pub(super) async fn navigate(
    page: &Page,
    recorder: &Mutex<Recorder>,
    guard: &GuardProxy,
    target: &url::Url,
    nav_started: Instant,
    options: &ScanOptions,
    budget: Budget,
) -> Result<String, ScanError> {
    let mut navigation = Some({
        let page = page.clone();
        let url = target.to_string();
        tokio::spawn(async move { page.execute(NavigateParams::new(url)).await })
    });
    let deadline = budget.wait_until(nav_started, options.load_timeout);
    let outcome = loop {
        // The call's own answer matters only when it reports an error (a bad certificate, a
        // refused connection); success is read from the network events below.
        if let Some(finished) = navigation.take_if(|n| n.is_finished())
            && let Ok(Ok(response)) = finished.await
            && let Some(error) = response.result.error_text.as_deref()
        {
            break Err(navigation_error(target, error, guard));
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
                seconds: nav_started.elapsed().as_secs_f64().round() as u64,
                during: "waiting for the page to respond",
            });
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(navigation) = navigation.filter(|_| outcome.is_err()) {
        navigation.abort();
    }
    outcome
}

/// Whether the wait scrolls through the page after `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scroll {
    /// As a visitor reading it would (the first wait of a page capture).
    ThroughPage,
    /// Leave the page where it is (waits after an answer or a step, the bare baseline).
    Stay,
}

pub(super) struct Waited {
    pub(super) load_ms: Option<u64>,
    pub(super) network_quiet_ms: Option<u64>,
    pub(super) settle: Settle,
    pub(super) limits_hit: Vec<LimitHit>,
}

/// Waits for the `load` event, then until the page settles the way a visitor's page does: at
/// least the minimum dwell after `load`, nothing new (request, socket, script, frame, cookie
/// write) for the quiet period, and no request open that the page is still waiting on
/// ([`NetworkLog::holding`](crate::capture::network::NetworkLog::holding)): event streams, long
/// polls, sockets and unread bodies do not hold it. Neither wait is fatal when it reaches its cap:
/// what has loaded is captured and the limit is reported.
pub(super) async fn wait_for_load_and_quiet(
    session: &Session<'_>,
    nav_started: Instant,
    options: &ScanOptions,
    scroll: Scroll,
) -> Result<Waited, ScanError> {
    let recorder: &Mutex<Recorder> = &session.recorder;
    let budget = session.budget;
    let mut limits_hit = Vec::new();
    let load_deadline = budget.wait_until(nav_started, options.load_timeout);
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
            limits_hit.push(LimitHit::LoadTimeout {
                after_ms: load_deadline.duration_since(nav_started).as_millis() as u64,
            });
            break None;
        }
        tokio::time::sleep(POLL).await;
    };
    // Scrolling through the page runs during the dwell; what it loads is activity like any other.
    // The capture must not start mid-scroll: the wait ends only once it is back at the top.
    let scrolling = match scroll {
        Scroll::ThroughPage if load_ms.is_some() => {
            let page = session.page.clone();
            let frame = page::FrameId::new(page.target_id().inner().clone());
            let max_height = options.limits.max_full_page_height;
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(error) = scroll_through(&page, &frame, max_height).await {
                    tracing::debug!(%error, "could not scroll through the page");
                }
            })))
        }
        _ => None,
    };
    let settle_from = Instant::now();
    let dwell_until = settle_from + options.min_dwell;
    let cap = budget.wait_until(settle_from, options.load_timeout);
    let since_start = |at: Instant| at.duration_since(nav_started).as_millis() as u64;
    let mut workers_looked_up: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let awaits_a_script = lock(recorder).network.awaits_a_script();
        if awaits_a_script && workers_looked_up.is_none_or(|at| at.elapsed() >= WORKER_LOOKUP_EVERY)
        {
            workers_looked_up = Some(now);
            note_worker_scripts(session).await;
        }
        {
            let r = lock(recorder);
            if r.crashed {
                return Err(ScanError::RendererCrashed);
            }
            let last_change = r.last_change.map_or(settle_from, |t| t.max(settle_from));
            let quiet_at = last_change + options.quiet_period;
            let scrolled = scrolling.as_ref().is_none_or(|s| s.0.is_finished());
            if now >= dwell_until
                && now >= quiet_at
                && scrolled
                && r.network.holding(now, options.quiet_period) == 0
            {
                let reason = if quiet_at <= dwell_until {
                    SettleReason::Dwell
                } else {
                    SettleReason::Quiet
                };
                return Ok(Waited {
                    load_ms,
                    network_quiet_ms: Some(since_start(now)),
                    settle: settle(&r, reason, since_start(now), now),
                    limits_hit,
                });
            }
            if now >= cap {
                limits_hit.push(LimitHit::NetworkNeverQuiet {
                    after_ms: cap.duration_since(settle_from).as_millis() as u64,
                });
                return Ok(Waited {
                    load_ms,
                    network_quiet_ms: None,
                    settle: settle(&r, SettleReason::Cap, since_start(now), now),
                    limits_hit,
                });
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How often the wait asks the browser which workers run, while a script request is open.
const WORKER_LOOKUP_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Notes the URLs of the workers running in the scan's browser context. Dedicated and service
/// workers are announced to the page (`Target.attachedToTarget`); shared workers are not, so the
/// browser's target list is asked. A failed lookup changes nothing.
async fn note_worker_scripts(session: &Session<'_>) {
    let Ok(Ok(answer)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        session.page.execute(GetTargetsParams::default()),
    )
    .await
    else {
        return;
    };
    let mut r = lock(&session.recorder);
    for info in &answer.result.target_infos {
        let ours = info.browser_context_id.as_ref() == Some(&session.context);
        if ours && info.r#type.ends_with("worker") {
            r.network.handed_to_worker(&info.url);
        }
    }
}

fn settle(recorder: &Recorder, reason: SettleReason, after_ms: u64, now: Instant) -> Settle {
    let mut open_requests = recorder.network.open_requests(now);
    open_requests.truncate(MAX_OPEN_REQUESTS);
    Settle {
        reason,
        after_ms,
        open_requests,
    }
}

pub(super) fn navigation_error(target: &url::Url, error: &str, guard: &GuardProxy) -> ScanError {
    let url = target.to_string();
    let host = target.host_str().unwrap_or_default();
    if let Some(blocked) = guard
        .blocked()
        .into_iter()
        .find(|b| b.host.trim_matches(['[', ']']) == host.trim_matches(['[', ']']))
    {
        return ScanError::Refused {
            url,
            reason: blocked.reason,
        };
    }
    let reason = error.to_owned();
    if error.contains("CERT") || error.contains("SSL") {
        ScanError::Tls { url, reason }
    } else if error.contains("TIMED_OUT") {
        ScanError::Timeout {
            seconds: 0,
            during: "connecting to the site",
        }
    } else {
        ScanError::Unreachable { url, reason }
    }
}

/// A request failed because the guard refused its connection when the guard refused its host and
/// port and the browser reports a proxy-level failure for it.
pub(super) fn mark_blocked(
    mut requests: Vec<Request>,
    blocked: &[BlockedConnection],
) -> Vec<Request> {
    for request in &mut requests {
        // A refused WebSocket never gets a status and reports no network error.
        let unanswered_socket = request.resource_type == "WebSocket" && request.status.is_none();
        let proxy_failure = request
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("SOCKS") || f.contains("PROXY") || f.contains("TUNNEL"));
        if !(unanswered_socket || proxy_failure) {
            continue;
        }
        let Ok(url) = url::Url::parse(&request.url) else {
            continue;
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let host = request.host.as_str();
        request.blocked = blocked
            .iter()
            .any(|b| b.port == port && b.host.trim_matches(['[', ']']).eq_ignore_ascii_case(host));
    }
    requests
}
