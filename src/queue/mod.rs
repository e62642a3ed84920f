//! The job queue in PostgreSQL: at-least-once delivery with leases, heartbeats, attempt tokens,
//! exponential backoff with jitter, and dead jobs that keep their last error.
//!
//! A job is written in the caller's transaction (`enqueue`), so it exists exactly when the change
//! that asked for it does. `claim` takes one ready job with `FOR UPDATE SKIP LOCKED`, so claimers
//! never wait for each other or take the same job. Every claim mints a new attempt token: only the
//! holder of the current attempt can `heartbeat`, `complete` or `fail` it, so a runner that lost
//! its lease can no longer touch the job. `reap` returns jobs whose lease lapsed to the queue at
//! once (their holder died; the job may be fine), or kills them after their last attempt; failed
//! attempts wait an exponential backoff with jitter first. Times are the database's clock
//! (`clock_timestamp()`, not the transaction's start), so a claim inside a long transaction still
//! gets its whole lease.

pub mod worker;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer, Interval, Jsonb, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use crate::crypto::{new_token, token_hash};
use crate::db::schema::jobs;

/// A job handed to a claimer.
#[derive(Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// 1 for the first attempt.
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
    /// Proves the holder owns this attempt; only its hash is stored.
    #[diesel(sql_type = Text)]
    pub token: String,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// What became of a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back in the queue, to run again at this time.
    Retrying(OffsetDateTime),
    /// That was the last attempt.
    Dead,
    /// The token is not the current attempt's: nothing changed.
    NotHolder,
}

/// Adds a job; use the caller's connection inside their transaction.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    kind: &str,
    payload: &serde_json::Value,
    max_attempts: i32,
    run_at: OffsetDateTime,
) -> QueryResult<i64> {
    diesel::insert_into(jobs::table)
        .values((
            jobs::kind.eq(kind),
            jobs::payload.eq(payload),
            jobs::state.eq("queued"),
            jobs::run_at.eq(run_at),
            jobs::max_attempts.eq(max_attempts.max(1)),
        ))
        .returning(jobs::id)
        .get_result(conn)
        .await
}

fn interval(duration: Duration) -> diesel::pg::data_types::PgInterval {
    let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    diesel::pg::data_types::PgInterval::from_microseconds(micros)
}

/// Claims the next ready job of one of `kinds` for `holder` with a lease of `lease`.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    holder: &str,
    kinds: &[String],
    lease: Duration,
) -> QueryResult<Option<Claimed>> {
    let token = new_token();
    let claimed: Option<Claimed> = diesel::sql_query(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, holder = $1,
                lease_expires_at = clock_timestamp() + $2, attempt_token_hash = $3
         WHERE id = (SELECT id FROM jobs
                     WHERE state = 'queued' AND run_at <= clock_timestamp() AND kind = ANY($4)
                     ORDER BY run_at, id
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1)
         RETURNING id, kind, payload, attempts AS attempt, max_attempts, '' AS token",
    )
    .bind::<Text, _>(holder)
    .bind::<Interval, _>(interval(lease))
    .bind::<Bytea, _>(token_hash(&token))
    .bind::<diesel::sql_types::Array<Text>, _>(kinds)
    .get_result(conn)
    .await
    .optional()?;
    Ok(claimed.map(|job| Claimed { token, ..job }))
}

/// Claims the next ready job of `kind` that also meets `filter` (a fixed SQL condition on
/// `jobs`, which may use `$5`, bound to `value`).
pub async fn claim_where(
    conn: &mut AsyncPgConnection,
    holder: &str,
    kind: &str,
    filter: &'static str,
    value: i64,
    lease: Duration,
) -> QueryResult<Option<Claimed>> {
    let token = new_token();
    let claimed: Option<Claimed> = diesel::sql_query(format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, holder = $1,
                lease_expires_at = clock_timestamp() + $2, attempt_token_hash = $3
         WHERE id = (SELECT id FROM jobs
                     WHERE state = 'queued' AND run_at <= clock_timestamp() AND kind = $4
                       AND {filter}
                     ORDER BY run_at, id
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1)
         RETURNING id, kind, payload, attempts AS attempt, max_attempts, '' AS token"
    ))
    .bind::<Text, _>(holder)
    .bind::<Interval, _>(interval(lease))
    .bind::<Bytea, _>(token_hash(&token))
    .bind::<Text, _>(kind)
    .bind::<BigInt, _>(value)
    .get_result(conn)
    .await
    .optional()?;
    Ok(claimed.map(|job| Claimed { token, ..job }))
}

