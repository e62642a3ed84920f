//! Clients (the agency's customers) and their targets (a URL and how to scan it).

pub mod queries;
pub mod routes;
pub mod schedule;
pub mod target_input;
mod views;
