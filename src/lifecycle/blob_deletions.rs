//! The blob-deletion queue: rows of `blob_deletions` written in the transaction that deleted what
//! the blobs belonged to, drained here once committed. A row goes only after the store confirmed
//! the deletion; a deletion that fails is retried with backoff (2, 4, 8 … seconds, at most 4,096 apart) until it
//! succeeds. Deleting is idempotent (an object or folder already gone counts as deleted), so a
//! drain killed between the store and the row only repeats work.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;

use crate::storage::{BlobStore, KeyError, ObjectFolder, ObjectKey, StoreError};

/// Deletions asked of the store at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, QueryableByName)]
struct Queued {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Bool)]
    whole_folder: bool,
}

#[derive(Debug, thiserror::Error)]
enum DeleteError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Queue rows done (each an object or a folder).
    pub done: u64,
    /// Objects the store deleted (a folder counts its objects; a single key counts one).
    pub objects: u64,
    /// Queue rows that failed this time and wait for their retry.
    pub failed: u64,
}

/// Queues the deletion of `org_id`'s `folder`, in the caller's transaction (so it happens only
/// if that commits), to be done once `delay` has passed.
pub async fn queue_folder(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    folder: &ObjectFolder,
    delay: Duration,
) -> diesel::QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO blob_deletions (org_id, key, whole_folder, next_attempt_at)
         VALUES ($1, $2, true, now() + make_interval(secs => $3))",
    )
    .bind::<BigInt, _>(org_id)
    .bind::<Text, _>(folder.as_str())
    .bind::<diesel::sql_types::Double, _>(delay.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Works through the due rows, `batch` at a time, until none is due or `budget` has passed.
pub async fn drain(
    conn: &mut AsyncPgConnection,
    store: &BlobStore,
    batch: i64,
    budget: Duration,
) -> diesel::QueryResult<Drained> {
    let started = std::time::Instant::now();
    let mut drained = Drained::default();
    loop {
        let queued: Vec<Queued> = diesel::sql_query(
            "SELECT id, key, whole_folder FROM blob_deletions
             WHERE next_attempt_at <= now() ORDER BY id LIMIT $1",
        )
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
        if queued.is_empty() {
            return Ok(drained);
        }
        let results: Vec<(i64, Result<u64, DeleteError>)> = futures::stream::iter(queued)
            .map(|row| async move { (row.id, delete(store, &row).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for (id, result) in results {
            match result {
                Ok(objects) => {
                    drained.objects += objects;
                    done.push(id);
                }
                Err(error) => {
                    tracing::warn!(queued = id, %error, "a blob deletion failed; it will be retried");
                    failed.push(id);
                    errors.push(error.to_string());
                }
            }
        }
        diesel::sql_query("DELETE FROM blob_deletions WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(&done)
            .execute(conn)
            .await?;
        diesel::sql_query(
            "UPDATE blob_deletions d SET attempts = d.attempts + 1, last_error = f.error,
                 next_attempt_at = now() + make_interval(secs => power(2, LEAST(d.attempts + 1, 12)))
             FROM unnest($1::BIGINT[], $2::TEXT[]) AS f(id, error) WHERE d.id = f.id",
        )
        .bind::<Array<BigInt>, _>(&failed)
        .bind::<Array<Text>, _>(&errors)
        .execute(conn)
        .await?;
        drained.done += done.len() as u64;
        drained.failed += failed.len() as u64;
        if started.elapsed() >= budget {
            return Ok(drained);
        }
    }
}

async fn delete(store: &BlobStore, row: &Queued) -> Result<u64, DeleteError> {
    if row.whole_folder {
        Ok(store.delete_folder(&ObjectFolder::parse(&row.key)?).await?)
    } else {
        store.delete(&ObjectKey::parse(&row.key)?).await?;
        Ok(1)
    }
}

/// How many deletions of an organization wait, and how many of them have failed at least once.
pub async fn backlog(conn: &mut AsyncPgConnection, org_id: i64) -> diesel::QueryResult<(i64, i64)> {
    #[derive(QueryableByName)]
    struct Backlog {
        #[diesel(sql_type = BigInt)]
        waiting: i64,
        #[diesel(sql_type = BigInt)]
        failing: i64,
    }
    let row: Backlog = diesel::sql_query(
        "SELECT count(*) AS waiting, count(*) FILTER (WHERE attempts > 0) AS failing
         FROM blob_deletions WHERE org_id = $1",
    )
    .bind::<BigInt, _>(org_id)
    .get_result(conn)
    .await?;
    Ok((row.waiting, row.failing))
}