/// Ends the current attempt and the job at once, keeping `error`: for a job whose holder
/// knows another attempt would fail the same way. False if the token is stale.
pub async fn give_up(
    conn: &mut AsyncPgConnection,
    id: i64,
    token: &str,
    error: &str,
) -> QueryResult<bool> {
    let error: String = error.chars().take(2000).collect();
    let updated = diesel::sql_query(
        "UPDATE jobs SET state = 'dead', finished_at = clock_timestamp(), last_error = $3,
                lease_expires_at = NULL, attempt_token_hash = NULL
         WHERE id = $1 AND state = 'running' AND attempt_token_hash = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<Bytea, _>(token_hash(token))
    .bind::<Text, _>(&error)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Extends the lease of the current attempt; false if the token is stale.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: i64,
    token: &str,
    lease: Duration,
) -> QueryResult<bool> {
    let updated = diesel::sql_query(
        "UPDATE jobs SET lease_expires_at = clock_timestamp() + $3
         WHERE id = $1 AND state = 'running' AND attempt_token_hash = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<Bytea, _>(token_hash(token))
    .bind::<Interval, _>(interval(lease))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Marks the current attempt done; false if the token is stale (nothing changes).
/// The kind of job `id`, if it exists.
pub async fn kind(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<String>> {
    jobs::table
        .find(id)
        .select(jobs::kind)
        .first(conn)
        .await
        .optional()
}

pub async fn complete(conn: &mut AsyncPgConnection, id: i64, token: &str) -> QueryResult<bool> {
    let updated = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::state.eq("running"))
            .filter(jobs::attempt_token_hash.eq(token_hash(token))),
    )
    .set((
        jobs::state.eq("done"),
        jobs::lease_expires_at.eq(None::<OffsetDateTime>),
        jobs::finished_at.eq(Some(OffsetDateTime::now_utc())),
    ))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// Records a failed attempt in one statement (so an attempt that lost its lease meanwhile changes
/// nothing): back to the queue after an exponential backoff with jitter — 10 s doubling per
/// attempt, at most an hour, ±20 % — or dead, keeping its error, after the last attempt.
pub async fn fail(
    conn: &mut AsyncPgConnection,
    id: i64,
    token: &str,
    error: &str,
) -> QueryResult<FailOutcome> {
    #[derive(QueryableByName)]
    struct After {
        #[diesel(sql_type = Text)]
        state: String,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        run_at: OffsetDateTime,
    }
    let error: String = error.chars().take(2000).collect();
    let after: Option<After> = diesel::sql_query(
        "UPDATE jobs SET
             state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
             run_at = CASE WHEN attempts >= max_attempts THEN run_at
                      ELSE clock_timestamp() + make_interval(secs =>
                           least(3600, 10 * power(2, least(attempts - 1, 16))) * (0.8 + 0.4 * random()))
                      END,
             finished_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END,
             holder = CASE WHEN attempts >= max_attempts THEN holder END,
             last_error = $3, lease_expires_at = NULL, attempt_token_hash = NULL
         WHERE id = $1 AND state = 'running' AND attempt_token_hash = $2
         RETURNING state, run_at",
    )
    .bind::<BigInt, _>(id)
    .bind::<Bytea, _>(token_hash(token))
    .bind::<Text, _>(&error)
    .get_result(conn)
    .await
    .optional()?;
    Ok(match after {
        None => FailOutcome::NotHolder,
        Some(after) if after.state == "dead" => FailOutcome::Dead,
        Some(after) => FailOutcome::Retrying(after.run_at),
    })
}

/// Jobs whose lease lapsed: back to the queue at once, or dead after their last attempt.
/// Returns (requeued, killed).
pub async fn reap(conn: &mut AsyncPgConnection) -> QueryResult<(usize, usize)> {
    let killed = diesel::sql_query(
        "UPDATE jobs SET state = 'dead', finished_at = clock_timestamp(), lease_expires_at = NULL,
                last_error = coalesce(last_error || '; ', '') || 'lease lapsed on the last attempt (holder ' || coalesce(holder, '?') || ')'
         WHERE state = 'running' AND lease_expires_at < clock_timestamp() AND attempts >= max_attempts",
    )
    .execute(conn)
    .await?;
    // A lapsed lease means the holder died or hung, not that the job is bad: run it again now.
    let requeued = diesel::sql_query(
        "UPDATE jobs SET state = 'queued', lease_expires_at = NULL, attempt_token_hash = NULL,
                last_error = 'lease lapsed (holder ' || coalesce(holder, '?') || ')',
                holder = NULL, run_at = clock_timestamp()
         WHERE state = 'running' AND lease_expires_at < clock_timestamp() AND attempts < max_attempts",
    )
    .execute(conn)
    .await?;
    Ok((requeued, killed))
}
