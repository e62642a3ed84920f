//! Taking a checkout run's results in: the attempt that holds the job uploads its step
//! screenshots, then the report and captured pages; the app stores them sealed and records the
//! run, its steps and pages in the transaction that completes the job, raising or resolving the
//! test's failure alert. A retried delivery changes nothing.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Bytea, Integer, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::alerts::rules::Finding;
use crate::crypto::token_hash;
use crate::db::schema::checkout_run_artifacts;
use crate::queue;
use crate::runner::protocol::{CheckoutOrder, CheckoutResult, SealedSecret};
use crate::scans::ingest::{ArtifactUpload, store_attempt_artifact};
use crate::storage::{ObjectKey, SealedBlobs, Uploader};
use crate::web::AppError;
use checkout_runner::{Outcome, RunReport};

/// The alert rule a failing checkout test raises.
pub const CHECKOUT_FAILED: &str = "checkout_failed";
/// The artifact holding the whole report.
pub const REPORT_ARTIFACT: &str = "report.json";

/// The run an attempt works on.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunAttempt {
    #[diesel(sql_type = BigInt)]
    pub job_id: i64,
    #[diesel(sql_type = BigInt)]
    pub run_id: i64,
    #[diesel(sql_type = BigInt)]
    pub org_id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    #[diesel(sql_type = BigInt)]
    pub test_id: i64,
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Text)]
    job_state: String,
    #[diesel(sql_type = Bool)]
    current: bool,
    #[diesel(sql_type = Bool)]
    leased: bool,
}

pub enum Standing {
    Holds(RunAttempt),
    Completed(RunAttempt),
}

const STALE: &str = "this attempt no longer holds the job (its lease lapsed or another attempt took over); drop its results";

pub async fn standing(
    conn: &mut AsyncPgConnection,
    job_id: i64,
    token: &str,
) -> Result<Standing, AppError> {
    let attempt: Option<RunAttempt> = diesel::sql_query(
        "SELECT j.id AS job_id, r.id AS run_id, r.org_id, r.target_id, r.test_id,
                j.attempts AS attempt, j.state AS job_state,
                coalesce(j.attempt_token_hash = $2, false) AS current,
                coalesce(j.lease_expires_at > clock_timestamp(), false) AS leased
         FROM jobs j JOIN checkout_runs r ON r.job_id = j.id WHERE j.id = $1",
    )
    .bind::<BigInt, _>(job_id)
    .bind::<Bytea, _>(token_hash(token))
    .get_result(conn)
    .await
    .optional()?;
    let attempt = attempt.ok_or(AppError::NotFound)?;
    match (attempt.job_state.as_str(), attempt.current) {
        ("running", true) if attempt.leased => Ok(Standing::Holds(attempt)),
        ("done", true) => Ok(Standing::Completed(attempt)),
        _ => Err(AppError::Conflict(STALE.into())),
    }
}

/// What the runner that claimed `job_id` needs: the test as it was when the run was asked for,
/// the target's URL and viewport, and the sealed secrets. `None` if the run is gone.
pub async fn order(
    conn: &mut AsyncPgConnection,
    job_id: i64,
) -> QueryResult<Option<CheckoutOrder>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        run_id: i64,
        #[diesel(sql_type = BigInt)]
        test_id: i64,
        #[diesel(sql_type = Text)]
        url: String,
        #[diesel(sql_type = Text)]
        script: String,
        #[diesel(sql_type = Integer)]
        viewport_width: i32,
        #[diesel(sql_type = Integer)]
        viewport_height: i32,
    }
    let row: Option<Row> = diesel::sql_query(
        "SELECT r.id AS run_id, r.test_id, t.url, r.script, t.viewport_width, t.viewport_height
         FROM checkout_runs r JOIN targets t ON t.id = r.target_id WHERE r.job_id = $1",
    )
    .bind::<BigInt, _>(job_id)
    .get_result(conn)
    .await
    .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    use crate::db::schema::checkout_secrets;
    use base64::Engine;
    let secrets: Vec<(String, Vec<u8>)> = checkout_secrets::table
        .filter(checkout_secrets::test_id.eq(row.test_id))
        .select((checkout_secrets::name, checkout_secrets::sealed))
        .load(conn)
        .await?;
    Ok(Some(CheckoutOrder {
        run_id: row.run_id,
        test_id: row.test_id,
        base_url: row.url,
        script: row.script,
        viewport_width: u32::try_from(row.viewport_width).unwrap_or(1366),
        viewport_height: u32::try_from(row.viewport_height).unwrap_or(768),
        secrets: secrets
            .into_iter()
            .map(|(name, sealed)| SealedSecret {
                name,
                sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
            })
            .collect(),
    }))
}

