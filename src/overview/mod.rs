//! The overview: the page after sign-in, answering an agency's first question of the day —
//! which of my clients need attention? Every client with its targets' state (open alerts by
//! severity, last scan and its outcome, last checkout run, failing scans, targets scanned less
//! often than their schedule says), worst first, with a 30-day trend of changes and alerts drawn
//! server-side as inline SVG. The same data is `GET /api/v1/overview`.

pub mod queries;
pub mod routes;
pub mod trend;
pub mod views;
