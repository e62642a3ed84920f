use askama::Template;

use super::retention::{FINISHED_JOB_DAYS, PAYMENT_PAGE_MIN_DAYS};
use crate::layout::Nav;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "retention.html")]
pub struct RetentionPage {
    pub nav: Option<Nav>,
    /// The four fields as shown (what is saved, or what was typed when refused).
    pub snapshots_days: String,
    pub screenshots_days: String,
    pub checkout_screenshots_days: String,
    pub history_days: String,
    /// Only owners change retention; others read it.
    pub can_change: bool,
    pub saved: bool,
    pub errors: FieldErrors,
    /// The organization's blob deletions waiting.
    pub deletions_waiting: i64,
}

impl RetentionPage {
    pub fn payment_min_days(&self) -> i32 {
        PAYMENT_PAGE_MIN_DAYS
    }

    pub fn finished_job_days(&self) -> i32 {
        FINISHED_JOB_DAYS
    }
}

#[derive(Template)]
#[template(path = "erase_org.html")]
pub struct EraseOrgPage {
    pub nav: Option<Nav>,
    pub org_name: String,
    /// When the erasure will happen, if one is scheduled (RFC 3339, UTC).
    pub erase_after: Option<String>,
    /// The owner must also give a second-factor code.
    pub needs_code: bool,
    pub typed_name: String,
    pub errors: FieldErrors,
    pub grace_days: i64,
}

#[derive(Template)]
#[template(path = "delete_account.html")]
pub struct DeleteAccountPage {
    pub nav: Option<Nav>,
    /// Organizations the person owns: they must hand these over first.
    pub owned: Vec<String>,
    pub org_count: usize,
    pub needs_code: bool,
    pub typed_email: String,
    pub errors: FieldErrors,
}
