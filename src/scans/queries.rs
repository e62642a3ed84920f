//! Scans and snapshots in PostgreSQL: asking for a scan (scan row and job in one transaction),
//! reading them back scoped to the caller's organization, and the inventory queries.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scanner::snapshot::ConsentMode;
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::OrgCtx;
use crate::compliance::Visit;
use crate::db::schema::{scan_artifacts, scans, snapshots};
use crate::queue;
use crate::runner::protocol::{CRAWL_PAGE_JOB, SCAN_JOB, ScanOrder};
use crate::sites::queries::Target;
use crate::storage::Uploader;
use crate::web::pagination::PageRequest;

/// Who or what asked for a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Dashboard,
    Api,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Dashboard => "dashboard",
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
        }
    }

    pub fn parse(text: &str) -> Option<Trigger> {
        [Trigger::Dashboard, Trigger::Api, Trigger::Schedule]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// A scan's state, read from its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanState {
    /// Waiting for a runner.
    Queued,
    /// An attempt failed; waiting to try again.
    Retrying,
    /// A runner is on it.
    Running,
    /// The snapshot is stored.
    Succeeded,
    /// Every attempt failed; `error` says why.
    Failed,
}

impl ScanState {
    pub fn of(job_state: &str, attempts: i32) -> ScanState {
        match job_state {
            "running" => ScanState::Running,
            "done" => ScanState::Succeeded,
            "dead" => ScanState::Failed,
            _ if attempts > 0 => ScanState::Retrying,
            _ => ScanState::Queued,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, ScanState::Succeeded | ScanState::Failed)
    }

    pub fn label(self) -> &'static str {
        match self {
            ScanState::Queued => "queued",
            ScanState::Retrying => "retrying",
            ScanState::Running => "running",
            ScanState::Succeeded => "succeeded",
            ScanState::Failed => "failed",
        }
    }
}

/// A scan as people see it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Scan {
    pub id: i64,
    pub target_id: i64,
    pub target_name: String,
    pub url: String,
    pub state: ScanState,
    pub trigger: String,
    /// The compliance-scan visit this scan is (`first_visit`, `reject_all`, `accept_all`,
    /// `gpc`); absent for a plain scan.
    pub visit: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last attempt's error (kept after a later attempt succeeds, for the record).
    pub error: Option<String>,
    /// Set once the scan succeeded.
    pub snapshot_id: Option<i64>,
    /// How many changes the snapshot brought since the previous one, once compared.
    pub change_count: Option<i32>,
    /// The snapshot it was compared with.
    pub previous_snapshot_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(QueryableByName)]
struct ScanRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    target_id: i64,
    #[diesel(sql_type = Text)]
    target_name: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Text)]
    job_state: String,
    #[diesel(sql_type = Text)]
    trigger: String,
    #[diesel(sql_type = Nullable<Text>)]
    visit: Option<String>,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Integer)]
    max_attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    snapshot_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    change_count: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    previous_snapshot_id: Option<i64>,
    #[diesel(sql_type = Timestamptz)]
    created_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<OffsetDateTime>,
}

