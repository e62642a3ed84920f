//! A crawl's progress in PostgreSQL: starting one, handing its pages out as jobs, taking a
//! finished page's links and sitemaps in, and noticing when no page is left.
//!
//! The frontier lives in the crawl's row. Every change to it happens in a transaction that
//! first locks that row (`FOR UPDATE`), so pages finishing at once take turns and each sees the
//! pages committed before it; the page's own job is completed in the same transaction, so the
//! "no page left" check can never miss one.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scanner::crawl::{CrawlRules, Frontier, Planned, Source};
use time::OffsetDateTime;
use url::Url;

use crate::db::schema::{crawl_pages, crawls, orgs, targets};
use crate::queue;
use crate::runner::protocol::{CRAWL_JOB, CrawlPageResult};
use crate::scans::queries::{self as scans, Asked, Trigger};
use crate::sites::queries::Target;
use crate::web::AppError;

/// The app's job that builds a crawl's site snapshot once its pages are over.
pub const ASSEMBLE_JOB: &str = "crawl_site";
/// Attempts a page gets: a runner dying under it costs one.
const PAGE_ATTEMPTS: i32 = 3;
/// Attempts a lane gets: each runner dying under it costs one.
const LANE_ATTEMPTS: i32 = 10;
/// Sitemap documents and sitemap pages taken from a start page's result at most (what a runner
/// reads at most).
const MAX_SITEMAPS: usize = 20;
const MAX_SITEMAP_PAGES: usize = 10_000;
/// Why a page still queued at the crawl's deadline was not visited.
pub const OUT_OF_TIME: &str = "the crawl's time budget ran out before this page";

/// A crawl's time budget: time for every page at the lanes' pace, with room to spare, within
/// two minutes and two hours.
pub fn budget(max_pages: usize, lanes: usize, load_timeout: Duration) -> Duration {
    let per_page = load_timeout + Duration::from_secs(30);
    let rounds = max_pages.div_ceil(lanes.max(1)) as u32;
    (per_page * rounds).clamp(Duration::from_secs(120), Duration::from_secs(7200))
}

/// The limits an organization sets on its crawls.
#[derive(Debug, Clone, Copy)]
pub struct OrgCrawlLimits {
    pub max_pages: usize,
    pub lanes: usize,
}

