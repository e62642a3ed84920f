//! The checkout side of `/internal/v1`: step screenshots and the run's result, from the attempt
//! that holds the job. The routes themselves are shared with scans (`scans::internal`), which
//! hands checkout jobs here by their kind.

use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncPgConnection;

use super::analysis::page_artifact;
use super::ingest::{self, REPORT_ARTIFACT, Standing};
use crate::runner::protocol::{CheckoutCompleted, CheckoutResult, MAX_CHECKOUT_RESULT_BYTES};
use crate::scans::runner_tokens::RunnerCtx;
use crate::state::AppState;
use crate::web::AppError;
use crate::web::body::read_json;

/// `step-1.png` … `step-200.png`.
pub fn is_step_screenshot(name: &str) -> bool {
    name.strip_prefix("step-")
        .and_then(|n| n.strip_suffix(".png"))
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| {
            (1..=checkout_runner::plan::MAX_STEPS).contains(&n) && !name.contains("-0")
        })
}

pub async fn upload(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    job_id: i64,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> Result<HttpResponse, AppError> {
    match ingest::standing(conn, job_id, token).await? {
        Standing::Holds(attempt) => {
            let sha256 = ingest::store_artifact(
                conn,
                &state.blobs,
                &attempt,
                token,
                name,
                "image/png",
                bytes,
            )
            .await?;
            Ok(HttpResponse::Created().json(serde_json::json!({"name": name, "sha256": sha256})))
        }
        Standing::Completed(_) => Err(AppError::Conflict(
            "the job is already complete; its artifacts can no longer change".into(),
        )),
    }
}

pub async fn complete(
    state: &AppState,
    runner: &RunnerCtx,
    req: &HttpRequest,
    payload: web::Payload,
    job_id: i64,
    token: &str,
) -> Result<HttpResponse, AppError> {
    let result: CheckoutResult = read_json(
        req,
        payload,
        MAX_CHECKOUT_RESULT_BYTES,
        "the checkout result",
    )
    .await?;
    let report = &result.report;
    if report.format_version != checkout_runner::report::REPORT_FORMAT_VERSION {
        return Err(AppError::BadRequest(format!(
            "report format {} is not supported; this app reads format {}",
            report.format_version,
            checkout_runner::report::REPORT_FORMAT_VERSION
        )));
    }
    if report.pages.len() != result.pages.len()
        || report.pages.iter().enumerate().any(|(i, p)| p.index != i)
    {
        return Err(AppError::BadRequest(
            "the report's pages and the captured pages do not match".into(),
        ));
    }
    if report.steps.len() > checkout_runner::plan::MAX_STEPS {
        return Err(AppError::BadRequest("too many steps".into()));
    }
    let mut conn = state.conn().await?;
    let attempt = match ingest::standing(&mut conn, job_id, token).await? {
        Standing::Completed(attempt) => return Ok(done(attempt.run_id, true)),
        Standing::Holds(attempt) => attempt,
    };
    ingest::check_screenshots(&mut conn, &attempt, report).await?;
    let document = serde_json::to_vec(report).map_err(AppError::internal)?;
    ingest::store_artifact(
        &mut conn,
        &state.blobs,
        &attempt,
        token,
        REPORT_ARTIFACT,
        "application/json",
        &document,
    )
    .await?;
    for (index, page) in result.pages.iter().enumerate() {
        let document = serde_json::to_vec(page).map_err(AppError::internal)?;
        ingest::store_artifact(
            &mut conn,
            &state.blobs,
            &attempt,
            token,
            &page_artifact(index),
            "application/json",
            &document,
        )
        .await?;
    }
    match ingest::record(&mut conn, &attempt, token, runner.id, &result).await? {
        Some(run_id) => {
            state.jobs_ready.notify_waiters();
            tracing::info!(
                job = job_id,
                run = run_id,
                outcome = report.outcome.as_str(),
                "checkout run recorded"
            );
            Ok(done(run_id, false))
        }
        None => match ingest::standing(&mut conn, job_id, token).await? {
            Standing::Completed(attempt) => Ok(done(attempt.run_id, true)),
            Standing::Holds(_) => Err(AppError::Conflict("the job could not be completed".into())),
        },
    }
}

fn done(run_id: i64, duplicate: bool) -> HttpResponse {
    HttpResponse::Ok().json(CheckoutCompleted { run_id, duplicate })
}
