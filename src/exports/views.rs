use askama::Template;

use super::ExportRow;
use crate::layout::Nav;
use crate::web::FieldErrors;

/// A client an export can be scoped to.
pub struct ClientChoice {
    pub id: i64,
    pub name: String,
}

#[derive(Template)]
#[template(path = "exports.html")]
pub struct ExportsPage {
    pub nav: Option<Nav>,
    pub exports: Vec<ExportRow>,
    pub clients: Vec<ClientChoice>,
    pub asked: bool,
    pub errors: FieldErrors,
}

impl ExportsPage {
    pub fn when(&self, at: &time::OffsetDateTime) -> String {
        crate::layout::when(at)
    }

    pub fn size(&self, bytes: &i64) -> String {
        match *bytes {
            b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
            b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
            b => format!("{b} bytes"),
        }
    }
}
