use askama::Template;

use super::routes::AuditEntry;
use crate::layout::Nav;

#[derive(Template)]
#[template(path = "audit/index.html")]
pub struct AuditPage {
    pub nav: Option<Nav>,
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}
