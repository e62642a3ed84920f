//! Shared web machinery: errors, the route table, CSRF, security headers, metrics, rate limits,
//! pagination and the OpenAPI document. Imports no feature module.

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
