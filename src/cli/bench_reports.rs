//! `siteward bench-reports`: what a client report costs to render and to print. A report of a
//! client with 10 pages and 30 days of daily scans (a change a day per page, three visual
//! changes with before/after screenshots each, alerts and checkout runs) is rendered to its
//! self-contained document, then printed to PDF as a runner prints it (A4, header, page numbers,
//! offline tab) against a bare `Page.printToPDF` of the same document in the same browser.
//! (Gathering the content from the database is not part of it.)

use std::io::Cursor;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use scanner::{Scanner, Supervisor};
use time::OffsetDateTime;

use super::bench::{median, ms};
use super::{BrowserArgs, fail, print_figure};
use crate::client_reports::content::{
    self, AlertLine, Latest, ReportContent, RunLine, TargetSection, VisualPair,
};
use crate::runner::pdf;
use crate::runner::protocol::PdfOrder;

#[derive(Debug, Clone, Args)]
pub struct BenchReportsArgs {
    /// Rounds of rendering and printing.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Pages of the client.
    #[arg(long, default_value_t = 10)]
    pub pages: usize,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchReportsArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// A 1366×768 screenshot with some texture, as a PNG `data:` URI.
fn screenshot(seed: u8) -> String {
    use base64::Engine;
    let picture = image::RgbaImage::from_fn(1366, 768, |x, y| {
        let band = ((y / 40) as u8).wrapping_mul(17).wrapping_add(seed);
        let text = if (x / 7 + y / 11) % 5 == 0 { 40 } else { 0 };
        image::Rgba([band, 240 - text, 250 - band / 2, 255])
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap_or_default();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The report of a client with `pages` pages scanned daily for 30 days.
fn client_with(pages: usize) -> ReportContent {
    let end = OffsetDateTime::now_utc();
    let day = |n: i64| end - time::Duration::days(n);
    let targets = (0..pages)
        .map(|page| TargetSection {
            name: format!("Page {page}"),
            url: format!("https://shop.example/{page}/"),
            latest: Some(Latest {
                captured_at: day(0),
                screenshot: Some(screenshot(page as u8)),
                hosts: (0..12)
                    .map(|h| (format!("host{h}.tracker.example"), Some("Analytics".into())))
                    .collect(),
                cookies: (0..20)
                    .map(|c| {
                        (
                            format!("_c{c}"),
                            "shop.example".into(),
                            Some("Marketing".into()),
                        )
                    })
                    .collect(),
            }),
            scans: 30,
            failed_scans: 1,
            changes: (0..30)
                .map(|d| {
                    (
                        day(d),
                        format!("A third-party host host{d}.example was added"),
                    )
                })
                .collect(),
            more_changes: 0,
            policy_changes: vec![(day(3), "The privacy policy's text changed".into())],
            visual: (0..3)
                .map(|v| VisualPair {
                    at: day(v),
                    sentence: "The viewport screenshot changed by 12 %".into(),
                    before: screenshot(v as u8 * 31),
                    after: screenshot(v as u8 * 31 + 7),
                })
                .collect(),
            alerts_opened: (0..5)
                .map(|a| AlertLine {
                    at: day(a),
                    severity: "high".into(),
                    title: format!("New third-party host host{a}.example"),
                })
                .collect(),
            alerts_resolved: vec![],
            open_alerts: vec![],
            checkout_runs: (0..30)
                .map(|d| RunLine {
                    at: day(d),
                    test: "Buy a mug".into(),
                    outcome: "passed".into(),
                    failure: None,
                })
                .collect(),
            compliance: None,
        })
        .collect();
    let mut report = ReportContent {
        title: "Bench client".into(),
        agency: "Bench agency".into(),
        accent: Some("#2454d6".into()),
        logo: None,
        client: "Bench client".into(),
        contact: Some("Ana".into()),
        period_start: day(30),
        period_end: end,
        made_at: end,
        summary: Vec::new(),
        targets,
    };
    report.summary = content::summary(&report);
    report
}

async fn bench(args: BenchReportsArgs) -> Result<(), String> {
    let report = client_with(args.pages);
    let mut renders = Vec::new();
    let mut html = String::new();
    for _ in 0..args.rounds.max(1) {
        let started = Instant::now();
        html = crate::client_reports::render::render(&report).map_err(|e| e.to_string())?;
        renders.push(started.elapsed());
    }
    let scanner = Scanner::new(Supervisor::new(args.browser.browser_options(1)));
    scanner
        .supervisor()
        .warm_up()
        .await
        .map_err(|e| e.to_string())?;
    let order = PdfOrder {
        report_id: 0,
        html: html.clone(),
        header: "Bench agency · Bench client".into(),
    };
    // One of each first, to warm the browser.
    let printed = pdf::render(&scanner, &order)
        .await
        .map_err(|e| e.to_string())?;
    pdf::render_bare(&scanner, &html)
        .await
        .map_err(|e| e.to_string())?;
    let (mut service, mut bare): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let started = Instant::now();
        pdf::render(&scanner, &order)
            .await
            .map_err(|e| e.to_string())?;
        service.push(started.elapsed());
        let started = Instant::now();
        pdf::render_bare(&scanner, &html)
            .await
            .map_err(|e| e.to_string())?;
        bare.push(started.elapsed());
    }
    scanner.supervisor().shutdown().await;
    let (render, service, bare) = (
        median(&mut renders),
        median(&mut service),
        median(&mut bare),
    );
    println!(
        "siteward bench-reports: a client of {} pages, 30 days of daily scans; median of {} rounds",
        args.pages, args.rounds
    );
    println!(
        "  rendering the document:         {:>7.1} ms ({:.1} MB of HTML)",
        ms(render),
        html.len() as f64 / 1e6
    );
    println!(
        "  printing it as a runner does:   {:>7.0} ms ({:.1} MB of PDF)",
        ms(service),
        printed.len() as f64 / 1e6
    );
    println!("  bare Page.printToPDF of it:     {:>7.0} ms", ms(bare));
    let ratio = service.as_secs_f64() / bare.as_secs_f64();
    println!("  runner print / bare print:      {ratio:>9.2}");
    print_figure("reports.pdf_vs_bare_print", ratio);
    print_figure(
        "reports.render_vs_pdf",
        render.as_secs_f64() / service.as_secs_f64(),
    );
    Ok(())
}
