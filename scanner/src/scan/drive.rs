//! The scan proper: instrument the tab, navigate, wait, capture, assemble the snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::dom_storage;
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetLocaleOverrideParams, SetTimezoneOverrideParams, SetTouchEmulationEnabledParams,
};
use chromiumoxide::cdp::browser_protocol::inspector;
use chromiumoxide::cdp::browser_protocol::log;
use chromiumoxide::cdp::browser_protocol::network;
use chromiumoxide::cdp::browser_protocol::page::{
    self, AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat, CaptureScreenshotParams,
    GetFrameTreeParams,
};
use chromiumoxide::cdp::js_protocol::debugger::{self, GetScriptSourceParams};
use chromiumoxide::cdp::js_protocol::runtime::{self, AddBindingParams};
use futures::StreamExt;

use crate::capture::consent_signals;
use crate::capture::cookies::{self, CookieWrite};
use crate::capture::network::host_of;
use crate::capture::scripts::{self, ParsedScript};
use crate::classify::FilterLists;
use crate::error::ScanError;
use crate::options::{Limits, ScanOptions};
use crate::party::{party_of, registrable_domain};
use crate::snapshot::*;

use super::*;

/// Script sources read from the debugger at once.
const SCRIPT_READS_IN_FLIGHT: usize = 8;

pub(super) async fn drive(
    session: &Session<'_>,
    target: &url::Url,
    options: &ScanOptions,
    progress: &(dyn Fn(Stage) + Send + Sync),
    started: Instant,
) -> Result<ScanOutput, ScanError> {
    let Session {
        guard,
        page,
        recorder,
        ..
    } = session;
    let started_at = now_rfc3339();
    instrument(session, options).await?;

    progress(Stage::Navigate);
    let nav_started = Instant::now();
    let main_frame = page::FrameId::new(page.target_id().inner().clone());
    lock(recorder).main_frame = main_frame.inner().clone();
    let main_request = navigate(
        page,
        recorder,
        guard,
        target,
        nav_started,
        options,
        session.budget,
    )
    .await?;

    progress(Stage::Wait);
    let Waited {
        load_ms,
        mut network_quiet_ms,
        mut settle,
        mut limits_hit,
    } = wait_for_load_and_quiet(session, nav_started, options, Scroll::ThroughPage).await?;

    let consent = match options.consent_mode {
        ConsentMode::NoInteraction => None,
        mode => {
            progress(Stage::Consent);
            // A banner that shows up to LATE_BANNER after the load event is still answered.
            let answer_by = load_ms
                .map(|ms| nav_started + Duration::from_millis(ms) + LATE_BANNER)
                .unwrap_or_else(Instant::now);
            let located = locate_banner(page, &main_frame, mode, answer_by).await?;
            let world = isolated_world(page, &main_frame).await?;
            let here = evaluate_string(page, world, "location.href")
                .await?
                .unwrap_or_else(|| target.to_string());
            let cookies_before = cookie_list(
                session,
                recorder,
                &registrable_domain(&host_of(&here)),
                options,
            )
            .await?
            .0;
            lock(recorder).network.mark_answered();
            let answer = match located {
                Some(located) => press(page, mode, located).await?,
                None => Answer::default(),
            };
            if answer.clicked.is_some() || answer.settings.is_some() {
                // Whatever the answer loads (or stops) must be seen: wait for quiet once more.
                let again =
                    wait_for_load_and_quiet(session, Instant::now(), options, Scroll::Stay).await?;
                limits_hit.extend(again.limits_hit);
                let answered_after = nav_started.elapsed().as_millis() as u64;
                network_quiet_ms = again.network_quiet_ms.map(|_| answered_after);
                settle = Settle {
                    after_ms: answered_after,
                    ..again.settle
                };
            }
            Some(ConsentOutcome {
                mode,
                clicked: answer.clicked,
                settings: answer.settings,
                unticked: answer.unticked,
                cookies_before,
                consent_managers: consent_managers(page, &main_frame).await?,
            })
        }
    };

    capture(
        session,
        options,
        progress,
        PageVisit {
            requested_url: target.to_string(),
            main_request: Some(main_request),
            from: NavigationMark::default(),
            started_at,
            started,
            load_ms,
            network_quiet_ms,
            settle: Some(settle),
            limits_hit,
            consent,
            leave: Leave::HidePage,
        },
    )
    .await
}

