//! Compliance scans: does a site respect its visitors' consent choice?
//!
//! A compliance scan visits a page several times, each in a fresh browser context: as a first-time
//! visitor who leaves the banner alone, after "reject all", after "accept all", and optionally
//! with Global Privacy Control ([`visits`]). The scanner classifies each visit's requests with
//! EasyList/EasyPrivacy and reads Google Consent Mode and IAB TCF signals; [`findings`] turns the
//! visits into verdicts with evidence, and [`report`] lays them side by side for people.
//!
//! In the service each visit is an ordinary scan (its own job, snapshot and diff against the
//! same visit of the previous compliance scan); [`queries`] asks for them and notices the last
//! one finishing, [`assemble`] builds the report, records the findings and raises their alerts,
//! and [`routes`] shows them in the dashboard and the API.

pub mod assemble;
pub mod findings;
pub mod queries;
pub mod report;
pub mod routes;
pub mod views;
pub mod visits;

pub use findings::{Evidence, Finding, Rule, findings};
pub use report::{ComplianceReport, GpcVerdict};
pub use visits::{Visit, VisitOutcomes};
