//! A worker loop for jobs the app runs itself (diffs, notifications): claim one of `kinds`, run
//! it, complete it or record the failure (which retries with backoff); wait for `ready` or a
//! second when there is nothing to do.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Claimed, claim, complete, fail};
use crate::db::DbPool;

pub async fn work<H, F>(pool: DbPool, ready: &Notify, kinds: &[String], lease: Duration, handle: H)
where
    H: Fn(Claimed) -> F,
    F: Future<Output = Result<(), String>>,
{
    let holder = format!("app {}", std::process::id());
    loop {
        let notified = ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "worker cannot reach the database");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        match claim(&mut conn, &holder, kinds, lease).await {
            Ok(Some(job)) => {
                drop(conn);
                let (id, token, kind) = (job.id, job.token.clone(), job.kind.clone());
                let outcome = handle(job).await;
                let Ok(mut conn) = pool.get().await else {
                    continue;
                };
                let recorded = match outcome {
                    Ok(()) => complete(&mut conn, id, &token).await.map(drop),
                    Err(error) => {
                        tracing::warn!(job = id, %kind, %error, "job failed");
                        fail(&mut conn, id, &token, &error).await.map(drop)
                    }
                };
                if let Err(error) = recorded {
                    tracing::warn!(job = id, %error, "could not record the job's outcome");
                }
            }
            Ok(None) => {
                drop(conn);
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
            Err(error) => {
                tracing::warn!(%error, "worker cannot claim");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
