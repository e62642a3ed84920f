//! Organizations: creating and switching, members and their roles, invitations, ownership.

pub mod queries;
pub mod routes;
mod views;
