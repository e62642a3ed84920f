//! `siteward bench-compliance`: what a compliance scan costs, against plain scans of the same page
//! in the same run and browser, and what classification with EasyPrivacy/EasyList costs against
//! the scan it classifies.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use fixture_sites::SHOP;
use fixture_sites::compliance_sites::BUSY_PAGE;
use scanner::classify::FilterLists;
use scanner::{ScanOptions, Scanner, Snapshot, Supervisor};

use super::bench::{median, ms};
use super::{BrowserArgs, ClassifyArgs, fail, parse_duration, print_figure};
use crate::compliance::visits;

#[derive(Debug, Clone, Args)]
pub struct BenchComplianceArgs {
    /// Rounds; each is three plain scans one after another, three side by side, and one
    /// compliance scan.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Quiet period for every scan.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub quiet: Duration,
    /// The least wait after load of every scan.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub dwell: Duration,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchComplianceArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// The page: a consent manager, Tag Manager and Analytics before the answer.
const PAGE: &str = "/compliance/early-trackers";

async fn bench(args: BenchComplianceArgs) -> Result<(), String> {
    let started = Instant::now();
    let classifiers = args.classify.load()?;
    let lists = classifiers
        .filter_lists
        .clone()
        .ok_or("no filter lists were loaded")?;
    println!(
        "siteward bench-compliance: lists loaded in {:.0} ms ({})",
        ms(started.elapsed()),
        lists
            .infos()
            .iter()
            .map(|i| format!("{} {} rules", i.name, i.rules))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (sites, egress, browser) = super::bench::fixture_sites(&args.browser).await?;
    // The runner's default concurrency is 2; a compliance scan's four visits may use four.
    let scanner = Scanner::new(Supervisor::new(browser.browser_options(4)));
    let options = classifiers.apply(ScanOptions {
        egress,
        quiet_period: args.quiet,
        min_dwell: args.dwell,
        ..ScanOptions::default()
    });
    let url = sites.url(SHOP, PAGE);
    let planned = visits::planned(false);
    scanner
        .supervisor()
        .warm_up()
        .await
        .map_err(|e| e.to_string())?;
    plain(&scanner, &url, &options).await?;

    let (mut sequential, mut parallel, mut compliance) = (Vec::new(), Vec::new(), Vec::new());
    let mut visit_times = std::collections::BTreeMap::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        for _ in 0..3 {
            plain(&scanner, &url, &options).await?;
        }
        sequential.push(started.elapsed());

        let started = Instant::now();
        let three = futures::future::join_all((0..3).map(|_| plain(&scanner, &url, &options)));
        three.await.into_iter().collect::<Result<Vec<_>, _>>()?;
        parallel.push(started.elapsed());

        let started = Instant::now();
        let outcomes = visits::run(&scanner, &url, &options, &planned, &|_, _| {}).await;
        compliance.push(started.elapsed());
        for (visit, outcome) in outcomes {
            let output =
                outcome.map_err(|e| format!("the {} visit failed: {e}", visit.as_str()))?;
            let took = Duration::from_millis(output.snapshot.timings.total_ms);
            visit_times
                .entry(visit.as_str())
                .or_insert_with(Vec::new)
                .push(took);
        }
    }
    let (sequential, parallel, compliance) = (
        median(&mut sequential),
        median(&mut parallel),
        median(&mut compliance),
    );
    println!("{PAGE}, median of {} rounds:", args.rounds);
    println!(
        "  three plain scans, one after another:   {:>6.0} ms",
        ms(sequential)
    );
    println!(
        "  three plain scans, side by side:        {:>6.0} ms",
        ms(parallel)
    );
    println!(
        "  compliance scan (first, reject, accept): {:>6.0} ms",
        ms(compliance)
    );
    for (visit, times) in &mut visit_times {
        println!(
            "    {visit:<12} visit alone:           {:>6.0} ms",
            ms(median(times))
        );
    }
    let against_sequential = compliance.as_secs_f64() / sequential.as_secs_f64();
    let against_parallel = compliance.as_secs_f64() / parallel.as_secs_f64();
    println!("  compliance / three plain (goal <= 1.1):  {against_sequential:>9.2}");
    println!("  compliance / three side by side:         {against_parallel:>9.2}");
    print_figure("compliance.scan_vs_three_plain", against_sequential);
    print_figure("compliance.scan_vs_three_side_by_side", against_parallel);

    let busy = plain(&scanner, &sites.url(SHOP, BUSY_PAGE), &options).await?;
    let tracked = plain(&scanner, &url, &options).await?;
    for snapshot in [&busy, &tracked] {
        let (took, named) = classification_time(&lists, snapshot, 20);
        let share = took.as_secs_f64() * 1000.0 / snapshot.timings.total_ms.max(1) as f64;
        println!(
            "classifying {} requests of {} ({} named): {:.2} ms, {:.2} % of its {} ms scan",
            snapshot.requests.len(),
            url::Url::parse(&snapshot.final_url)
                .map_or_else(|_| String::new(), |u| u.path().to_owned()),
            named,
            ms(took),
            share * 100.0,
            snapshot.timings.total_ms
        );
        if std::ptr::eq(snapshot, &busy) {
            print_figure("compliance.classify_vs_scan", share);
        }
    }
    scanner.supervisor().shutdown().await;
    sites.stop().await;
    Ok(())
}

async fn plain(scanner: &Scanner, url: &str, options: &ScanOptions) -> Result<Snapshot, String> {
    scanner
        .scan(url, options, &|_| {})
        .await
        .map(|o| o.snapshot)
        .map_err(|e| e.to_string())
}

/// The median time to classify every request of `snapshot` as the scan does, and how many
/// requests a list named.
fn classification_time(
    lists: &FilterLists,
    snapshot: &Snapshot,
    rounds: usize,
) -> (Duration, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut named = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        named = snapshot
            .requests
            .iter()
            .filter(|r| {
                lists
                    .classify(&r.url, &snapshot.final_url, &r.resource_type)
                    .is_some()
            })
            .count();
        times.push(started.elapsed());
    }
    (median(&mut times), named)
}
