//! Client reports in the dashboard and the API: making one (rendered once, stored sealed),
//! listing a client's reports with their share links, reading the stored document, sharing it
//! by link and revoking the link — and `/r/{token}`, where a signed-out reader sees exactly that
//! one frozen report, nothing else.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::make::{self, TOKEN_PREFIX_LEN};
use super::queries::{self, Report, Share};
use super::views::{ReportsPage, ShareCreatedPage};
use crate::audit::{self, Entry};
use crate::auth::routes::Empty;
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::db::schema::targets;
use crate::layout::{Nav, html, see_other};
use crate::scans::ingest::blob_error;
use crate::sites::queries as sites;
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::client_ip::client_ip;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::rate_limit::rules;
use crate::web::routes::{Route, api, page_get, page_post, public};
use crate::web::{Access, ApiError, AppError, PageError, object_id};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

/// A report's default period and the longest one.
const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 366;
/// How long a share link works unless told otherwise, and at most.
const DEFAULT_SHARE_DAYS: u32 = 30;
const MAX_SHARE_DAYS: u32 = 365;

/// What the stored document may do when shown: nothing but show itself.
const DOCUMENT_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
                            base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Vec<Route> {
    let member = Access::Role(Role::Member);
    let admin = Access::Role(Role::Admin);
    vec![
        page_get("/clients/{client_id}/reports", member, reports_page),
        page_post("/clients/{client_id}/reports", admin, make_report_form).example("days=30"),
        page_get("/reports/{report_id}", member, document_page),
        page_get("/reports/{report_id}/pdf", member, pdf_page),
        page_post("/reports/{report_id}/shares", admin, share_form).example("days=30"),
        page_post("/report-shares/{share_id}/revoke", admin, revoke_form),
        public(Method::GET, "/r/{token}", shared_page),
        api(
            Method::POST,
            "/api/v1/clients/{client_id}/reports",
            Role::Admin,
            api_make_report,
        )
        .summary("Make a report of a client (or one of its targets) over a period: rendered once and stored; later scans never change it")
        .example(r#"{"days": 30}"#)
        .request::<ReportRequest>()
        .response::<ReportBody>()
        .success(201),
        api(
            Method::GET,
            "/api/v1/clients/{client_id}/reports",
            Role::Member,
            api_reports,
        )
        .summary("A client's reports, newest first, with their share links")
        .response::<Vec<ReportBody>>(),
        api(
            Method::GET,
            "/api/v1/reports/{report_id}",
            Role::Member,
            api_report,
        )
        .summary("A report and its share links")
        .response::<ReportBody>(),
        api(
            Method::GET,
            "/api/v1/reports/{report_id}/document",
            Role::Member,
            api_document,
        )
        .summary("The report as it was made: a self-contained HTML document"),
        api(
            Method::GET,
            "/api/v1/reports/{report_id}/pdf",
            Role::Member,
            api_pdf,
        )
        .summary("The report as a PDF (A4, the agency's name on every page, page numbers); 409 while a runner is still printing it"),
        api(
            Method::POST,
            "/api/v1/reports/{report_id}/shares",
            Role::Admin,
            api_share,
        )
        .summary("Share a report by link: read-only, no sign-in, until it expires or is revoked; the link is shown once")
        .example(r#"{"days": 30}"#)
        .request::<ShareRequest>()
        .response::<ShareCreated>()
        .success(201),
        api(
            Method::POST,
            "/api/v1/report-shares/{share_id}/revoke",
            Role::Admin,
            api_revoke,
        )
        .summary("Revoke a share link at once")
        .success(204),
    ]
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The period: the last N days up to now, 1–366 (default 30).
    pub days: Option<u32>,
    /// One of the client's targets; absent: every target of the client.
    pub target_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Days until the link stops working, 1–365 (default 30).
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ReportBody {
    #[serde(flatten)]
    pub report: Report,
    pub shares: Vec<Share>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ShareCreated {
    pub share: Share,
    /// The link; only its hash is kept, so it is shown this once.
    pub url: String,
}

// ---- actions shared by pages and the API ----

fn days(value: Option<u32>, default: u32, max: u32, field: &str) -> Result<u32, AppError> {
    match value.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(AppError::invalid(field, format!("must be 1–{max} days"))),
    }
}

/// Makes a report of a client of the caller's organization, and audits it.
async fn make_report(
    state: &AppState,
    ctx: &OrgCtx,
    client_id: i64,
    request: &ReportRequest,
) -> Result<Report, AppError> {
    let mut conn = state.conn().await?;
    let client = sites::client(&mut conn, ctx, client_id).await?;
    ctx.require(Role::Admin)?;
    let days = days(request.days, DEFAULT_DAYS, MAX_DAYS, "days")?;
    if let Some(target_id) = request.target_id {
        let belongs: bool = diesel::select(diesel::dsl::exists(
            targets::table
                .filter(targets::id.eq(target_id))
                .filter(targets::org_id.eq(ctx.org_id))
                .filter(targets::client_id.eq(client_id)),
        ))
        .get_result(&mut conn)
        .await?;
        if !belongs {
            return Err(AppError::invalid(
                "target_id",
                "is not a target of this client",
            ));
        }
    }
    drop(conn);
    let (report, _) = make::report(
        state,
        &client,
        ctx.org_id,
        request.target_id,
        days,
        ctx.actor.user_id(),
    )
    .await?;
    let mut conn = state.conn().await?;
    audit::record(
        &mut conn,
        Entry::by(ctx, "report.made", format!("report {}", report.id))
            .detail(json!({"client": client_id, "target": request.target_id, "days": days})),
    )
    .await?;
    Ok(report)
}

/// The stored document of a report, checked against its recorded hash.
pub(crate) async fn read_document(state: &AppState, report: &Report) -> Result<Vec<u8>, AppError> {
    let key = ObjectKey::client_report(report.org_id, report.id);
    let mut conn = state.conn().await?;
    let bytes = state.blobs.get(&mut conn, &key).await.map_err(blob_error)?;
    if hex::encode(crate::crypto::sha256(&bytes)) != report.sha256 {
        tracing::error!(%key, "report does not match its recorded hash");
        return Err(AppError::Integrity);
    }
    Ok(bytes.to_vec())
}

/// The document as a response that can do nothing but show itself.
fn document_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, DOCUMENT_CSP))
        .insert_header(("x-robots-tag", "noindex, nofollow"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn share(
    state: &AppState,
    ctx: &OrgCtx,
    report_id: i64,
    request: &ShareRequest,
) -> Result<ShareCreated, AppError> {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, ctx, report_id).await?;
    ctx.require(Role::Admin)?;
    let days = days(request.days, DEFAULT_SHARE_DAYS, MAX_SHARE_DAYS, "days")?;
    let ctx = ctx.clone();
    let (share, url) = conn
        .transaction::<_, AppError, _>(async |conn| {
            let (share, url) = make::share(state, conn, &report, days, ctx.actor.user_id()).await?;
            audit::record(
                conn,
                Entry::by(&ctx, "report.shared", format!("report {report_id}"))
                    .detail(json!({"share": share.id, "prefix": share.token_prefix, "days": days})),
            )
            .await?;
            Ok((share, url))
        })
        .await?;
    Ok(ShareCreated { share, url })
}

/// Withdraws a live share link of the caller's organization; returns its report.
async fn revoke(state: &AppState, ctx: &OrgCtx, share_id: i64) -> Result<Report, AppError> {
    let mut conn = state.conn().await?;
    let share = queries::share(&mut conn, ctx, share_id).await?;
    let report = queries::report(&mut conn, ctx, share.report_id).await?;
    ctx.require(Role::Admin)?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async |conn| {
        if !queries::revoke_share(conn, &ctx, share_id).await? {
            return Err(AppError::Conflict("the link was already withdrawn".into()));
        }
        audit::record(
            conn,
            Entry::by(
                &ctx,
                "report.share_revoked",
                format!("report {}", share.report_id),
            )
            .detail(json!({"share": share_id})),
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(report)
}

async fn report_bodies(
    state: &AppState,
    ctx: &OrgCtx,
    reports: Vec<Report>,
) -> Result<Vec<ReportBody>, AppError> {
    let mut conn = state.conn().await?;
    let ids: Vec<i64> = reports.iter().map(|r| r.id).collect();
    let mut shares = queries::shares(&mut conn, ctx, &ids).await?;
    Ok(reports
        .into_iter()
        .map(|report| ReportBody {
            shares: {
                let (own, rest): (Vec<Share>, Vec<Share>) =
                    shares.drain(..).partition(|s| s.report_id == report.id);
                shares = rest;
                own
            },
            report,
        })
        .collect())
}

/// The first three parts of an IPv4 address or of an IPv6 address: enough to tell readers
/// apart, not enough to name one.
pub fn ip_prefix(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => "unknown".to_owned(),
    }
}

// ---- pages ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReportForm {
    days: String,
    target_id: String,
    #[serde(rename = "_csrf")]
    _csrf: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShareForm {
    days: String,
    #[serde(rename = "_csrf")]
    _csrf: String,
}

fn number<T: std::str::FromStr>(text: &str, field: &str) -> Result<Option<T>, AppError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| AppError::invalid(field, "must be a whole number"))
}

async fn reports_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
) -> Page {
    let client_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    let client = sites::client(&mut conn, &page, client_id).await?;
    let targets: Vec<(i64, String)> = targets::table
        .filter(targets::org_id.eq(page.org_id))
        .filter(targets::client_id.eq(client_id))
        .select((targets::id, targets::name))
        .order(targets::name)
        .load(&mut conn)
        .await?;
    let reports = queries::list(&mut conn, &page, client_id, 100).await?;
    drop(conn);
    let reports = report_bodies(&state, &page, reports).await?;
    html(&ReportsPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        client,
        targets,
        reports,
        now: OffsetDateTime::now_utc(),
    })
}

