//! A scan session: a fresh browser context behind its own egress guard, one tab, and the recorder
//! fed by the tab's events. Disposed of whatever happens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, EventDownloadWillBegin, SetDownloadBehaviorBehavior,
    SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::page::{DialogType, HandleJavaScriptDialogParams};
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::cdp::js_protocol::debugger::{self};
use futures::StreamExt;

use crate::browser::LiveBrowser;
use crate::capture::network::NetworkLog;
use crate::egress::GuardProxy;
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use super::*;

/// Everything a scan works with inside its slot: the browser, its own context behind its own
/// guard, the tab, and the recorder fed by the tab's events.
pub(super) struct Session<'a> {
    pub(super) browser: &'a LiveBrowser,
    pub(super) context: BrowserContextId,
    pub(super) guard: GuardProxy,
    pub(super) page: Page,
    pub(super) recorder: Arc<Mutex<Recorder>>,
    pub(super) binding: String,
    pub(super) budget: Budget,
}

/// Opens a session for `target`, runs `body` in it and disposes of the context whatever happens.
pub(super) async fn with_session<T>(
    browser: &LiveBrowser,
    target: &url::Url,
    options: &ScanOptions,
    budget: Budget,
    body: impl AsyncFnOnce(&Session<'_>) -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    let guard = GuardProxy::start(options.egress.clone(), options.limits.max_transfer_bytes)
        .await
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot start the egress guard: {e}")))?;
    let host = target.host_str().unwrap_or_default().to_owned();
    let port = target.port_or_known_default().unwrap_or(80);
    if let Err(refusal) = guard.destinations(&host, port).await {
        return Err(match refusal {
            crate::egress::Refusal::Unresolvable { reason, .. } => ScanError::Unreachable {
                url: target.to_string(),
                reason: format!("cannot resolve {host}: {reason}"),
            },
            other => ScanError::Refused {
                url: target.to_string(),
                reason: other.to_string(),
            },
        });
    }
    in_new_context(browser, guard, options, budget, body).await
}

/// A fresh context for a document that needs nothing from the network: its guard relays not a
/// single byte, so nothing the document names can be fetched.
pub(super) async fn with_offline_session<T>(
    browser: &LiveBrowser,
    options: &ScanOptions,
    budget: Budget,
    body: impl AsyncFnOnce(&Session<'_>) -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    let guard = GuardProxy::start(crate::egress::EgressPolicy::public_only(), 0)
        .await
        .map_err(|e| ScanError::BrowserLaunch(format!("cannot start the egress guard: {e}")))?;
    in_new_context(browser, guard, options, budget, body).await
}

async fn in_new_context<T>(
    browser: &LiveBrowser,
    guard: GuardProxy,
    options: &ScanOptions,
    budget: Budget,
    body: impl AsyncFnOnce(&Session<'_>) -> Result<T, ScanError>,
) -> Result<T, ScanError> {
    let context = browser.create_context(&guard).await?;
    let result = in_context(browser, context.clone(), guard, options, budget, body).await;
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

pub(super) async fn in_context<T>(
    browser: &LiveBrowser,
    context: BrowserContextId,
    guard: GuardProxy,
    options: &ScanOptions,
    budget: Budget,
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
    // The page's workers report their requests elsewhere; follow them (see `worker_tap`). A tap
    // that cannot start is a capture warning, not a failed scan. Set up beside the page's own
    // event streams, before anything loads.
    let (streams, tap) = tokio::join!(
        subscribe(&page),
        super::worker_tap::start(super::worker_tap::TapTarget {
            browser_ws_url: browser.ws_url().to_owned(),
            page_target_id: page.target_id().inner().clone(),
            context_id: context.inner().clone(),
            recorder: recorder.clone(),
            binding: binding.clone(),
            user_agent_override: super::visitor::user_agent_override_json(
                options,
                &options.profile.presentation(browser.version()),
            ),
        })
    );
    let streams = streams?;
    let _worker_tap = match tap {
        Ok(tap) => Some(tap),
        Err(error) => {
            tracing::warn!(%error, "the scan cannot follow the page's workers");
            lock(&recorder).worker_tap_error = Some(error.to_string());
            None
        }
    };
    // Dropped with this function's future, whatever ends it.
    let _pump = {
        let recorder = recorder.clone();
        let page = page.clone();
        let binding = binding.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut events = futures::stream::select_all(streams);
            while let Some(event) = events.next().await {
                match &event {
                    // A dialog blocks the page until answered: dismiss it at once.
                    Event::Dialog(dialog) => {
                        // Dismiss, except "leave this page?": the scan does want to leave.
                        let leave = dialog.r#type == DialogType::Beforeunload;
                        let page = page.clone();
                        tokio::spawn(async move {
                            let _ = page.execute(HandleJavaScriptDialogParams::new(leave)).await;
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
        }))
    };
    let _download_pump = {
        let recorder = recorder.clone();
        AbortOnDrop(tokio::spawn(async move {
            let mut downloads = downloads;
            while let Some(e) = downloads.next().await {
                let mut r = lock(&recorder);
                if r.downloads.len() >= MAX_DOWNLOADS {
                    r.truncated.insert("downloads", MAX_DOWNLOADS);
                    continue;
                }
                r.downloads.push((
                    e.frame_id.inner().clone(),
                    Download {
                        url: e.url.clone(),
                        suggested_filename: e.suggested_filename.clone(),
                    },
                ));
            }
        }))
    };
    let crash_watch = recorder.clone();
    let session = Session {
        browser,
        context,
        guard,
        page,
        recorder,
        binding,
        budget,
    };
    // A crashed renderer answers nothing more: whatever the scan is waiting for (the page to
    // load, a capture call), it ends now with the crash, not with a timeout later.
    let crashed = async {
        while !lock(&crash_watch).crashed {
            tokio::time::sleep(super::POLL).await;
        }
    };
    let result = tokio::select! {
        result = tokio::time::timeout_at(budget.deadline().into(), body(&session)) => match result {
            Ok(result) => result,
            Err(_) => Err(ScanError::Timeout {
                seconds: options.scan_timeout.as_secs(),
                during: "for the whole scan",
            }),
        },
        () = crashed => Err(ScanError::RendererCrashed),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), session.page.close()).await;
    result
}

pub(super) fn rand_bytes() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = seed ^ (std::process::id() as u128) << 64;
    bytes.copy_from_slice(&mixed.to_le_bytes()[..8]);
    bytes
}

/// A task that stops when its handle is dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
