//! `/settings/retention` and `/api/v1/retention`: an organization's retention, read by every
//! member and changed by owners only (API keys are never owners, so the API reads it); every
//! change is audited.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::settings::{self, Retention};
use super::views::RetentionPage;
use crate::audit::{self, Entry};
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html_form, see_other};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError};

type Page = Result<HttpResponse, PageError>;

pub fn routes() -> Vec<Route> {
    vec![
        page_get(
            "/settings/retention",
            Access::Role(Role::Member),
            retention_page,
        ),
        page_post(
            "/settings/retention",
            Access::Role(Role::Owner),
            retention_form,
        )
        .example("snapshots_days=365&screenshots_days=60&checkout_screenshots_days=14&history_days=30"),
        api(Method::GET, "/api/v1/retention", Role::Member, api_retention)
            .summary("How long the organization keeps snapshots, screenshots and history (changed by owners in the dashboard)")
            .response::<Retention>(),
    ]
}

/// Saves new retention, audited with what it was before.
async fn change(state: &AppState, ctx: &OrgCtx, new: Retention) -> Result<(), AppError> {
    ctx.require(Role::Owner)?;
    let mut conn = state.conn().await?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async move |conn| {
        let old = settings::load(conn, ctx.org_id).await?;
        settings::save(conn, ctx.org_id, &new).await?;
        audit::record(
            conn,
            Entry::by(&ctx, "retention.changed", format!("org {}", ctx.org_id))
                .detail(json!({"from": old, "to": new})),
        )
        .await?;
        Ok(())
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RetentionForm {
    snapshots_days: String,
    screenshots_days: String,
    checkout_screenshots_days: String,
    history_days: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SavedQuery {
    saved: Option<String>,
}

async fn render(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    shown: RetentionForm,
    saved: bool,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let (waiting, _) = super::blob_deletions::backlog(&mut conn).await?;
    let view = RetentionPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        snapshots_days: shown.snapshots_days,
        screenshots_days: shown.screenshots_days,
        checkout_screenshots_days: shown.checkout_screenshots_days,
        history_days: shown.history_days,
        can_change: page.role == Role::Owner,
        saved,
        errors,
        deletions_waiting: waiting,
    };
    html_form(&view, &view.errors)
}

async fn retention_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<SavedQuery>,
) -> Page {
    page.require(Role::Member)?;
    let mut conn = state.conn().await?;
    let current = settings::load(&mut conn, page.org_id).await?;
    drop(conn);
    let shown = RetentionForm {
        snapshots_days: current.snapshots_days.to_string(),
        screenshots_days: current.screenshots_days.to_string(),
        checkout_screenshots_days: current.checkout_screenshots_days.to_string(),
        history_days: current.history_days.to_string(),
    };
    render(
        &state,
        &page,
        &csrf,
        shown,
        query.saved.is_some(),
        FieldErrors::default(),
    )
    .await
}

async fn retention_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<RetentionForm>,
) -> Page {
    page.require(Role::Owner)?;
    let parsed = Retention::parse(
        &form.snapshots_days,
        &form.screenshots_days,
        &form.checkout_screenshots_days,
        &form.history_days,
    );
    match parsed {
        Ok(new) => {
            change(&state, &page, new).await?;
            Ok(see_other("/settings/retention?saved=1"))
        }
        Err(AppError::Invalid(errors)) => render(&state, &page, &csrf, form, false, errors).await,
        Err(other) => Err(other.into()),
    }
}

async fn api_retention(
    state: web::Data<AppState>,
    ctx: ApiCtx,
) -> Result<web::Json<Retention>, ApiError> {
    ctx.require(Role::Member)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(settings::load(&mut conn, ctx.org_id).await?))
}
