//! The `siteward` command line: argument definitions and dispatch.

mod backup;
mod bench;
mod bench_checkout;
mod bench_compliance;
mod bench_corpus;
mod bench_crawl;
mod bench_crawl_service;
mod bench_crypto;
mod bench_diff;
mod bench_purge;
mod bench_queue;
mod bench_reports;
mod bench_scans;
mod checkout;
mod crawl;
mod demo;
pub mod fail_on;
mod runner;
mod scan;
mod scan_compliance;
mod scratch;
mod serve;
mod serve_lock;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use scanner::classify::{Classifiers, CookieDatabase, FilterLists, HostList};

#[derive(Debug, Parser)]
#[command(
    name = "siteward",
    version,
    about = "Watches websites: records what a first-time visitor's browser receives."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan one URL and write snapshot.json, screenshots and report.html into a folder.
    Scan(Box<scan::ScanArgs>),
    /// Run a checkout test (YAML) against a URL on this machine and write its report: for
    /// writing and debugging a journey before saving it in the service.
    Checkout(checkout::CheckoutArgs),
    /// Serve a demo shop on loopback, scan it and write the report: siteward with no setup.
    Demo(demo::DemoArgs),
    /// Measure scan speed, the overhead over a bare navigation, and memory over many scans.
    Bench(bench::BenchArgs),
    /// Benchmark the demo shop's checkout journey against the same steps driven bare through
    /// DevTools.
    BenchCheckout(bench_checkout::BenchCheckoutArgs),
    /// Measure a compliance scan against plain scans of the same page, and classification with
    /// EasyPrivacy/EasyList against the scan it classifies.
    BenchCompliance(bench_compliance::BenchComplianceArgs),
    /// Measure a 20-page crawl, one page and four pages at a time, against the same pages
    /// scanned as separate scans.
    BenchCrawl(bench_crawl::BenchCrawlArgs),
    /// Measure a 20-page crawl through the service (API, queue, runner process, site snapshot)
    /// at runner concurrency 1 and 4 against the same pages as separate page targets.
    BenchCrawlService(bench_crawl_service::BenchCrawlServiceArgs),
    /// Measure rendering a client report of 10 pages and 30 days, and printing it to PDF as a
    /// runner does against a bare printToPDF of the same document.
    BenchReports(bench_reports::BenchReportsArgs),
    /// Print the JSON Schema of snapshot.json.
    Schema,
    /// Run the web app: dashboard, JSON API (embedded PostgreSQL unless DATABASE_URL is set).
    Serve(serve::ConfigArgs),
    /// Measure envelope-encryption throughput for a screenshot-sized blob.
    BenchCrypto(bench_crypto::BenchCryptoArgs),
    /// Measure job-queue throughput (claim + complete) with simulated runners.
    BenchQueue(bench_queue::BenchQueueArgs),
    /// Measure the retention purge (rows and blobs per second) against a plain DELETE of the
    /// same rows.
    BenchPurge(bench_purge::BenchPurgeArgs),
    /// Measure end-to-end scans through the service against the scan alone.
    BenchScans(bench_scans::BenchScansArgs),
    /// Measure the diff engine on large snapshots and full-page screenshots.
    BenchDiff(bench_diff::BenchDiffArgs),
    /// bench-diff's baseline: parse an HTML file with html5ever in a process with no logger
    /// installed, and print the median time in milliseconds.
    #[command(hide = true)]
    BenchParseBaseline(bench_diff::ParseBaselineArgs),
    /// Apply pending database migrations and exit.
    Migrate(serve::ConfigArgs),
    /// Run a scanning worker that takes jobs from an app (needs only its URL and a runner token).
    Runner(runner::RunnerArgs),
    /// Administration: runner tokens, key rotation, audit-log verification.
    Admin(serve::AdminArgs),
}

