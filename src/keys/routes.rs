//! Key management pages (admins and owners) and the keys API.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::queries::{self, ApiKey, Scope};
use super::views::KeysPage;
use crate::audit::{self, Entry};
use crate::auth::routes::{Empty, check_name};
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html_form, see_other};
use crate::state::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError, object_id};

type Page = Result<HttpResponse, PageError>;

pub fn routes() -> Vec<Route> {
    vec![
        page_get("/keys", Access::Role(Role::Admin), keys_page),
        page_post("/keys", Access::Role(Role::Admin), create_key)
            .example("name=CI+{unique}&scope=read"),
        page_post(
            "/keys/{key_id}/revoke",
            Access::Role(Role::Admin),
            revoke_key,
        ),
        api(Method::GET, "/api/v1/keys", Role::Admin, api_list)
            .summary("API keys of the organization (never their secrets)")
            .response::<Vec<ApiKey>>(),
        api(
            Method::DELETE,
            "/api/v1/keys/{key_id}",
            Role::Admin,
            api_revoke,
        )
        .summary("Revoke an API key")
        .success(204),
    ]
}

async fn render(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    form: (String, String),
    new_key: Option<String>,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let view = KeysPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        keys: queries::list(&mut conn, page).await?,
        name: form.0,
        scope: form.1,
        new_key,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn keys_page(state: web::Data<AppState>, page: PageCtx, csrf: CsrfToken) -> Page {
    page.require(Role::Admin)?;
    render(
        &state,
        &page,
        &csrf,
        (String::new(), "read".into()),
        None,
        FieldErrors::default(),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyForm {
    name: String,
    scope: String,
}

async fn create_key(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<KeyForm>,
) -> Page {
    page.require(Role::Admin)?;
    let mut errors = FieldErrors::default();
    check_name(&form.name, "name", &mut errors);
    let scope = Scope::parse(&form.scope);
    if scope.is_none() {
        errors.add("scope", "must be read or read_write");
    }
    let (Some(scope), true) = (scope, errors.is_empty()) else {
        return render(&state, &page, &csrf, (form.name, form.scope), None, errors).await;
    };
    let name = form.name.trim().to_string();
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    let key = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let (id, key) = queries::create(conn, &ctx, &name, scope).await?;
            audit::record(
                conn,
                Entry::by(&ctx, "api_key.created", name.clone())
                    .detail(json!({"key": id, "scope": scope.as_str()})),
            )
            .await?;
            Ok::<_, AppError>(key)
        })
        .await?;
    drop(conn);
    render(
        &state,
        &page,
        &csrf,
        (String::new(), "read".into()),
        Some(key),
        FieldErrors::default(),
    )
    .await
}

async fn revoke(state: &AppState, ctx: &OrgCtx, id: &str) -> Result<(), AppError> {
    let id = object_id(id)?;
    let ctx = ctx.clone();
    let mut conn = state.conn().await?;
    // Another org's key is not found; only then does the role matter.
    if !queries::is_live(&mut conn, &ctx, id).await? {
        return Err(AppError::NotFound);
    }
    ctx.require(Role::Admin)?;
    let prefix = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let (name, prefix) = queries::revoke(conn, &ctx, id).await?;
            audit::record(
                conn,
                Entry::by(&ctx, "api_key.revoked", name).detail(json!({"key": id})),
            )
            .await?;
            Ok(prefix)
        })
        .await?;
    // After the commit: a lookup racing the revocation cannot re-cache the key.
    state.keys.evict(&prefix);
    Ok(())
}

async fn revoke_key(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    _form: Form<Empty>,
) -> Page {
    revoke(&state, &page, &path).await?;
    Ok(see_other("/keys"))
}

async fn api_list(
    state: web::Data<AppState>,
    ctx: ApiCtx,
) -> Result<web::Json<Vec<ApiKey>>, ApiError> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::list(&mut conn, &ctx).await?))
}

async fn api_revoke(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, &ctx, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}
