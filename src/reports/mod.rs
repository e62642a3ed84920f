//! Reports a person reads: the self-contained HTML report of one snapshot.

mod scan_report;

pub use scan_report::render_scan_report;
