//! `/internal/v1`: the API runners use. A runner long-polls for a job, heartbeats while it
//! scans, uploads the screenshots and then the snapshot under the job's attempt token, or
//! reports a failure. Every request about a job must come from the attempt that holds it.

use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse, web};
use scanner::{SNAPSHOT_FORMAT_VERSION, Snapshot};

use super::ingest::{self, Standing};
use super::runner_tokens::RunnerCtx;
use crate::checkouts;
use crate::client_reports;
use crate::crawls;
use crate::db::schema::snapshots;
use crate::queue::{self, FailOutcome};
use crate::runner::protocol::{
    ATTEMPT_HEADER, CHECKOUT_JOB, CRAWL_JOB, CRAWL_PAGE_JOB, CheckoutOrder, ClaimRequest,
    ClaimedJob, Completed, CrawlPageResult, FailReply, FailRequest, MAX_ARTIFACT_BYTES,
    MAX_CLAIM_WAIT_SECONDS, MAX_CRAWL_PAGE_RESULT_BYTES, MAX_PDF_BYTES, MAX_SNAPSHOT_BYTES,
    PDF_ARTIFACT, PDF_JOB, PdfCompleted, RUNNER_JOBS, SCAN_ARTIFACTS, SNAPSHOT_ARTIFACT, ScanOrder,
};
use crate::state::AppState;
use crate::web::body::{read_json, read_limited, require_content_type};
use crate::web::routes::{Route, internal};
use crate::web::{ApiError, AppError, object_id};

type Reply = Result<HttpResponse, ApiError>;

/// How long a claimed job waits for the runner's first heartbeat.
const CLAIM_ACK_WINDOW: Duration = Duration::from_secs(10);

pub fn routes() -> Vec<Route> {
    vec![
        internal(Method::POST, "/internal/v1/jobs/claim", claim)
            .summary("Wait for a job and claim it (204 when none came in time)")
            .example(r#"{"wait_seconds": 0}"#)
            .request::<ClaimRequest>()
            .response::<ClaimedJob>(),
        internal(
            Method::POST,
            "/internal/v1/jobs/{job_id}/heartbeat",
            heartbeat,
        )
        .summary("Extend the lease of the attempt that holds the job")
        .success(204),
        internal(
            Method::PUT,
            "/internal/v1/jobs/{job_id}/artifacts/{artifact}",
            upload_artifact,
        )
        .summary("Upload a screenshot of the attempt (stored sealed): a scan's viewport.png or fullpage.png, a checkout run's step-N.png")
        .success(201),
        internal(
            Method::POST,
            "/internal/v1/jobs/{job_id}/complete",
            complete,
        )
        .summary("Send the snapshot (scan) or the report and captured pages (checkout run): completes the job once, however often it is sent")
        .response::<Completed>(),
        internal(Method::POST, "/internal/v1/jobs/{job_id}/fail", fail)
            .summary("Report that the attempt failed")
            .example(r#"{"error": "the site did not answer"}"#)
            .request::<FailRequest>()
            .response::<FailReply>(),
    ]
}

pub(crate) fn attempt_token(req: &HttpRequest) -> Result<String, AppError> {
    req.headers()
        .get(ATTEMPT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 100)
        .map(str::to_string)
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "send the claimed attempt's token in the {ATTEMPT_HEADER} header"
            ))
        })
}

