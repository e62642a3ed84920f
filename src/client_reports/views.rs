use askama::Template;
use time::OffsetDateTime;

use super::queries::Report;
use super::routes::{ReportBody, ShareCreated};
use crate::layout::Nav;
use crate::sites::queries::Client;

/// A client's reports: make one, see each with its share links, share or revoke.
#[derive(Template)]
#[template(path = "client_reports/reports.html")]
pub struct ReportsPage {
    pub nav: Option<Nav>,
    pub client: Client,
    pub targets: Vec<(i64, String)>,
    pub reports: Vec<ReportBody>,
    pub now: OffsetDateTime,
}

impl ReportsPage {
    pub fn target_name(&self, id: &Option<i64>) -> Option<&str> {
        let id = (*id)?;
        self.targets
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, name)| name.as_str())
    }
}

/// The new share link, shown once.
#[derive(Template)]
#[template(path = "client_reports/share_created.html")]
pub struct ShareCreatedPage {
    pub nav: Option<Nav>,
    pub report: Report,
    pub created: ShareCreated,
}
