//! The overview's data: one row per target of the caller's organization with its state, and
//! changes and alerts per client and day for the trend.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::trend::{DAYS, Trend};
use crate::auth::OrgCtx;
use crate::scans::queries::ScanState;

/// A client and the state of its targets.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ClientOverview {
    pub client_id: i64,
    pub client_name: String,
    pub targets: Vec<TargetState>,
    pub open_alerts: AlertCounts,
    /// Targets whose last scan failed for good.
    pub failing_scans: usize,
    /// Enabled, scheduled targets with no snapshot since their schedule last fired (an hour's
    /// grace).
    pub overdue_targets: usize,
    /// Checkout tests whose last run failed.
    pub failed_checkouts: usize,
    /// Anything above: an open high or critical alert, a failing scan or checkout, an overdue
    /// target.
    pub needs_attention: bool,
    pub trend: Trend,
}

/// Open (or acknowledged) alerts by severity; `low` counts low and info.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AlertCounts {
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TargetState {
    pub target_id: i64,
    pub name: String,
    #[serde(skip)]
    #[schemars(skip)]
    pub client_id: i64,
    pub enabled: bool,
    pub schedule: Option<String>,
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    /// When the last plain scan was asked for, and how it went.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_scan_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_snapshot_at: Option<OffsetDateTime>,
    /// The last finished checkout run's outcome (`passed`, `failed`, `error`).
    pub last_checkout: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub last_checkout_at: Option<OffsetDateTime>,
    /// The last scan's state; absent before the first.
    pub last_scan: Option<ScanState>,
    /// Enabled and scheduled, with no snapshot since the schedule last fired (an hour's grace).
    pub overdue: bool,
}

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = BigInt)]
    target_id: i64,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    client_id: i64,
    #[diesel(sql_type = Bool)]
    enabled: bool,
    #[diesel(sql_type = Nullable<Text>)]
    schedule: Option<String>,
    #[diesel(sql_type = BigInt)]
    critical: i64,
    #[diesel(sql_type = BigInt)]
    high: i64,
    #[diesel(sql_type = BigInt)]
    medium: i64,
    #[diesel(sql_type = BigInt)]
    low: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_scan_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    last_scan_job_state: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_snapshot_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    last_checkout: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_checkout_at: Option<OffsetDateTime>,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
}

/// The grace after a schedule fires before a target counts as overdue.
const GRACE: Duration = Duration::hours(1);

impl TargetState {
    fn of(row: TargetRow, now: OffsetDateTime) -> TargetState {
        let overdue = row.enabled
            && row.schedule.as_deref().is_some_and(|schedule| {
                let anchor = row.last_snapshot_at.unwrap_or(row.created_at);
                crate::scans::schedule::is_due(schedule, anchor, now - GRACE)
            });
        TargetState {
            last_scan: row
                .last_scan_job_state
                .as_deref()
                .map(|state| ScanState::of(state, 1)),
            overdue,
            target_id: row.target_id,
            name: row.name,
            client_id: row.client_id,
            enabled: row.enabled,
            schedule: row.schedule,
            critical: row.critical,
            high: row.high,
            medium: row.medium,
            low: row.low,
            last_scan_at: row.last_scan_at,
            last_snapshot_at: row.last_snapshot_at,
            last_checkout: row.last_checkout,
            last_checkout_at: row.last_checkout_at,
        }
    }
}

