//! PCI DSS 4.0 11.6.1 asks for the payment page to be checked at least weekly: when the last
//! successful scan of a payment target is more than seven days old (scans failed, the target
//! was paused), the dashboard and the API say so.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::db::schema::{jobs, scans, snapshots};
use crate::sites::queries::Target;

/// The longest a payment page may go without a successful scan.
pub const WINDOW: Duration = Duration::days(7);

/// Where a payment target stands against its weekly window.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Window {
    /// When the page was last scanned successfully.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_scan_at: Option<OffsetDateTime>,
    /// Why the window is missed, when it is.
    pub missed: Option<String>,
}

/// The target's window now; the target is the caller's (already checked).
pub async fn window(conn: &mut AsyncPgConnection, target: &Target) -> QueryResult<Window> {
    let last_scan_at: Option<OffsetDateTime> = snapshots::table
        .filter(snapshots::target_id.eq(target.id))
        .filter(snapshots::visit.is_null())
        .select(diesel::dsl::max(snapshots::captured_at))
        .first(conn)
        .await?;
    let latest_failed: bool = scans::table
        .inner_join(jobs::table)
        .filter(scans::target_id.eq(target.id))
        .filter(scans::visit.is_null())
        .select(jobs::state.eq("dead"))
        .order(scans::id.desc())
        .first(conn)
        .await
        .optional()?
        .unwrap_or(false);
    Ok(judge(
        target.enabled,
        target.created_at,
        last_scan_at,
        latest_failed,
        OffsetDateTime::now_utc(),
    ))
}

fn judge(
    enabled: bool,
    created_at: OffsetDateTime,
    last_scan_at: Option<OffsetDateTime>,
    latest_failed: bool,
    now: OffsetDateTime,
) -> Window {
    let since = last_scan_at.unwrap_or(created_at);
    let overdue = now - since > WINDOW;
    let missed = if !enabled {
        Some("the target is paused, so the page is not being checked".to_owned())
    } else if overdue {
        let mut reason = match last_scan_at {
            Some(at) => format!(
                "no successful scan since {}: the weekly check was missed",
                at.date()
            ),
            None => "never scanned successfully: the weekly check was missed".to_owned(),
        };
        if latest_failed {
            reason.push_str(" (the latest scan failed)");
        }
        Some(reason)
    } else {
        None
    };
    Window {
        last_scan_at,
        missed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_week_without_a_successful_scan_or_a_paused_target_misses_the_window() {
        let now = datetime!(2026-12-06 12:00 UTC);
        let created = datetime!(2026-11-01 00:00 UTC);
        let recent = Some(datetime!(2026-12-01 06:00 UTC));
        let old = Some(datetime!(2026-11-28 06:00 UTC));
        assert!(judge(true, created, recent, false, now).missed.is_none());
        let missed = judge(true, created, old, true, now).missed.unwrap();
        assert!(missed.contains("since 2026-11-28") && missed.contains("latest scan failed"));
        assert!(
            judge(true, created, None, false, now)
                .missed
                .unwrap()
                .contains("never")
        );
        assert!(
            judge(false, created, recent, false, now)
                .missed
                .unwrap()
                .contains("paused")
        );
    }
}
