//! Alerts: rules that turn changes into alerts with a severity, and the alerts' lifecycle —
//! open, acknowledged (any member), resolved (automatically when a later snapshot no longer shows
//! the change, or by an admin). Repeats count on the live alert; one that comes back within a day
//! of being resolved reopens (flapping) instead of starting over.

pub mod notifications;
pub mod queries;
pub mod routes;
pub mod rules;
pub mod views;
