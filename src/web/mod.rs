//! Shared web machinery: errors, the route table, CSRF, security headers, metrics, rate limits,
//! pagination and the OpenAPI document. Imports no feature module.

pub mod body;
pub mod client_ip;
pub mod csrf;
pub mod error;
pub mod form;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod rate_limit;
pub mod routes;

pub use error::{ApiError, AppError, FieldErrors, PageError};
pub use routes::{Access, Route, RouteDoc, Surface};

/// An object id from a path or form: anything but a positive integer is simply not found.
pub fn object_id(text: &str) -> Result<i64, AppError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(AppError::NotFound)
}
