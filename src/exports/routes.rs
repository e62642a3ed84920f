//! `/settings/export`: owners ask for an export of the organization or of one client and see
//! past ones. `/exports/download/{export_token}`: the mailed link, usable once by an owner of the
//! export's organization, streams the archive. (API keys are never owners: exports are in the
//! dashboard only.)

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use serde::Deserialize;

use super::views::{ClientChoice, ExportsPage};
use crate::auth::{PageCtx, Role};
use crate::layout::{Nav, html_form, see_other};
use crate::state::AppState;
use crate::storage::ObjectKey;
use crate::web::csrf::CsrfToken;
use crate::web::form::Form;
use crate::web::routes::{Route, page_get, page_post};
use crate::web::{Access, AppError, FieldErrors, PageError};

type Page = Result<HttpResponse, PageError>;

pub fn routes() -> Vec<Route> {
    vec![
        page_get("/settings/export", Access::Role(Role::Owner), exports_page),
        page_post("/settings/export", Access::Role(Role::Owner), ask).example("client_id="),
        page_get(
            "/exports/download/{export_token}",
            Access::Role(Role::Owner),
            download,
        ),
    ]
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    #[serde(default)]
    asked: Option<String>,
}

async fn render(
    state: &AppState,
    page: &PageCtx,
    csrf: &CsrfToken,
    asked: bool,
    errors: FieldErrors,
) -> Page {
    #[derive(QueryableByName)]
    struct Client {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let mut conn = state.conn().await?;
    let clients: Vec<Client> =
        diesel::sql_query("SELECT id, name FROM clients WHERE org_id = $1 ORDER BY name, id")
            .bind::<BigInt, _>(page.org_id)
            .load(&mut conn)
            .await
            .map_err(AppError::from)?;
    let view = ExportsPage {
        nav: Some(Nav::new(&page.viewer, csrf)),
        exports: super::list(&mut conn, page.org_id)
            .await
            .map_err(AppError::from)?,
        clients: clients
            .into_iter()
            .map(|c| ClientChoice {
                id: c.id,
                name: c.name,
            })
            .collect(),
        asked,
        errors,
    };
    html_form(&view, &view.errors)
}

async fn exports_page(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    query: web::Query<NoticeQuery>,
) -> Page {
    page.require(Role::Owner)?;
    render(
        &state,
        &page,
        &csrf,
        query.asked.is_some(),
        FieldErrors::default(),
    )
    .await
}

#[derive(Deserialize)]
struct AskForm {
    #[serde(default)]
    client_id: String,
}

async fn ask(
    state: web::Data<AppState>,
    page: PageCtx,
    csrf: CsrfToken,
    Form(form): Form<AskForm>,
) -> Page {
    page.require(Role::Owner)?;
    let client_id = match form.client_id.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                let mut errors = FieldErrors::default();
                errors.add("client_id", "choose the organization or one of its clients");
                return render(&state, &page, &csrf, false, errors).await;
            }
        },
    };
    let mut conn = state.conn().await?;
    match super::request(&mut conn, &page.ctx, client_id).await {
        Ok(_) => Ok(see_other("/settings/export?asked=1")),
        Err(AppError::Invalid(errors)) => {
            drop(conn);
            render(&state, &page, &csrf, false, errors).await
        }
        Err(error) => Err(error.into()),
    }
}

/// Streams the archive's parts, decrypted, in order.
async fn download(state: web::Data<AppState>, page: PageCtx, token: web::Path<String>) -> Page {
    page.require(Role::Owner)?;
    let token = token.into_inner();
    if token.is_empty() || token.len() > 64 {
        return Err(AppError::NotFound.into());
    }
    let mut conn = state.conn().await?;
    let claimed = super::claim_download(&mut conn, &page.ctx, &token).await?;
    drop(conn);
    let org_id = page.org_id;
    let export_id = claimed.id;
    let parts = claimed.parts.max(0) as u32;
    let attempt = claimed.attempt;
    let body = futures::stream::unfold(Some(0u32), move |next| {
        let state = state.clone();
        async move {
            let n = next?;
            if n >= parts {
                return None;
            }
            let key = ObjectKey::export_part(org_id, export_id, attempt, n);
            let read = async {
                let mut conn = state
                    .pool
                    .get()
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                state
                    .blobs
                    .get(&mut conn, &key)
                    .await
                    .map(|bytes| web::Bytes::from(bytes.to_vec()))
                    .map_err(|e| {
                        tracing::error!(%key, error = %e, "an export part cannot be read");
                        std::io::Error::other("an export part cannot be read")
                    })
            }
            .await;
            // After an error the stream ends (the client sees a cut download).
            let after = if read.is_ok() { Some(n + 1) } else { None };
            Some((read, after))
        }
    });
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/gzip")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"siteward-export-{org_id}-{export_id}.tar.gz\""),
        ))
        .insert_header(("Cache-Control", "no-store"));
    if let Some(hash) = &claimed.sha256 {
        response.insert_header(("X-Siteward-Sha256", hash.as_str()));
    }
    Ok(response
        .no_chunking(claimed.size_bytes.max(0) as u64)
        .streaming(body))
}
