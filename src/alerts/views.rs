use askama::Template;

use super::queries::{Alert, RuleSetting};
use crate::layout::Nav;

#[derive(Template)]
#[template(path = "alerts/inbox.html")]
pub struct InboxPage {
    pub nav: Option<Nav>,
    pub alerts: Vec<Alert>,
    pub state: String,
    pub severity: String,
    pub next_cursor: Option<String>,
    pub rules: Vec<RuleSetting>,
    pub notice: Option<String>,
}
