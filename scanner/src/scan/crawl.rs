//! A crawl in the browser: the pages of one site visited the way a visitor moves through it —
//! by default in one browsing session, so cookies and caches carry over from page to page — each
//! captured as a scan captures a page, with the links on it offered to the [`Frontier`].
//!
//! `robots.txt` and the sitemaps are fetched from the first page, same-origin, after its capture
//! (so they are in no page's records). A page that fails is listed as unreachable with the reason
//! and the crawl goes on; a failure that ends the session (a crashed renderer) costs only the page
//! it happened on: the crawl carries on in a fresh session.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use url::Url;

use crate::crawl::{
    CrawlRecord, CrawlRules, Frontier, Offer, Planned, Robots, SiteSnapshot, Sitemap, SitemapRead,
    Source, Unreachable, VisitedPage, parse_sitemap,
};
use crate::error::ScanError;
use crate::options::ScanOptions;
use crate::party::registrable_domain;

use super::*;

/// Links read from one page at most.
const MAX_LINKS: usize = 2_000;
/// Sitemap documents read per crawl at most (an index can name thousands).
const MAX_SITEMAPS: usize = 20;
/// Page URLs taken from sitemaps at most.
const MAX_SITEMAP_PAGES: usize = 10_000;
/// Bytes of `robots.txt` or of one sitemap fetched at most.
const MAX_FETCH_BYTES: u64 = crate::crawl::MAX_SITEMAP_BYTES;
/// Time a page needs at least, beyond its load timeout, for a crawl to still start it.
const PAGE_RESERVE: Duration = Duration::from_secs(20);

/// The links of the document, resolved by the browser, in document order.
const LINKS_JS: &str = "Array.from(document.querySelectorAll('a[href], area[href]'), a => a.href).filter(h => typeof h === 'string').slice(0, 2000)";

/// A crawl's result: the site snapshot and the output of each page it lists, in order.
pub struct CrawlOutput {
    pub site: SiteSnapshot,
    pub pages: Vec<ScanOutput>,
}

/// What a crawl tells its caller as it goes.
#[derive(Debug, Clone, Copy)]
pub enum CrawlStep<'a> {
    /// Reading `robots.txt` and the sitemaps.
    Sitemaps,
    /// Visiting page `number` (from 1).
    Visiting { number: usize, url: &'a str },
    /// The page could not be visited.
    Failed { url: &'a str, reason: &'a str },
}

/// Everything the crawl has gathered, kept outside each session so a session that dies loses
/// nothing already captured.
struct Progress {
    frontier: Frontier,
    /// Each page with its first-party link count and the number of the session it was seen in.
    pages: Vec<(Planned, usize, usize, ScanOutput)>,
    unreachable: Vec<Unreachable>,
    sitemaps: Vec<SitemapRead>,
    /// Pages handed to a lane and not yet recorded: while any is, an empty queue may still fill.
    in_flight: usize,
    robots_read: bool,
    /// The first page's sitemaps are being read: an empty queue may still fill.
    sitemaps_under_way: bool,
    /// Sessions started so far, to number them.
    sessions: usize,
}

/// Marks the sitemaps as read when dropped, however their reading ends.
struct SitemapsUnderWay<'a>(&'a Mutex<Progress>);

impl Drop for SitemapsUnderWay<'_> {
    fn drop(&mut self) {
        lock_progress(self.0).sitemaps_under_way = false;
    }
}

/// What a lane does next.
enum Next {
    Page(Planned),
    /// Nothing queued now, but pages under way may add some.
    Wait,
    Done,
}

