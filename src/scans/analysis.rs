//! After a snapshot is stored, the app compares it with the target's previous snapshot: a `diff`
//! job is queued in the same transaction that records the snapshot, and every `serve` process
//! runs a worker that claims those jobs, computes the changes (off the async executor) and
//! stores them once per snapshot.

use std::time::Duration;

use actix_web::web;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use scanner::Snapshot;
use serde::Serialize;
use time::OffsetDateTime;

use super::ingest::blob_error;
use super::queries::Artifact;
use crate::compliance::Visit;
use crate::db::schema::{snapshot_diffs, snapshots, targets};
use crate::diff::{self, Change, DiffOptions, VisualDiff, visual};
use crate::queue;
use crate::runner::protocol::SNAPSHOT_ARTIFACT;
use crate::sites::queries::Target;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::AppError;

pub const DIFF_JOB: &str = "diff";
const LEASE: Duration = Duration::from_secs(300);

/// Queues the comparison of a new snapshot; call in the transaction that records it.
pub async fn enqueue(conn: &mut AsyncPgConnection, snapshot_id: i64) -> QueryResult<i64> {
    queue::enqueue(
        conn,
        DIFF_JOB,
        &serde_json::json!({ "snapshot_id": snapshot_id }),
        5,
        OffsetDateTime::now_utc(),
    )
    .await
}

