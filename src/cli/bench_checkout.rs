//! `siteward bench-checkout`: the demo shop's checkout journey as the runner runs it, against the
//! same steps driven bare through DevTools, alternating in the same browser and run.
//!
//! Three series: the bare baseline (`checkout_runner::bare`); the runner with its per-step
//! actionability waits, masking, screenshots and activity records; and the runner as the service
//! runs it, which also captures every page reached as a scan.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use checkout_runner::sealing::RunnerKeyPair;
use checkout_runner::{Outcome, RunSettings, Secrets};
use clap::Args;
use fixture_sites::demo_shop::{self, DEMO_SECRETS};
use fixture_sites::{FixtureSites, SHOP};
use scanner::egress::EgressPolicy;
use scanner::{ScanOptions, Scanner, Supervisor};

use super::bench::{median, ms};
use super::{BrowserArgs, fail};

#[derive(Debug, Clone, Args)]
pub struct BenchCheckoutArgs {
    /// Runs per series.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
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
    let sites = FixtureSites::start()
        .await
        .map_err(|e| format!("cannot start the fixture sites: {e}"))?;
    let mut egress = EgressPolicy::public_only();
    for mapping in sites.resolve_args() {
        egress = egress
            .with_resolve_arg(&mapping)
            .map_err(|e| e.to_string())?;
    }
    let mut browser = args.browser.clone();
    browser.trust_spki.push(sites.spki().to_owned());
    let scanner = Scanner::new(Supervisor::new(browser.browser_options(1)));
    let plan = checkout_runner::parse(&demo_shop::journey("ok")).map_err(|e| e.to_string())?;
    let base_url = url::Url::parse(&sites.url(SHOP, "/")).map_err(|e| e.to_string())?;
    let options = ScanOptions {
        egress,
        quiet_period: Duration::from_millis(250),
        ..ScanOptions::default()
    };
    let secrets = || {
        let keys = RunnerKeyPair::generate();
        let mut secrets = Secrets::default();
        for (name, value) in DEMO_SECRETS {
            let sealed = keys.public().seal(name, value.as_bytes()).expect("seal");
            secrets.insert(name.to_string(), keys.open(name, &sealed).expect("open"));
        }
        secrets
    };
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
    scanner.supervisor().shutdown().await;
    Ok(())
}