impl Scanner {
    /// Crawls the site of `start` under `rules`, within `budget` for the whole crawl, visiting
    /// up to `lanes` pages at once (each lane a visitor of its own: in one session per lane, or
    /// fresh per page). Each page is captured with `options` (its consent mode left unanswered: a
    /// first-time visitor).
    pub async fn crawl(
        &self,
        start: &str,
        options: &ScanOptions,
        rules: CrawlRules,
        budget: Duration,
        lanes: usize,
        step: &(dyn Fn(CrawlStep<'_>) + Send + Sync),
    ) -> Result<CrawlOutput, ScanError> {
        let start = validate_url(start)?;
        let started_at = now_rfc3339();
        let deadline = Instant::now() + budget;
        let state = Mutex::new(Progress {
            frontier: Frontier::new(start.clone(), rules.clone()),
            pages: Vec::new(),
            unreachable: Vec::new(),
            sitemaps: Vec::new(),
            in_flight: 0,
            robots_read: false,
            sitemaps_under_way: false,
            sessions: 0,
        });
        let page_options = ScanOptions {
            consent_mode: ConsentMode::NoInteraction,
            ..options.clone()
        };
        let crawl = Crawl {
            scanner: self,
            state: &state,
            options: &page_options,
            deadline,
            one_session: rules.one_session,
            step,
        };
        futures::future::join_all((0..lanes.max(1)).map(|_| crawl.lane())).await;
        let Progress {
            frontier,
            pages,
            unreachable,
            sitemaps,
            ..
        } = state.into_inner().unwrap_or_else(|e| e.into_inner());
        let rules = frontier.rules().clone();
        let (skipped, skipped_counts) = frontier.finish();
        let record = CrawlRecord {
            start_url: start.to_string(),
            site: registrable_domain(start.host_str().unwrap_or_default()),
            rules,
            started_at,
            finished_at: now_rfc3339(),
            unreachable,
            skipped,
            skipped_counts,
            sitemaps,
        };
        let visited: Vec<VisitedPage<'_>> = pages
            .iter()
            .map(|(planned, links, session, output)| VisitedPage {
                url: planned.url.as_str(),
                depth: planned.depth,
                found_by: &planned.source,
                links: *links,
                session: *session,
                snapshot: &output.snapshot,
            })
            .collect();
        let site = SiteSnapshot::assemble(record, &visited);
        Ok(CrawlOutput {
            site,
            pages: pages.into_iter().map(|(_, _, _, output)| output).collect(),
        })
    }
}

/// One crawl, shared by its lanes.
struct Crawl<'a> {
    scanner: &'a Scanner,
    state: &'a Mutex<Progress>,
    options: &'a ScanOptions,
    deadline: Instant,
    one_session: bool,
    step: &'a (dyn Fn(CrawlStep<'_>) + Send + Sync),
}