/// Hands out the next scan job, waiting up to `wait_seconds` for one. Jobs whose lease lapsed
/// are returned to the queue on the way.
async fn claim(
    state: web::Data<AppState>,
    runner: RunnerCtx,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    let request: ClaimRequest = read_json(&req, payload, 4096, "the JSON body").await?;
    if request.wait_seconds > MAX_CLAIM_WAIT_SECONDS {
        return Err(AppError::invalid(
            "wait_seconds",
            format!("must be at most {MAX_CLAIM_WAIT_SECONDS}"),
        )
        .into());
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(request.wait_seconds));
    let lease = state.config.runners.lease;
    // A long poll may outlive its runner (killed while waiting): the job it is handed holds
    // only until the runner's first heartbeat acknowledges it, so a dead poller costs seconds.
    let claim_lease = lease.min(CLAIM_ACK_WINDOW);
    let kinds = RUNNER_JOBS.map(String::from);
    loop {
        // Listen before looking, so a job queued in between still wakes us.
        let notified = state.jobs_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut conn = state.conn().await?;
        if let Some(job) = queue::claim(&mut conn, &runner.holder(), &kinds, claim_lease).await? {
            let handed = |scan: Option<ScanOrder>, checkout: Option<CheckoutOrder>| ClaimedJob {
                job_id: job.id,
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                attempt_token: job.token.clone(),
                lease_seconds: lease.as_secs(),
                scan,
                checkout,
                pdf: None,
                crawl: None,
                crawl_page: None,
            };
            if job.kind == CRAWL_JOB {
                match crawls::internal::lane_order(&mut conn, &job.payload).await? {
                    Some(order) => {
                        let mut handed = handed(None, None);
                        handed.crawl = Some(order);
                        return Ok(HttpResponse::Ok().json(handed));
                    }
                    None => {
                        // Its crawl is over (or was deleted) before this lane started.
                        queue::complete(&mut conn, job.id, &job.token).await?;
                        continue;
                    }
                }
            }
            if job.kind == PDF_JOB {
                drop(conn);
                match client_reports::pdf::order(&state, job.id).await? {
                    Some(order) => {
                        let mut handed = handed(None, None);
                        handed.pdf = Some(order);
                        return Ok(HttpResponse::Ok().json(handed));
                    }
                    None => {
                        // Its report was deleted after the PDF was asked for.
                        let mut conn = state.conn().await?;
                        queue::complete(&mut conn, job.id, &job.token).await?;
                        continue;
                    }
                }
            }
            if job.kind == CHECKOUT_JOB {
                match checkouts::ingest::order(&mut conn, job.id).await? {
                    Some(order) => return Ok(HttpResponse::Ok().json(handed(None, Some(order)))),
                    None => {
                        // Its test was deleted after the run was asked for.
                        queue::complete(&mut conn, job.id, &job.token).await?;
                        continue;
                    }
                }
            }
            match serde_json::from_value::<ScanOrder>(job.payload.clone()) {
                Ok(_) if !ingest::scan_exists(&mut conn, job.id).await? => {
                    // Its target was deleted after it was queued: nothing left to scan.
                    queue::complete(&mut conn, job.id, &job.token).await?;
                    continue;
                }
                Ok(scan) => return Ok(HttpResponse::Ok().json(handed(Some(scan), None))),
                Err(error) => {
                    // Not a job any runner can do: keep the reason and let it die.
                    tracing::error!(job = job.id, %error, "unreadable scan job");
                    queue::fail(
                        &mut conn,
                        job.id,
                        &job.token,
                        "the job's order is unreadable",
                    )
                    .await?;
                    continue;
                }
            }
        }
        let (requeued, killed) = queue::reap(&mut conn).await?;
        drop(conn);
        if requeued > 0 {
            tracing::info!(requeued, killed, "jobs whose lease lapsed were returned");
            continue;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(HttpResponse::NoContent().finish());
        }
        // Other serve processes queue jobs too: look again at least every second.
        let wait = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(wait, notified).await;
    }
}

async fn heartbeat(
    state: web::Data<AppState>,
    _runner: RunnerCtx,
    req: HttpRequest,
    path: web::Path<String>,
) -> Reply {
    let job_id = object_id(&path)?;
    let token = attempt_token(&req)?;
    let mut conn = state.conn().await?;
    if queue::heartbeat(&mut conn, job_id, &token, state.config.runners.lease).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        let kind = queue::kind(&mut conn, job_id).await?;
        if kind.as_deref() == Some(CHECKOUT_JOB) {
            checkouts::ingest::standing(&mut conn, job_id, &token).await?;
        } else if kind.is_none() {
            return Err(AppError::NotFound.into());
        } else if !matches!(kind.as_deref(), Some(PDF_JOB | CRAWL_JOB)) {
            ingest::standing(&mut conn, job_id, &token).await?;
        }
        Err(AppError::Conflict("the job is not running under this attempt".into()).into())
    }
}