/// What is known of a page before its capture: how it was reached, and where its share of the
/// session's records begins.
pub(super) struct PageVisit {
    pub(super) requested_url: String,
    /// The main document's request, for the redirect chain.
    pub(super) main_request: Option<String>,
    pub(super) from: NavigationMark,
    pub(super) started_at: String,
    pub(super) started: Instant,
    pub(super) load_ms: Option<u64>,
    pub(super) network_quiet_ms: Option<u64>,
    /// How the wait before capture ended (none for pages a journey captures as they are).
    pub(super) settle: Option<Settle>,
    pub(super) limits_hit: Vec<LimitHit>,
    pub(super) consent: Option<ConsentOutcome>,
    /// Whether the page is hidden for a moment after the screenshots.
    pub(super) leave: Leave,
}

/// What the capture does once it has what only a visible page gives (DOM, screenshots, scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leave {
    /// Hide the page for a moment, as a visitor switching away would, and record what it sends
    /// then (a page scan).
    HidePage,
    /// Leave it as it is (a page a checkout journey goes on from).
    Stay,
}

/// Captures the page as it is now: DOM, screenshots, scripts, cookies, requests, errors and, if
/// asked, policy pages.
pub(super) async fn capture(
    session: &Session<'_>,
    options: &ScanOptions,
    progress: &(dyn Fn(Stage) + Send + Sync),
    visit: PageVisit,
) -> Result<ScanOutput, ScanError> {
    let Session {
        browser,
        guard,
        page,
        recorder,
        ..
    } = session;
    let PageVisit {
        requested_url,
        main_request,
        from,
        started_at,
        started,
        load_ms,
        network_quiet_ms,
        settle,
        mut limits_hit,
        consent,
        leave,
    } = visit;
    let target = url::Url::parse(&requested_url)
        .map_err(|e| ScanError::Protocol(format!("bad page URL: {e}")))?;
    let main_frame = page::FrameId::new(page.target_id().inner().clone());
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
    let frame_urls = frame_urls(page).await?;
    let storage = storage_keys(page, &frame_urls).await;

    // The viewport shot first: the full-page shot resets the viewport.
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

    let (scripts, script_limits) = read_scripts(
        page,
        recorder,
        from.scripts_from,
        &frame_urls,
        &final_url,
        &first_party_domain,
        &options.limits,
    )
    .await;
    limits_hit.extend(script_limits);
    if leave == Leave::HidePage {
        hide_for_a_moment(page, recorder).await;
    }

    let (cookie_list, tcf_cookie) =
        cookie_list(session, recorder, &first_party_domain, options).await?;
    let tcf = tcf_from_cmp(page).await.or(tcf_cookie);
    let sent_headers = browser.sent_headers(page.session_id().as_ref());
    let (requests, redirect_chain, console_errors, dialogs, downloads, document_headers) = {
        let mut r = lock(recorder);
        for (id, hops) in sent_headers {
            r.network.sent_headers(&id, hops);
        }
        let frames: HashSet<&String> = frame_urls.keys().chain(r.frames.keys()).collect();
        let downloads: Vec<Download> = r
            .downloads
            .iter()
            .filter(|(frame, _)| frames.contains(frame))
            .map(|(_, d)| d.clone())
            .collect();
        for (list, max) in &r.truncated {
            limits_hit.push(LimitHit::ListTruncated {
                list: (*list).to_owned(),
                max: *max,
            });
        }
        if r.network.hit_request_limit() {
            limits_hit.push(LimitHit::RequestCount {
                max: options.limits.max_requests,
            });
        }
        if r.network.hit_header_limit() {
            limits_hit.push(LimitHit::HeaderBytes {
                max_bytes: crate::capture::network::MAX_HEADER_BYTES,
            });
        }
        (
            r.network
                .requests_from(from.requests_from, &first_party_domain),
            main_request
                .as_deref()
                .map(|id| r.network.chain(id))
                .unwrap_or_default(),
            r.console_errors
                .get(from.console_from..)
                .unwrap_or_default()
                .to_vec(),
            r.dialogs.clone(),
            downloads,
            main_request
                .as_deref()
                .and_then(|id| r.document_headers.get(id))
                .and_then(|h| h.best())
                .map(crate::capture::headers::security_headers),
        )
    };
    let blocked = guard.blocked();
    let mut requests = mark_blocked(requests, &blocked);
    if let Some(lists) = options.filter_lists.as_deref() {
        for request in &mut requests {
            request.listed = lists.classify(&request.url, &final_url, &request.resource_type);
        }
    }
    let dns_aliases = dns_aliases(&requests, guard.aliases(), &first_party_domain);
    let consent_signals = ConsentSignals {
        google: consent_signals::google_signals(&requests),
        tcf,
    };
    let mut third_party_hosts: Vec<String> = requests
        .iter()
        .filter(|r| r.party == Party::Third && !r.host.is_empty())
        .map(|r| r.host.clone())
        .chain(
            dns_aliases
                .iter()
                .filter(|a| a.cloaked)
                .map(|a| a.host.clone()),
        )
        .collect();
    third_party_hosts.sort();
    third_party_hosts.dedup();
    let listed_hosts = options.host_list.as_deref().map_or_else(Vec::new, |list| {
        let mut hosts: Vec<&str> = requests
            .iter()
            .map(|r| r.host.as_str())
            .filter(|h| !h.is_empty())
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
            .into_iter()
            .filter_map(|host| {
                // A host not listed by its own name may be by the name it is an alias of.
                list.classify(host).or_else(|| {
                    let alias = dns_aliases.iter().find(|a| a.host == host)?;
                    let mut listed = alias.chain.iter().find_map(|name| list.classify(name))?;
                    listed.host = host.to_owned();
                    Some(listed)
                })
            })
            .collect()
    });

    let policy_pages = if options.policy_pages {
        progress(Stage::PolicyPages);
        read_policy_pages(page, world, options, session.budget).await
    } else {
        Vec::new()
    };
    if let Some(max) = guard.refusals_truncated() {
        limits_hit.push(LimitHit::ListTruncated {
            list: "refused connections".into(),
            max,
        });
    }
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
    let mut capture_warnings = browser.capture_warnings(page.session_id().as_ref());
    capture_warnings.extend(lock(recorder).capture_warnings());
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
                .unwrap_or_else(|| options.profile.presentation(browser.version()).user_agent),
            third_party_cookies_allowed: browser.third_party_cookies(),
        },
        options: RecordedOptions {
            viewport_width: options.viewport_width,
            viewport_height: options.viewport_height,
            quiet_period_ms: options.quiet_period.as_millis() as u64,
            min_dwell_ms: options.min_dwell.as_millis() as u64,
            load_timeout_ms: options.load_timeout.as_millis() as u64,
            scan_timeout_ms: options.scan_timeout.as_millis() as u64,
            consent_mode: options.consent_mode,
            policy_pages: options.policy_pages,
            resolve: options.egress.resolve_entries(),
            private_destinations_allowed: options.egress.allows_private(),
            dns_server: options.egress.dns_server().map(|s| s.to_string()),
            global_privacy_control: options.global_privacy_control,
            visitor: Some(RecordedVisitor {
                device: options.profile.device,
                languages: options.profile.languages.clone(),
                accept_language: options.profile.accept_language(),
                timezone: options.profile.timezone.clone(),
            }),
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
        listed_hosts,
        screenshots: Screenshots {
            viewport: screenshot_info(&viewport_png),
            full_page: screenshot_info(&full_page_png),
            page_height,
            full_page_truncated,
            full_page_max_height: options.limits.max_full_page_height,
        },
        policy_pages,
        consent,
        limits_hit,
        settle,
        capture_warnings,
        dns_aliases,
        filter_lists: options
            .filter_lists
            .as_deref()
            .map(FilterLists::infos)
            .unwrap_or_default(),
        consent_signals,
        document_headers,
    };
    Ok(ScanOutput {
        snapshot,
        viewport_png,
        full_page_png,
    })
}

