use askama::Template;

use super::queries::{Client, Target};
use crate::layout::Nav;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "sites/clients.html")]
pub struct ClientsPage {
    pub nav: Option<Nav>,
    pub clients: Vec<Client>,
    pub next_cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "sites/client.html")]
pub struct ClientPage {
    pub nav: Option<Nav>,
    pub client: Client,
    pub targets: Vec<Target>,
    pub next_cursor: Option<String>,
    /// Each target's latest finished compliance scan, where it has one.
    pub compliance: Vec<crate::compliance::queries::ComplianceScan>,
}

impl ClientPage {
    /// The target's compliance at a glance.
    pub fn compliance_of(
        &self,
        target_id: &i64,
    ) -> Option<&crate::compliance::queries::ComplianceScan> {
        self.compliance.iter().find(|c| c.target_id == *target_id)
    }
}

/// The client form, for new and existing clients.
#[derive(Template)]
#[template(path = "sites/client_form.html")]
pub struct ClientFormPage {
    pub nav: Option<Nav>,
    /// `None` for a new client.
    pub client_id: Option<i64>,
    pub fields: super::queries::ClientFields,
    pub errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "sites/target.html")]
pub struct TargetPage {
    pub nav: Option<Nav>,
    pub client: Client,
    pub target: Target,
    pub checkout_tests: Vec<crate::checkouts::queries::TestSummary>,
    /// For a payment page: its weekly window.
    pub payment_window: Option<crate::payment::cadence::Window>,
}

/// The fields of the target form as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct TargetForm {
    pub name: String,
    pub url: String,
    pub viewport_width: String,
    pub viewport_height: String,
    pub consent_mode: String,
    pub capture_policy_pages: Option<String>,
    pub wait_ms: String,
    pub dwell_ms: String,
    pub device: String,
    pub languages: String,
    pub timezone: String,
    pub schedule: String,
    pub compliance_schedule: String,
    pub compliance_gpc: Option<String>,
    pub enabled: Option<String>,
    pub page_kind: String,
    pub visual_threshold: String,
    /// One selector per line.
    pub ignore_selectors: String,
    /// `x,y,width,height` per line.
    pub ignore_regions: String,
    /// `page` or `site`.
    pub kind: String,
    pub crawl_max_pages: String,
    pub crawl_max_depth: String,
    pub crawl_per_template: String,
    /// One pattern per line.
    pub crawl_include: String,
    pub crawl_exclude: String,
    pub crawl_sitemaps: Option<String>,
    pub crawl_one_session: Option<String>,
    pub crawl_respect_robots: Option<String>,
}

#[derive(Template)]
#[template(path = "sites/target_form.html")]
pub struct TargetFormPage {
    pub nav: Option<Nav>,
    pub client: Client,
    /// `None` for a new target.
    pub target_id: Option<i64>,
    pub form: TargetForm,
    pub errors: FieldErrors,
}
