//! Checkout tests: scripted journeys through a target's purchase flow with sealed test data.
//! People write them in the dashboard or the API; runs go through the same queue as scans, come
//! back as a report with step screenshots, and raise alerts when they fail or when a page of the
//! journey changes its scripts.

pub mod analysis;
pub mod ingest;
pub mod internal;
pub mod keys;
pub mod queries;
pub mod routes;
pub mod schedule;
pub mod views;
