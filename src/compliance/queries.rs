//! Compliance scans in PostgreSQL: asking for one (its visits as ordinary scans, in one
//! transaction), noticing when its last visit finished, and reading scans, findings and their
//! history back, always scoped to the caller's organization.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use time::OffsetDateTime;

use super::visits::{self, Visit};
use crate::auth::OrgCtx;
use crate::db::schema::{compliance_scans, targets};
use crate::queue;
use crate::scans::queries::{self as scans, Asked, ScanState};
use crate::sites::queries::Target;

/// The app's job that builds a compliance scan's report once its visits are over.
pub const REPORT_JOB: &str = "compliance_report";

/// Writes a compliance scan and one scan per visit (each with its job); call inside the
/// caller's transaction. Returns the compliance scan's id.
pub async fn request(
    conn: &mut AsyncPgConnection,
    target: &Target,
    asked: &Asked,
    gpc: bool,
) -> QueryResult<i64> {
    let id: i64 = diesel::insert_into(compliance_scans::table)
        .values((
            compliance_scans::org_id.eq(asked.org_id),
            compliance_scans::target_id.eq(target.id),
            compliance_scans::trigger.eq(asked.trigger.as_str()),
            compliance_scans::requested_by.eq(asked.requested_by),
            compliance_scans::gpc.eq(gpc),
        ))
        .returning(compliance_scans::id)
        .get_result(conn)
        .await?;
    for visit in visits::planned(gpc) {
        scans::request_visit(conn, target, asked, id, visit).await?;
    }
    Ok(id)
}

/// Call in the transaction that finishes a visit (its snapshot recorded, or its job dead).
/// When that was the last unfinished visit, the compliance scan moves on to `assembling` and
/// its report is queued — exactly once, however the visits race: the row lock makes the
/// checks take turns, and each sees the visits committed before it.
pub async fn visit_finished(
    conn: &mut AsyncPgConnection,
    compliance_scan_id: i64,
) -> QueryResult<()> {
    let state: Option<String> = compliance_scans::table
        .find(compliance_scan_id)
        .select(compliance_scans::state)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if state.as_deref() != Some("running") {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = Bool)]
        open: bool,
    }
    let open = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM scans s JOIN jobs j ON j.id = s.job_id
                        WHERE s.compliance_scan_id = $1 AND j.state NOT IN ('done', 'dead')) AS open",
    )
    .bind::<BigInt, _>(compliance_scan_id)
    .get_result::<Open>(conn)
    .await?
    .open;
    if open {
        return Ok(());
    }
    diesel::update(compliance_scans::table.find(compliance_scan_id))
        .set(compliance_scans::state.eq("assembling"))
        .execute(conn)
        .await?;
    queue::enqueue(
        conn,
        REPORT_JOB,
        &serde_json::json!({ "compliance_scan_id": compliance_scan_id }),
        5,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(())
}

/// After job `job_id` died: if it was a compliance visit, its compliance scan may be over.
pub async fn after_dead_job(conn: &mut AsyncPgConnection, job_id: i64) -> QueryResult<()> {
    use crate::db::schema::scans;
    let of: Option<Option<i64>> = scans::table
        .filter(scans::job_id.eq(job_id))
        .select(scans::compliance_scan_id)
        .first(conn)
        .await
        .optional()?;
    if let Some(Some(id)) = of {
        conn.transaction(async move |conn| visit_finished(conn, id).await)
            .await?;
    }
    Ok(())
}

