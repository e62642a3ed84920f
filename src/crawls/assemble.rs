//! Building a crawl's site snapshot once its pages are over: every `serve` process runs a
//! worker that claims `crawl_site` jobs, reads the visited pages' snapshots, assembles the site
//! snapshot (the union of their cookies, hosts, scripts and trackers, each with its pages),
//! stores it sealed, compares it with the previous crawl's and raises or resolves the site's
//! alerts — all of it once per crawl.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scanner::Snapshot;
use scanner::crawl::{
    CrawlRecord, Frontier, SiteSnapshot, SitemapRead, Source, Unreachable, VisitedPage,
};
use time::OffsetDateTime;

use super::progress::ASSEMBLE_JOB;
use super::site_diff::{self, SiteChange};
use crate::db::schema::{alerts, crawls};
use crate::scans::ingest::blob_error;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::AppError;

const LEASE: Duration = Duration::from_secs(300);

/// Claims and runs site snapshot jobs until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [ASSEMBLE_JOB.to_string()];
    crate::queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        LEASE,
        |job| {
            let state = state.clone();
            async move {
                let id = job.payload["crawl_id"].as_i64().unwrap_or(0);
                assemble(&state, id).await.map_err(|e| e.to_string())
            }
        },
    )
    .await
}

/// A page of the crawl as stored.
#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Integer)]
    depth: i32,
    #[diesel(sql_type = Jsonb)]
    found_by: serde_json::Value,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    links: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    session: Option<String>,
    /// Set when the page's snapshot was recorded.
    #[diesel(sql_type = Nullable<BigInt>)]
    snapshot_id: Option<i64>,
}

