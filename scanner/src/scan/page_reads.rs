//! Reading the page after the wait: isolated-world evaluation, DOM, cookies, storage, screenshots.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::dom::GetOuterHtmlParams;
use chromiumoxide::cdp::browser_protocol::dom_storage::{GetDomStorageItemsParams, StorageId};
use chromiumoxide::cdp::browser_protocol::page::{
    self, CaptureScreenshotFormat, CaptureScreenshotParams, CreateIsolatedWorldParams, FrameTree,
    GetLayoutMetricsParams, SetWebLifecycleStateParams, SetWebLifecycleStateState,
};
use chromiumoxide::cdp::browser_protocol::storage::GetCookiesParams;
use chromiumoxide::cdp::js_protocol::runtime::{EvaluateParams, ExecutionContextId};

use crate::browser::LiveBrowser;
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use super::*;

/// Runs `call` with the per-call timeout, mapping both failure kinds to `ScanError`.
pub(super) async fn call<T>(
    during: &'static str,
    call: impl std::future::Future<Output = Result<T, chromiumoxide::error::CdpError>>,
) -> Result<T, ScanError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(ScanError::cdp),
        Err(_) => Err(ScanError::Timeout {
            seconds: CALL_TIMEOUT.as_secs(),
            during,
        }),
    }
}

/// The scan proper, inside a scan slot. The context is disposed whatever happens.
pub(super) async fn isolated_world(
    page: &Page,
    frame: &page::FrameId,
) -> Result<ExecutionContextId, ScanError> {
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
/// DOM APIs we read through; a promise is awaited. `None` when it threw.
pub(super) async fn evaluate(
    page: &Page,
    world: ExecutionContextId,
    expression: &str,
) -> Result<Option<serde_json::Value>, ScanError> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .context_id(world)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(ScanError::Protocol)?;
    let result = call("reading the page", page.execute(params)).await?.result;
    if result.exception_details.is_some() {
        return Ok(None);
    }
    Ok(result.result.value)
}

/// Scrolls through the page a viewport at a time down to `max_height` (or its end) and back to
/// the top, as a visitor reading it would, so content that loads when scrolled near (lazy images,
/// infinite lists, trackers fired on scroll depth) is requested. Resolves when back at the top.
pub(super) async fn scroll_through(
    page: &Page,
    frame: &page::FrameId,
    max_height: u32,
) -> Result<(), ScanError> {
    let world = isolated_world(page, frame).await?;
    let expression = format!(
        "(async () => {{ const pause = () => new Promise(r => setTimeout(r, 100)); \
         const end = () => Math.min(document.documentElement.scrollHeight, {max_height}); \
         for (let y = innerHeight; y < end(); y += innerHeight) {{ scrollTo(0, y); await pause(); }} \
         scrollTo(0, end()); await pause(); scrollTo(0, 0); return true; }})()"
    );
    evaluate(page, world, &expression).await?;
    Ok(())
}

