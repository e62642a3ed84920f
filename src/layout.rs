//! What every dashboard page shows around its content: who is signed in, the organization
//! switcher and the navigation, plus the helpers that render a page with a status.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use askama::Template;

use crate::auth::{Role, Viewer};
use crate::web::csrf::CsrfToken;
use crate::web::{AppError, FieldErrors, PageError};

pub struct NavOrg {
    pub id: i64,
    pub name: String,
    pub current: bool,
}

/// The frame of a signed-in page.
pub struct Nav {
    pub name: String,
    pub email: String,
    pub orgs: Vec<NavOrg>,
    pub org_name: String,
    pub role: Option<Role>,
    pub csrf: String,
}

impl Nav {
    pub fn new(viewer: &Viewer, csrf: &CsrfToken) -> Nav {
        Nav {
            name: viewer.name.clone(),
            email: viewer.email.clone(),
            orgs: viewer
                .orgs
                .iter()
                .map(|o| NavOrg {
                    id: o.id,
                    name: o.name.clone(),
                    current: viewer.current.as_ref().is_some_and(|c| c.id == o.id),
                })
                .collect(),
            org_name: viewer
                .current
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            role: viewer.current.as_ref().map(|c| c.role),
            csrf: csrf.0.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role.is_some_and(|r| r >= Role::Admin)
    }

    pub fn is_owner(&self) -> bool {
        self.role == Some(Role::Owner)
    }
}

/// Renders a page with a status.
pub fn html_with(status: StatusCode, page: &impl Template) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(AppError::internal)?;
    Ok(HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ))
        .body(body))
}

pub fn html(page: &impl Template) -> Result<HttpResponse, PageError> {
    html_with(StatusCode::OK, page)
}

/// A form with field errors is shown again with 422.
pub fn html_invalid(page: &impl Template) -> Result<HttpResponse, PageError> {
    html_with(StatusCode::UNPROCESSABLE_ENTITY, page)
}

/// A form page: 200 when it is fresh, 422 when it shows field errors.
pub fn html_form(page: &impl Template, errors: &FieldErrors) -> Result<HttpResponse, PageError> {
    if errors.is_empty() {
        html(page)
    } else {
        html_invalid(page)
    }
}

/// After a successful POST: 303 to the next page.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

/// Formats a timestamp for people: `2026-11-23 14:05 UTC`.
pub fn when(at: &time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

pub fn when_opt(at: &Option<time::OffsetDateTime>) -> String {
    at.as_ref().map(when).unwrap_or_else(|| "never".into())
}
