use askama::Template;
use scanner::Snapshot;

use super::queries::{Artifact, InventoryMatch, Scan, SnapshotMeta, StoredChanges};
use crate::layout::Nav;
use crate::sites::queries::Target;

#[derive(Template)]
#[template(path = "scans/history.html")]
pub struct HistoryPage {
    pub nav: Option<Nav>,
    pub target: Target,
    pub scans: Vec<Scan>,
    pub next_cursor: Option<String>,
    /// Reload while a scan is unfinished.
    pub refresh: bool,
}

#[derive(Template)]
#[template(path = "scans/scan.html")]
pub struct ScanPage {
    pub nav: Option<Nav>,
    pub scan: Scan,
    pub snapshot: Option<SnapshotView>,
    /// What changed since the previous snapshot, once compared.
    pub changes: Option<StoredChanges>,
}

#[derive(Template)]
#[template(path = "scans/compare.html")]
pub struct ComparePage {
    pub nav: Option<Nav>,
    pub target: Target,
    /// Recent snapshot ids, newest first.
    pub snapshots: Vec<i64>,
    /// `None` while the target has fewer than two snapshots.
    pub result: Option<super::routes::Comparison>,
}

/// A stored snapshot, ready to show (every string from the page is escaped by askama).
pub struct SnapshotView {
    pub meta: SnapshotMeta,
    pub artifacts: Vec<Artifact>,
    pub doc: Snapshot,
}

impl SnapshotView {
    pub fn party(third: bool) -> &'static str {
        if third { "third" } else { "first" }
    }
}

#[derive(Template)]
#[template(path = "scans/inventory.html")]
pub struct InventoryPage {
    pub nav: Option<Nav>,
    pub host: String,
    pub cookie: String,
    pub matches: Option<Vec<InventoryMatch>>,
}