/// Hides the page, as when the visitor switches to another tab or leaves, so what pages send
/// then (exit beacons on `visibilitychange` and `pagehide`) is seen; waits until nothing new has
/// been sent for a moment (at most [`HIDDEN_AT_MOST`]), then shows the page again.
pub(super) async fn hide_for_a_moment(page: &Page, recorder: &Mutex<Recorder>) {
    lock(recorder).network.mark_hidden();
    let lifecycle = |state| SetWebLifecycleStateParams::new(state);
    if call(
        "hiding the page",
        page.execute(lifecycle(SetWebLifecycleStateState::Frozen)),
    )
    .await
    .is_err()
    {
        return;
    }
    let hidden = Instant::now();
    loop {
        let last = lock(recorder).last_change.unwrap_or(hidden).max(hidden);
        if last.elapsed() >= HIDDEN_QUIET || hidden.elapsed() >= HIDDEN_AT_MOST {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    lock(recorder).network.mark_shown();
    if let Err(error) = call(
        "showing the page again",
        page.execute(lifecycle(SetWebLifecycleStateState::Active)),
    )
    .await
    {
        tracing::debug!(%error, "the page stays hidden");
    }
}

/// How long nothing new must be sent while the page is hidden.
const HIDDEN_QUIET: Duration = Duration::from_millis(100);
/// The longest the page stays hidden.
const HIDDEN_AT_MOST: Duration = Duration::from_millis(1_000);

pub(super) async fn evaluate_string(
    page: &Page,
    world: ExecutionContextId,
    expression: &str,
) -> Result<Option<String>, ScanError> {
    Ok(evaluate(page, world, expression)
        .await?
        .and_then(|v| v.as_str().map(str::to_owned)))
}

/// Asks the page's IAB TCF CMP (`__tcfapi`, in the page's own world) for its consent string.
/// Only an answer given at once counts; the page's code runs under a V8 time limit, and a CMP
/// that throws or answers nonsense reads as no CMP (the cookie may still tell).
pub(super) async fn tcf_from_cmp(page: &Page) -> Option<TcfConsent> {
    const ASK: &str = "(() => { let out = null; try { if (typeof window.__tcfapi === 'function') \
        window.__tcfapi('getTCData', 2, (d, ok) => { if (ok && d && typeof d.tcString === 'string') \
        out = [String(d.tcString).slice(0, 8192), String(d.eventStatus || '')]; }); } catch (e) {} \
        return out; })()";
    let params = EvaluateParams::builder()
        .expression(ASK)
        .return_by_value(true)
        .timeout(chromiumoxide::cdp::js_protocol::runtime::TimeDelta::new(
            500.0,
        ))
        .build()
        .ok()?;
    let result = call("asking the consent manager", page.execute(params))
        .await
        .ok()?
        .result;
    let value = result.result.value?;
    let tc = value.get(0)?.as_str()?;
    let status = value.get(1)?.as_str()?;
    crate::capture::consent_signals::decode_tc_string(tc, "tcfapi", Some(status != "cmpuishown"))
}

pub(super) async fn capture_dom(
    page: &Page,
    world: ExecutionContextId,
    max_bytes: usize,
) -> Result<DomCapture, ScanError> {
    // Truncate in the page so a 50 MB document never crosses the DevTools connection whole. The
    // limit is in UTF-16 units there; it is enforced in bytes here.
    let expression = format!(
        "(() => {{ const root = document.documentElement; const html = root ? root.outerHTML : ''; \
         const doctype = document.doctype ? '<!DOCTYPE ' + document.doctype.name + '>\\n' : ''; \
         return [new Blob([doctype, html]).size, (doctype + html).slice(0, {max_bytes})]; }})()"
    );
    let value = evaluate(page, world, &expression)
        .await?
        .unwrap_or_default();
    let mut size_bytes = value.get(0).and_then(|v| v.as_u64()).unwrap_or(0);
    let mut html = value
        .get(1)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    // Shadow roots (open and closed: consent banners live in them) are not in `outerHTML`. When
    // the light DOM leaves room, serialize again through DevTools with them, as declarative
    // shadow DOM (`<template shadowrootmode>`).
    if size_bytes <= (max_bytes / 2) as u64
        && let Some(with_shadows) = outer_html_with_shadow_roots(page, world).await
    {
        let doctype = html
            .split_inclusive('\n')
            .next()
            .filter(|l| l.starts_with("<!DOCTYPE"));
        let whole = format!("{}{with_shadows}", doctype.unwrap_or_default());
        size_bytes = whole.len() as u64;
        html = whole;
    }
    if html.len() > max_bytes {
        let mut cut = max_bytes;
        while !html.is_char_boundary(cut) {
            cut -= 1;
        }
        html.truncate(cut);
    }
    Ok(DomCapture {
        truncated: (html.len() as u64) < size_bytes,
        html,
        size_bytes,
    })
}

/// The document element's HTML with every shadow root in it, or `None` if DevTools would not
/// give it (the light-DOM capture stands then).
async fn outer_html_with_shadow_roots(page: &Page, world: ExecutionContextId) -> Option<String> {
    let root = EvaluateParams::builder()
        .expression("document.documentElement")
        .context_id(world)
        .build()
        .ok()?;
    let object = call("finding the document element", page.execute(root))
        .await
        .ok()?
        .result
        .result
        .object_id?;
    let params = GetOuterHtmlParams::builder()
        .object_id(object)
        .include_shadow_dom(true)
        .build();
    let html = call("serializing the DOM", page.execute(params))
        .await
        .ok()?
        .result
        .outer_html;
    Some(html)
}

/// Every cookie in the scan's browser context, from every domain the page touched.
pub(super) async fn browser_context_cookies(
    browser: &LiveBrowser,
    context: &BrowserContextId,
) -> Result<Vec<chromiumoxide::cdp::browser_protocol::network::Cookie>, ScanError> {
    let params = GetCookiesParams::builder()
        .browser_context_id(context.clone())
        .build();
    browser
        .with_browser(async |b| Ok(b.execute(params).await?.result.cookies))
        .await
}

pub(super) fn collect_frames(tree: &FrameTree, out: &mut HashMap<String, String>) {
    out.insert(tree.frame.id.inner().clone(), tree.frame.url.clone());
    for child in tree.child_frames.iter().flatten() {
        collect_frames(child, out);
    }
}

pub(super) async fn storage_keys(
    page: &Page,
    frame_urls: &HashMap<String, String>,
) -> Vec<StorageKeys> {
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
            let id = StorageId::builder()
                .security_origin(origin.clone())
                .is_local_storage(is_local)
                .build();
            let Ok(id) = id else { continue };
            let Ok(Ok(items)) = tokio::time::timeout(
                CALL_TIMEOUT,
                page.execute(GetDomStorageItemsParams::new(id)),
            )
            .await
            else {
                continue;
            };
            let mut keys: Vec<String> = items
                .result
                .entries
                .iter()
                .filter_map(|item| item.inner().first().cloned())
                .collect();
            if keys.is_empty() {
                continue;
            }
            keys.sort();
            out.push(StorageKeys {
                origin: origin.clone(),
                kind,
                keys,
            });
        }
    }
    out
}

pub(super) async fn full_page_screenshot(
    page: &Page,
    options: &ScanOptions,
) -> Result<(Vec<u8>, u32), ScanError> {
    let metrics = call(
        "measuring the page",
        page.execute(GetLayoutMetricsParams::default()),
    )
    .await?
    .result;
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

pub(super) fn decode_base64(data: &str) -> Result<Vec<u8>, ScanError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ScanError::Protocol(format!("screenshot is not base64: {e}")))
}

pub(super) fn screenshot_info(png: &[u8]) -> ScreenshotInfo {
    use sha2::Digest;
    let dimension = |at: usize| {
        png.get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    ScreenshotInfo {
        width: dimension(16),
        height: dimension(20),
        sha256: hex::encode(sha2::Sha256::digest(png)),
        size_bytes: png.len() as u64,
    }
}
