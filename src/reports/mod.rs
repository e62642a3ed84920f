//! Reports a person reads: the self-contained HTML report of one snapshot, and of one compliance
//! scan.

mod compliance_report;
mod scan_report;

pub use compliance_report::{ReportView, render_compliance_report};
pub use scan_report::render_scan_report;
