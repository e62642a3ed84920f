//! Scheduled checkout runs, by the same rule as scans: due when the schedule's first firing after
//! the last scheduled run (or the test's creation) has passed; one run however many firings were
//! missed, none while the previous one is unfinished.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::queries::{self, CheckoutTest};
use crate::db::schema::{checkout_tests, targets};
use crate::scans::queries::Trigger;
use crate::scans::schedule::is_due;

/// Queues a run of every due checkout test; returns how many.
pub async fn tick(conn: &mut AsyncPgConnection, max_attempts: i32) -> QueryResult<usize> {
    let now = OffsetDateTime::now_utc();
    let candidates: Vec<(i64, String, OffsetDateTime)> = checkout_tests::table
        .inner_join(targets::table)
        .filter(checkout_tests::enabled.eq(true))
        .filter(targets::enabled.eq(true))
        .filter(checkout_tests::schedule.is_not_null())
        .select((
            checkout_tests::id,
            checkout_tests::schedule.assume_not_null(),
            diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                "coalesce(checkout_tests.last_scheduled_at, checkout_tests.created_at)",
            ),
        ))
        .load(conn)
        .await?;
    let mut queued = 0;
    for (id, text, anchor) in candidates {
        if !is_due(&text, anchor, now) {
            continue;
        }
        let scheduled = conn
            .transaction::<_, diesel::result::Error, _>(async move |conn| {
                let test: Option<CheckoutTest> = checkout_tests::table
                    .find(id)
                    .for_update()
                    .select(CheckoutTest::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                let Some(test) = test else {
                    return Ok(false);
                };
                diesel::update(checkout_tests::table.find(id))
                    .set(checkout_tests::last_scheduled_at.eq(now))
                    .execute(conn)
                    .await?;
                if queries::has_open_run(conn, id).await? {
                    return Ok(false);
                }
                queries::request_run(conn, &test, Trigger::Schedule, None, max_attempts).await?;
                Ok(true)
            })
            .await?;
        if scheduled {
            queued += 1;
        }
    }
    Ok(queued)
}