/// Compliance scans whose visits are all over but whose report was never queued (a visit whose
/// last lease lapsed dies in the reaper, which knows nothing of compliance): the scheduler's
/// tick catches them up. Returns how many it moved on.
pub async fn catch_up(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let stuck: Vec<i64> = diesel::sql_query(
        "SELECT c.id FROM compliance_scans c
         WHERE c.state = 'running' AND NOT EXISTS (
             SELECT 1 FROM scans s JOIN jobs j ON j.id = s.job_id
             WHERE s.compliance_scan_id = c.id AND j.state NOT IN ('done', 'dead'))",
    )
    .load::<IdRow>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    for &id in &stuck {
        conn.transaction(async move |conn| visit_finished(conn, id).await)
            .await?;
    }
    Ok(stuck.len())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Whether the target has a compliance scan whose visits are not all over.
pub async fn has_open_scan(conn: &mut AsyncPgConnection, target_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        compliance_scans::table
            .filter(compliance_scans::target_id.eq(target_id))
            .filter(compliance_scans::state.eq_any(["running", "assembling"])),
    ))
    .get_result(conn)
    .await
}

/// One scheduler round for compliance schedules: a due target gets one compliance scan (none
/// while its previous one is unfinished). Returns how many were queued.
pub async fn tick(conn: &mut AsyncPgConnection, max_attempts: i32) -> QueryResult<usize> {
    catch_up(conn).await?;
    let now = OffsetDateTime::now_utc();
    let candidates: Vec<(i64, String, OffsetDateTime)> = targets::table
        .filter(targets::enabled.eq(true))
        .filter(targets::compliance_schedule.is_not_null())
        .select((
            targets::id,
            targets::compliance_schedule.assume_not_null(),
            diesel::dsl::sql::<Timestamptz>("coalesce(last_compliance_scheduled_at, created_at)"),
        ))
        .load(conn)
        .await?;
    let mut queued = 0;
    for (id, text, anchor) in candidates {
        if !crate::scans::schedule::is_due(&text, anchor, now) {
            continue;
        }
        let scheduled = conn
            .transaction::<_, diesel::result::Error, _>(async move |conn| {
                let Some((org_id, target)) =
                    crate::sites::queries::target_for_scheduler(conn, id).await?
                else {
                    return Ok(false);
                };
                diesel::update(targets::table.find(id))
                    .set(targets::last_compliance_scheduled_at.eq(now))
                    .execute(conn)
                    .await?;
                if has_open_scan(conn, id).await? {
                    tracing::info!(
                        target = id,
                        "scheduled compliance scan skipped: the last one is unfinished"
                    );
                    return Ok(false);
                }
                let asked = Asked {
                    org_id,
                    trigger: scans::Trigger::Schedule,
                    requested_by: None,
                    max_attempts,
                };
                request(conn, &target, &asked, target.compliance_gpc).await?;
                Ok(true)
            })
            .await?;
        if scheduled {
            queued += 1;
        }
    }
    Ok(queued)
}

/// A compliance scan as people see it.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct ComplianceScan {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    /// `running` (visits queued or under way), `assembling` (the report is being built),
    /// `done` (the report is ready) or `failed` (every visit failed).
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Text)]
    pub trigger: String,
    /// Whether it included the Global Privacy Control visit.
    #[diesel(sql_type = Bool)]
    pub gpc: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    /// Set once the report is ready.
    #[diesel(sql_type = Nullable<Integer>)]
    pub finding_count: Option<i32>,
    /// The worst finding's severity; absent without findings.
    #[diesel(sql_type = Nullable<Text>)]
    pub worst_severity: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<OffsetDateTime>,
    /// Hex SHA-256 of the sealed report, checked on every read.
    #[diesel(sql_type = Nullable<Text>)]
    #[serde(skip)]
    #[schemars(skip)]
    pub report_sha256: Option<String>,
    #[diesel(sql_type = BigInt)]
    #[serde(skip)]
    #[schemars(skip)]
    pub org_id: i64,
}

impl ComplianceScan {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed")
    }
}

const SCAN_SELECT: &str = "SELECT id, target_id, state, trigger, gpc, error, finding_count,
        worst_severity, created_at, finished_at, report_sha256, org_id
    FROM compliance_scans";

