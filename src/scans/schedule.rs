//! Scheduled scans: each enabled target with a schedule is due when its schedule's first firing
//! after the last scheduled scan (or after the target was created) has passed. A due target
//! gets exactly one scan however many firings were missed — after downtime it runs once, not once
//! per missed tick — and none while its previous scan is still waiting or running.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use time::OffsetDateTime;

use super::queries::{self, Trigger};
use crate::db::schema::targets;
use crate::queue;
use crate::sites::{queries as sites, schedule};

fn to_chrono(at: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or_default()
}

/// Whether a schedule last served at `anchor` is due at `now`.
pub fn is_due(schedule_text: &str, anchor: OffsetDateTime, now: OffsetDateTime) -> bool {
    schedule::next_run(schedule_text, to_chrono(anchor)).is_some_and(|next| next <= to_chrono(now))
}

/// One scheduler tick: queues a scan for every due target and returns lapsed leases to the
/// queue. Returns how many scans were queued.
pub async fn tick(
    conn: &mut AsyncPgConnection,
    max_attempts: i32,
) -> Result<usize, crate::web::AppError> {
    queue::reap(conn).await?;
    let now = OffsetDateTime::now_utc();
    let candidates: Vec<(i64, String, OffsetDateTime)> = targets::table
        .filter(targets::enabled.eq(true))
        .filter(targets::schedule.is_not_null())
        .select((
            targets::id,
            targets::schedule.assume_not_null(),
            diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                "coalesce(last_scheduled_at, created_at)",
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
            .transaction::<_, crate::web::AppError, _>(async move |conn| {
                // Lock the target so a second scheduler (should one ever run) cannot double up.
                let Some((org_id, target)) = sites::target_for_scheduler(conn, id).await? else {
                    return Ok(false);
                };
                diesel::update(targets::table.find(id))
                    .set(targets::last_scheduled_at.eq(now))
                    .execute(conn)
                    .await?;
                let open = if target.is_site() {
                    crate::crawls::queries::has_open_crawl(conn, id).await?
                } else {
                    queries::has_open_scan(conn, id).await?
                };
                if open {
                    tracing::info!(
                        target = id,
                        "scheduled scan skipped: the last one is unfinished"
                    );
                    return Ok(false);
                }
                if target.is_site() {
                    // A site target's scan is a crawl of the site.
                    let asked = queries::Asked {
                        org_id,
                        trigger: Trigger::Schedule,
                        requested_by: None,
                        max_attempts,
                    };
                    crate::crawls::progress::request(conn, &target, &asked).await?;
                } else {
                    queries::request_scan(
                        conn,
                        &target,
                        org_id,
                        Trigger::Schedule,
                        None,
                        max_attempts,
                    )
                    .await?;
                }
                Ok(true)
            })
            .await?;
        if scheduled {
            queued += 1;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::is_due;
    use time::macros::datetime;

    #[test]
    fn a_schedule_is_due_once_its_next_firing_has_passed() {
        let anchor = datetime!(2026-11-20 05:00 UTC);
        assert!(!is_due(
            "0 6 * * *",
            anchor,
            datetime!(2026-11-20 05:59 UTC)
        ));
        assert!(is_due("0 6 * * *", anchor, datetime!(2026-11-20 06:00 UTC)));
        // Three days of downtime: still due, and the caller queues one scan.
        assert!(is_due("0 6 * * *", anchor, datetime!(2026-11-23 12:00 UTC)));
    }
}
