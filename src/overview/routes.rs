//! `/overview` and `GET /api/v1/overview`: one query's answer for people and for programs.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};

use super::queries::{self, ClientOverview};
use super::views::OverviewPage;
use crate::auth::{ApiCtx, PageCtx, Role};
use crate::layout::{Nav, html};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::routes::{Route, api, page_get};
use crate::web::{Access, ApiError, PageError};

pub fn routes() -> Vec<Route> {
    vec![
        page_get("/overview", Access::Role(Role::Member), overview_page),
        api(Method::GET, "/api/v1/overview", Role::Member, api_overview)
            .summary("Every client with its targets' state (open alerts by severity, last scan and checkout run, failing and overdue targets) and a 30-day trend, those needing attention first")
            .response::<Vec<ClientOverview>>(),
    ]
}

async fn overview_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
) -> Result<HttpResponse, PageError> {
    let mut conn = state.conn().await?;
    let clients = queries::overview(&mut conn, &page).await?;
    html(&OverviewPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        clients,
    })
}

async fn api_overview(
    state: web::Data<AppState>,
    ctx: ApiCtx,
) -> Result<web::Json<Vec<ClientOverview>>, ApiError> {
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::overview(&mut conn, &ctx).await?))
}