/// Seals and stores one artifact of the attempt, then records it, only while the attempt holds
/// the job.
pub async fn store_artifact(
    conn: &mut AsyncPgConnection,
    blobs: &SealedBlobs,
    attempt: &RunAttempt,
    token: &str,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<String, AppError> {
    let upload = ArtifactUpload {
        key: ObjectKey::checkout_artifact(
            attempt.org_id,
            attempt.run_id,
            Uploader::Attempt(attempt.attempt),
            name,
        )
        .map_err(|e| AppError::BadRequest(e.to_string()))?,
        table: "checkout_run_artifacts",
        owner_column: "run_id",
        owner_id: attempt.run_id,
        org_id: attempt.org_id,
        job_id: attempt.job_id,
        attempt: attempt.attempt,
        token,
        name,
        content_type,
    };
    store_attempt_artifact(conn, blobs, upload, bytes).await
}

/// Every screenshot the report names must have been uploaded by this attempt, unchanged.
pub async fn check_screenshots(
    conn: &mut AsyncPgConnection,
    attempt: &RunAttempt,
    report: &RunReport,
) -> Result<(), AppError> {
    let uploaded: Vec<(String, String, i32)> = checkout_run_artifacts::table
        .filter(checkout_run_artifacts::run_id.eq(attempt.run_id))
        .select((
            checkout_run_artifacts::name,
            checkout_run_artifacts::sha256,
            checkout_run_artifacts::attempt,
        ))
        .load(conn)
        .await?;
    for shot in report.steps.iter().filter_map(|s| s.screenshot.as_ref()) {
        match uploaded.iter().find(|(n, _, _)| *n == shot.artifact) {
            Some((_, sha, by)) if *by == attempt.attempt && *sha == shot.sha256 => {}
            Some((_, _, by)) if *by == attempt.attempt => {
                return Err(AppError::BadRequest(format!(
                    "{} as uploaded does not match the report's sha256",
                    shot.artifact
                )));
            }
            _ => {
                return Err(AppError::BadRequest(format!(
                    "upload {} for this attempt before completing",
                    shot.artifact
                )));
            }
        }
    }
    Ok(())
}

/// Text from a run, made storable: no NUL, bounded length.
fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .take(max_chars)
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect()
}

fn clean_json(mut value: serde_json::Value) -> serde_json::Value {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// The path a page is matched by across runs.
pub fn page_path(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default()
}

/// Completes the job and records the run in one transaction; `None` when the attempt no longer
/// holds the job (nothing is written).
pub async fn record(
    conn: &mut AsyncPgConnection,
    attempt: &RunAttempt,
    token: &str,
    runner_id: i64,
    result: &CheckoutResult,
) -> Result<Option<i64>, AppError> {
    let attempt = attempt.clone();
    let token = token.to_string();
    let result = result.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        if !queue::complete(conn, attempt.job_id, &token).await? {
            return Ok(None);
        }
        let report = &result.report;
        let failure = report.failure.as_ref();
        diesel::sql_query(
            "UPDATE checkout_runs SET outcome = $2, failed_step = $3, failure = $4, stopped_at = $5,
                    duration_ms = $6, runner_id = $7, finished_at = now()
             WHERE id = $1",
        )
        .bind::<BigInt, _>(attempt.run_id)
        .bind::<Text, _>(report.outcome.as_str())
        .bind::<Nullable<Integer>, _>(failure.map(|f| f.step as i32))
        .bind::<Nullable<Text>, _>(failure.map(|f| clean(&f.summary, 2_000)))
        .bind::<Nullable<Integer>, _>(report.stopped_at.map(|s| s as i32))
        .bind::<BigInt, _>(i64::try_from(report.duration_ms).unwrap_or(i64::MAX))
        .bind::<BigInt, _>(runner_id)
        .execute(conn)
        .await?;
        for step in &report.steps {
            diesel::sql_query(
                "INSERT INTO checkout_run_steps (run_id, number, org_id, line, kind, name, description,
                     status, duration_ms, url, error, console_errors, failed_requests, screenshot,
                     page_says, refused_requests)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind::<BigInt, _>(attempt.run_id)
            .bind::<Integer, _>(step.number as i32)
            .bind::<BigInt, _>(attempt.org_id)
            .bind::<Integer, _>(step.line as i32)
            .bind::<Text, _>(clean(&step.kind, 40))
            .bind::<Nullable<Text>, _>(step.name.as_deref().map(|n| clean(n, 200)))
            .bind::<Text, _>(clean(&step.description, 2_000))
            .bind::<Text, _>(step.status.as_str())
            .bind::<BigInt, _>(i64::try_from(step.duration_ms).unwrap_or(i64::MAX))
            .bind::<Text, _>(clean(&step.url, 8_192))
            .bind::<Nullable<Jsonb>, _>(
                step.error
                    .as_ref()
                    .map(|e| clean_json(serde_json::to_value(e).unwrap_or_default())),
            )
            .bind::<Jsonb, _>(clean_json(serde_json::to_value(&step.console_errors).unwrap_or_default()))
            .bind::<Jsonb, _>(clean_json(serde_json::to_value(&step.failed_requests).unwrap_or_default()))
            .bind::<Nullable<Text>, _>(step.screenshot.as_ref().map(|s| s.artifact.clone()))
            .bind::<Jsonb, _>(clean_json(serde_json::to_value(&step.page_says).unwrap_or_default()))
            .bind::<Jsonb, _>(clean_json(serde_json::to_value(&step.refused_requests).unwrap_or_default()))
            .execute(conn)
            .await?;
        }
        for (page, snapshot) in report.pages.iter().zip(&result.pages) {
            diesel::sql_query(
                "INSERT INTO checkout_run_pages (run_id, index, org_id, after_step, url, path,
                     script_count, third_party_hosts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind::<BigInt, _>(attempt.run_id)
            .bind::<Integer, _>(page.index as i32)
            .bind::<BigInt, _>(attempt.org_id)
            .bind::<Integer, _>(page.after_step as i32)
            .bind::<Text, _>(clean(&page.url, 8_192))
            .bind::<Text, _>(clean(&page_path(&page.url), 2_000))
            .bind::<Integer, _>(i32::try_from(snapshot.scripts.len()).unwrap_or(i32::MAX))
            .bind::<Jsonb, _>(clean_json(serde_json::json!(snapshot.third_party_hosts)))
            .execute(conn)
            .await?;
        }
        if !report.pages.is_empty() {
            super::analysis::enqueue(conn, attempt.run_id).await?;
        }
        match report.outcome {
            Outcome::Failed => {
                let summary = failure.map(|f| f.summary.clone()).unwrap_or_default();
                raise_failure(conn, attempt.org_id, attempt.target_id, attempt.test_id, &summary)
                    .await?;
            }
            Outcome::Passed => resolve_failure(conn, attempt.target_id, attempt.test_id).await?,
        }
        Ok(Some(attempt.run_id))
    })
    .await
}

