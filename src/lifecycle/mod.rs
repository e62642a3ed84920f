//! Data lifecycle: how long each organization keeps what siteward captured, the purge that
//! enforces it, and the queue through which every deletion reaches the blob store.
//!
//! The purge runs in one `serve` process at a time (a leader, like the scheduler, on its own
//! advisory lock): each round it drains the blob-deletion queue, and once per purge interval it
//! runs a retention pass first.

pub mod blob_deletions;
pub mod erasure;
pub mod person;
pub mod retention;
pub mod routes;
pub mod settings;
mod views;

use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;
use serde_json::json;

use crate::audit::{self, Entry};
use crate::storage::BlobStore;
pub use blob_deletions::Drained;
pub use retention::{PassReport, Purged};
pub use settings::Retention;

/// The advisory lock key of the leading purge worker ("swpurge" in ASCII).
pub const PURGE_LOCK: i64 = 0x0073_7770_7572_6765;

/// Rows deleted per statement.
pub const BATCH: i64 = 1_000;

/// The longest one drain of the blob-deletion queue runs before the round yields.
const DRAIN_BUDGET: Duration = Duration::from_secs(30);

/// Erasures that are due, one retention pass (audited per organization), then the queue
/// drained: what `siteward admin purge` runs, and the leader each purge interval.
pub async fn purge_now(
    conn: &mut AsyncPgConnection,
    store: &BlobStore,
) -> Result<(PassReport, Drained), diesel::result::Error> {
    erasure::erase_due(conn).await?;
    let report = retention::pass(conn, BATCH, |_, _| true).await?;
    record(conn, &report).await?;
    let drained = blob_deletions::drain(conn, store, BATCH, DRAIN_BUDGET).await?;
    Ok((report, drained))
}

/// Writes what a pass deleted to each organization's audit log (rows of no organization, to the
/// instance's).
pub async fn record(
    conn: &mut AsyncPgConnection,
    report: &PassReport,
) -> Result<(), diesel::result::Error> {
    for (&org_id, kinds) in &report.deleted {
        let detail: serde_json::Map<String, serde_json::Value> = kinds
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, n)| (kind_name(*kind), json!(n)))
            .collect();
        if detail.is_empty() {
            continue;
        }
        audit::record(
            conn,
            Entry {
                org_id: (org_id != 0).then_some(org_id),
                actor_user_id: None,
                actor_key_id: None,
                actor: "retention".into(),
                action: "retention.purged",
                subject: if org_id == 0 {
                    "instance".into()
                } else {
                    format!("org {org_id}")
                },
                detail: serde_json::Value::Object(detail),
                ip: String::new(),
            },
        )
        .await?;
    }
    Ok(())
}

fn kind_name(kind: Purged) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The leader's round: erasures that are due, a retention pass when one is due, then the
/// blob-deletion queue.
pub fn tick(store: BlobStore, purge_interval: Duration) -> crate::scheduler::Tick {
    let last_pass = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    Box::new(move |conn| {
        let store = store.clone();
        let last_pass = last_pass.clone();
        Box::pin(async move {
            let due = last_pass
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none_or(|at| at.elapsed() >= purge_interval);
            let erased = erasure::erase_due(conn).await.map_err(|e| e.to_string())?;
            for org in &erased {
                tracing::info!(org = org.org_id, "organization erased");
            }
            let mut done = erased.len();
            if due {
                let report = retention::pass(conn, BATCH, |_, _| true)
                    .await
                    .map_err(|e| e.to_string())?;
                record(conn, &report).await.map_err(|e| e.to_string())?;
                *last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                if report.total() > 0 {
                    tracing::info!(rows = report.total(), "retention pass");
                }
                done += report.total() as usize;
            }
            let drained = blob_deletions::drain(conn, &store, BATCH, DRAIN_BUDGET)
                .await
                .map_err(|e| e.to_string())?;
            if drained.done > 0 || drained.failed > 0 {
                tracing::info!(
                    done = drained.done,
                    objects = drained.objects,
                    failed = drained.failed,
                    "blob deletions"
                );
            }
            Ok(done + drained.done as usize)
        })
    })
}