async fn make_report_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    form: Form<ReportForm>,
) -> Page {
    let client_id = object_id(&path)?;
    let request = ReportRequest {
        days: number(&form.0.days, "days")?,
        target_id: number(&form.0.target_id, "target_id")?,
    };
    let report = make_report(&state, &page, client_id, &request).await?;
    Ok(see_other(&format!(
        "/clients/{client_id}/reports#report-{}",
        report.id
    )))
}

async fn document_page(state: web::Data<AppState>, page: PageCtx, path: web::Path<String>) -> Page {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &page, object_id(&path)?).await?;
    drop(conn);
    let body = read_document(&state, &report).await?;
    Ok(document_response(StatusCode::OK, body))
}

/// The PDF as a download, once a runner has printed it.
async fn pdf_response(state: &AppState, report: &Report) -> Result<HttpResponse, AppError> {
    let bytes = super::pdf::read(state, report).await?.ok_or_else(|| {
        AppError::Conflict("the PDF is still being made; try again in a moment".into())
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/pdf"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"report-{}.pdf\"", report.id),
        ))
        .body(bytes))
}

async fn pdf_page(state: web::Data<AppState>, page: PageCtx, path: web::Path<String>) -> Page {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &page, object_id(&path)?).await?;
    drop(conn);
    Ok(pdf_response(&state, &report).await?)
}