impl Command {
    /// Whether the command runs with siteward's logging installed: all do but a benchmark
    /// baseline, which must measure what a bare program gets.
    pub fn installs_logging(&self) -> bool {
        !matches!(self, Command::BenchParseBaseline(_))
    }
}

/// Exit codes of `siteward scan` and `siteward checkout`.
pub mod exit {
    /// A `--fail-on` rule matched; a checkout test's step failed.
    pub const RULE_FAILED: u8 = 1;
    /// The scan could not be done: bad input, unreachable site, TLS failure, timeout.
    pub const ERROR: u8 = 2;
}

/// Where and how Chromium runs; shared by every command that scans.
#[derive(Debug, Clone, Args)]
pub struct BrowserArgs {
    /// The Chromium binary.
    #[arg(long, env = "SITEWARD_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,
    /// Trust certificates with this public key (base64 SHA-256 of the SPKI), for self-hosted sites
    /// with private certificates. Repeatable.
    #[arg(long = "trust-spki", value_name = "HASH")]
    pub trust_spki: Vec<String>,
    /// Block third-party cookies (headless Chromium's default). By default they are allowed, as in
    /// desktop Chrome, so the scan sees what most visitors get.
    #[arg(long)]
    pub block_third_party_cookies: bool,
    /// Run Chromium as root without its sandbox, when this process is root. By default a root
    /// process starts Chromium as `nobody` with the sandbox on; this is for hosts without user
    /// namespaces, and every launch logs it as an error.
    #[arg(long, env = "SITEWARD_CHROMIUM_NO_SANDBOX")]
    pub chromium_no_sandbox: bool,
}

impl BrowserArgs {
    pub fn browser_options(&self, max_concurrent_scans: usize) -> scanner::BrowserOptions {
        let identity = match scanner::Identity::for_this_process() {
            scanner::Identity::User { .. } if self.chromium_no_sandbox => {
                scanner::Identity::RootWithoutSandbox
            }
            identity => identity,
        };
        scanner::BrowserOptions {
            executable: self.chromium.clone(),
            trusted_spki: self.trust_spki.clone(),
            third_party_cookies: !self.block_third_party_cookies,
            max_concurrent_scans,
            identity,
            ..scanner::BrowserOptions::default()
        }
    }
}

/// Where a scan or a checkout test may connect: the egress guard's options, as `scan` and
/// `checkout` take them.
#[derive(Debug, Clone, Args)]
pub struct EgressArgs {
    /// Map HOST to IP, like curl's --resolve; the mapping is allowed even when the address is
    /// private. Repeatable (comma-separated lists work too).
    #[arg(long, value_name = "HOST=IP", value_delimiter = ',')]
    pub resolve: Vec<String>,
    /// Ask this name server (IP:PORT) instead of the system's; CNAME chains it answers are
    /// recorded, as with the system's.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Turn the egress guard off: allow private, loopback and link-local destinations (a shop on
    /// this machine or the office network). Only for sites you trust on networks you control.
    #[arg(long)]
    pub allow_private: bool,
}

impl EgressArgs {
    /// The egress guard these options describe; warns on stderr when it is off.
    pub fn policy(&self) -> Result<scanner::egress::EgressPolicy, String> {
        let mut egress = scanner::egress::EgressPolicy::public_only();
        for mapping in &self.resolve {
            egress = egress
                .with_resolve_arg(mapping)
                .map_err(|e| e.to_string())?;
        }
        if let Some(server) = self.dns_server {
            egress = egress.with_dns_server(server);
        }
        if self.allow_private {
            eprintln!(
                "siteward: WARNING: --allow-private turns the egress guard OFF: this may reach \
                 loopback, private networks and cloud metadata (169.254.169.254)."
            );
            egress = egress.allowing_private();
        }
        Ok(egress)
    }
}

