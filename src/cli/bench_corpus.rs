//! The real-world pattern pages (`fixture_sites::real_world`) under `siteward bench`: for each,
//! the median scan with default options beside the moment its last item appeared, and how far the
//! wait ran past the bound a visitor-like settle rule promises: the later of that moment and the
//! end of the dwell, plus the quiet period, plus one second. Then scans per minute at concurrency
//! 4 over the whole corpus.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture_sites::{FixtureSites, SHOP};
use futures::StreamExt;
use scanner::snapshot::Snapshot;
use scanner::{ScanOptions, Scanner};

use super::bench::{median, ms};

/// The page built never to settle; it ends at the cap by design and has no bound.
const NEVER_SETTLES: &str = "/rw/never-settles";

pub(super) async fn run(
    scanner: &Arc<Scanner>,
    sites: &FixtureSites,
    options: &ScanOptions,
    samples: usize,
) -> Result<(), String> {
    println!(
        "real-world corpus, default wait (dwell {} ms, quiet {} ms):",
        options.min_dwell.as_millis(),
        options.quiet_period.as_millis()
    );
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>9}  ended by",
        "page", "scan ms", "last item", "wait end", "bound"
    );
    let mut worst: f64 = 0.0;
    let mut urls = Vec::new();
    for (path, _) in fixture_sites::real_world::PAGES {
        if path == NEVER_SETTLES {
            continue;
        }
        let url = sites.url(SHOP, path);
        urls.push(url.clone());
        let mut times = Vec::new();
        let mut waits = Vec::new();
        let mut last = None;
        for _ in 0..samples.max(1) {
            let started = Instant::now();
            let out = scanner
                .scan(&url, options, &|_| {})
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            times.push(started.elapsed());
            let settle = out.snapshot.settle.as_ref().ok_or("no settle recorded")?;
            waits.push(Duration::from_millis(settle.after_ms));
            last = Some(out.snapshot);
        }
        let snapshot = last.ok_or("no scan")?;
        let last_item = last_item_ms(&snapshot);
        let dwell_end =
            snapshot.timings.load_ms.unwrap_or(0) + options.min_dwell.as_millis() as u64;
        let bound = last_item.max(dwell_end) + options.quiet_period.as_millis() as u64 + 1_000;
        let wait = median(&mut waits);
        worst = worst.max(ms(wait) / bound as f64);
        println!(
            "{:<22} {:>9.0} {:>10} {:>10.0} {:>9}  {}",
            path,
            ms(median(&mut times)),
            last_item,
            ms(wait),
            bound,
            snapshot.settle.map_or_else(
                || "-".to_owned(),
                |s| format!("{:?}", s.reason).to_lowercase()
            )
        );
    }
    super::print_figure("corpus.wait_end_vs_bound", worst);

    let rounds = samples.max(1) * urls.len();
    let started = Instant::now();
    let mut scans = futures::stream::iter(0..rounds)
        .map(|i| {
            let scanner = scanner.clone();
            let url = urls[i % urls.len()].clone();
            async move { scanner.scan(&url, options, &|_| {}).await }
        })
        .buffer_unordered(4);
    while let Some(result) = scans.next().await {
        result.map_err(|e| e.to_string())?;
    }
    println!(
        "corpus scans per minute, concurrency 4:               {:>9.1}",
        rounds as f64 * 60.0 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// When the page's last request started (from navigation start): its last item to appear. Exit
/// beacons are left out: the scan itself provokes them by hiding the page after the wait.
fn last_item_ms(snapshot: &Snapshot) -> u64 {
    snapshot
        .requests
        .iter()
        .filter(|r| !r.after_hide)
        .map(|r| r.started_ms)
        .max()
        .unwrap_or(0)
}