impl From<ScanRow> for Scan {
    fn from(row: ScanRow) -> Scan {
        Scan {
            id: row.id,
            target_id: row.target_id,
            target_name: row.target_name,
            url: row.url,
            state: ScanState::of(&row.job_state, row.attempts),
            trigger: row.trigger,
            visit: row.visit,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            error: row.last_error,
            snapshot_id: row.snapshot_id,
            change_count: row.change_count,
            previous_snapshot_id: row.previous_snapshot_id,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

const SCAN_SELECT: &str =
    "SELECT s.id, s.target_id, t.name AS target_name, j.payload->>'url' AS url,
        j.state AS job_state, s.trigger, s.visit, j.attempts, j.max_attempts, j.last_error,
        snap.id AS snapshot_id, d.change_count, d.previous_snapshot_id, s.created_at, j.finished_at
    FROM scans s
    JOIN jobs j ON j.id = s.job_id
    JOIN targets t ON t.id = s.target_id
    LEFT JOIN snapshots snap ON snap.scan_id = s.id
    LEFT JOIN snapshot_diffs d ON d.snapshot_id = snap.id";

fn consent_mode(stored: &str) -> ConsentMode {
    match stored {
        "accept" => ConsentMode::AcceptAll,
        "reject" => ConsentMode::RejectAll,
        _ => ConsentMode::NoInteraction,
    }
}

/// Writes a scan and its job; call inside the caller's transaction. Returns the scan id.
pub async fn request_scan(
    conn: &mut AsyncPgConnection,
    target: &Target,
    org_id: i64,
    trigger: Trigger,
    requested_by: Option<i64>,
    max_attempts: i32,
) -> QueryResult<i64> {
    let asked = Asked {
        org_id,
        trigger,
        requested_by,
        max_attempts,
    };
    insert_scan(conn, target, &asked, Of::Target).await
}

/// Who asked for a scan, and how hard to try.
pub struct Asked {
    pub org_id: i64,
    pub trigger: Trigger,
    pub requested_by: Option<i64>,
    pub max_attempts: i32,
}

/// Writes one visit of compliance scan `compliance_scan_id` as a scan and its job; call inside
/// the caller's transaction. Returns the scan id.
pub async fn request_visit(
    conn: &mut AsyncPgConnection,
    target: &Target,
    asked: &Asked,
    compliance_scan_id: i64,
    visit: Visit,
) -> QueryResult<i64> {
    insert_scan(conn, target, asked, Of::Visit(compliance_scan_id, visit)).await
}

/// Writes page `url` of crawl `crawl_id` as a scan and its `crawl_page` job (handed only to the
/// crawl's lanes); call inside the caller's transaction. Returns the scan id.
pub async fn request_crawl_page(
    conn: &mut AsyncPgConnection,
    target: &Target,
    asked: &Asked,
    crawl_id: i64,
    url: &str,
) -> QueryResult<i64> {
    insert_scan(conn, target, asked, Of::CrawlPage(crawl_id, url)).await
}

/// What a scan is of: its target's page, a compliance scan's visit, or a crawl's page.
#[derive(Clone, Copy)]
enum Of<'a> {
    Target,
    Visit(i64, Visit),
    CrawlPage(i64, &'a str),
}

async fn insert_scan(
    conn: &mut AsyncPgConnection,
    target: &Target,
    asked: &Asked,
    of: Of<'_>,
) -> QueryResult<i64> {
    let visit = match of {
        Of::Visit(id, visit) => Some((id, visit)),
        _ => None,
    };
    let (crawl_id, url, kind) = match of {
        // A crawl's visitor has not chosen on any banner: every page is a first visit's.
        Of::CrawlPage(crawl_id, url) => (Some(crawl_id), url, CRAWL_PAGE_JOB),
        _ => (None, target.url.as_str(), SCAN_JOB),
    };
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let scan_id = diesel::sql_query("SELECT nextval('scans_id_seq') AS id")
        .get_result::<Id>(conn)
        .await?
        .id;
    let order = ScanOrder {
        scan_id,
        url: url.to_owned(),
        viewport_width: u32::try_from(target.viewport_width).unwrap_or(1366),
        viewport_height: u32::try_from(target.viewport_height).unwrap_or(768),
        consent_mode: match of {
            Of::Visit(_, visit) => visit.consent_mode(),
            Of::CrawlPage(..) => ConsentMode::NoInteraction,
            Of::Target => consent_mode(&target.consent_mode),
        },
        policy_pages: target.capture_policy_pages,
        wait_ms: u32::try_from(target.wait_ms)
            .unwrap_or(scanner::DEFAULT_QUIET_PERIOD.as_millis() as u32),
        dwell_ms: u32::try_from(target.dwell_ms)
            .unwrap_or(scanner::DEFAULT_MIN_DWELL.as_millis() as u32),
        device: scanner::profile::Device::parse(&target.device).unwrap_or_default(),
        languages: target.languages.split(',').map(str::to_owned).collect(),
        timezone: target.timezone.clone(),
        global_privacy_control: visit.is_some_and(|(_, v)| v.sends_gpc()),
    };
    let payload = serde_json::to_value(&order)
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    let job_id = queue::enqueue(
        conn,
        kind,
        &payload,
        asked.max_attempts,
        OffsetDateTime::now_utc(),
    )
    .await?;
    diesel::insert_into(scans::table)
        .values((
            scans::id.eq(scan_id),
            scans::org_id.eq(asked.org_id),
            scans::target_id.eq(target.id),
            scans::job_id.eq(job_id),
            scans::trigger.eq(asked.trigger.as_str()),
            scans::requested_by.eq(asked.requested_by),
            scans::compliance_scan_id.eq(visit.map(|(id, _)| id)),
            scans::visit.eq(visit.map(|(_, v)| v.as_str())),
            scans::crawl_id.eq(crawl_id),
        ))
        .execute(conn)
        .await?;
    Ok(scan_id)
}

/// One scan of the caller's organization.
pub async fn scan(conn: &mut AsyncPgConnection, ctx: &OrgCtx, id: i64) -> QueryResult<Scan> {
    diesel::sql_query(format!("{SCAN_SELECT} WHERE s.id = $1 AND s.org_id = $2"))
        .bind::<BigInt, _>(id)
        .bind::<BigInt, _>(ctx.org_id)
        .get_result::<ScanRow>(conn)
        .await
        .map(Scan::from)
}

/// A target's scans, newest first.
pub async fn list_scans(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    page: PageRequest,
) -> QueryResult<Vec<Scan>> {
    diesel::sql_query(format!(
        "{SCAN_SELECT} WHERE s.target_id = $1 AND s.org_id = $2 AND s.id < $3
         ORDER BY s.id DESC LIMIT $4"
    ))
    .bind::<BigInt, _>(target_id)
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<BigInt, _>(page.before_id.unwrap_or(i64::MAX))
    .bind::<BigInt, _>(page.limit + 1)
    .load::<ScanRow>(conn)
    .await
    .map(|rows| rows.into_iter().map(Scan::from).collect())
}

/// A snapshot's metadata.
#[derive(Debug, Clone, Queryable, Serialize, schemars::JsonSchema)]
pub struct SnapshotMeta {
    pub id: i64,
    pub scan_id: i64,
    pub target_id: i64,
    /// The compliance-scan visit it captured; absent for a plain scan.
    pub visit: Option<String>,
    /// For a page of a crawl: the page (its URL as the crawl normalized it), which it is
    /// compared by.
    pub page_key: Option<String>,
    pub attempt: i32,
    pub requested_url: String,
    pub final_url: String,
    pub http_status: Option<i32>,
    pub title: String,
    pub scan_ms: i64,
    pub request_count: i32,
    pub console_error_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub captured_at: OffsetDateTime,
}

pub async fn snapshot(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    id: i64,
) -> QueryResult<SnapshotMeta> {
    snapshots::table
        .filter(snapshots::id.eq(id))
        .filter(snapshots::org_id.eq(ctx.org_id))
        .select((
            snapshots::id,
            snapshots::scan_id,
            snapshots::target_id,
            snapshots::visit,
            snapshots::page_key,
            snapshots::attempt,
            snapshots::requested_url,
            snapshots::final_url,
            snapshots::http_status,
            snapshots::title,
            snapshots::scan_ms,
            snapshots::request_count,
            snapshots::console_error_count,
            snapshots::captured_at,
        ))
        .first(conn)
        .await
}

/// A stored artifact of a snapshot.
#[derive(Debug, Clone, Queryable, Serialize, schemars::JsonSchema)]
pub struct Artifact {
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// Hex SHA-256 of the plaintext; checked again on every read.
    pub sha256: String,
    /// The attempt that uploaded it, which names its blob.
    #[serde(skip)]
    #[schemars(skip)]
    pub attempt: i32,
    #[serde(skip)]
    #[schemars(skip)]
    pub keyed_by_attempt: bool,
}

impl Artifact {
    /// Who uploaded the blob this row points at.
    pub fn uploader(&self) -> Uploader {
        Uploader::of_row(self.attempt, self.keyed_by_attempt)
    }
}

/// The artifacts of a snapshot of organization `org_id` (the caller's, or the snapshot's own for
/// the app's workers); only completed snapshots have any.
pub async fn artifacts(
    conn: &mut AsyncPgConnection,
    org_id: i64,
    snapshot_id: i64,
) -> QueryResult<Vec<Artifact>> {
    scan_artifacts::table
        .inner_join(snapshots::table.on(snapshots::scan_id.eq(scan_artifacts::scan_id)))
        .filter(snapshots::id.eq(snapshot_id))
        .filter(snapshots::org_id.eq(org_id))
        .filter(scan_artifacts::attempt.eq(snapshots::attempt))
        .select((
            scan_artifacts::name,
            scan_artifacts::content_type,
            scan_artifacts::size_bytes,
            scan_artifacts::sha256,
            scan_artifacts::attempt,
            scan_artifacts::keyed_by_attempt,
        ))
        .order(scan_artifacts::name)
        .load(conn)
        .await
}

/// The snapshot of the same target, visit and page (plain scans have neither) just before
/// `snapshot_id`, if any: a compliance scan's reject-all visit is compared with the previous
/// reject-all visit, a crawl's page with the same page of an earlier crawl, a plain scan with
/// the previous plain scan.
pub async fn previous_snapshot(
    conn: &mut AsyncPgConnection,
    target_id: i64,
    visit: Option<&str>,
    page_key: Option<&str>,
    snapshot_id: i64,
) -> QueryResult<Option<i64>> {
    snapshots::table
        .filter(snapshots::target_id.eq(target_id))
        .filter(snapshots::visit.is_not_distinct_from(visit))
        .filter(snapshots::page_key.is_not_distinct_from(page_key))
        .filter(snapshots::id.lt(snapshot_id))
        .select(snapshots::id)
        .order(snapshots::id.desc())
        .first(conn)
        .await
        .optional()
}

/// A target whose latest snapshot matched an inventory query.
#[derive(Debug, Clone, QueryableByName, Serialize, schemars::JsonSchema)]
pub struct InventoryMatch {
    #[diesel(sql_type = BigInt)]
    pub target_id: i64,
    #[diesel(sql_type = Text)]
    pub target_name: String,
    #[diesel(sql_type = Text)]
    pub target_url: String,
    #[diesel(sql_type = BigInt)]
    pub client_id: i64,
    #[diesel(sql_type = BigInt)]
    pub snapshot_id: i64,
    /// What matched: the host, or the cookie's `name@domain`.
    #[diesel(sql_type = Text)]
    pub matched: String,
}

/// Which of the organization's targets load `host` (or a subdomain of it) in their latest
/// snapshot.
pub async fn targets_loading_host(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    host: &str,
) -> QueryResult<Vec<InventoryMatch>> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    diesel::sql_query(
        "WITH latest AS (
             SELECT DISTINCT ON (target_id) id, target_id FROM snapshots
             WHERE org_id = $1 AND visit IS NULL ORDER BY target_id, id DESC)
         SELECT t.id AS target_id, t.name AS target_name, t.url AS target_url, t.client_id,
                l.id AS snapshot_id, h.host AS matched
         FROM latest l
         JOIN snapshot_hosts h ON h.snapshot_id = l.id
         JOIN targets t ON t.id = l.target_id
         WHERE h.org_id = $1 AND (h.host = $2 OR h.host LIKE '%.' || $3)
         ORDER BY t.name, t.id, h.host
         LIMIT 1000",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Text, _>(&host)
    .bind::<Text, _>(escape_like(&host))
    .load(conn)
    .await
}

/// Which of the organization's targets set a cookie named `name` in their latest snapshot.
pub async fn targets_setting_cookie(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    name: &str,
) -> QueryResult<Vec<InventoryMatch>> {
    diesel::sql_query(
        "WITH latest AS (
             SELECT DISTINCT ON (target_id) id, target_id FROM snapshots
             WHERE org_id = $1 AND visit IS NULL ORDER BY target_id, id DESC)
         SELECT t.id AS target_id, t.name AS target_name, t.url AS target_url, t.client_id,
                l.id AS snapshot_id, c.name || '@' || c.domain AS matched
         FROM latest l
         JOIN snapshot_cookies c ON c.snapshot_id = l.id
         JOIN targets t ON t.id = l.target_id
         WHERE c.org_id = $1 AND c.name = $2
         ORDER BY t.name, t.id, c.domain
         LIMIT 1000",
    )
    .bind::<BigInt, _>(ctx.org_id)
    .bind::<Text, _>(name.trim())
    .load(conn)
    .await
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The target a scan is about, scoped to the caller.
pub async fn target_of_scan(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    scan_id: i64,
) -> QueryResult<i64> {
    scans::table
        .filter(scans::id.eq(scan_id))
        .filter(scans::org_id.eq(ctx.org_id))
        .select(scans::target_id)
        .first(conn)
        .await
}

/// Whether the target has a plain scan waiting or running (the scheduler skips it then).
pub async fn has_open_scan(conn: &mut AsyncPgConnection, target_id: i64) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = Bool)]
        open: bool,
    }
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM scans s JOIN jobs j ON j.id = s.job_id
                        WHERE s.target_id = $1 AND s.visit IS NULL
                          AND j.state IN ('queued', 'running')) AS open",
    )
    .bind::<BigInt, _>(target_id)
    .get_result::<Open>(conn)
    .await
    .map(|o| o.open)
}

