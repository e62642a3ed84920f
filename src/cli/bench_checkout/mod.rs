//! `siteward bench-checkout`: checkout journeys as the runner runs them, each beside a yardstick
//! measured in the same run.
//!
//! The demo shop, in three series alternating in one browser: the bare baseline
//! (`checkout_runner::bare`); the runner with its per-step actionability waits, masking,
//! screenshots and activity records; and the runner as the service runs it, which also captures
//! every page reached as a scan.
//!
//! The single-page shop (client-side routes, card fields in a cross-origin iframe, a 3-D Secure
//! challenge), beside the same journey in Playwright with a screenshot after every step
//! (`playwright.rs`), alternating; and how long each click that changed the route took beyond
//! the requests it set off.

mod playwright;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use checkout_runner::sealing::RunnerKeyPair;
use checkout_runner::{Outcome, RunSettings, Secrets};
use clap::Args;
use fixture_sites::demo_shop::{self, DEMO_SECRETS};
use fixture_sites::{FixtureSites, SHOP, spa_shop};
use scanner::{ScanOptions, Scanner, Supervisor};

use super::bench::{median, ms};
use super::{BrowserArgs, fail};

#[derive(Debug, Clone, Args)]
pub struct BenchCheckoutArgs {
    /// Runs per series.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// The Python with the `playwright` package, for the single-page shop's yardstick
    /// (`scripts/lib.sh`'s `ensure_playwright` makes one). Without it that series is skipped.
    #[arg(long, env = "SITEWARD_PLAYWRIGHT_PYTHON", default_value = "python3")]
    pub playwright_python: String,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: BenchCheckoutArgs) -> ExitCode {
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error),
    }
}