async fn upload_artifact(
    state: web::Data<AppState>,
    _runner: RunnerCtx,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Reply {
    let (job, name) = path.into_inner();
    let job_id = object_id(&job)?;
    let token = attempt_token(&req)?;
    let mut conn = state.conn().await?;
    let kind = queue::kind(&mut conn, job_id)
        .await?
        .ok_or(AppError::NotFound)?;
    drop(conn);
    if kind == PDF_JOB {
        if name != PDF_ARTIFACT {
            return Err(AppError::NotFound.into());
        }
        require_content_type(&req, "application/pdf")?;
        let bytes = read_limited(&req, payload, MAX_PDF_BYTES).await?;
        let sha256 = client_reports::pdf::upload(&state, job_id, &token, &bytes).await?;
        return Ok(
            HttpResponse::Created().json(serde_json::json!({"name": name, "sha256": sha256}))
        );
    }
    if kind == CHECKOUT_JOB {
        if !checkouts::internal::is_step_screenshot(&name) {
            return Err(AppError::NotFound.into());
        }
    } else if !SCAN_ARTIFACTS.iter().any(|(known, _)| *known == name) {
        return Err(AppError::NotFound.into());
    }
    let content_type = "image/png";
    require_content_type(&req, content_type)?;
    let bytes = read_limited(&req, payload, MAX_ARTIFACT_BYTES).await?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(AppError::BadRequest(format!("{name} is not a PNG image")).into());
    }
    let mut conn = state.conn().await?;
    if kind == CHECKOUT_JOB {
        return Ok(
            checkouts::internal::upload(&mut conn, &state, job_id, &token, &name, &bytes).await?,
        );
    }
    let name = name.as_str();
    match ingest::standing(&mut conn, job_id, &token).await? {
        Standing::Holds(attempt) => {
            let sha256 = ingest::store_artifact(
                &mut conn,
                &state.blobs,
                &attempt,
                &token,
                name,
                content_type,
                &bytes,
            )
            .await?;
            Ok(HttpResponse::Created().json(serde_json::json!({"name": name, "sha256": sha256})))
        }
        Standing::Completed(_) => Err(AppError::Conflict(
            "the job is already complete; its artifacts can no longer change".into(),
        )
        .into()),
    }
}

async fn complete(
    state: web::Data<AppState>,
    runner: RunnerCtx,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let job_id = object_id(&path)?;
    let token = attempt_token(&req)?;
    let kind = queue::kind(&mut *state.conn().await?, job_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if kind == CHECKOUT_JOB {
        return Ok(
            checkouts::internal::complete(&state, &runner, &req, payload, job_id, &token).await?,
        );
    }
    if kind == PDF_JOB {
        let mut conn = state.conn().await?;
        let (report_id, duplicate) =
            client_reports::pdf::complete(&mut conn, job_id, &token).await?;
        // A scheduled mail may be waiting for this PDF.
        state.jobs_ready.notify_waiters();
        return Ok(HttpResponse::Ok().json(PdfCompleted {
            report_id,
            duplicate,
        }));
    }
    if kind == CRAWL_JOB {
        // A lane is over when its crawl has no page left for it.
        let mut conn = state.conn().await?;
        let done = queue::complete(&mut conn, job_id, &token).await?;
        if !done {
            return Err(
                AppError::Conflict("the job is not running under this attempt".into()).into(),
            );
        }
        return Ok(HttpResponse::Ok().json(serde_json::json!({"job_id": job_id})));
    }
    let (snapshot, crawl_page) = if kind == CRAWL_PAGE_JOB {
        let result: CrawlPageResult = read_json(
            &req,
            payload,
            MAX_CRAWL_PAGE_RESULT_BYTES,
            "the crawl page's result",
        )
        .await?;
        (result.snapshot.clone(), Some(result))
    } else {
        let snapshot: Snapshot =
            read_json(&req, payload, MAX_SNAPSHOT_BYTES, "the snapshot").await?;
        (snapshot, None)
    };
    if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
        return Err(AppError::BadRequest(format!(
            "snapshot format {} is not supported; this app reads format {SNAPSHOT_FORMAT_VERSION}",
            snapshot.format_version
        ))
        .into());
    }
    let mut conn = state.conn().await?;
    let attempt = match ingest::standing(&mut conn, job_id, &token).await? {
        Standing::Completed(attempt) => return Ok(duplicate(&mut conn, &attempt).await?),
        Standing::Holds(attempt) => attempt,
    };
    ingest::check_screenshots(&mut conn, &attempt, &snapshot).await?;
    let document = serde_json::to_vec(&snapshot).map_err(AppError::internal)?;
    ingest::store_artifact(
        &mut conn,
        &state.blobs,
        &attempt,
        &token,
        SNAPSHOT_ARTIFACT,
        "application/json",
        &document,
    )
    .await?;
    match ingest::record_snapshot(
        &mut conn,
        &attempt,
        &token,
        runner.id,
        &snapshot,
        crawl_page.as_ref(),
    )
    .await?
    {
        Some(snapshot_id) => {
            // Wake this process's diff worker.
            state.jobs_ready.notify_waiters();
            tracing::info!(
                job = job_id,
                scan = attempt.scan_id,
                snapshot = snapshot_id,
                "snapshot recorded"
            );
            Ok(HttpResponse::Ok().json(Completed {
                snapshot_id,
                duplicate: false,
            }))
        }
        // Another request of the same attempt completed it meanwhile, or the lease was lost.
        None => match ingest::standing(&mut conn, job_id, &token).await? {
            Standing::Completed(attempt) => Ok(duplicate(&mut conn, &attempt).await?),
            Standing::Holds(_) => {
                Err(AppError::Conflict("the job could not be completed".into()).into())
            }
        },
    }
}

