//! siteward: the app, the runner loop and the command line. `main.rs` only parses and calls in.
#![forbid(unsafe_code)]

pub mod cli;
pub mod reports;
