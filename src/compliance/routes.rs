//! Compliance scans in the dashboard and the API: asking for one, a target's compliance page
//! (the report of its latest or a chosen scan, its visits, and the history of findings over
//! time), and one compliance scan with its report. Reports are read only after the caller's
//! organization and role are checked, and checked against their recorded hash.

use std::collections::BTreeMap;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ComplianceReport;
use super::queries::{self, ComplianceScan, RecordedFinding};
use super::views::CompliancePage;
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html, see_other};
use crate::reports::ReportView;
use crate::scans::ingest::blob_error;
use crate::scans::queries::{Asked, ScanState, Trigger};
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

/// How many compliance scans a target's history shows.
const HISTORY: i64 = 20;

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_post(
            "/targets/{target_id}/compliance-scans",
            admin,
            request_form,
        ),
        page_get("/targets/{target_id}/compliance", member, compliance_page),
        api(
            Method::POST,
            "/api/v1/targets/{target_id}/compliance-scans",
            Role::Admin,
            api_request,
        )
        .summary("Run a compliance scan of a target now: first visit, reject all, accept all (and GPC) visits, each an ordinary scan; the report follows when all are over")
        .response::<ComplianceScanBody>()
        .success(202),
        api(
            Method::GET,
            "/api/v1/targets/{target_id}/compliance",
            Role::Member,
            api_target_compliance,
        )
        .summary("A target's compliance: its latest compliance scan with the report (findings with evidence, the visits side by side) and the history of findings")
        .response::<TargetCompliance>(),
        api(
            Method::GET,
            "/api/v1/compliance-scans/{compliance_scan_id}",
            Role::Member,
            api_compliance_scan,
        )
        .summary("One compliance scan: its visits and, once built, its report")
        .response::<ComplianceScanBody>(),
    ]
}

/// A compliance scan with its visits and report.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ComplianceScanBody {
    #[serde(flatten)]
    pub scan: ComplianceScan,
    pub visits: Vec<VisitBody>,
    /// Present once the state is `done`.
    pub report: Option<ComplianceReport>,
}

/// One visit of a compliance scan.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VisitBody {
    /// `first_visit`, `reject_all`, `accept_all` or `gpc`.
    pub visit: String,
    pub scan_id: i64,
    pub state: ScanState,
    pub snapshot_id: Option<i64>,
    /// The last attempt's error.
    pub error: Option<String>,
}

impl VisitBody {
    /// The visit in words.
    pub fn label(&self) -> &'static str {
        super::Visit::parse(&self.visit).map_or("unknown", super::Visit::label)
    }
}

/// A target's compliance over time.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TargetCompliance {
    pub target_id: i64,
    pub compliance_schedule: Option<String>,
    pub next_compliance_run_at: Option<String>,
    /// The newest compliance scan, finished or not.
    pub latest: Option<ComplianceScanBody>,
    /// The newest compliance scans (up to 20), newest first, each with its findings and what
    /// changed since the finished scan before it.
    pub history: Vec<HistoryEntry>,
}

/// One compliance scan in a target's history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    pub scan: ComplianceScan,
    pub findings: Vec<RecordedFinding>,
    /// Findings the previous finished scan did not have.
    pub appeared: Vec<RecordedFinding>,
    /// Findings of the previous finished scan that this one no longer has.
    pub gone: Vec<RecordedFinding>,
}

// ---- actions shared by pages and the API ----

/// Queues a compliance scan of a target of the caller's organization.
async fn request(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
    trigger: Trigger,
) -> Result<i64, AppError> {
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, ctx, target_id).await?;
    ctx.require(Role::Admin)?;
    let asked = Asked {
        org_id: ctx.org_id,
        trigger,
        requested_by: ctx.actor.user_id(),
        max_attempts: state.config.runners.scan_attempts,
    };
    let ctx = ctx.clone();
    let id = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let id = queries::request(conn, &target, &asked, target.compliance_gpc).await?;
            audit::record(
                conn,
                Entry::by(
                    &ctx,
                    "compliance_scan.requested",
                    format!("target {}", target.id),
                )
                .detail(
                    json!({"compliance_scan": id, "url": target.url, "gpc": target.compliance_gpc}),
                ),
            )
            .await?;
            Ok(id)
        })
        .await?;
    state.jobs_ready.notify_waiters();
    Ok(id)
}

