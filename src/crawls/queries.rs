//! Reading crawls and their pages back, always scoped to the caller's organization.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::OrgCtx;

/// A crawl as people and the API see it.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct Crawl {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    /// `dashboard`, `api` or `schedule`.
    #[diesel(sql_type = Text)]
    pub trigger: String,
    /// `running`, `assembling` (the site snapshot is being built), `done` or `failed`.
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Text)]
    pub start_url: String,
    /// Pages visited at once at most.
    #[diesel(sql_type = Integer)]
    pub lanes: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// Pages handed out so far, and how many of them are over (visited or unreachable).
    #[diesel(sql_type = BigInt)]
    pub pages_planned: i64,
    #[diesel(sql_type = BigInt)]
    pub pages_over: i64,
    /// Once done: pages visited and pages that could not be reached.
    #[diesel(sql_type = Nullable<Integer>)]
    pub page_count: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub unreachable_count: Option<i32>,
    /// The crawl this one was compared with.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub previous_crawl_id: Option<i64>,
    /// What changed on the site since that crawl (`crawls::site_diff::SiteChange`).
    #[diesel(sql_type = Nullable<Jsonb>)]
    #[schemars(with = "Option<Vec<super::site_diff::SiteChange>>")]
    pub changes: Option<serde_json::Value>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    #[serde(skip)]
    pub site_sha256: Option<String>,
}

impl Crawl {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed")
    }

    /// The site's changes, read back.
    pub fn site_changes(&self) -> Vec<super::site_diff::SiteChange> {
        self.changes
            .as_ref()
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default()
    }
}

const CRAWL_SELECT: &str = "
    SELECT c.id, c.target_id, c.trigger, c.state, c.start_url, c.lanes, c.error,
           (SELECT count(*) FROM crawl_pages p WHERE p.crawl_id = c.id) AS pages_planned,
           (SELECT count(*) FROM crawl_pages p JOIN scans s ON s.id = p.scan_id
              JOIN jobs j ON j.id = s.job_id
            WHERE p.crawl_id = c.id AND j.state IN ('done', 'dead')) AS pages_over,
           c.page_count, c.unreachable_count, c.previous_crawl_id, c.changes, c.created_at,
           c.finished_at, c.site_sha256
    FROM crawls c";

/// One crawl of the caller's organization.
pub async fn crawl(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Crawl> {
    diesel::sql_query(format!("{CRAWL_SELECT} WHERE c.id = $1 AND c.org_id = $2"))
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result(conn)
        .await
}

/// A target's crawls, newest first (the caller has checked the target is theirs).
pub async fn list(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    limit: i64,
) -> QueryResult<Vec<Crawl>> {
    diesel::sql_query(format!(
        "{CRAWL_SELECT} WHERE c.target_id = $1 AND c.org_id = $2 ORDER BY c.id DESC LIMIT $3"
    ))
    .bind::<BigInt, _>(target_id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// A page of a crawl and where it stands.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct CrawlPage {
    /// In the order the crawl handed pages out, from 1 (the start page).
    #[diesel(sql_type = Integer)]
    pub number: i32,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Integer)]
    pub depth: i32,
    /// Where the crawl found it: the start, a link on a page, or a sitemap.
    #[diesel(sql_type = Jsonb)]
    #[schemars(with = "serde_json::Value")]
    pub found_by: serde_json::Value,
    /// `queued`, `visiting`, `visited` or `unreachable`.
    #[diesel(sql_type = Text)]
    pub state: String,
    /// Why it could not be reached.
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub final_url: Option<String>,
    /// First-party links on it.
    #[diesel(sql_type = Nullable<Integer>)]
    pub links: Option<i32>,
    #[diesel(sql_type = BigInt)]
    pub scan_id: i64,
    /// Its snapshot, once visited.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub snapshot_id: Option<i64>,
}

impl CrawlPage {
    pub fn found_by_text(&self) -> String {
        super::progress::describe_source(&self.found_by)
    }
}

/// The pages of a crawl of the caller's organization, in the order handed out.
pub async fn pages(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    crawl_id: i64,
) -> QueryResult<Vec<CrawlPage>> {
    diesel::sql_query(
        "SELECT p.number, p.url, p.depth, p.found_by,
                CASE WHEN p.outcome IS NOT NULL THEN p.outcome
                     WHEN j.state = 'running' THEN 'visiting'
                     WHEN j.state = 'dead' THEN 'unreachable'
                     ELSE 'queued' END AS state,
                coalesce(p.reason, CASE WHEN j.state = 'dead' THEN j.last_error END) AS reason,
                p.final_url, p.links, p.scan_id, sn.id AS snapshot_id
         FROM crawl_pages p JOIN scans s ON s.id = p.scan_id JOIN jobs j ON j.id = s.job_id
         LEFT JOIN snapshots sn ON sn.scan_id = s.id
         WHERE p.crawl_id = $1 AND p.org_id = $2
         ORDER BY p.number",
    )
    .bind::<BigInt, _>(crawl_id)
    .bind::<BigInt, _>(ctx.org_id)
    .load(conn)
    .await
}

/// Whether the target has a crawl that is not over.
pub async fn has_open_crawl(conn: &mut AsyncPgConnection, target_id: i64) -> QueryResult<bool> {
    use crate::db::schema::crawls;
    diesel::select(diesel::dsl::exists(
        crawls::table
            .filter(crawls::target_id.eq(target_id))
            .filter(crawls::state.eq_any(["running", "assembling"])),
    ))
    .get_result(conn)
    .await
}
