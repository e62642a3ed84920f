//! `siteward bench-crawl`: a crawl of the outdoor fixture site (20 pages) against the same pages
//! scanned as separate scans in the same run and browser, one at a time and four at a time. The
//! goal: a crawl no slower than the separate scans (it also reads robots.txt and the sitemaps and
//! collects links), and faster in one session, where the cache and the connection carry over.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use fixture_sites::outdoor::OUTDOOR;
use futures::StreamExt;
use scanner::crawl::CrawlRules;
use scanner::{ScanOptions, Scanner, Supervisor};

use super::bench::{median, ms};
use super::{BrowserArgs, fail, parse_duration, print_figure};

#[derive(Debug, Clone, Args)]
pub struct BenchCrawlArgs {
    /// Rounds of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pages per crawl.
    #[arg(long, default_value_t = 20)]
    pub pages: usize,
    /// Quiet period of every page.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub quiet: Duration,
    /// The least wait after load of every page.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub dwell: Duration,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchCrawlArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// Lanes (pages at once) measured.
const LANES: [usize; 2] = [1, 4];

async fn bench(args: BenchCrawlArgs) -> Result<(), String> {
    let (sites, egress, browser) = super::bench::fixture_sites(&args.browser).await?;
    let scanner = Scanner::new(Supervisor::new(browser.browser_options(4)));
    let options = ScanOptions {
        egress,
        quiet_period: args.quiet,
        min_dwell: args.dwell,
        ..ScanOptions::default()
    };
    let rules = CrawlRules {
        max_pages: args.pages,
        // Enough of each template that the site has the pages asked for.
        per_template: args.pages,
        ..CrawlRules::default()
    };
    let start = sites.url(OUTDOOR, "/");
    scanner
        .supervisor()
        .warm_up()
        .await
        .map_err(|e| e.to_string())?;

    let crawl = async |lanes: usize| -> Result<(Duration, Vec<String>), String> {
        let started = Instant::now();
        let output = scanner
            .crawl(
                &start,
                &options,
                rules.clone(),
                Duration::from_secs(600),
                lanes,
                &|_| {},
            )
            .await
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if !output
            .site
            .unreachable
            .iter()
            .all(|u| u.url.contains("/loop-"))
        {
            return Err(format!("pages failed: {:?}", output.site.unreachable));
        }
        Ok((
            took,
            output
                .site
                .pages
                .iter()
                .map(|p| p.final_url.clone())
                .collect(),
        ))
    };
    let separate = async |urls: &[String], lanes: usize| -> Result<Duration, String> {
        let started = Instant::now();
        let results: Vec<_> = futures::stream::iter(urls.iter())
            .map(|url| scanner.scan(url, &options, &|_| {}))
            .buffer_unordered(lanes)
            .collect()
            .await;
        for result in results {
            result.map_err(|e| e.to_string())?;
        }
        Ok(started.elapsed())
    };

    // A first crawl warms the server and names the pages the separate scans visit.
    let (_, urls) = crawl(1).await?;
    println!(
        "siteward bench-crawl: {} pages of the outdoor fixture site (a redirect loop among the candidates), median of {} rounds",
        urls.len(),
        args.rounds
    );
    for lanes in LANES {
        let (mut crawls, mut scans) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            crawls.push(crawl(lanes).await?.0);
            scans.push(separate(&urls, lanes).await?);
        }
        let (crawl_time, scan_time) = (median(&mut crawls), median(&mut scans));
        let per_minute = |d: Duration| urls.len() as f64 * 60.0 / d.as_secs_f64().max(0.001);
        println!(
            "  {lanes} at a time: crawl {:>7.0} ms ({:>5.1} pages/min), separate scans {:>7.0} ms ({:>5.1} pages/min)",
            ms(crawl_time),
            per_minute(crawl_time),
            ms(scan_time),
            per_minute(scan_time)
        );
        let ratio = crawl_time.as_secs_f64() / scan_time.as_secs_f64();
        println!("  crawl / separate scans, {lanes} at a time (goal <= 1.0): {ratio:.2}");
        print_figure(&format!("crawl.vs_separate_scans_{lanes}_lanes"), ratio);
    }
    scanner.supervisor().shutdown().await;
    sites.stop().await;
    Ok(())
}