/// A compliance scan with its visits and (once built) report; the caller's organization only.
async fn scan_body(
    state: &AppState,
    ctx: &OrgCtx,
    scan: ComplianceScan,
) -> Result<ComplianceScanBody, AppError> {
    let mut conn = state.conn().await?;
    let visits = queries::visit_scans(&mut conn, ctx.org_id, scan.id)
        .await?
        .into_iter()
        .map(|v| VisitBody {
            state: v.state(),
            visit: v.visit,
            scan_id: v.scan_id,
            snapshot_id: v.snapshot_id,
            error: v.error,
        })
        .collect();
    drop(conn);
    let report = read_report(state, ctx, &scan).await?;
    Ok(ComplianceScanBody {
        scan,
        visits,
        report,
    })
}

/// The sealed report of a compliance scan of the caller's organization, checked against its
/// recorded hash; `None` until it is built.
async fn read_report(
    state: &AppState,
    ctx: &OrgCtx,
    scan: &ComplianceScan,
) -> Result<Option<ComplianceReport>, AppError> {
    let Some(recorded) = &scan.report_sha256 else {
        return Ok(None);
    };
    if scan.org_id != ctx.org_id {
        return Err(AppError::NotFound);
    }
    let key = ObjectKey::compliance_report(ctx.org_id, scan.id);
    let mut conn = state.conn().await?;
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != *recorded {
        tracing::error!(%key, "compliance report does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    Ok(Some(
        serde_json::from_slice(&bytes).map_err(AppError::internal)?,
    ))
}

/// A target's newest compliance scans with their findings and what each changed.
async fn history(
    state: &AppState,
    ctx: &OrgCtx,
    target_id: i64,
) -> Result<Vec<HistoryEntry>, AppError> {
    let mut conn = state.conn().await?;
    let scans = queries::list(&mut conn, ctx, target_id, HISTORY).await?;
    let ids: Vec<i64> = scans.iter().map(|s| s.id).collect();
    let mut by_scan: BTreeMap<i64, Vec<RecordedFinding>> = BTreeMap::new();
    for finding in queries::findings_of(&mut conn, ctx, &ids).await? {
        by_scan
            .entry(finding.compliance_scan_id)
            .or_default()
            .push(finding);
    }
    Ok(changes_over_time(scans, by_scan))
}

/// Each scan with its findings, and (for finished scans) the findings that appeared and went
/// away since the finished scan before it. `scans` come newest first.
fn changes_over_time(
    scans: Vec<ComplianceScan>,
    mut findings: BTreeMap<i64, Vec<RecordedFinding>>,
) -> Vec<HistoryEntry> {
    let mut entries: Vec<HistoryEntry> = Vec::with_capacity(scans.len());
    let mut previous: Option<Vec<RecordedFinding>> = None;
    for scan in scans.into_iter().rev() {
        let own = findings.remove(&scan.id).unwrap_or_default();
        let (appeared, gone) = match (&previous, scan.state.as_str()) {
            (Some(before), "done") => (
                own.iter()
                    .filter(|f| !before.iter().any(|b| b.fingerprint == f.fingerprint))
                    .cloned()
                    .collect(),
                before
                    .iter()
                    .filter(|b| !own.iter().any(|f| f.fingerprint == b.fingerprint))
                    .cloned()
                    .collect(),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        if scan.state == "done" {
            previous = Some(own.clone());
        }
        entries.push(HistoryEntry {
            scan,
            findings: own,
            appeared,
            gone,
        });
    }
    entries.reverse();
    entries
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShownQuery {
    /// A compliance scan of the target; the newest when absent.
    scan: Option<String>,
}

// ---- pages ----

async fn request_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let target_id = object_id(&path)?;
    let id = request(&state, &page, target_id, Trigger::Dashboard).await?;
    Ok(see_other(&format!(
        "/targets/{target_id}/compliance?scan={id}"
    )))
}

async fn compliance_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    query: web::Query<ShownQuery>,
) -> Page {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &page, target_id).await?;
    let shown = match query.scan.as_deref() {
        Some(text) => {
            let scan = queries::scan(&mut conn, &page, object_id(text)?).await?;
            if scan.target_id != target_id {
                return Err(AppError::NotFound.into());
            }
            Some(scan)
        }
        None => queries::list(&mut conn, &page, target_id, 1)
            .await?
            .into_iter()
            .next(),
    };
    drop(conn);
    let history = history(&state, &page, target_id).await?;
    let (shown, visits, rv) = match shown {
        Some(scan) => {
            let body = scan_body(&state, &page, scan).await?;
            let rv = body.report.as_ref().map(ReportView::new);
            (Some(body.scan), body.visits, rv)
        }
        None => (None, Vec::new(), None),
    };
    html(&CompliancePage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        refresh: shown.as_ref().is_some_and(|s| !s.is_finished()),
        target,
        shown,
        visits,
        rv,
        history,
    })
}

