//! The audit log for owners and admins: a dashboard page and an API list.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::chain::AuditRow;
use super::queries;
use super::views::AuditPage;
use crate::auth::{ApiCtx, PageCtx, Role};
use crate::layout::{Nav, html, when};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::pagination::{Page as ListPage, PageQuery};
use crate::web::routes::{Route, api, page_get};
use crate::web::{Access, ApiError, PageError};

pub fn routes() -> Vec<Route> {
    vec![
        page_get("/audit", Access::Role(Role::Admin), audit_page),
        api(Method::GET, "/api/v1/audit", Role::Admin, api_audit)
            .summary("The organization's audit log, newest first")
            .response::<ListPage<AuditEntry>>()
            .paginated(),
    ]
}

/// One audit entry as shown and served.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// Position in the organization's hash chain.
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON text with details of the change.
    pub detail: String,
    pub ip: String,
    /// SHA-256 chain hash of this entry, hex.
    pub hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> AuditEntry {
        AuditEntry {
            id: row.id,
            seq: row.seq,
            at: when(&row.created_at),
            actor: row.actor,
            action: row.action,
            subject: row.subject,
            detail: row.detail,
            ip: row.ip,
            hash: hex::encode(row.hash),
        }
    }
}

async fn audit_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    page.require(Role::Admin)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list(&mut conn, &page, request).await?;
    let list = ListPage::from_rows(rows, request, |r| r.id);
    html(&AuditPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        entries: list.items.into_iter().map(AuditEntry::from).collect(),
        next_cursor: list.next_cursor,
    })
}

async fn api_audit(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    query: web::Query<PageQuery>,
) -> Result<web::Json<ListPage<AuditEntry>>, ApiError> {
    ctx.require(Role::Admin)?;
    let request = query.parse()?;
    let mut conn = state.conn().await?;
    let rows = queries::list(&mut conn, &ctx, request).await?;
    let list = ListPage::from_rows(rows, request, |r| r.id);
    Ok(web::Json(ListPage {
        items: list.items.into_iter().map(AuditEntry::from).collect(),
        next_cursor: list.next_cursor,
    }))
}