async fn duplicate(
    conn: &mut diesel_async::AsyncPgConnection,
    attempt: &ingest::Attempt,
) -> Result<HttpResponse, AppError> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let snapshot_id: i64 = snapshots::table
        .filter(snapshots::scan_id.eq(attempt.scan_id))
        .select(snapshots::id)
        .first(conn)
        .await?;
    Ok(HttpResponse::Ok().json(Completed {
        snapshot_id,
        duplicate: true,
    }))
}

async fn fail(
    state: web::Data<AppState>,
    _runner: RunnerCtx,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Reply {
    let job_id = object_id(&path)?;
    let token = attempt_token(&req)?;
    let request: FailRequest = read_json(&req, payload, 16 * 1024, "the JSON body").await?;
    let mut conn = state.conn().await?;
    let error = request.error.replace('\0', "\u{FFFD}");
    if queue::kind(&mut conn, job_id).await?.as_deref() == Some(CRAWL_PAGE_JOB) {
        // The runner's verdict on a page of a crawl is final: another attempt would meet the
        // same page (a dead runner's page, in contrast, comes back through its lapsed lease).
        return Ok(HttpResponse::Ok()
            .json(crawls::internal::page_failed(&mut conn, job_id, &token, &error).await?));
    }
    let reply = match queue::fail(&mut conn, job_id, &token, &error).await? {
        FailOutcome::Retrying(at) => FailReply {
            outcome: "retrying".into(),
            retry_at: at
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
        },
        FailOutcome::Dead => {
            if queue::kind(&mut conn, job_id).await?.as_deref() == Some(CHECKOUT_JOB) {
                checkouts::ingest::after_dead_run(&mut conn, job_id).await?;
            } else {
                crate::alerts::queries::after_failed_scan(&mut conn, job_id).await?;
                crate::compliance::queries::after_dead_job(&mut conn, job_id).await?;
            }
            FailReply {
                outcome: "dead".into(),
                retry_at: None,
            }
        }
        FailOutcome::NotHolder => {
            let kind = queue::kind(&mut conn, job_id).await?;
            if kind.as_deref() == Some(CHECKOUT_JOB) {
                checkouts::ingest::standing(&mut conn, job_id, &token).await?;
            } else if kind.is_none() {
                return Err(AppError::NotFound.into());
            } else if !matches!(kind.as_deref(), Some(PDF_JOB | CRAWL_JOB)) {
                ingest::standing(&mut conn, job_id, &token).await?;
            }
            return Err(
                AppError::Conflict("the job is not running under this attempt".into()).into(),
            );
        }
    };
    Ok(HttpResponse::Ok().json(reply))
}