/// One compliance scan of the caller's organization.
pub async fn scan(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<ComplianceScan> {
    diesel::sql_query(format!("{SCAN_SELECT} WHERE id = $1 AND org_id = $2"))
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result(conn)
        .await
}

/// One compliance scan, for the app's own workers.
pub async fn scan_for_worker(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> QueryResult<Option<ComplianceScan>> {
    diesel::sql_query(format!("{SCAN_SELECT} WHERE id = $1"))
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .await
        .optional()
}

/// A target's compliance scans, newest first (the caller has checked the target is theirs).
pub async fn list(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    limit: i64,
) -> QueryResult<Vec<ComplianceScan>> {
    diesel::sql_query(format!(
        "{SCAN_SELECT} WHERE target_id = $1 AND org_id = $2 ORDER BY id DESC LIMIT $3"
    ))
    .bind::<BigInt, _>(target_id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// One visit of a compliance scan: its scan, and its snapshot once it succeeded.
#[derive(Debug, Clone, Serialize, QueryableByName, schemars::JsonSchema)]
pub struct VisitScan {
    /// `first_visit`, `reject_all`, `accept_all` or `gpc`.
    #[diesel(sql_type = Text)]
    pub visit: String,
    #[diesel(sql_type = BigInt)]
    pub scan_id: i64,
    #[diesel(sql_type = Text)]
    #[serde(skip)]
    #[schemars(skip)]
    pub job_state: String,
    #[diesel(sql_type = Integer)]
    #[serde(skip)]
    #[schemars(skip)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub snapshot_id: Option<i64>,
    /// Why the visit failed (its last attempt's error).
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
}

impl VisitScan {
    pub fn state(&self) -> ScanState {
        ScanState::of(&self.job_state, self.attempts)
    }
}

/// The visits of compliance scan `id` of organization `org_id`, in visit order.
pub async fn visit_scans(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    id: i64,
) -> QueryResult<Vec<VisitScan>> {
    let mut rows: Vec<VisitScan> = diesel::sql_query(
        "SELECT s.visit, s.id AS scan_id, j.state AS job_state, j.attempts, snap.id AS snapshot_id,
                j.last_error AS error
         FROM scans s JOIN jobs j ON j.id = s.job_id
         LEFT JOIN snapshots snap ON snap.scan_id = s.id
         WHERE s.compliance_scan_id = $1 AND s.org_id = $2",
    )
    .bind::<BigInt, _>(id)
    .bind::<BigInt, _>(org_id)
    .load(conn)
    .await?;
    rows.sort_by_key(|r| Visit::parse(&r.visit));
    Ok(rows)
}

/// A finding as recorded for the history of a target.
#[derive(Debug, Clone, Serialize, Queryable, schemars::JsonSchema)]
pub struct RecordedFinding {
    pub compliance_scan_id: i64,
    pub fingerprint: String,
    pub rule: String,
    pub severity: String,
    pub visit: String,
    pub title: String,
}

/// The recorded findings of these compliance scans of the caller's organization.
pub async fn findings_of(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    scan_ids: &[i64],
) -> QueryResult<Vec<RecordedFinding>> {
    use crate::db::schema::compliance_findings as f;
    f::table
        .filter(f::org_id.eq(ctx.org_id))
        .filter(f::compliance_scan_id.eq_any(scan_ids))
        .select((
            f::compliance_scan_id,
            f::fingerprint,
            f::rule,
            f::severity,
            f::visit,
            f::title,
        ))
        .order((f::compliance_scan_id.desc(), f::fingerprint))
        .load(conn)
        .await
}

/// Each target's latest finished compliance scan, for a client's page at a glance.
pub async fn latest_by_target(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_ids: &[i64],
) -> QueryResult<Vec<ComplianceScan>> {
    diesel::sql_query(format!(
        "SELECT DISTINCT ON (target_id) * FROM ({SCAN_SELECT}
             WHERE org_id = $1 AND target_id = ANY($2) AND state IN ('done', 'failed')) c
         ORDER BY target_id, id DESC"
    ))
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<diesel::sql_types::Array<BigInt>, _>(target_ids)
    .load(conn)
    .await
}
