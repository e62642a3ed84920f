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
    pub client_id: Option<i64>,
    pub target_id: Option<i64>,
    /// (id, name) of the organization's clients and targets, for the filters.
    pub clients: Vec<(i64, String)>,
    pub targets: Vec<(i64, String)>,
    pub next_cursor: Option<String>,
    pub rules: Vec<RuleSetting>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts/notifications.html")]
pub struct NotificationsPage {
    pub nav: Option<Nav>,
    pub channels: Vec<super::notifications::Channel>,
    pub deliveries: Vec<super::notifications::Delivery>,
    pub form: ChannelForm,
    pub errors: crate::web::FieldErrors,
    /// Shown once after a webhook channel is made.
    pub signing_secret: Option<String>,
    pub notice: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ChannelForm {
    pub name: String,
    pub kind: String,
    pub to: String,
    pub min_severity: String,
}