async fn share_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    path: web::Path<String>,
    form: Form<ShareForm>,
) -> Page {
    let report_id = object_id(&path)?;
    let request = ShareRequest {
        days: number(&form.0.days, "days")?,
    };
    let created = share(&state, &page, report_id, &request).await?;
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &page, report_id).await?;
    html(&ShareCreatedPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        report,
        created,
    })
}

async fn revoke_form(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    let report = revoke(&state, &page, object_id(&path)?).await?;
    Ok(see_other(&format!(
        "/clients/{}/reports#report-{}",
        report.client_id, report.id
    )))
}

/// A plain page for a link that no longer works.
fn gone(message: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"robots\" content=\"noindex\"><title>Link no longer available</title></head><body><h1>This link no longer works</h1><p>{message} Ask whoever sent it for a new one.</p></body></html>"
    );
    document_response(StatusCode::GONE, body.into_bytes())
}

/// `/r/{token}`: the one report a share link shows, to anyone who has the link.
async fn shared_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Page {
    let ip = client_ip(&req, state.config.trust_forwarded_for);
    state.limiter.check(rules::SHARE_VIEW_IP, &ip).await?;
    let token = path.into_inner();
    if token.len() != 43 || !token.is_ascii() {
        return Err(AppError::NotFound.into());
    }
    let mut conn = state.conn().await?;
    let Some((share, hash, report)) =
        queries::share_by_prefix(&mut conn, &token[..TOKEN_PREFIX_LEN]).await?
    else {
        return Err(AppError::NotFound.into());
    };
    if !crate::crypto::constant_time_eq(&crate::crypto::token_hash(&token), &hash) {
        return Err(AppError::NotFound.into());
    }
    if share.revoked_at.is_some() {
        return Ok(gone("It was withdrawn."));
    }
    if !share.is_live(OffsetDateTime::now_utc()) {
        return Ok(gone("It has expired."));
    }
    let body = read_document(&state, &report).await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        queries::count_view(conn, share.id).await?;
        audit::record(
            conn,
            Entry {
                org_id: Some(report.org_id),
                actor_user_id: None,
                actor_key_id: None,
                actor: format!("share link {}", share.token_prefix),
                action: "report.viewed",
                subject: format!("report {}", report.id),
                detail: json!({"share": share.id}),
                ip: ip_prefix(&ip),
            },
        )
        .await?;
        Ok(())
    })
    .await?;
    Ok(document_response(StatusCode::OK, body))
}

