//! siteward: the app, the runner loop and the command line. `main.rs` only parses and calls in.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod branding;
pub mod checkouts;
pub mod cli;
pub mod client_reports;
pub mod compliance;
pub mod config;
pub mod crawls;
pub mod crypto;
pub mod db;
pub mod diff;
pub mod exports;
pub mod keys;
pub mod layout;
pub mod lifecycle;
pub mod logging;
pub mod mail;
pub mod notify;
pub mod orgs;
pub mod overview;
pub mod payment;
pub mod queue;
pub mod reports;
pub mod runner;
pub mod scans;
pub mod scheduler;
pub mod sites;
pub mod state;
pub mod storage;
pub mod web;
