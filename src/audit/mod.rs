//! The audit log: append-only (a database trigger refuses UPDATE, DELETE and TRUNCATE) and
//! hash-chained per organization, so that an edit made around the trigger is detected by
//! `siteward admin verify-audit`.

pub mod chain;
pub mod queries;
pub mod routes;
mod views;

pub use chain::{Entry, record};
