//! The scheduler's leadership: of all `serve` processes, exactly one runs the periodic tick — the
//! one holding a PostgreSQL session advisory lock on its own dedicated connection. If that
//! process dies, its connection closes, the lock is released, and another process takes over
//! within one interval. What a tick does is given by the caller.

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

/// The advisory lock key of the leading scheduler ("swsched" in ASCII).
pub const LEADER_LOCK: i64 = 0x0073_7773_6368_6564;

/// Work that one process leads: its advisory lock key and the name its log lines use.
#[derive(Debug, Clone, Copy)]
pub struct Leadership {
    pub lock: i64,
    pub name: &'static str,
}

/// The scheduler: due scans, runs, reports, lapsed leases.
pub const SCHEDULER: Leadership = Leadership {
    lock: LEADER_LOCK,
    name: "scheduler",
};

/// The purge: retention passes and the blob-deletion queue (`crate::lifecycle`).
pub const PURGE: Leadership = Leadership {
    lock: crate::lifecycle::PURGE_LOCK,
    name: "purge",
};

/// One round of the leader's work on its connection; returns how many things it did.
pub type Tick = Box<
    dyn for<'c> Fn(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<usize, String>> + Send + Sync,
>;

/// Tries to become the leader on this connection; true if this session now holds the lock.
pub async fn try_lead(conn: &mut AsyncPgConnection, lock: i64) -> diesel::QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(lock)
        .get_result::<Locked>(conn)
        .await
        .map(|l| l.locked)
}

/// Runs forever: leads when it can, ticking every `interval`; otherwise waits and tries again.
pub async fn run(
    database_url: SecretString,
    leadership: Leadership,
    interval: Duration,
    tick: Tick,
) {
    let name = leadership.name;
    loop {
        match AsyncPgConnection::establish(database_url.expose_secret()).await {
            Ok(mut conn) => match try_lead(&mut conn, leadership.lock).await {
                Ok(true) => {
                    tracing::info!("this process leads the {name}");
                    lead(&mut conn, name, interval, &tick).await;
                    tracing::warn!("{name} leadership lost; trying again");
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "{name} cannot query the database"),
            },
            Err(error) => tracing::warn!(%error, "{name} cannot connect to the database"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Ticks until the connection (and with it the lock) fails.
async fn lead(conn: &mut AsyncPgConnection, name: &str, interval: Duration, tick: &Tick) {
    loop {
        match tick(conn).await {
            Ok(0) => {}
            Ok(done) => tracing::info!(done, "{name} tick"),
            Err(error) => {
                tracing::warn!(%error, "{name} tick failed");
                // A broken connection has lost the lock: give leadership up.
                if diesel::sql_query("SELECT 1").execute(conn).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