/// Every client of the caller's organization with its targets' state, worst first.
pub async fn overview(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
) -> QueryResult<Vec<ClientOverview>> {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<TargetRow> = diesel::sql_query(
        "SELECT t.id AS target_id, t.name, t.client_id, t.enabled,
                t.schedule, t.created_at,
                count(a.id) FILTER (WHERE a.severity = 'critical') AS critical,
                count(a.id) FILTER (WHERE a.severity = 'high') AS high,
                count(a.id) FILTER (WHERE a.severity = 'medium') AS medium,
                count(a.id) FILTER (WHERE a.severity IN ('low', 'info')) AS low,
                ls.created_at AS last_scan_at, ls.job_state AS last_scan_job_state,
                (SELECT max(captured_at) FROM snapshots sn
                  WHERE sn.target_id = t.id AND sn.visit IS NULL) AS last_snapshot_at,
                lr.outcome AS last_checkout, lr.finished_at AS last_checkout_at
         FROM targets t
         LEFT JOIN alerts a ON a.target_id = t.id AND a.state <> 'resolved'
         LEFT JOIN LATERAL (
             SELECT s.created_at, j.state AS job_state FROM scans s JOIN jobs j ON j.id = s.job_id
             WHERE s.target_id = t.id AND s.visit IS NULL ORDER BY s.id DESC LIMIT 1) ls ON true
         LEFT JOIN LATERAL (
             SELECT r.outcome, r.finished_at FROM checkout_runs r
             WHERE r.target_id = t.id AND r.outcome IS NOT NULL
             ORDER BY r.id DESC LIMIT 1) lr ON true
         WHERE t.org_id = $1
         GROUP BY t.id, ls.created_at, ls.job_state, lr.outcome, lr.finished_at
         ORDER BY t.name, t.id",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .load(conn)
    .await?;
    let targets: Vec<TargetState> = rows.into_iter().map(|r| TargetState::of(r, now)).collect();
    let clients: Vec<(i64, String)> = {
        use crate::db::schema::clients;
        clients::table
            .filter(clients::org_id.eq(ctx.org_id))
            .select((clients::id, clients::name))
            .load(conn)
            .await?
    };
    let trends = trends(conn, ctx, now).await?;
    let mut out: Vec<ClientOverview> = clients
        .into_iter()
        .map(|(client_id, client_name)| {
            let own: Vec<TargetState> = targets
                .iter()
                .filter(|t| t.client_id == client_id)
                .cloned()
                .collect();
            summarize(
                client_id,
                client_name,
                own,
                trends.get(&client_id).cloned(),
                now,
            )
        })
        .collect();
    super::trend::sort(&mut out);
    Ok(out)
}

fn summarize(
    client_id: i64,
    client_name: String,
    targets: Vec<TargetState>,
    trend: Option<Trend>,
    now: OffsetDateTime,
) -> ClientOverview {
    let open_alerts = AlertCounts {
        critical: targets.iter().map(|t| t.critical).sum(),
        high: targets.iter().map(|t| t.high).sum(),
        medium: targets.iter().map(|t| t.medium).sum(),
        low: targets.iter().map(|t| t.low).sum(),
    };
    let failing_scans = targets
        .iter()
        .filter(|t| t.last_scan == Some(ScanState::Failed))
        .count();
    let overdue_targets = targets.iter().filter(|t| t.overdue).count();
    let failed_checkouts = targets
        .iter()
        .filter(|t| t.last_checkout.as_deref().is_some_and(|o| o != "passed"))
        .count();
    let needs_attention = open_alerts.critical + open_alerts.high > 0
        || failing_scans + overdue_targets + failed_checkouts > 0;
    ClientOverview {
        client_id,
        client_name,
        targets,
        open_alerts,
        failing_scans,
        overdue_targets,
        failed_checkouts,
        needs_attention,
        trend: trend.unwrap_or_else(|| empty_trend(now)),
    }
}

fn first_day(now: OffsetDateTime) -> time::Date {
    now.date() - Duration::days(DAYS as i64 - 1)
}

fn empty_trend(now: OffsetDateTime) -> Trend {
    Trend {
        from: first_day(now).to_string(),
        changes: vec![0; DAYS],
        alerts: vec![0; DAYS],
    }
}

#[derive(QueryableByName)]
struct DayRow {
    #[diesel(sql_type = BigInt)]
    client_id: i64,
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: time::Date,
    #[diesel(sql_type = BigInt)]
    changes: i64,
    #[diesel(sql_type = BigInt)]
    alerts: i64,
}

/// Changes (of plain scans) and alerts opened per client and day over the last 30 days (UTC).
async fn trends(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    now: OffsetDateTime,
) -> QueryResult<BTreeMap<i64, Trend>> {
    let since = first_day(now).midnight().assume_utc();
    let rows: Vec<DayRow> = diesel::sql_query(
        "SELECT client_id, day, sum(changes)::bigint AS changes, sum(alerts)::bigint AS alerts FROM (
             SELECT t.client_id, (s.captured_at AT TIME ZONE 'UTC')::date AS day,
                    d.change_count::bigint AS changes, 0::bigint AS alerts
             FROM snapshot_diffs d JOIN snapshots s ON s.id = d.snapshot_id
             JOIN targets t ON t.id = d.target_id
             WHERE d.org_id = $1 AND s.visit IS NULL AND s.captured_at >= $2
             UNION ALL
             SELECT t.client_id, (a.opened_at AT TIME ZONE 'UTC')::date, 0, 1
             FROM alerts a JOIN targets t ON t.id = a.target_id
             WHERE a.org_id = $1 AND a.opened_at >= $2) per_event
         GROUP BY client_id, day",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Timestamptz, _>(since)
    .load(conn)
    .await?;
    let first = first_day(now);
    let mut out: BTreeMap<i64, Trend> = BTreeMap::new();
    for row in rows {
        let index = (row.day - first).whole_days();
        if !(0..DAYS as i64).contains(&index) {
            continue;
        }
        let trend = out.entry(row.client_id).or_insert_with(|| empty_trend(now));
        trend.changes[index as usize] += u32::try_from(row.changes).unwrap_or(u32::MAX);
        trend.alerts[index as usize] += u32::try_from(row.alerts).unwrap_or(u32::MAX);
    }
    Ok(out)
}
