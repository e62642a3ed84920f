use askama::Template;

use super::queries::ClientOverview;
use crate::layout::Nav;

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub nav: Option<Nav>,
    pub clients: Vec<ClientOverview>,
}

impl OverviewPage {
    /// The client's trend as inline SVG, drawn from numbers only.
    pub fn trend_svg(&self, client: &ClientOverview) -> String {
        super::trend::svg(&client.trend)
    }
}
