//! Scans: asking for them (dashboard, API, schedule), the runners' internal API that takes their
//! results in, and reading snapshots back.

pub mod analysis;
pub mod comparisons;
pub mod ingest;
pub mod internal;
pub mod queries;
pub mod routes;
pub mod runner_tokens;
pub mod schedule;
pub mod views;
