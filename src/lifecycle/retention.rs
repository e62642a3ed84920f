//! The retention purge: one pass deletes, in batches, everything each organization's retention
//! has let expire, except what later features depend on (`snapshot_is_kept` in the database: the
//! latest snapshot of every target, the snapshots of alerts not resolved, those in the period of a
//! report shared by a live link). Blobs are not touched here: deleting a scan, run, compliance
//! scan or report queues its folder in `blob_deletions` in the same statement (by trigger), and a
//! screenshot's row is deleted together with queueing its key, so a pass killed at any point
//! leaves rows and queue consistent, and the next pass goes on where it stopped.

use std::collections::BTreeMap;

use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

/// Payment pages keep their snapshots at least this long whatever the organization chose:
/// PCI DSS 10.5.1 asks for twelve months of history, and evidence exports cover up to 400 days.
pub const PAYMENT_PAGE_MIN_DAYS: i32 = crate::payment::evidence::MAX_DAYS as i32;

/// Finished jobs that belong to no scan, run or report (diffs, notifications, report
/// assembly and delivery) are kept this long, for every organization.
pub const FINISHED_JOB_DAYS: i32 = 30;

/// Sent report mails are kept at least this long whatever the organization chose: the row is
/// what makes a period's report go out once, and a period lasts up to 31 days.
pub const REPORT_DELIVERY_MIN_DAYS: i32 = 35;

/// Whether checkout run `r` is the newest run of its test to reach one of its pages: the next run
/// compares that page with it.
const CHECKOUT_BASELINE: &str = "EXISTS (
    SELECT 1 FROM checkout_run_pages p WHERE p.run_id = r.id AND NOT EXISTS (
        SELECT 1 FROM checkout_run_pages q JOIN checkout_runs qr ON qr.id = q.run_id
        WHERE qr.test_id = r.test_id AND q.path = p.path AND q.run_id > r.id))";

/// What one kind of purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purged {
    ComplianceScans,
    Scans,
    CheckoutRuns,
    Reports,
    Screenshots,
    CheckoutScreenshots,
    Notifications,
    ReportDeliveries,
    /// Export links nobody used in time: the export expires and its parts are queued.
    Exports,
    Jobs,
}

impl Purged {
    pub const ALL: [Purged; 10] = [
        // Compliance scans first: deleting one takes its visits (scans) along.
        Purged::ComplianceScans,
        Purged::Scans,
        Purged::CheckoutRuns,
        Purged::Reports,
        Purged::Screenshots,
        Purged::CheckoutScreenshots,
        Purged::Notifications,
        Purged::ReportDeliveries,
        Purged::Exports,
        Purged::Jobs,
    ];

