//! `siteward demo`: siteward with no setup. Serves the fixture shop on loopback (several host
//! names, HTTP and HTTPS), scans it like a client site and writes the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use fixture_sites::{FixtureSites, SHOP};
use scanner::egress::EgressPolicy;
use scanner::{ScanOptions, Scanner, Stage, Supervisor};

use super::{BrowserArgs, ClassifyArgs, fail};

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where to write the demo scan.
    #[arg(long, short, default_value = "siteward-demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

pub async fn run(args: DemoArgs) -> ExitCode {
    let sites = match FixtureSites::start().await {
        Ok(sites) => sites,
        Err(error) => return fail(format!("cannot start the demo site: {error}")),
    };
    let mut egress = EgressPolicy::public_only();
    for mapping in sites.resolve_args() {
        match egress.with_resolve_arg(&mapping) {
            Ok(next) => egress = next,
            Err(error) => return fail(error),
        }
    }
    let mut browser = args.browser.clone();
    browser.trust_spki.push(sites.spki().to_owned());
    let scanner = Scanner::new(Supervisor::new(browser.browser_options(1)));
    let classifiers = match args.classify.load() {
        Ok(classifiers) => classifiers,
        Err(error) => return fail(error),
    };
    let options = classifiers.apply(ScanOptions {
        egress,
        policy_pages: true,
        ..ScanOptions::default()
    });
    let url = sites.url(SHOP, "/");
    eprintln!(
        "siteward demo: serving a demo shop at {url} (hosts {} mapped to 127.0.0.1)",
        fixture_sites::HOSTS.join(", ")
    );
    let started = Instant::now();
    let progress = |stage: Stage| {
        eprintln!(
            "[{:>5.1}s] {}",
            started.elapsed().as_secs_f64(),
            stage.describe()
        )
    };
    let result = scanner.scan(&url, &options, &progress).await;
    scanner.supervisor().shutdown().await;
    sites.stop().await;
    let output = match result {
        Ok(output) => output,
        Err(error) => return fail(error),
    };
    if let Err(error) = std::fs::create_dir_all(&args.out)
        .map_err(|e| e.to_string())
        .and_then(|_| super::scan::write_output(&args.out, &output))
    {
        return fail(error);
    }
    let s = &output.snapshot;
    println!(
        "Scanned {}: {} third-party hosts, {} cookies, {} scripts, {} requests.\nReport: {}",
        s.final_url,
        s.third_party_hosts.len(),
        s.cookies.len(),
        s.scripts.len(),
        s.requests.len(),
        args.out.join("report.html").display()
    );
    ExitCode::SUCCESS
}
