//! Integration tests of `siteward serve` against real PostgreSQL, over HTTP.

mod smtp_sink;
mod support;

mod accounts;
mod alerts;
mod audit;
mod authorization_matrix;
mod bad_input;
mod branding;
mod changes;

mod checkouts;
mod client_reports;
mod cluster;
mod compliance;
mod crawls;
mod exports;
mod layout;
mod lifecycle;
mod notifications;
mod overview;
mod payment;
mod person_erasure;
mod queue;
mod runner;
mod scans;
mod security_review;
mod serve;
mod sites;
mod storage;
