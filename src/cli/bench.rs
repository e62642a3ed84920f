//! `siteward bench`: scan speed and memory, measured against a baseline in the same run.
//!
//! The baseline is a bare DevTools navigation of the same page in the same browser, through the
//! same egress guard, with the same load-and-quiet wait and one viewport screenshot. The overhead
//! ratio (median full scan / median baseline) is the cost of everything siteward captures on top.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use fixture_sites::{FixtureSites, SHOP};
use futures::StreamExt;
use scanner::egress::EgressPolicy;
use scanner::{ScanOptions, Scanner, Supervisor};

use super::{BrowserArgs, fail, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Scans per timing series (concurrency 1 and baseline).
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// Scans in the memory run (at concurrency 4).
    #[arg(long, default_value_t = 200)]
    pub memory_scans: usize,
    /// Quiet period for every scan.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub quiet: Duration,
    /// Scans of each real-world corpus page (which always run with the default wait).
    #[arg(long, default_value_t = 3)]
    pub corpus_samples: usize,
    /// The least wait after load of every scan (both sides of the comparison).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub dwell: Duration,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

/// The fixture sites on loopback, an egress policy that maps their names to them (and asks their
/// name server), and `browser` trusting their certificate: what the benchmarks scan.
pub(super) async fn fixture_sites(
    browser: &BrowserArgs,
) -> Result<(FixtureSites, EgressPolicy, BrowserArgs), String> {
    let sites = FixtureSites::start()
        .await
        .map_err(|e| format!("cannot start the fixture sites: {e}"))?;
    let mut egress = EgressPolicy::public_only().with_dns_server(sites.dns_server());
    for mapping in sites.resolve_args() {
        egress = egress
            .with_resolve_arg(&mapping)
            .map_err(|e| e.to_string())?;
    }
    let mut browser = browser.clone();
    browser.trust_spki.push(sites.spki().to_owned());
    Ok((sites, egress, browser))
}

async fn bench(args: BenchArgs) -> Result<(), String> {
    let (sites, egress, browser) = fixture_sites(&args.browser).await?;
    let scanner = Arc::new(Scanner::new(Supervisor::new(browser.browser_options(4))));
    let options = ScanOptions {
        egress,
        quiet_period: args.quiet,
        min_dwell: args.dwell,
        ..ScanOptions::default()
    };
    let url = sites.url(SHOP, "/bench");

    let peak = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        let peak_rss = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                let memory = process_tree_memory();
                peak_rss.fetch_max(memory.rss_kib, Ordering::Relaxed);
                peak.fetch_max(memory.pss_kib, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    println!(
        "siteward bench: {url}, quiet period {} ms, {} samples",
        args.quiet.as_millis(),
        args.samples
    );
    scanner
        .supervisor()
        .warm_up()
        .await
        .map_err(|e| e.to_string())?;
    // Warm the page's caches and the browser's code paths once each.
    scanner
        .bare_navigation(&url, &options)
        .await
        .map_err(|e| e.to_string())?;
    scanner
        .scan(&url, &options, &|_| {})
        .await
        .map_err(|e| e.to_string())?;

    // Interleave baseline and full scans so drift in the machine affects both alike.
    let mut baseline = Vec::new();
    let mut full = Vec::new();
    for _ in 0..args.samples {
        baseline.push(
            scanner
                .bare_navigation(&url, &options)
                .await
                .map_err(|e| e.to_string())?,
        );
        let started = Instant::now();
        scanner
            .scan(&url, &options, &|_| {})
            .await
            .map_err(|e| e.to_string())?;
        full.push(started.elapsed());
    }
    let baseline_median = median(&mut baseline);
    let full_median = median(&mut full);
    println!(
        "baseline (bare navigate + wait + viewport screenshot): median {:>6.0} ms",
        ms(baseline_median)
    );
    println!(
        "full scan, concurrency 1:                             median {:>6.0} ms",
        ms(full_median)
    );
    println!(
        "overhead ratio (full / baseline):                     {:>9.2}",
        full_median.as_secs_f64() / baseline_median.as_secs_f64()
    );
    super::print_figure(
        "scan.full_vs_bare",
        full_median.as_secs_f64() / baseline_median.as_secs_f64(),
    );
    println!(
        "scans per minute, concurrency 1:                      {:>9.1}",
        60.0 / full_median.as_secs_f64()
    );

    let batch = args.samples * 2;
    let started = Instant::now();
    let mut times = run_concurrently(&scanner, &url, &options, batch, 4, |_| {}).await?;
    let wall = started.elapsed();
    println!(
        "full scan, concurrency 4:                             median {:>6.0} ms per scan",
        ms(median(&mut times))
    );
    println!(
        "scans per minute, concurrency 4:                      {:>9.1}",
        batch as f64 * 60.0 / wall.as_secs_f64()
    );

    let corpus_options = ScanOptions {
        egress: options.egress.clone(),
        ..ScanOptions::default()
    };
    super::bench_corpus::run(&scanner, &sites, &corpus_options, args.corpus_samples).await?;

    let rss_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = {
        let rss_at = rss_at.clone();
        move |done: usize| {
            if done == 10 || done == args.memory_scans {
                rss_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((done, process_tree_memory()));
            }
        }
    };
    run_concurrently(&scanner, &url, &options, args.memory_scans, 4, record).await?;
    for (done, memory) in rss_at
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        println!(
            "siteward + Chromium after scan {done:>3}:    {}",
            memory.describe()
        );
    }
    let peak = TreeMemory {
        rss_kib: peak_rss.load(Ordering::Relaxed),
        pss_kib: peak.load(Ordering::Relaxed),
    };
    println!(
        "siteward + Chromium at peak (each max): {}",
        peak.describe()
    );
    println!(
        "browser launches during the run:                      {:>6}",
        scanner.supervisor().launches()
    );
    sampler.abort();
    scanner.supervisor().shutdown().await;
    sites.stop().await;
    Ok(())
}

async fn run_concurrently(
    scanner: &Arc<Scanner>,
    url: &str,
    options: &ScanOptions,
    count: usize,
    concurrency: usize,
    on_done: impl Fn(usize),
) -> Result<Vec<Duration>, String> {
    let mut results = futures::stream::iter(0..count)
        .map(|_| {
            let scanner = scanner.clone();
            async move {
                let started = Instant::now();
                scanner
                    .scan(url, options, &|_| {})
                    .await
                    .map(|_| started.elapsed())
            }
        })
        .buffer_unordered(concurrency);
    let mut times = Vec::with_capacity(count);
    while let Some(result) = results.next().await {
        times.push(result.map_err(|e| e.to_string())?);
        on_done(times.len());
    }
    Ok(times)
}

pub(super) fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Memory of this process and all its descendants (the browser and its renderers).
#[derive(Debug, Clone, Copy, Default)]
struct TreeMemory {
    /// Sum of resident set sizes: counts pages shared between Chromium's processes once per
    /// process, so it overstates.
    rss_kib: u64,
    /// Sum of proportional set sizes: shared pages split between their sharers; what the tree
    /// really costs.
    pss_kib: u64,
}

impl TreeMemory {
    fn describe(self) -> String {
        format!(
            "RSS {:>5.0} MiB, PSS {:>5.0} MiB",
            self.rss_kib as f64 / 1024.0,
            self.pss_kib as f64 / 1024.0
        )
    }
}

fn process_tree_memory() -> TreeMemory {
    let mut processes: Vec<(u32, u32)> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return TreeMemory::default();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if let Some(ppid) = kib_field(&status, "PPid:") {
            processes.push((pid, ppid as u32));
        }
    }
    let mut tree = vec![std::process::id()];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            processes
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    let mut total = TreeMemory::default();
    for pid in tree {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total.rss_kib += kib_field(&rollup, "Rss:").unwrap_or(0);
        total.pss_kib += kib_field(&rollup, "Pss:").unwrap_or(0);
    }
    total
}

/// The number after `name` on its line of a /proc file.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
