//! A client report as a self-contained page: summary first, then each page's detail. Nothing
//! loads from anywhere (screenshots are inline), no script, and every captured string is escaped.

use askama::Template;

use super::content::ReportContent;

#[derive(Template)]
#[template(path = "client_report.html")]
struct ReportPage<'a> {
    c: &'a ReportContent,
}

pub fn render(content: &ReportContent) -> Result<String, askama::Error> {
    ReportPage { c: content }.render()
}