/// What changed in a snapshot since the target's previous one, once the app has compared them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StoredChanges {
    pub snapshot_id: i64,
    /// False until the app has compared the snapshot (moments after it is stored).
    pub computed: bool,
    /// `None` for a target's first snapshot.
    pub previous_snapshot_id: Option<i64>,
    #[schemars(with = "Vec<serde_json::Value>")]
    pub changes: Vec<crate::diff::Change>,
    pub visual: crate::scans::analysis::Visual,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub computed_at: Option<OffsetDateTime>,
}

/// The stored comparison of a snapshot of the caller's organization; `None` until it is done.
pub async fn stored_changes(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    snapshot_id: i64,
) -> QueryResult<Option<StoredChanges>> {
    use crate::db::schema::snapshot_diffs;
    let row: Option<(
        Option<i64>,
        serde_json::Value,
        serde_json::Value,
        OffsetDateTime,
    )> = snapshot_diffs::table
        .filter(snapshot_diffs::snapshot_id.eq(snapshot_id))
        .filter(snapshot_diffs::org_id.eq(ctx.org_id))
        .select((
            snapshot_diffs::previous_snapshot_id,
            snapshot_diffs::changes,
            snapshot_diffs::visual,
            snapshot_diffs::computed_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(
        row.map(|(previous, changes, visual, computed_at)| StoredChanges {
            snapshot_id,
            computed: true,
            previous_snapshot_id: previous,
            changes: serde_json::from_value(changes).unwrap_or_default(),
            visual: serde_json::from_value(visual).unwrap_or(crate::scans::analysis::Visual {
                viewport: None,
                full_page: None,
            }),
            computed_at: Some(computed_at),
        }),
    )
}

/// The ids of a target's latest plain snapshots (compliance visits left out), newest first.
pub async fn recent_snapshots(
    conn: &mut AsyncPgConnection,
    ctx: &OrgCtx,
    target_id: i64,
    limit: i64,
) -> QueryResult<Vec<(i64, OffsetDateTime)>> {
    snapshots::table
        .filter(snapshots::org_id.eq(ctx.org_id))
        .filter(snapshots::target_id.eq(target_id))
        .filter(snapshots::visit.is_null())
        .select((snapshots::id, snapshots::captured_at))
        .order(snapshots::id.desc())
        .limit(limit)
        .load(conn)
        .await
}