/// Claims and runs diff jobs until the process ends.
pub async fn run_worker(state: web::Data<AppState>) {
    let kinds = [DIFF_JOB.to_string()];
    queue::worker::work(
        state.pool.clone(),
        &state.jobs_ready,
        &kinds,
        LEASE,
        |job| {
            let state = state.clone();
            async move {
                let snapshot_id = job.payload["snapshot_id"].as_i64().unwrap_or(0);
                analyse(&state, snapshot_id)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await
}

/// A snapshot's document and screenshots, read for the app's own work (no caller: the worker
/// acts for the snapshot's organization).
pub struct Loaded {
    pub doc: Snapshot,
    pub viewport: Vec<u8>,
    pub full_page: Vec<u8>,
}

pub async fn load(state: &AppState, org_id: i64, snapshot_id: i64) -> Result<Loaded, AppError> {
    let mut conn = state.conn().await?;
    let artifacts = super::queries::artifacts(&mut conn, org_id, snapshot_id).await?;
    drop(conn);
    let read = async |name: &str| -> Result<Vec<u8>, AppError> {
        let artifact = artifacts
            .iter()
            .find(|a| a.name == name)
            .ok_or(AppError::NotFound)?;
        read_verified(state, org_id, snapshot_id, artifact).await
    };
    let doc = read(SNAPSHOT_ARTIFACT).await?;
    Ok(Loaded {
        doc: serde_json::from_slice(&doc).map_err(AppError::internal)?,
        viewport: read("viewport.png").await?,
        full_page: read("fullpage.png").await?,
    })
}

/// A snapshot's document alone (no screenshots), of `org_id`'s snapshot.
pub async fn load_document(
    state: &AppState,
    org_id: i64,
    snapshot_id: i64,
) -> Result<Snapshot, AppError> {
    let mut conn = state.conn().await?;
    let artifacts = super::queries::artifacts(&mut conn, org_id, snapshot_id).await?;
    drop(conn);
    let artifact = artifacts
        .iter()
        .find(|a| a.name == SNAPSHOT_ARTIFACT)
        .ok_or(AppError::NotFound)?;
    let bytes = read_verified(state, org_id, snapshot_id, artifact).await?;
    serde_json::from_slice(&bytes).map_err(AppError::internal)
}

/// Reads and decrypts a recorded artifact and checks it against its recorded SHA-256. Call only
/// for the caller's own organization (or the snapshot's, in the app's workers).
pub async fn read_verified(
    state: &AppState,
    org_id: i64,
    snapshot_id: i64,
    artifact: &Artifact,
) -> Result<Vec<u8>, AppError> {
    let key =
        ObjectKey::snapshot_artifact(org_id, snapshot_id, artifact.uploader(), &artifact.name)
            .map_err(|_| AppError::NotFound)?;
    let mut conn = state.conn().await?;
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != artifact.sha256 {
        tracing::error!(%key, "artifact does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    Ok(bytes.to_vec())
}

/// How a target's screenshots are compared.
fn visual_options(target: &Target) -> visual::VisualOptions {
    visual::VisualOptions {
        ignore: target.regions(),
        ..visual::VisualOptions::default()
    }
}

/// The highlighted diff image of two screenshots under the target's settings (CPU-bound).
pub fn diff_png(
    before: &[u8],
    after: &[u8],
    target: &Target,
) -> Result<Vec<u8>, visual::VisualError> {
    let (a, b) = visual::decode_pair(before, after);
    let (a, b) = (a?, b?);
    let (diff, mask) = visual::compare(&a, &b, &visual_options(target));
    visual::diff_image(&b, &diff, &mask)
}

/// Both screenshots compared, where they could be decoded.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Visual {
    pub viewport: Option<VisualDiff>,
    pub full_page: Option<VisualDiff>,
}

/// Everything that changed from `before` to `after` under the target's settings (CPU-bound:
/// call it off the executor).
pub fn compare(before: &Loaded, after: &Loaded, target: &Target) -> (Vec<Change>, Visual) {
    let options = DiffOptions {
        ignore_selectors: target.selectors(),
    };
    let mut changes = diff::snapshots(&before.doc, &after.doc, &options);
    let visual_options = visual_options(target);
    let shot = |a: &[u8], b: &[u8]| -> Option<VisualDiff> {
        let (a, b) = visual::decode_pair(a, b);
        let (a, b) = (a.ok()?, b.ok()?);
        Some(visual::compare(&a, &b, &visual_options).0)
    };
    let result = Visual {
        viewport: shot(&before.viewport, &after.viewport),
        full_page: shot(&before.full_page, &after.full_page),
    };
    let threshold = f64::from(target.visual_threshold);
    for (name, diff) in [
        ("viewport", &result.viewport),
        ("full_page", &result.full_page),
    ] {
        if let Some(change) = diff
            .as_ref()
            .and_then(|d| diff::visual_change(name, d, threshold))
        {
            changes.push(change);
        }
    }
    (changes, result)
}

/// Computes and stores what changed in `snapshot_id` since the target's previous snapshot.
pub async fn analyse(state: &AppState, snapshot_id: i64) -> Result<(), AppError> {
    let mut conn = state.conn().await?;
    let (org_id, target_id, visit, page_key): (i64, i64, Option<String>, Option<String>) =
        snapshots::table
            .find(snapshot_id)
            .select((
                snapshots::org_id,
                snapshots::target_id,
                snapshots::visit,
                snapshots::page_key,
            ))
            .first(&mut conn)
            .await?;
    let visit = visit.as_deref().and_then(Visit::parse);
    let previous = super::queries::previous_snapshot(
        &mut conn,
        target_id,
        visit.map(Visit::as_str),
        page_key.as_deref(),
        snapshot_id,
    )
    .await?;
    // A crawl's page is one page of a site: its alerts are the site's, raised when the crawl's
    // site snapshot is compared (crawls::assemble); its own comparison is kept.
    let site_page = page_key.is_some();
    let target: Target = targets::table
        .find(target_id)
        .select(Target::as_select())
        .first(&mut conn)
        .await?;
    drop(conn);
    let page_kind = target.page_kind.clone();
    let after = load(state, org_id, snapshot_id).await?;
    let (changes, visual, after) = match previous {
        None => (
            Vec::new(),
            Visual {
                viewport: None,
                full_page: None,
            },
            after,
        ),
        Some(previous) => {
            let before = load(state, org_id, previous).await?;
            tokio::task::spawn_blocking(move || {
                let (changes, visual) = compare(&before, &after, &target);
                (changes, visual, after)
            })
            .await
            .map_err(AppError::internal)?
        }
    };
    let findings = crate::alerts::rules::findings(&changes, &page_kind)
        .into_iter()
        .map(|finding| finding.in_visit(visit))
        .collect::<Vec<_>>();
    let mut conn = state.conn().await?;
    conn.transaction::<_, AppError, _>(async move |conn| {
        let stored = store(
            conn,
            snapshot_id,
            org_id,
            target_id,
            previous,
            &changes,
            &visual,
        )
        .await?;
        // Alerts follow the comparison exactly once: only the run that stored it raises them.
        if stored && !site_page {
            crate::alerts::queries::auto_resolve(conn, target_id, visit, snapshot_id, &after.doc)
                .await?;
            let mut findings = findings;
            if page_kind == "payment" && visit.is_none() {
                findings.extend(
                    crate::payment::queries::record(
                        conn,
                        org_id,
                        target_id,
                        crate::payment::queries::SeenIn::Scan {
                            snapshot_id,
                            previous_snapshot_id: previous,
                        },
                        &after.doc,
                    )
                    .await?,
                );
            }
            for finding in &findings {
                crate::alerts::queries::raise(conn, org_id, target_id, Some(snapshot_id), finding)
                    .await?;
            }
        }
        Ok(())
    })
    .await?;
    // Wake the notify worker for any alert just raised.
    state.jobs_ready.notify_waiters();
    Ok(())
}

async fn store(
    conn: &mut AsyncPgConnection,
    snapshot_id: i64,
    org_id: i64,
    target_id: i64,
    previous: Option<i64>,
    changes: &[Change],
    visual: &Visual,
) -> Result<bool, AppError> {
    let inserted = diesel::insert_into(snapshot_diffs::table)
        .values((
            snapshot_diffs::snapshot_id.eq(snapshot_id),
            snapshot_diffs::org_id.eq(org_id),
            snapshot_diffs::target_id.eq(target_id),
            snapshot_diffs::previous_snapshot_id.eq(previous),
            snapshot_diffs::changes.eq(serde_json::to_value(changes).map_err(AppError::internal)?),
            snapshot_diffs::visual.eq(serde_json::to_value(visual).map_err(AppError::internal)?),
            snapshot_diffs::change_count.eq(changes.len() as i32),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}
