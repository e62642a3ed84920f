//! The scan proper: instrument the tab, navigate, wait, capture, assemble the snapshot.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chromiumoxide::cdp::browser_protocol::dom_storage::{self};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::inspector::{self};
use chromiumoxide::cdp::browser_protocol::log::{self};
use chromiumoxide::cdp::browser_protocol::network::{self, SetUserAgentOverrideParams};
use chromiumoxide::cdp::browser_protocol::page::{
    self, AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat, CaptureScreenshotParams,
    GetFrameTreeParams,
};
use chromiumoxide::cdp::js_protocol::debugger::{self, GetScriptSourceParams};
use chromiumoxide::cdp::js_protocol::runtime::{self, AddBindingParams};

use crate::capture::cookies::{self, CookieWrite};
use crate::capture::network::host_of;
use crate::capture::scripts::{self};
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::party::registrable_domain;
use crate::snapshot::*;

use super::*;

pub(super) async fn drive(
    session: &Session<'_>,
    target: &url::Url,
    options: &ScanOptions,
    progress: &(dyn Fn(Stage) + Send + Sync),
    started: Instant,
) -> Result<ScanOutput, ScanError> {
    let Session {
        browser,
        context,
        guard,
        page,
        recorder,
        binding,
    } = session;
    let started_at = now_rfc3339();
    // Domains and instrumentation, all before the first byte of the site arrives.
    call(
        "enabling page events",
        page.execute(page::EnableParams::default()),
    )
    .await?;
    call(
        "enabling crash events",
        page.execute(inspector::EnableParams::default()),
    )
    .await?;
    call(
        "enabling network events",
        page.execute(network::EnableParams::default()),
    )
    .await?;
    call(
        "enabling runtime events",
        page.execute(runtime::EnableParams::default()),
    )
    .await?;
    call(
        "enabling log events",
        page.execute(log::EnableParams::default()),
    )
    .await?;
    call(
        "enabling storage",
        page.execute(dom_storage::EnableParams::default()),
    )
    .await?;
    call(
        "enabling the debugger",
        page.execute(debugger::EnableParams::default()),
    )
    .await?;
    // A hostile `debugger;` statement must not pause the page.
    call(
        "disabling pauses",
        page.execute(debugger::SetSkipAllPausesParams::new(true)),
    )
    .await?;
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
        call(
            "setting the user agent",
            page.execute(SetUserAgentOverrideParams::new(user_agent.clone())),
        )
        .await?;
    }
    call(
        "adding the cookie binding",
        page.execute(AddBindingParams::new(binding)),
    )
    .await?;
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
    let Waited {
        load_ms,
        network_quiet_ms,
        mut limits_hit,
    } = wait_for_load_and_quiet(recorder, nav_started, options).await?;

    progress(Stage::Capture);
    let world = isolated_world(page, &main_frame).await?;
    let title = evaluate_string(page, world, "document.title")
        .await?
        .unwrap_or_default();
    let final_url = evaluate_string(page, world, "location.href")
        .await?
        .unwrap_or_else(|| target.to_string());
    let first_party_domain = registrable_domain(&host_of(&final_url));
    let dom = capture_dom(page, world, options.limits.max_dom_bytes).await?;
    if dom.truncated {
        limits_hit.push(LimitHit::DomSize {
            max_bytes: options.limits.max_dom_bytes as u64,
        });
    }

    let context_cookies = browser_context_cookies(browser, context).await?;
    let frame_tree = call(
        "reading frames",
        page.execute(GetFrameTreeParams::default()),
    )
    .await?
    .result
    .frame_tree;
    let mut frame_urls = HashMap::new();
    collect_frames(&frame_tree, &mut frame_urls);
    let storage = storage_keys(page, &frame_urls).await;
    let viewport_png = call(
        "taking the viewport screenshot",
        page.execute(
            CaptureScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .build(),
        ),
    )
    .await?
    .result
    .data;
    let viewport_png = decode_base64(viewport_png.as_ref())?;
    let (full_page_png, page_height) = full_page_screenshot(page, options).await?;
    let full_page_truncated = page_height > options.limits.max_full_page_height;
    if full_page_truncated {
        limits_hit.push(LimitHit::ScreenshotHeight {
            max_height: options.limits.max_full_page_height,
        });
    }

    // Scripts: read each source once, within the byte budget.
    let (parsed, scripts_dropped, document_urls) = {
        let r = lock(recorder);
        (
            r.scripts.clone(),
            r.scripts_dropped,
            r.document_urls.clone(),
        )
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
        limits_hit.push(LimitHit::ScriptCount {
            max: options.limits.max_scripts,
        });
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
        limits_hit.push(LimitHit::RequestCount {
            max: options.limits.max_requests,
        });
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
        vec![RedirectHop {
            url: final_url.clone(),
            status,
        }]
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
        timings: Timings {
            load_ms,
            network_quiet_ms,
            total_ms: started.elapsed().as_millis() as u64,
        },
        browser: BrowserInfo {
            product: browser.product().to_owned(),
            user_agent: options
                .user_agent
                .clone()
                .unwrap_or_else(|| browser.user_agent().to_owned()),
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
    Ok(ScanOutput {
        snapshot,
        viewport_png,
        full_page_png,
    })
}
