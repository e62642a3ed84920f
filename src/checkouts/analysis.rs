//! After a run is recorded, each page it reached is compared with the same page (by path) of the
//! test's previous run that reached it, through the same diff engine as scans: a `checkout_diff`
//! job is queued with the run, and the app's worker computes the changes once and raises alerts.
//! Every page of a checkout journey counts as a checkout page, so a script added or changed there
//! raises the critical `checkout_script_changed`; a page at the URL of one of the client's
//! payment targets also feeds that target's script inventory (`payment::queries::record`).

use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scanner::Snapshot;
use time::OffsetDateTime;

use crate::db::schema::{checkout_run_artifacts, checkout_runs, targets};
use crate::diff::{self, DiffOptions};
use crate::queue;
use crate::scans::ingest::blob_error;
use crate::sites::queries::Target;
use crate::state::AppState;
use crate::storage::{ObjectKey, Uploader};
use crate::web::AppError;

pub const CHECKOUT_DIFF_JOB: &str = "checkout_diff";
const LEASE: Duration = Duration::from_secs(300);

/// The sealed artifact holding captured page `index` of a run.
pub fn page_artifact(index: usize) -> String {
    format!("page-{index}.json")
}

pub async fn enqueue(conn: &mut AsyncPgConnection, run_id: i64) -> QueryResult<i64> {
    queue::enqueue(
        conn,
        CHECKOUT_DIFF_JOB,
        &serde_json::json!({ "run_id": run_id }),
        5,
        OffsetDateTime::now_utc(),
    )
    .await
}

/// Claims and runs checkout comparisons until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [CHECKOUT_DIFF_JOB.to_string()];
    queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        LEASE,
        |job| {
            let state = state.clone();
            async move {
                let run_id = job.payload["run_id"].as_i64().unwrap_or(0);
                analyse(&state, run_id).await.map_err(|e| e.to_string())
            }
        },
    )
    .await
}

/// Reads a run's sealed artifact, checked against its recorded hash. For the app's own work or
/// after the caller's org has been checked.
pub async fn read_artifact(
    state: &AppState,
    org_id: i64,
    run_id: i64,
    name: &str,
) -> Result<Vec<u8>, AppError> {
    let mut conn = state.conn().await?;
    let (sha256, attempt, keyed_by_attempt): (String, i32, bool) = checkout_run_artifacts::table
        .filter(checkout_run_artifacts::org_id.eq(org_id))
        .filter(checkout_run_artifacts::run_id.eq(run_id))
        .filter(checkout_run_artifacts::name.eq(name))
        .select((
            checkout_run_artifacts::sha256,
            checkout_run_artifacts::attempt,
            checkout_run_artifacts::keyed_by_attempt,
        ))
        .first(&mut conn)
        .await?;
    let uploader = Uploader::of_row(attempt, keyed_by_attempt);
    let key = ObjectKey::checkout_artifact(org_id, run_id, uploader, name)
        .map_err(|_| AppError::NotFound)?;
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != sha256 {
        tracing::error!(%key, "checkout artifact does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    Ok(bytes.to_vec())
}

#[derive(QueryableByName)]
struct PageRow {
    #[diesel(sql_type = Integer)]
    index: i32,
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = Text)]
    url: String,
}

#[derive(QueryableByName)]
struct PreviousPage {
    #[diesel(sql_type = BigInt)]
    run_id: i64,
    #[diesel(sql_type = Integer)]
    index: i32,
}

async fn load_page(
    state: &AppState,
    org_id: i64,
    run_id: i64,
    index: i32,
) -> Result<Snapshot, AppError> {
    let bytes = read_artifact(state, org_id, run_id, &page_artifact(index as usize)).await?;
    serde_json::from_slice(&bytes).map_err(AppError::internal)
}

/// Whether two URLs name the same page: scheme, host, port and path (query and fragment aside).
fn same_page(a: &str, b: &str) -> bool {
    let key = |text: &str| {
        url::Url::parse(text).ok().map(|url| {
            (
                url.scheme().to_owned(),
                url.host_str().map(str::to_ascii_lowercase),
                url.port_or_known_default(),
                url.path().trim_end_matches('/').to_owned(),
            )
        })
    };
    key(a).is_some() && key(a) == key(b)
}

