//! An organization's retention settings: four numbers of days, set by its owners.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::db::schema::orgs;
use crate::web::{AppError, FieldErrors};

/// How long an organization keeps what siteward captured for it. The latest snapshot of every
/// target, the snapshots of alerts not resolved and those in the period of a live shared report
/// are kept whatever these say; payment pages keep snapshots at least 400 days.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Queryable,
    Selectable,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[diesel(table_name = orgs)]
pub struct Retention {
    /// Days scans, snapshots (with every artifact), checkout runs, compliance scans and client
    /// reports are kept. 7–3650; default 400.
    #[diesel(column_name = keep_snapshots_days)]
    pub snapshots_days: i32,
    /// Days a snapshot's screenshots are kept; its metadata and inventory stay. 1–3650; default 90.
    #[diesel(column_name = keep_screenshots_days)]
    pub screenshots_days: i32,
    /// Days a checkout run's step screenshots are kept; its steps and findings stay. 1–3650;
    /// default 30.
    #[diesel(column_name = keep_checkout_screenshots_days)]
    pub checkout_screenshots_days: i32,
    /// Days delivered (or given-up) notifications and sent report mails are kept. 1–3650;
    /// default 30.
    #[diesel(column_name = keep_history_days)]
    pub history_days: i32,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            snapshots_days: 400,
            screenshots_days: 90,
            checkout_screenshots_days: 30,
            history_days: 30,
        }
    }
}

impl Retention {
    /// Reads the four fields of a form or request (numbers of days), every problem named.
    pub fn parse(
        snapshots: &str,
        screenshots: &str,
        checkout_screenshots: &str,
        history: &str,
    ) -> Result<Retention, AppError> {
        let mut errors = FieldErrors::default();
        let mut days = |field: &'static str, text: &str, min: i32| -> i32 {
            match text.trim().parse::<i32>() {
                Ok(n) if (min..=3650).contains(&n) => n,
                _ => {
                    errors.add(
                        field,
                        format!("must be a number of days from {min} to 3650"),
                    );
                    0
                }
            }
        };
        let retention = Retention {
            snapshots_days: days("snapshots_days", snapshots, 7),
            screenshots_days: days("screenshots_days", screenshots, 1),
            checkout_screenshots_days: days("checkout_screenshots_days", checkout_screenshots, 1),
            history_days: days("history_days", history, 1),
        };
        errors.into_result()?;
        Ok(retention)
    }
}

pub async fn load(conn: &mut AsyncPgConnection, org_id: i64) -> QueryResult<Retention> {
    orgs::table
        .find(org_id)
        .select(Retention::as_select())
        .first(conn)
        .await
}

pub async fn save(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    retention: &Retention,
) -> QueryResult<usize> {
    diesel::update(orgs::table.find(org_id))
        .set((
            orgs::keep_snapshots_days.eq(retention.snapshots_days),
            orgs::keep_screenshots_days.eq(retention.screenshots_days),
            orgs::keep_checkout_screenshots_days.eq(retention.checkout_screenshots_days),
            orgs::keep_history_days.eq(retention.history_days),
        ))
        .execute(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_out_of_range_or_not_numbers_are_named() {
        assert_eq!(
            Retention::parse("400", "90", "30", "30").unwrap(),
            Retention::default()
        );
        let Err(AppError::Invalid(errors)) = Retention::parse("6", "0", "x", "3651") else {
            panic!("accepted");
        };
        for field in [
            "snapshots_days",
            "screenshots_days",
            "checkout_screenshots_days",
            "history_days",
        ] {
            assert!(errors.get(field).is_some(), "{field}");
        }
    }
}