fn failure_fingerprint(test_id: i64) -> String {
    format!("checkout:{test_id}")
}

/// Raises (or counts again) the test's failure alert.
pub async fn raise_failure(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    target_id: i64,
    test_id: i64,
    reason: &str,
) -> QueryResult<()> {
    let name: String = crate::db::schema::checkout_tests::table
        .find(test_id)
        .select(crate::db::schema::checkout_tests::name)
        .first(conn)
        .await?;
    let finding = Finding {
        rule: CHECKOUT_FAILED,
        fingerprint: failure_fingerprint(test_id),
        title: clean(&format!("Checkout test “{name}” failed: {reason}"), 1_000),
        detail: serde_json::json!({ "test_id": test_id, "reason": clean(reason, 2_000) }),
    };
    crate::alerts::queries::raise(conn, org_id, target_id, None, &finding).await?;
    Ok(())
}

/// A passing run resolves the test's live failure alert.
async fn resolve_failure(
    conn: &mut AsyncPgConnection,
    target_id: i64,
    test_id: i64,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE alerts SET state = 'resolved', resolved_at = now(), resolution = 'auto'
         WHERE target_id = $1 AND fingerprint = $2 AND state <> 'resolved'",
    )
    .bind::<BigInt, _>(target_id)
    .bind::<Text, _>(failure_fingerprint(test_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// After a run's job died (it could not run at all, every attempt): the test failed.
pub async fn after_dead_run(conn: &mut AsyncPgConnection, job_id: i64) -> QueryResult<()> {
    #[derive(QueryableByName)]
    struct Dead {
        #[diesel(sql_type = BigInt)]
        org_id: i64,
        #[diesel(sql_type = BigInt)]
        target_id: i64,
        #[diesel(sql_type = BigInt)]
        test_id: i64,
        #[diesel(sql_type = Nullable<Text>)]
        error: Option<String>,
    }
    let dead: Option<Dead> = diesel::sql_query(
        "SELECT r.org_id, r.target_id, r.test_id, j.last_error AS error
         FROM checkout_runs r JOIN jobs j ON j.id = r.job_id WHERE r.job_id = $1",
    )
    .bind::<BigInt, _>(job_id)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(dead) = dead {
        let reason = format!(
            "the run could not take place: {}",
            dead.error.unwrap_or_default()
        );
        raise_failure(conn, dead.org_id, dead.target_id, dead.test_id, &reason).await?;
    }
    Ok(())
}