// ---- API ----

async fn api_make_report(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<ReportRequest>,
) -> Api<HttpResponse> {
    let report = make_report(&state, &ctx, object_id(&path)?, &body).await?;
    Ok(HttpResponse::Created().json(ReportBody {
        report,
        shares: Vec::new(),
    }))
}

async fn api_reports(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<Vec<ReportBody>>> {
    let client_id = object_id(&path)?;
    let mut conn = state.conn().await?;
    sites::client(&mut conn, &ctx, client_id).await?;
    let reports = queries::list(&mut conn, &ctx, client_id, 100).await?;
    drop(conn);
    Ok(web::Json(report_bodies(&state, &ctx, reports).await?))
}

async fn api_report(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<web::Json<ReportBody>> {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &ctx, object_id(&path)?).await?;
    drop(conn);
    let mut bodies = report_bodies(&state, &ctx, vec![report]).await?;
    Ok(web::Json(bodies.remove(0)))
}

async fn api_document(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &ctx, object_id(&path)?).await?;
    drop(conn);
    let body = read_document(&state, &report).await?;
    Ok(document_response(StatusCode::OK, body))
}

async fn api_pdf(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    let mut conn = state.conn().await?;
    let report = queries::report(&mut conn, &ctx, object_id(&path)?).await?;
    drop(conn);
    Ok(pdf_response(&state, &report).await?)
}

async fn api_share(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
    body: web::Json<ShareRequest>,
) -> Api<HttpResponse> {
    let created = share(&state, &ctx, object_id(&path)?, &body).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn api_revoke(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Api<HttpResponse> {
    revoke(&state, &ctx, object_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::ip_prefix;

    #[test]
    fn a_reader_is_recorded_by_network_not_address() {
        assert_eq!(ip_prefix("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(
            ip_prefix("2001:db8:85a3:8d3:1319:8a2e:370:7348"),
            "2001:db8:85a3::/48"
        );
        assert_eq!(ip_prefix("not an address"), "unknown");
    }
}