/// What classifies a scan's cookies and requests; shared by every command that scans. Each is
/// loaded once and shared by all the scans of the process.
#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    /// Classify cookies with this cookie database (Open Cookie Database CSV format).
    #[arg(long, env = "SITEWARD_COOKIE_DB", value_name = "CSV")]
    pub cookie_db: Option<PathBuf>,
    /// Name tracker hosts and their companies with this list (Disconnect services.json format).
    #[arg(long, env = "SITEWARD_HOST_LIST", value_name = "JSON")]
    pub host_list: Option<PathBuf>,
    /// The folder holding easyprivacy.txt and easylist.txt, which name tracking and advertising
    /// requests. Debian's package webext-ublock-origin-chromium installs the default.
    #[arg(
        long,
        env = "SITEWARD_FILTER_LISTS",
        value_name = "DIR",
        default_value = scanner::classify::DEBIAN_LIST_FOLDER
    )]
    pub filter_lists: PathBuf,
}

impl ClassifyArgs {
    /// Loads everything named; a missing or unreadable file is an error naming its path.
    pub fn load(&self) -> Result<Classifiers, String> {
        let cookie_database = self
            .cookie_db
            .as_deref()
            .map(|p| CookieDatabase::load(p).map(Arc::new))
            .transpose()
            .map_err(|e| e.to_string())?;
        let host_list = self
            .host_list
            .as_deref()
            .map(|p| HostList::load(p).map(Arc::new))
            .transpose()
            .map_err(|e| e.to_string())?;
        let filter_lists = FilterLists::load_folder(&self.filter_lists)
            .map(Arc::new)
            .map_err(|e| format!("{e} (install Debian's webext-ublock-origin-chromium, or point --filter-lists / SITEWARD_FILTER_LISTS at a folder with easyprivacy.txt and easylist.txt)"))?;
        Ok(Classifiers {
            cookie_database,
            host_list,
            filter_lists: Some(filter_lists),
        })
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 2s or 500ms)"))?;
    if !(value.is_finite() && value >= 0.0) || value * scale > 86_400.0 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_viewport(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not a viewport; expected WIDTHxHEIGHT such as 1366x768");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(200..=4096).contains(&w) || !(200..=4096).contains(&h) {
        return Err(format!(
            "{text:?}: width and height must be between 200 and 4096"
        ));
    }
    Ok((w, h))
}

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Scan(args) => scan::run(*args).await,
        Command::Checkout(args) => checkout::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchCheckout(args) => bench_checkout::run(args).await,
        Command::BenchCompliance(args) => bench_compliance::run(args).await,
        Command::BenchCrawl(args) => bench_crawl::run(args).await,
        Command::BenchCrawlService(args) => bench_crawl_service::run(args).await,
        Command::BenchReports(args) => bench_reports::run(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::BenchQueue(args) => bench_queue::run(args).await,
        Command::BenchPurge(args) => bench_purge::run(args).await,
        Command::BenchScans(args) => bench_scans::run(args).await,
        Command::BenchDiff(args) => bench_diff::run(args),
        Command::BenchParseBaseline(args) => bench_diff::parse_baseline(args),
        Command::BenchCrypto(args) => bench_crypto::run(args),
        Command::Admin(args) => serve::admin(args).await,
        Command::Runner(args) => runner::run(args).await,
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scanner::snapshot_schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}

/// Prints one benchmark figure for `scripts/bench-smoke`, which checks it against a recorded
/// bound: `figure <name> <value>`, where the value is a ratio to a baseline measured in the same
/// run (so it means the same on a fast machine and a slow one).
pub fn print_figure(name: &str, value: f64) {
    println!("figure {name} {value:.3}");
}

/// Prints `siteward: error: …` and returns exit code 2.
pub fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("siteward: error: {message}");
    ExitCode::from(exit::ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_viewports_parse_or_explain() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_viewport("1280x720"), Ok((1280, 720)));
        assert!(parse_viewport("1280").is_err());
        assert!(parse_viewport("10x10").is_err());
    }
}
