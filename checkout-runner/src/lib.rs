//! siteward's checkout tests: a step language in YAML, checked before anything runs; its runner,
//! which walks a shop's purchase journey on a scanner page; and sealed test data, which only
//! runners can open.
//!
//! Knows nothing of HTTP handlers, tenants or the database.
#![forbid(unsafe_code)]

pub mod bare;
pub mod plan;
pub mod report;
pub mod run;
pub mod sealing;
mod yaml;

pub use plan::{Action, Plan, PlanError, PlanErrors, Step, parse};
pub use report::{Outcome, RunReport, StepError, StepResult, StepStatus};
pub use run::{RunOutput, RunSettings, Secrets, is_script_error, run};
pub use sealing::{RunnerKeyPair, RunnerPublicKey, SealError, SecretValue};