    /// One batch: deletes at most `$1` expired rows and returns each one's organization (0 for
    /// rows of no organization). Every statement picks its rows per organization with the
    /// organization's own retention, oldest first.
    fn statement(self) -> String {
        let payment_floor = format!(
            "CASE WHEN t.page_kind = 'payment' THEN GREATEST(o.keep_snapshots_days, {PAYMENT_PAGE_MIN_DAYS}) ELSE o.keep_snapshots_days END"
        );
        match self {
            Purged::ComplianceScans => format!(
                "DELETE FROM compliance_scans WHERE id IN (
                     SELECT c.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT c.id FROM compliance_scans c JOIN targets t ON t.id = c.target_id
                         WHERE c.org_id = o.id AND c.state IN ('done', 'failed')
                           AND c.created_at < now() - make_interval(days => {payment_floor})
                           AND NOT EXISTS (SELECT 1 FROM scans v
                                           WHERE v.compliance_scan_id = c.id
                                             AND snapshot_is_kept(v.snapshot_id))
                         ORDER BY c.created_at LIMIT $1) c
                     LIMIT $1)
                 RETURNING org_id"
            ),
            Purged::Scans => format!(
                "DELETE FROM scans WHERE id IN (
                     SELECT s.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT s.id FROM scans s
                         JOIN targets t ON t.id = s.target_id
                         JOIN jobs j ON j.id = s.job_id
                         WHERE s.org_id = o.id AND s.compliance_scan_id IS NULL
                           AND s.created_at < now() - make_interval(days => {payment_floor})
                           AND j.state IN ('done', 'dead')
                           AND NOT snapshot_is_kept(s.snapshot_id)
                         ORDER BY s.created_at LIMIT $1) s
                     LIMIT $1)
                 RETURNING org_id"
            ),
            Purged::CheckoutRuns => format!(
                "DELETE FROM checkout_runs WHERE id IN (
                     SELECT r.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT r.id FROM checkout_runs r JOIN targets t ON t.id = r.target_id
                         WHERE r.org_id = o.id AND r.finished_at IS NOT NULL
                           AND r.created_at < now() - make_interval(days => {payment_floor})
                           AND NOT {CHECKOUT_BASELINE}
                         ORDER BY r.created_at LIMIT $1) r
                     LIMIT $1)
                 RETURNING org_id"
            ),
            // A payment page's evidence frozen as a report keeps the payment floor.
            Purged::Reports => format!("DELETE FROM reports WHERE id IN (
                     SELECT r.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT r.id FROM reports r LEFT JOIN targets t ON t.id = r.target_id
                         WHERE r.org_id = o.id
                           AND r.created_at < now() - make_interval(days => {payment_floor})
                           AND NOT EXISTS (SELECT 1 FROM report_shares sh
                                           WHERE sh.report_id = r.id AND sh.revoked_at IS NULL
                                             AND sh.expires_at > now())
                         ORDER BY r.created_at LIMIT $1) r
                     LIMIT $1)
                 RETURNING org_id"),
            // A screenshot row goes with queueing its object key (made as `ObjectKey` makes it; an
            // earlier attempt's copy too) and the folder of comparisons kept in its snapshot,
            // whose diff images it fed.
            Purged::Screenshots => "WITH gone AS (
                     DELETE FROM scan_artifacts a USING scans s
                     WHERE s.id = a.scan_id AND (a.scan_id, a.name) IN (
                         SELECT a.scan_id, a.name FROM orgs o CROSS JOIN LATERAL (
                             SELECT a.scan_id, a.name FROM scan_artifacts a
                             JOIN scans s ON s.id = a.scan_id
                             WHERE a.org_id = o.id AND a.content_type = 'image/png'
                               AND a.uploaded_at < now() - make_interval(days => o.keep_screenshots_days)
                               AND NOT snapshot_is_kept(s.snapshot_id)
                             ORDER BY a.uploaded_at LIMIT $1) a
                         LIMIT $1)
                     RETURNING a.org_id, s.snapshot_id, a.attempt, a.keyed_by_attempt, a.name),
                 queued AS (
                     INSERT INTO blob_deletions (org_id, key, whole_folder)
                     SELECT org_id, 'org/' || org_id || '/snapshot/' || snapshot_id
                                || CASE WHEN keyed_by_attempt THEN '/attempt-' || n ELSE '' END
                                || '/' || name, false
                     FROM gone, generate_series(CASE WHEN keyed_by_attempt THEN 1 ELSE attempt END, attempt) n
                     UNION
                     SELECT org_id, 'org/' || org_id || '/snapshot/' || snapshot_id || '/comparison/', true
                     FROM gone)
                 SELECT org_id FROM gone"
                .to_string(),
            Purged::CheckoutScreenshots => format!("WITH gone AS (
                     DELETE FROM checkout_run_artifacts a
                     WHERE (a.run_id, a.name) IN (
                         SELECT a.run_id, a.name FROM orgs o CROSS JOIN LATERAL (
                             SELECT a.run_id, a.name FROM checkout_run_artifacts a
                             JOIN checkout_runs r ON r.id = a.run_id
                             WHERE a.org_id = o.id AND a.content_type = 'image/png'
                               AND a.uploaded_at < now() - make_interval(days => o.keep_checkout_screenshots_days)
                               AND NOT {CHECKOUT_BASELINE}
                             ORDER BY a.uploaded_at LIMIT $1) a
                         LIMIT $1)
                     RETURNING a.org_id, a.run_id, a.attempt, a.keyed_by_attempt, a.name),
                 queued AS (
                     INSERT INTO blob_deletions (org_id, key, whole_folder)
                     SELECT org_id, 'org/' || org_id || '/checkout-run/' || run_id
                                || CASE WHEN keyed_by_attempt THEN '/attempt-' || n ELSE '' END
                                || '/' || name, false
                     FROM gone, generate_series(CASE WHEN keyed_by_attempt THEN 1 ELSE attempt END, attempt) n)
                 SELECT org_id FROM gone"),
            Purged::Notifications => "DELETE FROM notification_deliveries WHERE id IN (
                     SELECT d.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT d.id FROM notification_deliveries d
                         WHERE d.org_id = o.id AND d.status <> 'pending'
                           AND d.created_at < now() - make_interval(days => o.keep_history_days)
                         ORDER BY d.created_at LIMIT $1) d
                     LIMIT $1)
                 RETURNING org_id"
                .to_string(),
            // A sent delivery is what stops its period's report going out twice: kept until its
            // period (a month at most) is over.
            Purged::ReportDeliveries => format!("DELETE FROM report_deliveries WHERE id IN (
                     SELECT d.id FROM orgs o CROSS JOIN LATERAL (
                         SELECT d.id FROM report_deliveries d
                         WHERE d.org_id = o.id AND d.status = 'sent'
                           AND d.created_at < now() - make_interval(
                               days => GREATEST(o.keep_history_days, {REPORT_DELIVERY_MIN_DAYS}))
                         ORDER BY d.created_at LIMIT $1) d
                     LIMIT $1)
                 RETURNING org_id"),
            Purged::Exports => "WITH expired AS (
                     UPDATE exports SET state = 'expired', token_hash = NULL
                     WHERE id IN (SELECT id FROM exports
                                  WHERE state = 'ready' AND expires_at <= now()
                                  ORDER BY expires_at LIMIT $1)
                     RETURNING org_id, id),
                 queued AS (
                     INSERT INTO blob_deletions (org_id, key, whole_folder)
                     SELECT org_id, 'org/' || org_id || '/export/' || id || '/', true FROM expired)
                 SELECT org_id FROM expired"
                .to_string(),
            Purged::Jobs => format!(
                "DELETE FROM jobs WHERE id IN (
                     SELECT id FROM jobs
                     WHERE state IN ('done', 'dead')
                       AND finished_at < now() - make_interval(days => {FINISHED_JOB_DAYS})
                       AND kind NOT IN ('scan', 'checkout', 'pdf')
                     ORDER BY finished_at LIMIT $1)
                 RETURNING 0::BIGINT AS org_id"
            ),
        }
    }
}