pub async fn org_limits(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<OrgCrawlLimits> {
    let (max_pages, lanes): (i32, i32) = orgs::table
        .find(org_id)
        .select((orgs::max_crawl_pages, orgs::crawl_concurrency))
        .first(conn)
        .await?;
    Ok(OrgCrawlLimits {
        max_pages: usize::try_from(max_pages).unwrap_or(1),
        lanes: usize::try_from(lanes).unwrap_or(1),
    })
}

/// Starts a crawl of site target `target`: the crawl with its frontier, the start page as a
/// scan and job, and the lanes' jobs. Call inside the caller's transaction. Returns the crawl.
pub async fn request(
    conn: &mut AsyncPgConnection,
    target: &Target,
    asked: &Asked,
) -> Result<i64, AppError> {
    let Some(mut rules) = target.rules() else {
        return Err(AppError::Conflict(
            "this target scans one page; only a site target is crawled".into(),
        ));
    };
    let limits = org_limits(conn, asked.org_id).await?;
    // The organization's cap holds whatever the target was saved with.
    rules.max_pages = rules.max_pages.min(limits.max_pages);
    let start = Url::parse(&target.url).map_err(AppError::internal)?;
    let lanes = limits.lanes.min(rules.max_pages).max(1);
    let deadline = OffsetDateTime::now_utc()
        + budget(
            rules.max_pages,
            lanes,
            scanner::ScanOptions::default().load_timeout,
        );
    let frontier = Frontier::new(start.clone(), rules);
    let crawl_id: i64 = diesel::insert_into(crawls::table)
        .values((
            crawls::org_id.eq(asked.org_id),
            crawls::target_id.eq(target.id),
            crawls::trigger.eq(asked.trigger.as_str()),
            crawls::requested_by.eq(asked.requested_by),
            crawls::start_url.eq(start.as_str()),
            crawls::lanes.eq(lanes as i32),
            crawls::frontier.eq(to_json(&frontier)?),
            crawls::deadline.eq(deadline),
        ))
        .returning(crawls::id)
        .get_result(conn)
        .await?;
    let mut frontier = frontier;
    hand_out(conn, crawl_id, target, asked, &mut frontier).await?;
    save(conn, crawl_id, &frontier).await?;
    for lane in 1..=lanes {
        queue::enqueue(
            conn,
            CRAWL_JOB,
            &serde_json::json!({"crawl_id": crawl_id, "lane": lane}),
            LANE_ATTEMPTS,
            OffsetDateTime::now_utc(),
        )
        .await?;
    }
    Ok(crawl_id)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(value).map_err(AppError::internal)
}

async fn save(
    conn: &mut AsyncPgConnection,
    crawl_id: i64,
    frontier: &Frontier,
) -> Result<(), AppError> {
    diesel::update(crawls::table.find(crawl_id))
        .set(crawls::frontier.eq(to_json(frontier)?))
        .execute(conn)
        .await?;
    Ok(())
}

/// Every page the frontier will give now becomes a scan with a `crawl_page` job, numbered in
/// the order handed out.
async fn hand_out(
    conn: &mut AsyncPgConnection,
    crawl_id: i64,
    target: &Target,
    asked: &Asked,
    frontier: &mut Frontier,
) -> Result<(), AppError> {
    while let Some(Planned { url, depth, source }) = frontier.next_page() {
        let number = frontier.handed_out() as i32;
        let scan_id =
            scans::request_crawl_page(conn, target, asked, crawl_id, url.as_str()).await?;
        diesel::insert_into(crawl_pages::table)
            .values((
                crawl_pages::crawl_id.eq(crawl_id),
                crawl_pages::number.eq(number),
                crawl_pages::org_id.eq(asked.org_id),
                crawl_pages::url.eq(url.as_str()),
                crawl_pages::depth.eq(depth as i32),
                crawl_pages::found_by.eq(to_json(&source)?),
                crawl_pages::scan_id.eq(scan_id),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The crawl a page's scan belongs to, locked, with what handing out more pages needs.
struct Locked {
    frontier: Frontier,
    state: String,
    target: Target,
    asked: Asked,
    sitemaps: serde_json::Value,
}

async fn lock(conn: &mut AsyncPgConnection, crawl_id: i64) -> Result<Locked, AppError> {
    let (org_id, target_id, trigger, requested_by, frontier, state, sitemaps): (
        i64,
        i64,
        String,
        Option<i64>,
        serde_json::Value,
        String,
        serde_json::Value,
    ) = crawls::table
        .find(crawl_id)
        .select((
            crawls::org_id,
            crawls::target_id,
            crawls::trigger,
            crawls::requested_by,
            crawls::frontier,
            crawls::state,
            crawls::sitemaps,
        ))
        .for_update()
        .first(conn)
        .await?;
    let target: Target = targets::table
        .find(target_id)
        .select(Target::as_select())
        .first(conn)
        .await?;
    Ok(Locked {
        frontier: serde_json::from_value(frontier).map_err(AppError::internal)?,
        state,
        target,
        asked: Asked {
            org_id,
            trigger: Trigger::parse(&trigger).unwrap_or(Trigger::Schedule),
            requested_by,
            max_attempts: PAGE_ATTEMPTS,
        },
        sitemaps,
    })
}

/// Takes a visited page in: its links (and, from the start page, `robots.txt` and the
/// sitemaps) are offered to the frontier, the pages it now gives are handed out, and the crawl
/// moves on to its site snapshot when nothing is left. Call in the transaction that records the
/// page's snapshot and completes its job.
pub async fn page_visited(
    conn: &mut AsyncPgConnection,
    crawl_id: i64,
    scan_id: i64,
    result: &CrawlPageResult,
) -> Result<(), AppError> {
    let mut locked = lock(conn, crawl_id).await?;
    let (url, depth): (String, i32) = crawl_pages::table
        .filter(crawl_pages::scan_id.eq(scan_id))
        .select((crawl_pages::url, crawl_pages::depth))
        .first(conn)
        .await?;
    let page_url = Url::parse(&url).map_err(AppError::internal)?;
    let final_url = Url::parse(&result.snapshot.final_url).unwrap_or(page_url);
    let frontier = &mut locked.frontier;
    frontier.arrived_at(&final_url);
    // Links and site files only from pages of the site: a link that left it ends that path.
    let on_site = frontier.on_site(&final_url);
    let mut first_party = 0;
    if on_site && locked.state == "running" {
        if let Some(robots) = &result.robots {
            frontier.set_robots(robots.origin.clone(), robots.robots.clone());
        }
        first_party = scanner::offer_links(frontier, &result.links, &final_url, depth as u32);
        if let Some(found) = &result.sitemaps
            && frontier.rules().sitemaps
        {
            // As many as a runner reads: a runner's result is bounded, not trusted to be small.
            let found = scanner::SitemapsRead {
                read: found.read.iter().take(MAX_SITEMAPS).cloned().collect(),
                pages: found
                    .pages
                    .iter()
                    .take(MAX_SITEMAP_PAGES)
                    .cloned()
                    .collect(),
            };
            scanner::offer_sitemap_pages(frontier, &found);
            let mut read: Vec<serde_json::Value> =
                serde_json::from_value(locked.sitemaps.clone()).unwrap_or_default();
            read.extend(
                found
                    .read
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok()),
            );
            read.truncate(MAX_SITEMAPS);
            diesel::update(crawls::table.find(crawl_id))
                .set(crawls::sitemaps.eq(serde_json::Value::Array(read)))
                .execute(conn)
                .await?;
        }
    }
    diesel::update(crawl_pages::table.filter(crawl_pages::scan_id.eq(scan_id)))
        .set((
            crawl_pages::outcome.eq("visited"),
            crawl_pages::final_url.eq(crate::scans::ingest::clean(final_url.as_str(), 8192)),
            crawl_pages::links.eq(first_party as i32),
            crawl_pages::session.eq(crate::scans::ingest::clean(&result.session, 100)),
        ))
        .execute(conn)
        .await?;
    if locked.state == "running" {
        hand_out(
            conn,
            crawl_id,
            &locked.target,
            &locked.asked,
            &mut locked.frontier,
        )
        .await?;
        save(conn, crawl_id, &locked.frontier).await?;
    }
    finish_if_done(conn, crawl_id).await
}

/// Call in the transaction that ends a page without a snapshot (its job dead).
pub async fn page_ended(conn: &mut AsyncPgConnection, crawl_id: i64) -> Result<(), AppError> {
    lock(conn, crawl_id).await?;
    finish_if_done(conn, crawl_id).await
}

/// When no page of the crawl is queued or under way: pages whose job died are listed as
/// unreachable with the job's last error, and the crawl moves on to `assembling` with its site
/// snapshot queued — once, as the caller holds the crawl's lock.
async fn finish_if_done(conn: &mut AsyncPgConnection, crawl_id: i64) -> Result<(), AppError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        open: i64,
    }
    let open = diesel::sql_query(
        "SELECT count(*) AS open FROM scans s JOIN jobs j ON j.id = s.job_id
         WHERE s.crawl_id = $1 AND j.state IN ('queued', 'running')",
    )
    .bind::<BigInt, _>(crawl_id)
    .get_result::<Count>(conn)
    .await?
    .open;
    if open > 0 {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE crawl_pages cp
         SET outcome = 'unreachable',
             reason = left(coalesce(j.last_error, 'the page was not captured'), 2000)
         FROM scans s JOIN jobs j ON j.id = s.job_id
         WHERE cp.crawl_id = $1 AND cp.outcome IS NULL AND s.id = cp.scan_id",
    )
    .bind::<BigInt, _>(crawl_id)
    .execute(conn)
    .await?;
    let moved = diesel::update(crawls::table.find(crawl_id))
        .filter(crawls::state.eq("running"))
        .set(crawls::state.eq("assembling"))
        .execute(conn)
        .await?;
    if moved == 1 {
        queue::enqueue(
            conn,
            ASSEMBLE_JOB,
            &serde_json::json!({"crawl_id": crawl_id}),
            5,
            OffsetDateTime::now_utc(),
        )
        .await?;
    }
    Ok(())
}

/// Past the crawl's deadline no page starts: those still queued die with [`OUT_OF_TIME`].
/// Returns whether the deadline has passed.
pub async fn stop_if_late(conn: &mut AsyncPgConnection, crawl_id: i64) -> Result<bool, AppError> {
    let late = diesel::sql_query(
        "UPDATE jobs j SET state = 'dead', finished_at = clock_timestamp(), last_error = $2
         FROM scans s, crawls c
         WHERE s.job_id = j.id AND s.crawl_id = $1 AND c.id = $1 AND j.state = 'queued'
           AND c.deadline < clock_timestamp()",
    )
    .bind::<BigInt, _>(crawl_id)
    .bind::<Text, _>(OUT_OF_TIME)
    .execute(conn)
    .await?;
    let past: bool = crawls::table
        .find(crawl_id)
        .select(crawls::deadline.lt(diesel::dsl::now))
        .first(conn)
        .await?;
    if late > 0 {
        page_ended(conn, crawl_id).await?;
    }
    Ok(past)
}

/// Crawls whose pages are all over but which never moved on (a page whose last lease lapsed
/// dies in the reaper, which knows nothing of crawls; or every lane died): the scheduler's tick
/// catches them up, ending those past their deadline. Returns how many moved on.
pub async fn catch_up(conn: &mut AsyncPgConnection) -> Result<usize, AppError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let running: Vec<i64> = diesel::sql_query("SELECT id FROM crawls WHERE state = 'running'")
        .load::<Id>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut moved = 0;
    for id in running {
        use diesel_async::AsyncConnection;
        let finished = conn
            .transaction::<_, AppError, _>(async move |conn| {
                stop_if_late(conn, id).await?;
                page_ended(conn, id).await?;
                let state: String = crawls::table
                    .find(id)
                    .select(crawls::state)
                    .first(conn)
                    .await?;
                Ok(state != "running")
            })
            .await?;
        moved += usize::from(finished);
    }
    Ok(moved)
}

/// Claims the next queued page of the crawl for a lane; the page job's attempt token goes to
/// the lane's runner.
pub async fn claim_page(
    conn: &mut AsyncPgConnection,
    crawl_id: i64,
    holder: &str,
    lease: Duration,
) -> QueryResult<Option<(queue::Claimed, i32)>> {
    let Some(job) = queue::claim_where(
        conn,
        holder,
        crate::runner::protocol::CRAWL_PAGE_JOB,
        "id IN (SELECT job_id FROM scans WHERE crawl_id = $5)",
        crawl_id,
        lease,
    )
    .await?
    else {
        return Ok(None);
    };
    let number: i32 = crawl_pages::table
        .inner_join(
            crate::db::schema::scans::table
                .on(crate::db::schema::scans::id.eq(crawl_pages::scan_id)),
        )
        .filter(crate::db::schema::scans::job_id.eq(job.id))
        .select(crawl_pages::number)
        .first(conn)
        .await?;
    Ok(Some((job, number)))
}

/// Whether any page of the crawl is being visited now.
pub async fn pages_under_way(conn: &mut AsyncPgConnection, crawl_id: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Integer)]
        n: i32,
    }
    Ok(diesel::sql_query(
        "SELECT count(*)::int AS n FROM scans s JOIN jobs j ON j.id = s.job_id
         WHERE s.crawl_id = $1 AND j.state IN ('running', 'queued')",
    )
    .bind::<BigInt, _>(crawl_id)
    .get_result::<Count>(conn)
    .await?
    .n > 0)
}

/// The rules a site target's crawls follow.
pub fn rules_of(value: &serde_json::Value) -> Option<CrawlRules> {
    serde_json::from_value(value.clone()).ok()
}

/// Where a page came from, for people.
pub fn describe_source(value: &serde_json::Value) -> String {
    match serde_json::from_value::<Source>(value.clone()) {
        Ok(Source::Start) => "the start page".into(),
        Ok(Source::Link { on }) => format!("a link on {on}"),
        Ok(Source::Sitemap { sitemap }) => format!("the sitemap {sitemap}"),
        Err(_) => String::new(),
    }
}
