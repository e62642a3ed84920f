//! The web layer's one error type and its two renderings: `application/problem+json` on the API,
//! an HTML page (or a redirect to sign-in) on the dashboard. Internal detail is logged with the
//! request's span and never sent to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

use crate::db::DbError;

/// One problem with one field of a form or JSON body.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Field problems collected while validating a form or body.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message for one field, for templates.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// `Ok(())` when nothing was added.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(self))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("sign in first")]
    Unauthenticated,
    #[error("your role does not allow this: {0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("some fields are not valid")]
    Invalid(FieldErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many attempts; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error("this form has expired or was sent from another site; reload the page and try again")]
    Csrf,
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable,
    #[error("something went wrong on our side; it has been logged")]
    Internal,
    #[error(
        "stored data failed its integrity check: it was altered or is not where it belongs; it has been logged"
    )]
    Integrity,
}

impl AppError {
    /// Logs the detail (with the request's span) and hides it from the client.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        tracing::error!(%detail, "internal error");
        AppError::Internal
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        AppError::Invalid(errors)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal | AppError::Integrity => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound => "not-found",
            AppError::Invalid(_) => "invalid-input",
            AppError::BadRequest(_) => "bad-request",
            AppError::Conflict(_) => "conflict",
            AppError::TooLarge(_) => "too-large",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::RateLimited { .. } => "rate-limited",
            AppError::Csrf => "csrf",
            AppError::Unavailable => "unavailable",
            AppError::Internal => "internal",
            AppError::Integrity => "integrity",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "Authentication required",
            AppError::Forbidden(_) => "Not allowed",
            AppError::NotFound => "Not found",
            AppError::Invalid(_) => "Invalid input",
            AppError::BadRequest(_) => "Bad request",
            AppError::Conflict(_) => "Conflict",
            AppError::TooLarge(_) => "Too large",
            AppError::UnsupportedMediaType(_) => "Unsupported media type",
            AppError::RateLimited { .. } => "Too many attempts",
            AppError::Csrf => "Form expired",
            AppError::Unavailable => "Unavailable",
            AppError::Internal => "Internal error",
            AppError::Integrity => "Integrity check failed",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after } => Some(*retry_after),
            AppError::Unavailable => Some(5),
            _ => None,
        }
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::NotFound => AppError::NotFound,
            DbError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                AppError::Unavailable
            }
            DbError::Conflict(what) => AppError::internal(format!("unexpected conflict on {what}")),
            other => AppError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        AppError::from(DbError::from(error))
    }
}

/// An error on `/api/v1`: RFC 9457 problem details.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(pub AppError);

/// The JSON body of every API error.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Per-field problems, for `invalid-input`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Both renderings accept every error the layers below raise.
macro_rules! from_layer_errors {
    ($wrapper:ident) => {
        impl From<AppError> for $wrapper {
            fn from(error: AppError) -> Self {
                $wrapper(error)
            }
        }
        impl From<DbError> for $wrapper {
            fn from(error: DbError) -> Self {
                $wrapper(error.into())
            }
        }
        impl From<diesel::result::Error> for $wrapper {
            fn from(error: diesel::result::Error) -> Self {
                $wrapper(error.into())
            }
        }
    };
}

from_layer_errors!(ApiError);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let error = &self.0;
        let problem = Problem {
            kind: format!("https://siteward.dev/problems/{}", error.slug()),
            title: error.title().to_string(),
            status: error.status().as_u16(),
            detail: error.to_string(),
            errors: match error {
                AppError::Invalid(fields) => fields.0.clone(),
                _ => Vec::new(),
            },
        };
        let mut response = HttpResponse::build(error.status());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = error.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if matches!(error, AppError::Unauthenticated) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"siteward\""));
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

/// An error on a dashboard page: an HTML error page, or a redirect to sign-in.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(pub AppError);

from_layer_errors!(PageError);

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            AppError::Unauthenticated => StatusCode::SEE_OTHER,
            _ => self.0.status(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = &self.0;
        if matches!(error, AppError::Unauthenticated) {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/sign-in"))
                .finish();
        }
        let page = ErrorPage {
            status: error.status().as_u16(),
            title: error.title(),
            message: error.to_string(),
        };
        let mut response = HttpResponse::build(error.status());
        if let Some(seconds) = error.retry_after() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ))
            .body(page.render().unwrap_or_else(|_| error.to_string()))
    }
}
