//! `/settings/retention` and `/api/v1/retention`: an organization's retention, read by every
//! member and changed by owners only (API keys are never owners, so the API reads it).
//! `/settings/erase`: an owner schedules the organization's erasure (typed name, second factor
//! if enabled) or undoes it. `/settings/account/delete`: a person erases their own account
//! (typed email, password, second factor if enabled). Every change is audited.

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use diesel_async::AsyncConnection;
use serde::Deserialize;
use serde_json::json;

use super::erasure;
use super::person::{self, PersonErasureError};
use super::settings::{self, Retention};
use super::views::{DeleteAccountPage, EraseOrgPage, RetentionPage};
use crate::audit::{self, Entry};
use crate::auth::{ApiCtx, OrgCtx, PageCtx, Role, Viewer};
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
        page_get("/settings/erase", Access::Role(Role::Owner), erase_page),
        page_post("/settings/erase", Access::Role(Role::Owner), erase_form)
            .example("name=not+the+name"),
        page_post(
            "/settings/erase/cancel",
            Access::Role(Role::Owner),
            cancel_erasure,
        ),
        page_get(
            "/settings/account/delete",
            Access::SignedIn,
            delete_account_page,
        ),
        page_post(
            "/settings/account/delete",
            Access::SignedIn,
            delete_account,
        )
        .example("email=not-my-address%40example.com&password=wrong-password"),
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
    let (waiting, _) = super::blob_deletions::backlog(&mut conn, page.org_id).await?;
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

// ---- erasure ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EraseForm {
    name: String,
    code: String,
}

async fn render_erase(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    typed_name: String,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let org_name = crate::orgs::queries::org_name(&mut conn, page).await?;
    let scheduled = erasure::scheduled(&mut conn, page.org_id).await?;
    let needs_code = crate::auth::queries::user_by_id(&mut conn, page.viewer.user_id)
        .await?
        .two_factor_enabled();
    let view = EraseOrgPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        org_name,
        erase_after: scheduled.and_then(|s| {
            s.erase_after
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        needs_code,
        typed_name,
        errors,
        grace_days: erasure::GRACE.whole_days(),
    };
    html_form(&view, &view.errors)
}

async fn erase_page(state: web::Data<AppState>, page: PageCtx, csrf: CsrfToken) -> Page {
    page.require(Role::Owner)?;
    render_erase(&state, &page, &csrf, String::new(), FieldErrors::default()).await
}

async fn erase_form(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<EraseForm>,
) -> Page {
    page.require(Role::Owner)?;
    let mut conn = state.conn().await?;
    let org_name = crate::orgs::queries::org_name(&mut conn, &page).await?;
    let mut errors = FieldErrors::default();
    if form.name.trim() != org_name {
        errors.add("name", "type the organization's name exactly as shown");
    }
    let user = crate::auth::queries::user_by_id(&mut conn, page.viewer.user_id).await?;
    if errors.is_empty() && user.two_factor_enabled() {
        let method = crate::auth::routes::check_second_factor(
            &state,
            &mut conn,
            page.viewer.user_id,
            &form.code,
        )
        .await?;
        if method.is_none() {
            errors.add("code", "this code is not right");
        }
    }
    if !errors.is_empty() {
        drop(conn);
        return render_erase(&state, &page, &csrf, form.name, errors).await;
    }
    let ctx = page.ctx.clone();
    let scheduled = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let scheduled = erasure::schedule(conn, ctx.org_id, erasure::GRACE).await?;
            audit::record(
                conn,
                Entry::by(&ctx, "org.erasure_requested", format!("org {}", ctx.org_id))
                    .detail(json!({"erase_after": scheduled.erase_after.unix_timestamp()})),
            )
            .await?;
            Ok(scheduled)
        })
        .await?;
    let when = scheduled
        .erase_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    tell_owners(
        &state,
        &page,
        &mut conn,
        "An organization of yours is going to be erased",
        format!(
            "{} asked to erase the organization “{org_name}” on siteward. At {when} (UTC) everything it holds will be deleted for good.\n\nAny owner can undo this until then:\n\n{}\n",
            page.viewer.name,
            erase_link(&state)
        ),
    )
    .await?;
    Ok(see_other("/settings/erase"))
}

fn erase_link(state: &AppState) -> String {
    let mut link = state.config.public_url.clone();
    link.set_path("/settings/erase");
    link.to_string()
}

/// Mails every owner of the organization (the one acting included): an erasure asked for by one
/// owner must not surprise the others.
async fn tell_owners(
    state: &AppState,
    page: &PageCtx,
    conn: &mut diesel_async::AsyncPgConnection,
    subject: &'static str,
    body: String,
) -> Result<(), AppError> {
    for member in crate::orgs::queries::members(conn, page).await? {
        if member.role == Role::Owner {
            state.mailer.send_later(member.email, subject, body.clone());
        }
    }
    Ok(())
}