/// Builds and stores the site snapshot of crawl `id`, if it is waiting for one.
pub async fn assemble(state: &AppState, id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    let found: Option<(
        i64,
        i64,
        String,
        String,
        serde_json::Value,
        serde_json::Value,
        OffsetDateTime,
    )> = crawls::table
        .find(id)
        .select((
            crawls::org_id,
            crawls::target_id,
            crawls::state,
            crawls::start_url,
            crawls::frontier,
            crawls::sitemaps,
            crawls::created_at,
        ))
        .first(&mut conn)
        .await
        .optional()?;
    let Some((org_id, target_id, crawl_state, start_url, frontier, sitemaps, created_at)) = found
    else {
        return Ok(()); // Its target was deleted meanwhile.
    };
    if crawl_state != "assembling" {
        return Ok(());
    }
    // In the order they were captured: within a session, a cookie is credited to the page
    // whose visit set it.
    let rows: Vec<PageRow> = diesel::sql_query(
        "SELECT cp.url, cp.depth, cp.found_by, cp.outcome, cp.reason, cp.links, cp.session,
                sn.id AS snapshot_id
         FROM crawl_pages cp JOIN scans s ON s.id = cp.scan_id
         LEFT JOIN snapshots sn ON sn.scan_id = s.id
         WHERE cp.crawl_id = $1
         ORDER BY sn.captured_at NULLS LAST, sn.id, cp.number",
    )
    .bind::<BigInt, _>(id)
    .load(&mut conn)
    .await?;
    let previous: Option<(i64, Option<String>)> = crawls::table
        .filter(crawls::target_id.eq(target_id))
        .filter(crawls::state.eq("done"))
        .filter(crawls::id.lt(id))
        .order(crawls::id.desc())
        .select((crawls::id, crawls::site_sha256))
        .first(&mut conn)
        .await
        .optional()?;
    drop(conn);

    let frontier: Frontier = serde_json::from_value(frontier).map_err(AppError::internal)?;
    let rules = frontier.rules().clone();
    let (skipped, skipped_counts) = frontier.finish();
    let mut documents: Vec<(usize, Snapshot)> = Vec::new();
    let mut unreachable = Vec::new();
    let mut sessions: HashMap<String, usize> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        match (row.outcome.as_deref(), row.snapshot_id) {
            (Some("visited"), Some(snapshot_id)) => {
                let doc = crate::scans::analysis::load_document(state, org_id, snapshot_id).await?;
                documents.push((index, doc));
            }
            _ => unreachable.push(Unreachable {
                url: row.url.clone(),
                reason: row
                    .reason
                    .clone()
                    .unwrap_or_else(|| "the page was not captured".into()),
            }),
        }
    }
    let sources: Vec<Source> = rows
        .iter()
        .map(|r| serde_json::from_value(r.found_by.clone()).unwrap_or(Source::Start))
        .collect();
    let visited: Vec<VisitedPage<'_>> = documents
        .iter()
        .map(|(index, doc)| {
            let row = &rows[*index];
            let count = sessions.len() + 1;
            let session = *sessions
                .entry(row.session.clone().unwrap_or_default())
                .or_insert(count);
            VisitedPage {
                url: row.url.as_str(),
                depth: u32::try_from(row.depth).unwrap_or(0),
                found_by: &sources[*index],
                links: usize::try_from(row.links.unwrap_or(0)).unwrap_or(0),
                session,
                snapshot: doc,
            }
        })
        .collect();
    let rfc3339 = |at: OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let host = url::Url::parse(&start_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let record = CrawlRecord {
        start_url,
        site: scanner::party::registrable_domain(&host),
        rules,
        started_at: rfc3339(created_at),
        finished_at: rfc3339(OffsetDateTime::now_utc()),
        unreachable,
        skipped,
        skipped_counts,
        sitemaps: serde_json::from_value::<Vec<SitemapRead>>(sitemaps).unwrap_or_default(),
    };
    let site = SiteSnapshot::assemble(record, &visited);
    // A page's final URL, to the snapshot an alert about it points to.
    let snapshot_of: HashMap<String, i64> = documents
        .iter()
        .filter_map(|(index, doc)| Some((doc.final_url.clone(), rows[*index].snapshot_id?)))
        .collect();
    drop(visited);

    let mut conn = state.conn().await?;
    if site.pages.is_empty() {
        let first = <[Unreachable]>::first(&site.unreachable)
            .map(|u| format!("{}: {}", u.url, u.reason))
            .unwrap_or_else(|| "no page was handed out".into());
        diesel::update(crawls::table.find(id))
            .filter(crawls::state.eq("assembling"))
            .set((
                crawls::state.eq("failed"),
                crawls::error.eq(crate::scans::ingest::clean(
                    &format!("no page could be visited; the first: {first}"),
                    2000,
                )),
                crawls::unreachable_count.eq(site.unreachable.len() as i32),
                crawls::finished_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await?;
        return Ok(());
    }
    let before = match previous {
        Some((previous_id, Some(sha256))) => Some((
            previous_id,
            read_site(state, org_id, previous_id, &sha256).await?,
        )),
        _ => None,
    };
    let changes: Vec<SiteChange> = before
        .as_ref()
        .map(|(_, before)| site_diff::compare(before, &site))
        .unwrap_or_default();
    let document = serde_json::to_vec(&site).map_err(AppError::internal)?;
    let key = ObjectKey::crawl_site(org_id, id);
    state
        .blobs
        .put(&mut conn, &key, &document)
        .await
        .map_err(blob_error)?;
    let sha256 = hex::encode(crate::crypto::sha256(&document));
    let findings = site_diff::findings(&changes);
    let first_snapshot = snapshot_of.values().copied().min();
    conn.transaction::<_, AppError, _>(async |conn| {
        let claimed = diesel::update(crawls::table.find(id))
            .filter(crawls::state.eq("assembling"))
            .set((
                crawls::state.eq("done"),
                crawls::site_sha256.eq(&sha256),
                crawls::page_count.eq(site.pages.len() as i32),
                crawls::unreachable_count.eq(site.unreachable.len() as i32),
                crawls::previous_crawl_id.eq(before.as_ref().map(|(id, _)| *id)),
                crawls::changes.eq(serde_json::to_value(&changes).map_err(AppError::internal)?),
                crawls::finished_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        if claimed == 0 {
            return Ok(()); // Another worker's run finished it first.
        }
        // Only against an earlier crawl: the first crawl of a site is its baseline.
        if before.is_some() {
            for found in &findings {
                let snapshot = found
                    .page
                    .as_ref()
                    .and_then(|page| snapshot_of.get(page).copied())
                    .or(first_snapshot);
                crate::alerts::queries::raise(conn, org_id, target_id, snapshot, &found.finding)
                    .await?;
            }
        }
        resolve_gone(conn, target_id, &site, first_snapshot).await?;
        Ok(())
    })
    .await?;
    state.jobs_ready.notify_waiters();
    Ok(())
}

/// Resolves the site target's live alerts about a host or cookie no page shows any more.
async fn resolve_gone(
    conn: &mut AsyncPgConnection,
    target_id: i64,
    site: &SiteSnapshot,
    snapshot_id: Option<i64>,
) -> Result<(), AppError> {
    let live: Vec<(i64, String)> = alerts::table
        .filter(alerts::target_id.eq(target_id))
        .filter(alerts::state.ne("resolved"))
        .select((alerts::id, alerts::fingerprint))
        .load(conn)
        .await?;
    let gone: Vec<i64> = live
        .into_iter()
        .filter(|(_, fingerprint)| site_diff::still_shows(fingerprint, site) == Some(false))
        .map(|(id, _)| id)
        .collect();
    if let Some(snapshot_id) = snapshot_id {
        crate::alerts::queries::resolve_automatically(conn, &gone, snapshot_id).await?;
    }
    Ok(())
}

/// A stored site snapshot, checked against its recorded hash. Call only for the caller's own
/// organization (or the crawl's, in the app's workers).
pub async fn read_site(
    state: &AppState,
    org_id: i64,
    crawl_id: i64,
    sha256: &str,
) -> Result<SiteSnapshot, AppError> {
    let mut conn = state.conn().await?;
    let key = ObjectKey::crawl_site(org_id, crawl_id);
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != sha256 {
        tracing::error!(%key, "site snapshot does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    serde_json::from_slice(&bytes).map_err(AppError::internal)
}