/// Compares each page of `run_id` with its counterpart in an earlier run and stores the changes.
pub async fn analyse(state: &AppState, run_id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    let (org_id, test_id, target_id): (i64, i64, i64) = checkout_runs::table
        .find(run_id)
        .select((
            checkout_runs::org_id,
            checkout_runs::test_id,
            checkout_runs::target_id,
        ))
        .first(&mut conn)
        .await?;
    let target: Target = targets::table
        .find(target_id)
        .select(Target::as_select())
        .first(&mut conn)
        .await?;
    let pages: Vec<PageRow> = diesel::sql_query(
        "SELECT index, path, url FROM checkout_run_pages WHERE run_id = $1 AND changes IS NULL ORDER BY index",
    )
    .bind::<BigInt, _>(run_id)
    .load(&mut conn)
    .await?;
    // The client's payment pages: a page of the journey at one of their URLs feeds its
    // script inventory.
    let payment_pages: Vec<(i64, String)> = targets::table
        .filter(targets::org_id.eq(org_id))
        .filter(targets::client_id.eq(target.client_id))
        .filter(targets::page_kind.eq("payment"))
        .select((targets::id, targets::url))
        .load(&mut conn)
        .await?;
    drop(conn);
    let options = DiffOptions {
        ignore_selectors: target.selectors(),
    };
    for page in pages {
        let mut conn = state.conn().await?;
        let previous: Option<PreviousPage> = diesel::sql_query(
            "SELECT p.run_id, p.index FROM checkout_run_pages p JOIN checkout_runs r ON r.id = p.run_id
             WHERE r.test_id = $1 AND p.run_id < $2 AND p.path = $3
             ORDER BY p.run_id DESC, p.index DESC LIMIT 1",
        )
        .bind::<BigInt, _>(test_id)
        .bind::<BigInt, _>(run_id)
        .bind::<Text, _>(&page.path)
        .get_result(&mut conn)
        .await
        .optional()?;
        drop(conn);
        let (changes, previous_run) = match &previous {
            None => (Vec::new(), None),
            Some(previous) => {
                let before = load_page(state, org_id, previous.run_id, previous.index).await?;
                let after = load_page(state, org_id, run_id, page.index).await?;
                let options = options.clone();
                let changes =
                    tokio::task::spawn_blocking(move || diff::snapshots(&before, &after, &options))
                        .await
                        .map_err(AppError::internal)?;
                (changes, Some(previous.run_id))
            }
        };
        // Scoped to the test's page: a scan of the target's own URL must not resolve them.
        let findings: Vec<_> = crate::alerts::rules::findings(&changes, "checkout")
            .into_iter()
            .map(|mut finding| {
                finding.fingerprint = format!(
                    "checkout-page:{test_id}:{}:{}",
                    page.path, finding.fingerprint
                );
                finding
            })
            .collect();
        let detail = serde_json::to_value(&changes).map_err(AppError::internal)?;
        let payment_target = payment_pages
            .iter()
            .find(|(_, url)| same_page(url, &page.url))
            .map(|(id, _)| *id);
        let payment_capture = match payment_target {
            Some(id) => Some((id, load_page(state, org_id, run_id, page.index).await?)),
            None => None,
        };
        let mut conn = state.conn().await?;
        let index = page.index;
        conn.transaction::<_, AppError, _>(async move |conn| {
            let stored = diesel::sql_query(
                "UPDATE checkout_run_pages SET changes = $3, previous_run_id = $4
                 WHERE run_id = $1 AND index = $2 AND changes IS NULL",
            )
            .bind::<BigInt, _>(run_id)
            .bind::<Integer, _>(index)
            .bind::<Jsonb, _>(&detail)
            .bind::<Nullable<BigInt>, _>(previous_run)
            .execute(conn)
            .await?;
            // Alerts follow the comparison exactly once.
            if stored == 1 {
                for finding in &findings {
                    crate::alerts::queries::raise(conn, org_id, target_id, None, finding).await?;
                }
                if let Some((payment_target, capture)) = &payment_capture {
                    let found = crate::payment::queries::record(
                        conn,
                        org_id,
                        *payment_target,
                        crate::payment::queries::SeenIn::CheckoutRun,
                        capture,
                    )
                    .await?;
                    for finding in &found {
                        crate::alerts::queries::raise(conn, org_id, *payment_target, None, finding)
                            .await?;
                    }
                }
            }
            Ok(())
        })
        .await?;
    }
    state.jobs_ready.notify_waiters();
    Ok(())
}