impl Crawl<'_> {
    /// A visitor: takes pages until none is left, in one session after another (one for all its
    /// pages unless a session dies, or one per page when pages are visited fresh).
    async fn lane(&self) {
        let anywhere: NavigationRule = std::sync::Arc::new(|_: &Url| true);
        while let Some(first) = self.next_page().await {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let session_options = ScanOptions {
                scan_timeout: remaining,
                ..self.options.clone()
            };
            // The page under way, to blame if the session dies under it.
            let current = Mutex::new(Some(first.clone()));
            let site = first.url.to_string();
            let session = {
                let mut progress = lock_progress(self.state);
                progress.sessions += 1;
                progress.sessions
            };
            let result = self
                .scanner
                .journey(&site, &session_options, anywhere.clone(), async |journey| {
                    let mut planned = first;
                    loop {
                        *lock_current(&current) = Some(planned.clone());
                        visit(journey, self.state, &current, session, planned, self.step).await?;
                        if !self.one_session {
                            return Ok(());
                        }
                        match self.next_page().await {
                            Some(next) => planned = next,
                            None => return Ok(()),
                        }
                    }
                })
                .await;
            if let Err(error) = result
                && let Some(lost) = lock_current(&current).take()
            {
                let reason = error.to_string();
                (self.step)(CrawlStep::Failed {
                    url: lost.url.as_str(),
                    reason: &reason,
                });
                let mut progress = lock_progress(self.state);
                progress.in_flight = progress.in_flight.saturating_sub(1);
                progress.unreachable.push(Unreachable {
                    url: lost.url.to_string(),
                    reason,
                });
            }
        }
    }

    /// The next page for a lane; waits while the queue is empty and other lanes may fill it.
    async fn next_page(&self) -> Option<Planned> {
        loop {
            match take_next(self.state, self.deadline, self.options) {
                Next::Page(planned) => return Some(planned),
                Next::Done => return None,
                Next::Wait => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

fn lock_current(current: &Mutex<Option<Planned>>) -> std::sync::MutexGuard<'_, Option<Planned>> {
    current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_progress(state: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The next page, while time is left for one.
fn take_next(state: &Mutex<Progress>, deadline: Instant, options: &ScanOptions) -> Next {
    let mut progress = lock_progress(state);
    if deadline.saturating_duration_since(Instant::now()) < options.load_timeout + PAGE_RESERVE {
        // Too late to start another page: the ones the crawl would still have visited are
        // listed as unreachable, so the site snapshot says what the budget cost.
        while let Some(left) = progress.frontier.next_page() {
            progress.unreachable.push(Unreachable {
                url: left.url.to_string(),
                reason: "the crawl's time budget ran out before this page".into(),
            });
        }
        return Next::Done;
    }
    match progress.frontier.next_page() {
        Some(next) => {
            progress.in_flight += 1;
            Next::Page(next)
        }
        None if (progress.in_flight > 0 || progress.sitemaps_under_way)
            && progress.frontier.has_room() =>
        {
            Next::Wait
        }
        None => Next::Done,
    }
}

/// Visits one page in the journey's session, records it, and offers its links (and, after the
/// first page, the sitemaps' pages). A page that fails is recorded as unreachable; an error is
/// returned only when the session itself is lost, and the page is then the caller's to record.
async fn visit(
    journey: &Journey<'_>,
    state: &Mutex<Progress>,
    current: &Mutex<Option<Planned>>,
    session: usize,
    planned: Planned,
    step: &(dyn Fn(CrawlStep<'_>) + Send + Sync),
) -> Result<(), ScanError> {
    let number = lock_progress(state).pages.len() + 1;
    step(CrawlStep::Visiting {
        number,
        url: planned.url.as_str(),
    });
    let output = match journey.visit(&planned.url, &|_| {}).await {
        Ok(output) => output,
        Err(error) if ends_the_session(&error) => return Err(error),
        Err(error) => {
            let reason = error.to_string();
            step(CrawlStep::Failed {
                url: planned.url.as_str(),
                reason: &reason,
            });
            let mut progress = lock_progress(state);
            progress.in_flight = progress.in_flight.saturating_sub(1);
            progress.unreachable.push(Unreachable {
                url: planned.url.to_string(),
                reason,
            });
            *lock_current(current) = None;
            return Ok(());
        }
    };
    let final_url = Url::parse(&output.snapshot.final_url).unwrap_or_else(|_| planned.url.clone());
    let (on_site, first_page) = {
        let mut progress = lock_progress(state);
        progress.frontier.arrived_at(&final_url);
        let on_site = progress.frontier.on_site(&final_url);
        let first = !progress.robots_read && on_site;
        if first {
            progress.robots_read = true;
            progress.sitemaps_under_way = true;
        }
        (on_site, first)
    };
    let under_way = first_page.then(|| SitemapsUnderWay(state));
    // The site's rules apply before the first page's links are taken.
    let sitemaps = if first_page {
        step(CrawlStep::Sitemaps);
        read_robots(journey, state, &final_url).await
    } else {
        Vec::new()
    };
    // Links only from pages of the site: a link that left it is the end of that path. A page
    // whose links cannot be read is kept without them.
    let read_links = if on_site {
        page_links(journey).await
    } else {
        Ok(Vec::new())
    };
    {
        let mut progress = lock_progress(state);
        let links = read_links.as_deref().unwrap_or_default();
        let first_party = offer_links(&mut progress.frontier, links, &final_url, planned.depth);
        progress.in_flight = progress.in_flight.saturating_sub(1);
        progress.pages.push((planned, first_party, session, output));
        *lock_current(current) = None;
    }
    if let Err(error) = read_links
        && ends_the_session(&error)
    {
        return Err(error);
    }
    if first_page && lock_progress(state).frontier.rules().sitemaps {
        read_sitemaps(journey, state, &final_url, sitemaps).await;
    }
    drop(under_way);
    Ok(())
}

/// Whether a page's failure leaves its session unusable.
pub fn ends_the_session(error: &ScanError) -> bool {
    matches!(
        error,
        ScanError::RendererCrashed
            | ScanError::BrowserCrashed
            | ScanError::BrowserHung
            | ScanError::ShuttingDown
            | ScanError::Protocol(_)
    )
}

/// A same-origin fetch from the page's isolated world: the status and the body's bytes.
async fn fetch(journey: &Journey<'_>, url: &Url) -> Result<(u16, Vec<u8>), String> {
    let literal = serde_json::to_string(url.as_str()).map_err(|e| e.to_string())?;
    // Read chunk by chunk, stopping past the cap: a compressed bomb is never inflated whole.
    let expression = format!(
        "(async () => {{ try {{ \
           const r = await fetch({literal}, {{credentials: 'omit', cache: 'no-store', redirect: 'follow'}}); \
           const length = Number(r.headers.get('content-length') || 0); \
           if (length > {MAX_FETCH_BYTES}) {{ r.body && r.body.cancel(); return {{status: r.status, error: 'larger than {MAX_FETCH_BYTES} bytes'}}; }} \
           const reader = r.body ? r.body.getReader() : null; \
           const chunks = []; let total = 0; \
           while (reader) {{ \
             const {{done, value}} = await reader.read(); \
             if (done) break; \
             total += value.length; \
             if (total > {MAX_FETCH_BYTES}) {{ reader.cancel(); return {{status: r.status, error: 'larger than {MAX_FETCH_BYTES} bytes'}}; }} \
             chunks.push(value); \
           }} \
           let text = ''; \
           for (const chunk of chunks) for (let i = 0; i < chunk.length; i += 32768) text += String.fromCharCode.apply(null, chunk.subarray(i, i + 32768)); \
           return {{status: r.status, body: btoa(text)}}; \
         }} catch (e) {{ return {{error: String(e)}}; }} }})()"
    );
    let value = journey
        .evaluate(&expression)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the fetch did not run")?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(error.chars().take(300).collect());
    }
    let status = value
        .get("status")
        .and_then(|s| s.as_u64())
        .unwrap_or_default() as u16;
    let body = value
        .get("body")
        .and_then(|b| b.as_str())
        .unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| e.to_string())?;
    Ok((status, bytes))
}

/// What a site's `robots.txt` said, read from a page of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RobotsRead {
    /// The origin it speaks for (ASCII serialization).
    pub origin: String,
    pub robots: Robots,
}

/// What the sitemaps gave: each document read (or not) and the page URLs listed, each with the
/// sitemap that listed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SitemapsRead {
    pub read: Vec<SitemapRead>,
    /// `(sitemap, page)` pairs, at most 10,000.
    pub pages: Vec<(String, String)>,
}

/// The first-party and other links of the page in the journey, as the browser resolved them.
pub async fn page_links(journey: &Journey<'_>) -> Result<Vec<String>, ScanError> {
    Ok(journey
        .evaluate(LINKS_JS)
        .await?
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .take(MAX_LINKS)
        .collect())
}

/// Reads the `robots.txt` of `page`'s origin from the page (same-origin).
pub async fn fetch_robots(journey: &Journey<'_>, page: &Url) -> Option<RobotsRead> {
    let robots_url = page.join("/robots.txt").ok()?;
    // RFC 9309: a server error means "assume everything is disallowed"; a missing file (4xx)
    // allows everything. A fetch that failed in the page (a CSP, a network error) is read as
    // missing: the crawl cannot tell it from the site's answer.
    let robots = match fetch(journey, &robots_url).await {
        Ok((200..=299, body)) => Robots::parse(&String::from_utf8_lossy(&body)),
        Ok((500..=599, _)) => Robots::disallow_all(),
        _ => Robots::default(),
    };
    Some(RobotsRead {
        origin: robots_url.origin().ascii_serialization(),
        robots,
    })
}

/// Reads the sitemaps `robots.txt` named and `/sitemap.xml` (indexes followed) from `page`.
/// Only documents of the page's origin are read.
pub async fn fetch_sitemaps(journey: &Journey<'_>, page: &Url, named: &[String]) -> SitemapsRead {
    let mut queue: std::collections::VecDeque<Url> =
        named.iter().filter_map(|s| Url::parse(s).ok()).collect();
    let origin = page.origin();
    if let Ok(default) = page.join("/sitemap.xml") {
        queue.push_back(default);
    }
    let mut visited: Vec<Url> = Vec::new();
    let mut found = SitemapsRead::default();
    while let Some(sitemap) = queue.pop_front() {
        if visited.len() >= MAX_SITEMAPS {
            break;
        }
        if visited.contains(&sitemap) {
            continue;
        }
        visited.push(sitemap.clone());
        let outcome = if sitemap.origin() != origin {
            Err("on another origin: not read".to_owned())
        } else {
            match fetch(journey, &sitemap).await {
                Ok((200, body)) => parse_sitemap(&body).map_err(|e| e.to_string()),
                Ok((status, _)) => Err(format!("HTTP {status}")),
                Err(error) => Err(error),
            }
        };
        let entries = match &outcome {
            Ok(Sitemap::Pages(pages)) | Ok(Sitemap::Index(pages)) => pages.len(),
            Err(_) => 0,
        };
        found.read.push(SitemapRead {
            url: sitemap.to_string(),
            entries,
            error: outcome.as_ref().err().cloned(),
        });
        match outcome {
            Ok(Sitemap::Index(children)) => {
                let room = MAX_SITEMAPS.saturating_sub(visited.len() + queue.len());
                queue.extend(
                    children
                        .iter()
                        .filter_map(|c| Url::parse(c).ok())
                        .take(room),
                );
            }
            Ok(Sitemap::Pages(pages)) => {
                let room = MAX_SITEMAP_PAGES.saturating_sub(found.pages.len());
                found.pages.extend(
                    pages
                        .into_iter()
                        .take(room)
                        .map(|page| (sitemap.to_string(), page)),
                );
            }
            Err(_) => {}
        }
    }
    found
}

/// Offers what the sitemaps listed to the frontier (as one click from the start).
pub fn offer_sitemap_pages(frontier: &mut Frontier, found: &SitemapsRead) {
    for (sitemap, page) in &found.pages {
        let Ok(base) = Url::parse(sitemap) else {
            continue;
        };
        frontier.offer(
            page,
            &base,
            1,
            Source::Sitemap {
                sitemap: sitemap.clone(),
            },
        );
    }
}

/// Offers a page's links to the frontier; returns how many were first-party (usable and on the
/// site, whatever became of them).
pub fn offer_links(frontier: &mut Frontier, links: &[String], page: &Url, depth: u32) -> usize {
    let mut first_party = 0;
    for link in links.iter().take(MAX_LINKS) {
        let offer = frontier.offer(
            link,
            page,
            depth + 1,
            Source::Link {
                on: page.to_string(),
            },
        );
        if !matches!(
            offer,
            Offer::Unusable | Offer::Skipped(crate::crawl::SkipReason::OtherSite)
        ) {
            first_party += 1;
        }
    }
    first_party
}

/// Reads the site's `robots.txt`: its rules apply from now on. Returns the sitemaps it names.
async fn read_robots(journey: &Journey<'_>, state: &Mutex<Progress>, page: &Url) -> Vec<String> {
    let Some(read) = fetch_robots(journey, page).await else {
        return Vec::new();
    };
    let named = read.robots.sitemaps.clone();
    lock_progress(state)
        .frontier
        .set_robots(read.origin, read.robots);
    named
}

/// Reads the sitemaps and offers their pages.
async fn read_sitemaps(
    journey: &Journey<'_>,
    state: &Mutex<Progress>,
    page: &Url,
    named: Vec<String>,
) {
    let found = fetch_sitemaps(journey, page, &named).await;
    let mut progress = lock_progress(state);
    offer_sitemap_pages(&mut progress.frontier, &found);
    progress.sitemaps.extend(found.read);
}