/// Every frame's id and document URL.
pub(super) async fn frame_urls(page: &Page) -> Result<HashMap<String, String>, ScanError> {
    let tree = call(
        "reading frames",
        page.execute(GetFrameTreeParams::default()),
    )
    .await?
    .result
    .frame_tree;
    let mut urls = HashMap::new();
    collect_frames(&tree, &mut urls);
    Ok(urls)
}

/// The context's cookies now, each attributed to its latest writer and classified; and the TCF
/// consent the `euconsent-v2` cookie holds (decoded here: values never leave this function).
async fn cookie_list(
    session: &Session<'_>,
    recorder: &std::sync::Mutex<Recorder>,
    first_party_domain: &str,
    options: &ScanOptions,
) -> Result<(Vec<Cookie>, Option<TcfConsent>), ScanError> {
    let raw = browser_context_cookies(session.browser, &session.context).await?;
    let tcf = raw
        .iter()
        .filter(|c| c.name == "euconsent-v2")
        .find_map(|c| consent_signals::decode_tc_string(&c.value, "cookie", None));
    let r = lock(recorder);
    let mut writes: Vec<CookieWrite> = r
        .network
        .set_cookie_sources()
        .iter()
        .filter_map(|(url, line, seq)| cookies::header_write(url, line, *seq))
        .collect();
    writes.extend(r.cookie_writes.values().cloned());
    let cookies = cookies::attribute(
        &raw,
        &writes,
        first_party_domain,
        options.cookie_database.as_deref(),
    );
    Ok((cookies, tcf))
}

