//! `/settings/branding` and `/api/v1/branding`: the agency's name, accent colour and logo, set by
//! admins; every change is audited.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::logo::{self, LogoType};
use super::queries::{self, Branding};
use crate::audit::{self, Entry};
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role};
use crate::layout::{Nav, html_form, see_other};
use crate::state::AppState;
use crate::web::body::read_json;
use crate::web::csrf::CsrfToken;
use crate::web::form::MultipartForm;
use crate::web::routes::{Route, api, page_get, page_post};
use crate::web::{Access, ApiError, AppError, FieldErrors, PageError};

type Page = Result<HttpResponse, PageError>;
type Api<T> = Result<T, ApiError>;

pub fn routes() -> Vec<Route> {
    let admin = Access::Role(Role::Admin);
    vec![
        page_get("/settings/branding", admin, branding_page),
        page_post("/settings/branding", admin, branding_form)
            .example("name=Agency+{unique}&color=%232454d6"),
        page_get("/settings/branding/logo", admin, logo_page),
        api(Method::GET, "/api/v1/branding", Role::Member, api_branding)
            .summary("The agency's name, accent colour and logo type, as reports show them")
            .response::<Branding>(),
        api(Method::PATCH, "/api/v1/branding", Role::Admin, api_set_branding)
            .summary("Set the name clients read and the accent colour (`#rrggbb`); null or empty resets either")
            .example(r##"{"name": "Agency {unique}", "color": "#2454d6"}"##)
            .request::<BrandingInput>()
            .response::<Branding>(),
        api(Method::PUT, "/api/v1/branding/logo", Role::Admin, api_set_logo)
            .summary("Upload the logo: image/png or image/svg+xml, base64 (at most 192 KiB; SVGs may only draw)")
            .example(r#"{"content_type": "image/svg+xml", "base64": "PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxMCAxMCI+PHJlY3Qgd2lkdGg9IjEwIiBoZWlnaHQ9IjEwIi8+PC9zdmc+"}"#)
            .request::<LogoUpload>()
            .success(204),
        api(Method::DELETE, "/api/v1/branding/logo", Role::Admin, api_remove_logo)
            .summary("Remove the logo")
            .success(204),
    ]
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingInput {
    /// 1–100 characters; empty resets to the organization's name.
    pub name: Option<String>,
    /// `#rrggbb`; empty resets to the default.
    pub color: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoUpload {
    /// `image/png` or `image/svg+xml`.
    pub content_type: String,
    /// The image, base64.
    pub base64: String,
}

/// Checks name and colour; empty values clear them.
fn check(name: &str, color: &str) -> Result<(Option<String>, Option<String>), AppError> {
    let (name, color) = (name.trim(), color.trim().to_ascii_lowercase());
    let mut errors = FieldErrors::default();
    if name.chars().count() > 100 {
        errors.add("name", "must be at most 100 characters");
    }
    let hex = color.len() == 7
        && color.starts_with('#')
        && color[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !color.is_empty() && !hex {
        errors.add("color", "must be a colour like #2454d6");
    }
    errors.into_result()?;
    Ok((
        (!name.is_empty()).then(|| name.to_owned()),
        (!color.is_empty()).then_some(color),
    ))
}

/// Name and colour, each already checked (`None`: reset).
type Looks = (Option<String>, Option<String>);

/// Saves what changed: the name and colour when given, the logo when given (`Some(None)`
/// removes it).
async fn save(
    state: &AppState,
    ctx: &OrgCtx,
    looks: Option<Looks>,
    logo: Option<Option<(Vec<u8>, LogoType)>>,
) -> Result<(), AppError> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    let ctx = ctx.clone();
    conn.transaction::<_, AppError, _>(async |conn| {
        if let Some((name, color)) = &looks {
            queries::set_name_and_color(conn, ctx.org_id, name.as_deref(), color.as_deref())
                .await?;
        }
        if let Some(logo) = &logo {
            queries::set_logo(
                conn,
                ctx.org_id,
                logo.as_ref().map(|(bytes, kind)| (bytes.as_slice(), kind.mime())),
            )
            .await?;
        }
        audit::record(
            conn,
            Entry::by(&ctx, "branding.changed", format!("org {}", ctx.org_id)).detail(json!({
                "looks": looks.as_ref().map(|(name, color)| json!({"name": name, "color": color})),
                "logo": logo.as_ref().map(|l| l.as_ref().map(|(b, k)| json!({"type": k.mime(), "bytes": b.len()}))),
            })),
        )
        .await?;
        Ok(())
    })
    .await
}

fn checked_logo(
    content_type: &str,
    bytes: &[u8],
    field: &str,
) -> Result<(Vec<u8>, LogoType), AppError> {
    let kind = LogoType::parse(content_type)
        .ok_or_else(|| AppError::invalid(field, logo::LogoError::Type.to_string()))?;
    logo::check(kind, bytes).map_err(|e| AppError::invalid(field, e.to_string()))?;
    Ok((bytes.to_vec(), kind))
}

// ---- pages ----

#[derive(askama::Template)]
#[template(path = "branding.html")]
struct BrandingPage {
    nav: Option<Nav>,
    name: String,
    color: String,
    has_logo: bool,
    errors: FieldErrors,
    saved: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SavedQuery {
    saved: Option<String>,
}

async fn branding_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<SavedQuery>,
) -> Page {
    page.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    let branding = queries::branding(&mut conn, page.org_id).await?;
    let view = BrandingPage {
        nav: Some(Nav::new(&page.viewer, &csrf)),
        name: branding.name,
        color: branding.color.unwrap_or_default(),
        has_logo: branding.logo.is_some(),
        errors: FieldErrors::default(),
        saved: query.saved.is_some(),
    };
    html_form(&view, &view.errors)
}

async fn branding_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    form: MultipartForm,
) -> Page {
    let (name, color) = (form.text("name"), form.text("color"));
    let logo = if form.text("remove_logo") == "on" {
        Ok(Some(None))
    } else {
        match form.file("logo") {
            Some((content_type, bytes)) => {
                checked_logo(content_type, bytes, "logo").map(|l| Some(Some(l)))
            }
            None => Ok(None),
        }
    };
    let result = match (check(&name, &color), logo) {
        (Ok(looks), Ok(logo)) => save(&state, &page, Some(looks), logo).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match result {
        Ok(()) => Ok(see_other("/settings/branding?saved=1")),
        Err(AppError::Invalid(errors)) => {
            let mut conn = state.conn().await?;
            let has_logo = queries::branding(&mut conn, page.org_id)
                .await?
                .logo
                .is_some();
            let view = BrandingPage {
                nav: Some(Nav::new(&page.viewer, &csrf)),
                name,
                color,
                has_logo,
                errors,
                saved: false,
            };
            html_form(&view, &view.errors)
        }
        Err(other) => Err(other.into()),
    }
}

/// The logo as stored, for the settings page's preview: served so it cannot run anything.
async fn logo_page(state: web::Data<AppState>, page: PageCtx) -> Page {
    page.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    let branding = queries::branding(&mut conn, page.org_id).await?;
    let (Some(bytes), Some(kind)) = (branding.logo, branding.logo_type) else {
        return Ok(HttpResponse::NoContent().finish());
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        ))
        .body(bytes))
}

// ---- API ----

async fn api_branding(state: web::Data<AppState>, ctx: ApiCtx) -> Api<web::Json<Branding>> {
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::branding(&mut conn, ctx.org_id).await?))
}

