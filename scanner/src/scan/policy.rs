//! Following links to the site's privacy, cookie and terms pages and keeping their text.

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::network::EventResponseReceived;
use chromiumoxide::cdp::browser_protocol::page::{EventLoadEventFired, NavigateParams};
use chromiumoxide::cdp::js_protocol::runtime::ExecutionContextId;
use futures::StreamExt;

use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::snapshot::*;

use super::*;

pub(super) async fn read_policy_pages(
    page: &Page,
    world: ExecutionContextId,
    options: &ScanOptions,
    budget: Budget,
) -> Vec<PolicyPage> {
    let Ok(Some(links)) = evaluate(page, world, POLICY_LINKS_JS).await else {
        return Vec::new();
    };
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
            Some((
                kind,
                l.get("url")?.as_str()?.to_owned(),
                l.get("text")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut pages = Vec::new();
    for (kind, url, link_text) in links {
        let mut entry = PolicyPage {
            kind,
            url: url.clone(),
            link_text,
            status: None,
            text: String::new(),
            truncated: false,
            error: None,
        };
        // Each page gets its share of what the scan's budget can spare after capture.
        let allowed = POLICY_PAGE_TIMEOUT.min(budget.spare());
        if allowed.is_zero() {
            entry.error = Some("skipped: the scan's time budget was spent".into());
            pages.push(entry);
            continue;
        }
        match tokio::time::timeout(allowed, policy_text(page, &url, options)).await {
            Ok(Ok((status, text, truncated))) => {
                entry.status = status;
                entry.text = text;
                entry.truncated = truncated;
            }
            Ok(Err(error)) => entry.error = Some(error.to_string()),
            Err(_) => entry.error = Some(format!("timed out after {} s", allowed.as_secs())),
        }
        pages.push(entry);
    }
    pages
}

/// Loads a policy page in the scan's own tab (after the capture) and reads its visible text.
pub(super) async fn policy_text(
    page: &Page,
    url: &str,
    options: &ScanOptions,
) -> Result<(Option<u16>, String, bool), ScanError> {
    let mut responses = page
        .event_listener::<EventResponseReceived>()
        .await
        .map_err(ScanError::cdp)?;
    let mut loads = page
        .event_listener::<EventLoadEventFired>()
        .await
        .map_err(ScanError::cdp)?;
    let nav = page
        .execute(NavigateParams::new(url.to_owned()))
        .await
        .map_err(ScanError::cdp)?
        .result;
    if let Some(error) = nav.error_text {
        return Err(ScanError::Unreachable {
            url: url.to_owned(),
            reason: error,
        });
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
    let text = evaluate_string(page, world, "document.body ? document.body.innerText : ''")
        .await?
        .unwrap_or_default();
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
