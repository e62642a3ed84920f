//! Printing a report to PDF on a runner: the report's self-contained document is written into a
//! blank tab of a fresh browser context with the network switched off (the document needs none:
//! its images are inline), then printed on A4 with the agency's line in every page's header and
//! page numbers in the footer.

use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use scanner::{ScanError, ScanOptions, Scanner};

use super::protocol::PdfOrder;

/// The most a report's printing may take.
pub const PDF_BUDGET: Duration = Duration::from_secs(60);

/// Text for a header or footer template: escaped, since the header comes from people's input.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A4 in inches, with margins that leave room for the header and footer.
pub fn print_params(header: &str) -> PrintToPdfParams {
    let style = "font: 8px system-ui, sans-serif; color: #555; width: 100%; padding: 0 12mm;";
    PrintToPdfParams::builder()
        .paper_width(8.27)
        .paper_height(11.69)
        .margin_top(0.6)
        .margin_bottom(0.6)
        .margin_left(0.4)
        .margin_right(0.4)
        .print_background(true)
        .display_header_footer(true)
        .header_template(format!(
            "<div style=\"{style}\">{}</div>",
            escape(header)
        ))
        .footer_template(format!(
            "<div style=\"{style} text-align: right;\">Page <span class=\"pageNumber\"></span> of <span class=\"totalPages\"></span></div>"
        ))
        .build()
}

/// Prints `order` to PDF in a fresh tab of `scanner`'s browser that can fetch nothing.
pub async fn render(scanner: &Scanner, order: &PdfOrder) -> Result<Vec<u8>, ScanError> {
    let options = ScanOptions {
        scan_timeout: PDF_BUDGET,
        ..ScanOptions::default()
    };
    let cdp = |e: chromiumoxide::error::CdpError| ScanError::Protocol(e.to_string());
    scanner
        .offline_tab(&options, async |page| {
            // Offline: the document needs nothing from anywhere. (The per-rule successor of this
            // command is missing from older Chromium builds that distributions still ship.)
            #[allow(deprecated)]
            let offline =
                chromiumoxide::cdp::browser_protocol::network::EmulateNetworkConditionsParams::new(
                    true, 0.0, -1.0, -1.0,
                );
            page.execute(offline).await.map_err(cdp)?;
            page.set_content(&order.html).await.map_err(cdp)?;
            page.pdf(print_params(&order.header)).await.map_err(cdp)
        })
        .await
}

/// The benchmark's baseline: the same document printed with a bare `Page.printToPDF` (no
/// header, footer or page size), in the same kind of tab.
pub async fn render_bare(scanner: &Scanner, html: &str) -> Result<Vec<u8>, ScanError> {
    let options = ScanOptions {
        scan_timeout: PDF_BUDGET,
        ..ScanOptions::default()
    };
    let cdp = |e: chromiumoxide::error::CdpError| ScanError::Protocol(e.to_string());
    scanner
        .offline_tab(&options, async |page| {
            page.set_content(html).await.map_err(cdp)?;
            page.pdf(PrintToPdfParams::default()).await.map_err(cdp)
        })
        .await
}