// ---- API ----

async fn api_request(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let id = request(&state, &ctx, object_id(&path)?, Trigger::Api).await?;
    let mut conn = state.conn().await?;
    let scan = queries::scan(&mut conn, &ctx, id).await?;
    drop(conn);
    let body = scan_body(&state, &ctx, scan).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/api/v1/compliance-scans/{id}")))
        .json(body))
}

async fn api_target_compliance(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<TargetCompliance>> {
    let target_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let target = sites::target(&mut conn, &ctx, target_id).await?;
    let newest = queries::list(&mut conn, &ctx, target_id, 1)
        .await?
        .into_iter()
        .next();
    drop(conn);
    let latest = match newest {
        Some(scan) => Some(scan_body(&state, &ctx, scan).await?),
        None => None,
    };
    Ok(web::Json(TargetCompliance {
        target_id,
        next_compliance_run_at: target.next_compliance_run(),
        compliance_schedule: target.compliance_schedule,
        latest,
        history: history(&state, &ctx, target_id).await?,
    }))
}

async fn api_compliance_scan(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<ComplianceScanBody>> {
    let mut conn = state.conn().await?;
    let scan = queries::scan(&mut conn, &ctx, object_id(&path)?).await?;
    drop(conn);
    Ok(web::Json(scan_body(&state, &ctx, scan).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn scan(id: i64, state: &str) -> ComplianceScan {
        ComplianceScan {
            id,
            target_id: 1,
            state: state.into(),
            trigger: "api".into(),
            gpc: true,
            error: None,
            finding_count: None,
            worst_severity: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            finished_at: None,
            report_sha256: None,
            org_id: 1,
        }
    }

    fn finding(scan: i64, fingerprint: &str) -> RecordedFinding {
        RecordedFinding {
            compliance_scan_id: scan,
            fingerprint: fingerprint.into(),
            rule: "tracking_after_reject".into(),
            severity: "critical".into(),
            visit: "reject_all".into(),
            title: fingerprint.into(),
        }
    }

    #[test]
    fn history_says_what_appeared_and_went_since_the_previous_finished_scan() {
        let findings = BTreeMap::from([
            (1, vec![finding(1, "a"), finding(1, "b")]),
            (3, vec![finding(3, "b"), finding(3, "c")]),
        ]);
        // Newest first: 4 is running, 3 done, 2 failed (skipped as a baseline), 1 done.
        let scans = vec![
            scan(4, "running"),
            scan(3, "done"),
            scan(2, "failed"),
            scan(1, "done"),
        ];
        let history = changes_over_time(scans, findings);
        let ids: Vec<i64> = history.iter().map(|h| h.scan.id).collect();
        assert_eq!(ids, [4, 3, 2, 1]);
        let fingerprints = |list: &[RecordedFinding]| {
            list.iter()
                .map(|f| f.fingerprint.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(fingerprints(&history[1].appeared), ["c"]);
        assert_eq!(fingerprints(&history[1].gone), ["a"]);
        assert!(history[0].appeared.is_empty() && history[0].gone.is_empty());
        assert!(
            history[3].appeared.is_empty(),
            "the first scan has no baseline"
        );
    }
}
