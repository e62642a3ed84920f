//! API keys: `sw_<prefix>_<secret>`, shown once, stored as the prefix and the secret's SHA-256,
//! scoped to one organization and to read or read-write, revocable.

pub mod queries;
pub mod routes;
mod views;
