//! A report's PDF: a runner job (the app never starts a browser). Queued with the report; the
//! claim hands the runner the report's stored document; the runner prints it with no network
//! and uploads `report.pdf`, which the app checks, seals and records under the attempt that
//! uploaded it; completing the job makes it the report's PDF.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::queries::Report;
use crate::crypto::token_hash;
use crate::db::schema::reports;
use crate::queue;
use crate::runner::protocol::{PDF_JOB, PdfOrder};
use crate::scans::ingest::blob_error;
use crate::state::AppState;
use crate::storage::{ObjectKey, Uploader};
use crate::web::AppError;

/// Queues the PDF of a report just stored; call in the transaction that stores it.
pub async fn enqueue(conn: &mut AsyncPgConnection, report_id: i64) -> QueryResult<()> {
    let job = queue::enqueue(
        conn,
        PDF_JOB,
        &serde_json::json!({ "report_id": report_id }),
        3,
        OffsetDateTime::now_utc(),
    )
    .await?;
    diesel::update(reports::table.find(report_id))
        .set(reports::pdf_job_id.eq(job))
        .execute(conn)
        .await?;
    Ok(())
}

/// The report a PDF job is for.
async fn report_of_job(conn: &mut AsyncPgConnection, job_id: i64) -> QueryResult<Option<Report>> {
    reports::table
        .filter(reports::pdf_job_id.eq(job_id))
        .select(Report::as_select())
        .first(conn)
        .await
        .optional()
}

/// The order for a claimed PDF job: the report's document, read and checked by the app.
/// `None` when the report was deleted meanwhile.
pub async fn order(state: &AppState, job_id: i64) -> Result<Option<PdfOrder>, AppError> {
    let mut conn = state.conn().await?;
    let Some(report) = report_of_job(&mut conn, job_id).await? else {
        return Ok(None);
    };
    let branding = crate::branding::queries::branding(&mut conn, report.org_id).await?;
    drop(conn);
    let html = super::routes::read_document(state, &report).await?;
    Ok(Some(PdfOrder {
        report_id: report.id,
        html: String::from_utf8(html).map_err(AppError::internal)?,
        header: format!("{} · {}", branding.name, report.title),
    }))
}

/// The attempt number the token holds on a running PDF job, if it does.
async fn held_attempt(
    conn: &mut AsyncPgConnection,
    job_id: i64,
    token: &str,
) -> QueryResult<Option<i32>> {
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    diesel::sql_query(
        "SELECT attempts FROM jobs WHERE id = $1 AND kind = 'pdf' AND state = 'running'
           AND attempt_token_hash = $2 AND lease_expires_at > clock_timestamp()",
    )
    .bind::<BigInt, _>(job_id)
    .bind::<Bytea, _>(token_hash(token))
    .get_result::<Held>(conn)
    .await
    .optional()
    .map(|held| held.map(|h| h.attempts))
}

fn pdf_key(report: &Report, attempt: i32) -> Result<ObjectKey, AppError> {
    ObjectKey::client_report_pdf(report.org_id, report.id, Uploader::Attempt(attempt))
        .map_err(AppError::internal)
}

/// Stores the PDF an attempt uploaded: checked, sealed under the attempt's own key, recorded.
pub async fn upload(
    state: &AppState,
    job_id: i64,
    token: &str,
    bytes: &[u8],
) -> Result<String, AppError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(AppError::BadRequest("report.pdf is not a PDF".into()));
    }
    let mut conn = state.conn().await?;
    let attempt = held_attempt(&mut conn, job_id, token)
        .await?
        .ok_or_else(|| AppError::Conflict("the job is not running under this attempt".into()))?;
    let report = report_of_job(&mut conn, job_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let key = pdf_key(&report, attempt)?;
    state
        .blobs
        .put(&mut conn, &key, bytes)
        .await
        .map_err(blob_error)?;
    let sha256 = hex::encode(crate::crypto::sha256(bytes));
    let recorded = diesel::update(reports::table.find(report.id))
        .filter(reports::pdf_done.eq(false))
        .set((
            reports::pdf_attempt.eq(attempt),
            reports::pdf_sha256.eq(&sha256),
            reports::pdf_size_bytes.eq(bytes.len() as i64),
        ))
        .execute(&mut conn)
        .await?;
    if recorded == 0 {
        return Err(AppError::Conflict(
            "the report's PDF is already complete".into(),
        ));
    }
    Ok(sha256)
}

/// Completes a PDF job whose attempt uploaded its PDF; the same request again is a duplicate.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    job_id: i64,
    token: &str,
) -> Result<(i64, bool), AppError> {
    let report = report_of_job(conn, job_id)
        .await?
        .ok_or(AppError::NotFound)?;
    if report.pdf_done {
        return Ok((report.id, true));
    }
    let attempt = held_attempt(conn, job_id, token)
        .await?
        .ok_or_else(|| AppError::Conflict("the job is not running under this attempt".into()))?;
    if report.pdf_attempt != Some(attempt) {
        return Err(AppError::BadRequest(
            "upload report.pdf for this attempt before completing".into(),
        ));
    }
    use diesel_async::AsyncConnection;
    let token = token.to_owned();
    conn.transaction::<_, AppError, _>(async |conn| {
        if !queue::complete(conn, job_id, &token).await? {
            return Err(AppError::Conflict("the job could not be completed".into()));
        }
        diesel::update(reports::table.find(report.id))
            .set(reports::pdf_done.eq(true))
            .execute(conn)
            .await?;
        super::delivery::pdf_printed(conn, report.id).await?;
        Ok(())
    })
    .await?;
    Ok((report.id, false))
}

/// The finished PDF of a report of the caller's organization, checked against its hash;
/// `None` while it is being made.
pub async fn read(state: &AppState, report: &Report) -> Result<Option<Vec<u8>>, AppError> {
    let (true, Some(attempt), Some(recorded)) = (
        report.pdf_done,
        report.pdf_attempt,
        report.pdf_sha256.as_ref(),
    ) else {
        return Ok(None);
    };
    let key = pdf_key(report, attempt)?;
    let mut conn = state.conn().await?;
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != *recorded {
        tracing::error!(%key, "report PDF does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    Ok(Some(bytes.to_vec()))
}
