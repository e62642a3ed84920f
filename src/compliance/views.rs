use askama::Template;

use super::queries::ComplianceScan;
use super::routes::{HistoryEntry, VisitBody};
use crate::layout::Nav;
use crate::reports::ReportView;
use crate::sites::queries::Target;

/// A target's compliance page: one compliance scan's report (the latest, or the one asked
/// for), its visits, and the history of findings over time.
#[derive(Template)]
#[template(path = "compliance/target.html")]
pub struct CompliancePage {
    pub nav: Option<Nav>,
    pub target: Target,
    /// The scan shown; `None` before the first one.
    pub shown: Option<ComplianceScan>,
    pub visits: Vec<VisitBody>,
    /// Its report, once built.
    pub rv: Option<ReportView>,
    pub history: Vec<HistoryEntry>,
    /// Reload while the scan shown is unfinished.
    pub refresh: bool,
}