async fn api_set_branding(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    body: web::Json<BrandingInput>,
) -> Api<web::Json<Branding>> {
    ctx.require(Role::Admin)?;
    let mut conn = state.conn().await?;
    let current = queries::branding(&mut conn, ctx.org_id).await?;
    drop(conn);
    let name = body.name.clone().unwrap_or(current.name);
    let color = body.color.clone().or(current.color).unwrap_or_default();
    let looks = check(&name, &color)?;
    save(&state, &ctx, Some(looks), None).await?;
    let mut conn = state.conn().await?;
    Ok(web::Json(queries::branding(&mut conn, ctx.org_id).await?))
}

async fn api_set_logo(
    state: web::Data<AppState>,
    ctx: ApiCtx,
    req: HttpRequest,
    payload: web::Payload,
) -> Api<HttpResponse> {
    ctx.require(Role::Admin)?;
    // Base64 takes a third more room than the image.
    let upload: LogoUpload = read_json(
        &req,
        payload,
        logo::MAX_LOGO_BYTES * 4 / 3 + 1024,
        "the logo",
    )
    .await?;
    let bytes = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(upload.base64.trim())
            .map_err(|_| AppError::invalid("base64", "is not base64"))?
    };
    let logo = checked_logo(&upload.content_type, &bytes, "logo")?;
    save(&state, &ctx, None, Some(Some(logo))).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_remove_logo(state: web::Data<AppState>, ctx: ApiCtx) -> Api<HttpResponse> {
    save(&state, &ctx, None, Some(None)).await?;
    Ok(HttpResponse::NoContent().finish())
}