/// What a pass deleted, per organization (0: rows of no organization) and kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub deleted: BTreeMap<i64, BTreeMap<Purged, u64>>,
    pub batches: u64,
}

impl PassReport {
    pub fn total(&self) -> u64 {
        self.deleted.values().flat_map(|kinds| kinds.values()).sum()
    }

    pub fn of(&self, kind: Purged) -> u64 {
        self.deleted
            .values()
            .filter_map(|kinds| kinds.get(&kind))
            .sum()
    }
}

#[derive(QueryableByName)]
struct OrgRow {
    #[diesel(sql_type = BigInt)]
    org_id: i64,
}

/// One batch of one kind (its own transaction); returns the organizations of the rows deleted.
pub async fn purge_batch(
    conn: &mut AsyncPgConnection,
    kind: Purged,
    batch: i64,
) -> diesel::QueryResult<Vec<i64>> {
    let rows: Vec<OrgRow> = diesel::sql_query(kind.statement())
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.org_id).collect())
}

/// Purges every kind until nothing of it has expired. `on_batch` sees each batch as it is done
/// (a caller may stop the pass between batches by returning false).
pub async fn pass(
    conn: &mut AsyncPgConnection,
    batch: i64,
    mut on_batch: impl FnMut(Purged, usize) -> bool,
) -> diesel::QueryResult<PassReport> {
    let mut report = PassReport::default();
    for kind in Purged::ALL {
        loop {
            let orgs = purge_batch(conn, kind, batch).await?;
            report.batches += 1;
            for org in &orgs {
                *report
                    .deleted
                    .entry(*org)
                    .or_default()
                    .entry(kind)
                    .or_default() += 1;
            }
            if !on_batch(kind, orgs.len()) {
                return Ok(report);
            }
            if (orgs.len() as i64) < batch {
                break;
            }
        }
    }
    Ok(report)
}
