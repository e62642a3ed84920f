//! The runners' side of a crawl: a lane's order when it is claimed, `crawl/next` handing the
//! lane the crawl's next page, and a page the runner could not visit.

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::progress;
use crate::db::schema::crawls;
use crate::queue;
use crate::runner::protocol::{
    ClaimedJob, CrawlNext, CrawlOrder, CrawlPageOrder, FailReply, ScanOrder,
};
use crate::scans::internal::attempt_token;
use crate::scans::runner_tokens::RunnerCtx;
use crate::state::AppState;
use crate::web::routes::{Route, internal};
use crate::web::{ApiError, AppError, object_id};

/// How long a lane waits before asking again while other lanes' pages may still add some.
const WAIT_MS: u32 = 250;

pub fn routes() -> Vec<Route> {
    vec![
        internal(
            Method::POST,
            "/internal/v1/jobs/{job_id}/crawl/next",
            next,
        )
        .summary("For a crawl lane: claim the crawl's next page, or hear that the lane should wait or is done")
        .response::<CrawlNext>(),
    ]
}

/// The order of a claimed lane, or `None` when its crawl is no longer running.
pub async fn lane_order(
    conn: &mut AsyncPgConnection,
    payload: &serde_json::Value,
) -> Result<Option<CrawlOrder>, AppError> {
    let crawl_id = payload["crawl_id"].as_i64().unwrap_or(0);
    let lane = payload["lane"].as_i64().unwrap_or(1) as i32;
    let found: Option<(String, serde_json::Value, i64)> = crawls::table
        .find(crawl_id)
        .select((
            crawls::state,
            diesel::dsl::sql::<diesel::sql_types::Jsonb>("frontier->'rules'"),
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "greatest(0, extract(epoch FROM deadline - now()))::bigint",
            ),
        ))
        .first(conn)
        .await
        .optional()?;
    let Some((state, rules, seconds_left)) = found else {
        return Ok(None);
    };
    if state != "running" {
        return Ok(None);
    }
    let one_session = rules["one_session"].as_bool().unwrap_or(true);
    Ok(Some(CrawlOrder {
        crawl_id,
        lane,
        one_session,
        seconds_left: u64::try_from(seconds_left).unwrap_or(0),
    }))
}

async fn next(
    state: web::Data<AppState>,
    runner: RunnerCtx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let lane_job = object_id(&path)?;
    let token = attempt_token(&req)?;
    let lease = state.config.runners.lease;
    let mut conn = state.conn().await?;
    // Only the attempt holding the lane may take pages; asking renews its lease.
    if !queue::heartbeat(&mut conn, lane_job, &token, lease).await? {
        return match queue::kind(&mut conn, lane_job).await? {
            Some(kind) if kind == crate::runner::protocol::CRAWL_JOB => {
                Err(AppError::Conflict("the job is not running under this attempt".into()).into())
            }
            _ => Err(AppError::NotFound.into()),
        };
    }
    let payload: serde_json::Value = crate::db::schema::jobs::table
        .find(lane_job)
        .select(crate::db::schema::jobs::payload)
        .first(&mut conn)
        .await?;
    let Some(order) = lane_order(&mut conn, &payload).await? else {
        return Ok(HttpResponse::Ok().json(CrawlNext::Done));
    };
    let crawl_id = order.crawl_id;
    // A dead runner's page comes back now rather than at the next claim's reaping.
    queue::reap(&mut conn).await?;
    let late = conn
        .transaction::<_, AppError, _>(async |conn| progress::stop_if_late(conn, crawl_id).await)
        .await?;
    if !late
        && let Some((job, number)) =
            progress::claim_page(&mut conn, crawl_id, &runner.holder(), lease).await?
    {
        let scan: ScanOrder = serde_json::from_value(job.payload.clone()).map_err(|error| {
            tracing::error!(job = job.id, %error, "unreadable crawl page job");
            AppError::internal(error)
        })?;
        let rules = progress::rules_of(
            &crawls::table
                .find(crawl_id)
                .select(diesel::dsl::sql::<diesel::sql_types::Jsonb>(
                    "frontier->'rules'",
                ))
                .first::<serde_json::Value>(&mut conn)
                .await?,
        )
        .unwrap_or_default();
        let page = ClaimedJob {
            job_id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            attempt_token: job.token.clone(),
            lease_seconds: lease.as_secs(),
            scan: Some(scan),
            checkout: None,
            pdf: None,
            crawl: None,
            crawl_page: Some(CrawlPageOrder {
                crawl_id,
                number,
                read_robots: number == 1,
                read_sitemaps: number == 1 && rules.sitemaps,
            }),
        };
        return Ok(HttpResponse::Ok().json(CrawlNext::Page {
            page: Box::new(page),
        }));
    }
    if progress::pages_under_way(&mut conn, crawl_id).await? {
        return Ok(HttpResponse::Ok().json(CrawlNext::Wait { retry_ms: WAIT_MS }));
    }
    conn.transaction::<_, AppError, _>(async |conn| progress::page_ended(conn, crawl_id).await)
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(HttpResponse::Ok().json(CrawlNext::Done))
}

/// A page the runner could not visit: listed as unreachable with the runner's reason, at once.
pub async fn page_failed(
    conn: &mut AsyncPgConnection,
    job_id: i64,
    token: &str,
    error: &str,
) -> Result<FailReply, AppError> {
    let crawl_id: Option<i64> = crate::db::schema::scans::table
        .filter(crate::db::schema::scans::job_id.eq(job_id))
        .select(crate::db::schema::scans::crawl_id)
        .first(conn)
        .await
        .optional()?
        .flatten();
    let crawl_id = crawl_id.ok_or(AppError::NotFound)?;
    let (job_id, token, error) = (job_id, token.to_owned(), error.to_owned());
    let ended = conn
        .transaction::<_, AppError, _>(async move |conn| {
            if !queue::give_up(conn, job_id, &token, &error).await? {
                return Ok(false);
            }
            progress::page_ended(conn, crawl_id).await?;
            Ok(true)
        })
        .await?;
    if !ended {
        return Err(AppError::Conflict(
            "the job is not running under this attempt".into(),
        ));
    }
    Ok(FailReply {
        outcome: "dead".into(),
        retry_at: None,
    })
}
