use askama::Template;

use super::queries::ApiKey;
use crate::layout::Nav;
use crate::web::FieldErrors;

#[derive(Template)]
#[template(path = "keys/index.html")]
pub struct KeysPage {
    pub nav: Option<Nav>,
    pub keys: Vec<ApiKey>,
    pub name: String,
    pub scope: String,
    /// The full key just created, shown this once.
    pub new_key: Option<String>,
    pub errors: FieldErrors,
}