async fn bench(args: BenchCheckoutArgs) -> Result<(), String> {
    let (sites, egress, browser) = super::bench::fixture_sites(&args.browser).await?;
    let scanner = Scanner::new(Supervisor::new(browser.browser_options(1)));
    let plan = checkout_runner::parse(&demo_shop::journey("ok")).map_err(|e| e.to_string())?;
    let base_url = url::Url::parse(&sites.url(SHOP, "/")).map_err(|e| e.to_string())?;
    let options = ScanOptions {
        egress,
        quiet_period: Duration::from_millis(250),
        ..ScanOptions::default()
    };
    let secrets = || opened(&DEMO_SECRETS);
    let settings = |capture_pages| RunSettings {
        base_url: base_url.clone(),
        capture_pages,
        options: options.clone(),
    };
    // The run's time, and how much of it went to masking and screenshots.
    let runner_run = async |capture_pages: bool| -> Result<(Duration, Duration), String> {
        let started = Instant::now();
        let out = checkout_runner::run(&scanner, &plan, &secrets(), &settings(capture_pages))
            .await
            .map_err(|e| e.to_string())?;
        if out.report.outcome != Outcome::Passed {
            return Err(format!("the journey failed: {:?}", out.report.failure));
        }
        let screenshots = out.report.steps.iter().map(|s| s.screenshot_ms).sum();
        Ok((started.elapsed(), Duration::from_millis(screenshots)))
    };
    let bare_run = async || -> Result<Duration, String> {
        let started = Instant::now();
        let secrets = secrets();
        scanner
            .bare_tab(base_url.as_str(), &options, async |page| {
                checkout_runner::bare::run(
                    page,
                    &plan,
                    &secrets,
                    &base_url,
                    Duration::from_secs(10),
                )
                .await
                .map_err(scanner::ScanError::Protocol)
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(started.elapsed())
    };
    // One of each to warm the browser and the shop.
    bare_run().await?;
    runner_run(false).await?;
    let (mut bare, mut steps_only, mut service) = (Vec::new(), Vec::new(), Vec::new());
    let mut unphotographed = Vec::new();
    for _ in 0..args.samples.max(1) {
        bare.push(bare_run().await?);
        let (took, screenshots) = runner_run(false).await?;
        steps_only.push(took);
        unphotographed.push(took.saturating_sub(screenshots));
        service.push(runner_run(true).await?.0);
    }
    let (bare, steps_only, unphotographed, service) = (
        median(&mut bare),
        median(&mut steps_only),
        median(&mut unphotographed),
        median(&mut service),
    );
    println!(
        "demo-shop journey ({} steps up to `stop`), median of {} runs each:",
        plan.steps.len() - 2,
        args.samples.max(1)
    );
    println!(
        "  bare DevTools baseline:                        {:>6.0} ms",
        ms(bare)
    );
    println!(
        "  checkout runner (waits, masks, screenshots):   {:>6.0} ms  {:.2}× the baseline",
        ms(steps_only),
        steps_only.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "    without its masks and screenshots:           {:>6.0} ms  {:.2}× the baseline",
        ms(unphotographed),
        unphotographed.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "  as the service runs it (+ page captures):      {:>6.0} ms  {:.2}× the baseline",
        ms(service),
        service.as_secs_f64() / bare.as_secs_f64()
    );
    super::print_figure(
        "checkout.runner_vs_bare",
        steps_only.as_secs_f64() / bare.as_secs_f64(),
    );
    super::print_figure(
        "checkout.runner_unphotographed_vs_bare",
        unphotographed.as_secs_f64() / bare.as_secs_f64(),
    );
    super::print_figure(
        "checkout.service_vs_bare",
        service.as_secs_f64() / bare.as_secs_f64(),
    );
    let spa = single_page_shop(&args, &scanner, &sites, &options, &base_url).await;
    scanner.supervisor().shutdown().await;
    spa
}

/// `values`, sealed and opened as a runner would.
fn opened(values: &[(&str, &str)]) -> Secrets {
    let keys = RunnerKeyPair::generate();
    let mut secrets = Secrets::default();
    for (name, value) in values {
        let sealed = keys.public().seal(name, value.as_bytes()).expect("seal");
        secrets.insert((*name).to_owned(), keys.open(name, &sealed).expect("open"));
    }
    secrets
}

/// The single-page shop's journey: the runner (masks and a screenshot every step) beside
/// Playwright (a screenshot every step), alternating, and the runner's clicks that changed the
/// route against the requests they set off.
async fn single_page_shop(
    args: &BenchCheckoutArgs,
    scanner: &Scanner,
    sites: &FixtureSites,
    options: &ScanOptions,
    base_url: &url::Url,
) -> Result<(), String> {
    let user = "standard_user";
    let plan = checkout_runner::parse(&spa_shop::journey(user)).map_err(|e| e.to_string())?;
    let settings = RunSettings {
        base_url: base_url.clone(),
        capture_pages: false,
        options: options.clone(),
    };
    // The run's time, and the longest any route-changing click took beyond its requests.
    let runner_run = async || -> Result<(Duration, (Duration, String)), String> {
        let started = Instant::now();
        let out = checkout_runner::run(scanner, &plan, &opened(&spa_shop::SECRETS), &settings)
            .await
            .map_err(|e| e.to_string())?;
        if out.report.outcome != Outcome::Passed {
            return Err(format!("the SPA journey failed: {:?}", out.report.failure));
        }
        Ok((started.elapsed(), route_click_overshoot(&out.report.steps)))
    };
    let resolve = sites.resolve_args();
    let journey = playwright::JourneySettings {
        chromium: &args.browser.chromium,
        base_url: base_url.as_str(),
        resolve: &resolve,
        user,
        secrets: &spa_shop::SECRETS,
        total: spa_shop::TOTAL,
    };
    let mut playwright = match playwright::Playwright::start(&args.playwright_python, &journey)
        .await
    {
        Ok(playwright) => Some(playwright),
        Err(playwright::Unavailable::NotInstalled(reason)) => {
            println!(
                "single-page shop: Playwright is not installed ({reason}); its series is skipped \
                 (scripts/lib.sh's ensure_playwright installs it)"
            );
            None
        }
        Err(playwright::Unavailable::Failed(reason)) => {
            return Err(format!("Playwright failed to start: {reason}"));
        }
    };
    runner_run().await?;
    if let Some(playwright) = playwright.as_mut() {
        playwright.run().await?;
    }
    let (mut runner, mut overshoot, mut yardstick) = (Vec::new(), Vec::new(), Vec::new());
    let mut shots = 0;
    for _ in 0..args.samples.max(1) {
        let (took, over) = runner_run().await?;
        runner.push(took);
        overshoot.push(over);
        if let Some(playwright) = playwright.as_mut() {
            let (took, screenshots) = playwright.run().await?;
            yardstick.push(took);
            shots = screenshots;
        }
    }
    let (worst_overshoot, worst_step) = overshoot.iter().max().cloned().unwrap_or_default();
    let mut overshoot: Vec<Duration> = overshoot.into_iter().map(|(d, _)| d).collect();
    let (runner, overshoot) = (median(&mut runner), median(&mut overshoot));
    let steps = plan.steps.len() - 2;
    println!(
        "single-page shop journey ({steps} steps up to `stop`, a screenshot after each), median of {} runs each:",
        args.samples.max(1)
    );
    println!(
        "  checkout runner (waits, masks, screenshots):   {:>6.0} ms",
        ms(runner)
    );
    if let Some(playwright) = playwright {
        let yardstick = median(&mut yardstick);
        println!(
            "  Playwright {:<8} ({shots} screenshots):       {:>6.0} ms  the runner takes {:.2}× its time",
            playwright.version,
            ms(yardstick),
            runner.as_secs_f64() / yardstick.as_secs_f64()
        );
        super::print_figure(
            "checkout.spa_runner_vs_playwright",
            runner.as_secs_f64() / yardstick.as_secs_f64(),
        );
        playwright.stop().await;
    }
    println!(
        "  a route-changing click beyond its requests:   {:>6.0} ms  (goal ≤ 100 ms; worst {:.0} ms, {worst_step})",
        ms(overshoot),
        ms(worst_overshoot)
    );
    super::print_figure("checkout.spa_route_click_beyond_requests_ms", ms(overshoot));
    Ok(())
}

/// The longest a click that changed the page's route took, from the click until settled,
/// beyond the requests it set off: the time the runner's own settling added; and which step it
/// was.
fn route_click_overshoot(steps: &[checkout_runner::StepResult]) -> (Duration, String) {
    steps
        .windows(2)
        .filter(|pair| pair[1].kind == "click" && pair[1].url != pair[0].url)
        .map(|pair| {
            let step = &pair[1];
            let settle = step.settle_ms.unwrap_or(step.duration_ms);
            let network = step.network_ms.unwrap_or(0);
            (
                Duration::from_millis(settle.saturating_sub(network)),
                format!(
                    "step {} ({}): settled {settle} ms after the click, its requests {network} ms",
                    step.number, step.description
                ),
            )
        })
        .max()
        .unwrap_or_default()
}