async fn cancel_erasure(
    state: web::Data<AppState>,
    page: PageCtx,
    _form: Form<crate::auth::routes::Empty>,
) -> Page {
    page.require(Role::Owner)?;
    let ctx = page.ctx.clone();
    let mut conn = state.conn().await?;
    let cancelled = conn
        .transaction::<_, AppError, _>(async move |conn| {
            let cancelled = erasure::cancel(conn, ctx.org_id).await?;
            if cancelled {
                audit::record(
                    conn,
                    Entry::by(&ctx, "org.erasure_cancelled", format!("org {}", ctx.org_id)),
                )
                .await?;
            }
            Ok(cancelled)
        })
        .await?;
    if cancelled {
        let org_name = crate::orgs::queries::org_name(&mut conn, &page).await?;
        tell_owners(
            &state,
            &page,
            &mut conn,
            "An organization of yours will not be erased",
            format!(
                "{} undid the erasure of the organization “{org_name}” on siteward. It stays as it is.\n",
                page.viewer.name
            ),
        )
        .await?;
    }
    Ok(see_other("/settings/erase"))
}

#[derive(Deserialize)]
struct DeleteAccountForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn render_delete_account(
    state: &AppState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    typed_email: String,
    errors: FieldErrors,
) -> Page {
    let mut conn = state.conn().await?;
    let owned = person::owned_orgs(&mut conn, viewer.user_id).await?;
    let needs_code = crate::auth::queries::user_by_id(&mut conn, viewer.user_id)
        .await?
        .two_factor_enabled();
    let view = DeleteAccountPage {
        nav: Some(Nav::new(viewer, csrf)),
        owned,
        org_count: viewer.orgs.len(),
        needs_code,
        typed_email,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn delete_account_page(state: web::Data<AppState>, viewer: Viewer, csrf: CsrfToken) -> Page {
    render_delete_account(
        &state,
        &viewer,
        &csrf,
        String::new(),
        FieldErrors::default(),
    )
    .await
}

/// Erases the signed-in person once they typed their email and gave their password (and their
/// second factor, if enabled); mails them that it happened and ends the session.
async fn delete_account(
    state: web::Data<AppState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Form(form): Form<DeleteAccountForm>,
) -> Page {
    state
        .limiter
        .check(
            crate::web::rate_limit::rules::SIGN_IN_ACCOUNT,
            &viewer.email,
        )
        .await?;
    let mut conn = state.conn().await?;
    let user = crate::auth::queries::user_by_id(&mut conn, viewer.user_id).await?;
    let mut errors = FieldErrors::default();
    // An owner is told first, before a second-factor code (perhaps a recovery code) is used up.
    let owned = person::owned_orgs(&mut conn, viewer.user_id).await?;
    if !owned.is_empty() {
        errors.add(
            "email",
            format!(
                "you still own {}: pass ownership on first",
                owned.join(", ")
            ),
        );
        drop(conn);
        return render_delete_account(&state, &viewer, &csrf, form.email, errors).await;
    }
    if !form.email.trim().eq_ignore_ascii_case(&user.email) {
        errors.add(
            "email",
            "type your email address exactly as you sign in with it",
        );
    }
    if !crate::auth::password::verify(form.password, user.password_hash.clone()).await {
        errors.add("password", "is not your password");
    }
    if errors.is_empty() && user.two_factor_enabled() {
        let method =
            crate::auth::routes::check_second_factor(&state, &mut conn, viewer.user_id, &form.code)
                .await?;
        if method.is_none() {
            errors.add("code", "this code is not right");
        }
    }
    if errors.is_empty() {
        match person::erase(&mut conn, viewer.user_id, person::AskedBy::Themselves).await {
            Ok(erased) => {
                state.mailer.send_later(
                    erased.email,
                    "Your siteward account is deleted",
                    "Your siteward account was deleted, as you asked. You are signed out everywhere, the API keys you created are revoked, and the audit logs of the organizations you worked in keep what you did under a pseudonym instead of your name and email.\n".to_string(),
                );
                let mut response = see_other("/sign-in?notice=account-deleted");
                let _ = response
                    .add_removal_cookie(&crate::auth::session::removal_cookie(&state.config));
                return Ok(response);
            }
            Err(PersonErasureError::StillOwner(orgs)) => errors.add(
                "email",
                format!("you still own {}: pass ownership on first", orgs.join(", ")),
            ),
            Err(PersonErasureError::NotFound) => return Err(AppError::NotFound.into()),
            Err(PersonErasureError::Db(error)) => return Err(AppError::from(error).into()),
        }
    }
    drop(conn);
    render_delete_account(&state, &viewer, &csrf, form.email, errors).await
}