/// Enables the DevTools domains, presents the visitor profile and installs the instrumentation,
/// all before the first byte of the site arrives. The commands are sent together (DevTools runs
/// them in order) to save round trips.
pub(super) async fn instrument(
    session: &Session<'_>,
    options: &ScanOptions,
) -> Result<(), ScanError> {
    let page = &session.page;
    macro_rules! send {
        ($params:expr) => {{
            let page = page.clone();
            let params = $params;
            Box::pin(async move { page.execute(params).await.map(|_| ()) })
                as std::pin::Pin<
                    Box<
                        dyn std::future::Future<Output = Result<(), chromiumoxide::error::CdpError>>
                            + Send,
                    >,
                >
        }};
    }
    let shown = options.profile.presentation(session.browser.version());
    let mut commands = vec![
        send!(page::EnableParams::default()),
        send!(inspector::EnableParams::default()),
        send!(network::EnableParams::default()),
        send!(runtime::EnableParams::default()),
        send!(log::EnableParams::default()),
        send!(dom_storage::EnableParams::default()),
        send!(debugger::EnableParams::default()),
        // A hostile `debugger;` statement must not pause the page.
        send!(debugger::SetSkipAllPausesParams::new(true)),
        send!(super::visitor::device_metrics(options, &shown)),
        send!(super::visitor::user_agent_override(options, &shown)),
        send!(SetTimezoneOverrideParams::new(shown.timezone.clone())),
        send!(
            SetLocaleOverrideParams::builder()
                .locale(shown.locale.clone())
                .build()
        ),
        send!(AddBindingParams::new(&session.binding)),
        send!(AddScriptToEvaluateOnNewDocumentParams::new(
            INSTRUMENT_JS.replace("__SITEWARD_BINDING__", &session.binding)
        )),
    ];
    if options.global_privacy_control {
        commands.push(send!(network::SetExtraHttpHeadersParams::new(
            network::Headers::new(serde_json::json!({ "Sec-GPC": "1" }))
        )));
        commands.push(send!(AddScriptToEvaluateOnNewDocumentParams::new(GPC_JS)));
    }
    if shown.mobile {
        commands.push(send!(
            SetTouchEmulationEnabledParams::builder()
                .enabled(true)
                .max_touch_points(i64::from(shown.touch_points))
                .build()
                .map_err(ScanError::Protocol)?
        ));
    }
    call("preparing the tab", futures::future::try_join_all(commands)).await?;
    Ok(())
}

/// What a browser with Global Privacy Control switched on shows scripts, in every frame.
const GPC_JS: &str = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', \
    { get: () => true, configurable: true, enumerable: true });";

/// Reads and hashes the source of every script the debugger announced, within the byte budget.
async fn read_scripts(
    page: &Page,
    recorder: &std::sync::Mutex<Recorder>,
    scripts_from: usize,
    frame_urls: &HashMap<String, String>,
    final_url: &str,
    first_party_domain: &str,
    limits: &Limits,
) -> (Vec<Script>, Vec<LimitHit>) {
    let mut limits_hit = Vec::new();
    let (parsed, scripts_dropped, document_urls) = {
        let r = lock(recorder);
        (
            r.scripts.get(scripts_from..).unwrap_or_default().to_vec(),
            r.scripts_dropped,
            r.document_urls.clone(),
        )
    };
    if scripts_dropped {
        limits_hit.push(LimitHit::ScriptCount {
            max: limits.max_scripts,
        });
    }
    let mut sources = futures::stream::iter(parsed)
        .map(|script| async move {
            let read = page.execute(GetScriptSourceParams::new(script.script_id.clone()));
            let source = tokio::time::timeout(CALL_TIMEOUT, read)
                .await
                .ok()?
                .ok()?
                .result
                .script_source;
            Some((script, source))
        })
        .buffered(SCRIPT_READS_IN_FLIGHT);
    let mut scripts = Vec::new();
    let mut script_bytes = 0usize;
    while let Some(read) = sources.next().await {
        let Some((script, source)) = read else {
            continue;
        };
        script_bytes += source.len();
        if script_bytes > limits.max_script_bytes {
            limits_hit.push(LimitHit::ScriptBytes {
                max_bytes: limits.max_script_bytes as u64,
            });
            break;
        }
        let frame_url = match frame_urls.get(&script.frame_url) {
            Some(url) => url.clone(),
            // The frame is gone; an inline script's URL is its document's.
            None if document_urls.contains(&script.url) => script.url.clone(),
            None => final_url.to_owned(),
        };
        let script = ParsedScript {
            frame_url,
            ..script
        };
        scripts.push(scripts::describe(&script, &source, first_party_domain));
    }
    (scripts::normalize(scripts), limits_hit)
}

/// The aliases among the hosts the page requested, with whether each is a cloaked third party.
fn dns_aliases(
    requests: &[Request],
    mut aliases: BTreeMap<String, Vec<String>>,
    first_party_domain: &str,
) -> Vec<DnsAlias> {
    let requested: BTreeSet<&str> = requests.iter().map(|r| r.host.as_str()).collect();
    aliases.retain(|host, _| requested.contains(host.as_str()));
    aliases
        .into_iter()
        .filter_map(|(host, chain)| {
            let canonical_party = party_of(chain.last()?, first_party_domain);
            let cloaked = party_of(&host, first_party_domain) == Party::First
                && canonical_party == Party::Third;
            Some(DnsAlias {
                host,
                chain,
                canonical_party,
                cloaked,
            })
        })
        .collect()
}
