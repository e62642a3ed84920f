//! `siteward scan URL --out DIR`: one scan (or with `--compliance`, a compliance scan's visits;
//! with `--crawl`, the pages of the whole site), written to a folder, with `--fail-on` gates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use scanner::profile::VisitorProfile;
use scanner::snapshot::ConsentMode;
use scanner::{Limits, ScanOptions, Scanner, Stage, Supervisor};

use super::fail_on::{FailRule, RULE_NAMES};
use super::{BrowserArgs, ClassifyArgs, EgressArgs, fail, parse_duration, parse_viewport};
use crate::reports::render_scan_report;

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// The page to scan (http or https).
    pub url: String,
    /// The folder to write snapshot.json, viewport.png, fullpage.png and report.html into.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Browser window size, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_viewport, help = "Viewport WIDTHxHEIGHT [default: 1366x768, 412x915 with --device mobile]")]
    pub viewport: Option<(u32, u32)>,
    /// Visit as Chrome on a desktop or on a phone (viewport, touch, mobile User-Agent and client
    /// hints).
    #[arg(long, default_value = "desktop", value_parser = ["desktop", "mobile"])]
    pub device: String,
    /// The visitor's languages, most preferred first (navigator.languages, Accept-Language).
    #[arg(long, default_value = "en-US,en", value_name = "LANGS")]
    pub languages: String,
    /// The visitor's timezone (IANA name).
    #[arg(long, default_value = scanner::profile::DEFAULT_TIMEZONE, value_name = "ZONE")]
    pub timezone: String,
    /// Capture once nothing new (request, script, frame, cookie write) has happened for this long
    /// and no request the page waits on is open; event streams, long polls, sockets and unread
    /// bodies do not hold the scan.
    #[arg(long, default_value = "1500ms", value_parser = parse_duration)]
    pub quiet: Duration,
    /// Wait at least this long after load, so trackers injected by timers are caught.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub dwell: Duration,
    /// Give up waiting for the page's load event (and for network quiet) after this long, and
    /// capture what has loaded.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub load_timeout: Duration,
    /// Hard limit for the whole scan; past it the scan fails.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Send this User-Agent instead of the browser's own.
    #[arg(long)]
    pub user_agent: Option<String>,
    /// Answer the cookie banner before capturing: leave it alone (a visitor who has not chosen),
    /// accept all, or reject all. The cookies set before the answer are kept too.
    #[arg(long, value_enum, default_value_t = Consent::None, conflicts_with = "compliance")]
    pub consent: Consent,
    /// Run a compliance scan: the page as a first visitor gets it, after "reject all" and after
    /// "accept all", each in a fresh browser context and side by side; writes each visit into its
    /// own subfolder, the findings into compliance.json, and prints them.
    #[arg(long)]
    pub compliance: bool,
    /// Send Global Privacy Control (Sec-GPC: 1, navigator.globalPrivacyControl). With
    /// --compliance, adds a fourth visit that sends it and judges whether the site honours it.
    #[arg(long)]
    pub gpc: bool,
    /// Follow the page's links to its privacy, cookie and terms pages and keep their text.
    #[arg(long)]
    pub policy_pages: bool,
    #[command(flatten)]
    pub egress: EgressArgs,
    /// Exit with code 1 when the snapshot matches RULE. Repeatable.
    #[arg(long, value_name = "RULE", help = format!("Exit with code 1 when the snapshot matches RULE ({RULE_NAMES}). Repeatable."))]
    pub fail_on: Vec<String>,
    /// Also write the page's requests as HAR 1.2 to FILE (timings, headers with cookie values
    /// and credentials redacted, sizes, initiators; never bodies).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["compliance", "crawl"])]
    pub har: Option<PathBuf>,
    #[command(flatten)]
    pub crawl: super::crawl::CrawlArgs,
    /// Cap the full-page screenshot at this many pixels of height.
    #[arg(long, default_value_t = Limits::default().max_full_page_height)]
    pub max_page_height: u32,
    #[command(flatten)]
    pub classify: ClassifyArgs,
    /// Suppress progress messages.
    #[arg(long, short)]
    pub quiet_progress: bool,
    #[command(flatten)]
    pub browser: BrowserArgs,
}

/// `--consent` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consent {
    None,
    Accept,
    Reject,
}

impl Consent {
    fn mode(self) -> ConsentMode {
        match self {
            Consent::None => ConsentMode::NoInteraction,
            Consent::Accept => ConsentMode::AcceptAll,
            Consent::Reject => ConsentMode::RejectAll,
        }
    }
}

impl ScanArgs {
    fn scan_options(&self) -> Result<ScanOptions, String> {
        let egress = self.egress.policy()?;
        let profile = VisitorProfile {
            device: VisitorProfile::parse_device(&self.device).map_err(|e| e.to_string())?,
            languages: VisitorProfile::parse_languages(&self.languages)
                .map_err(|e| e.to_string())?,
            timezone: VisitorProfile::parse_timezone(&self.timezone).map_err(|e| e.to_string())?,
        };
        let (viewport_width, viewport_height) = self
            .viewport
            .unwrap_or_else(|| profile.device.default_viewport());
        let classifiers = self.classify.load()?;
        Ok(classifiers.apply(ScanOptions {
            viewport_width,
            viewport_height,
            profile,
            user_agent: self.user_agent.clone(),
            quiet_period: self.quiet,
            min_dwell: self.dwell,
            load_timeout: self.load_timeout,
            scan_timeout: self.timeout,
            policy_pages: self.policy_pages,
            egress,
            limits: Limits {
                max_full_page_height: self.max_page_height,
                ..Limits::default()
            },
            consent_mode: self.consent.mode(),
            // In a compliance scan, only the GPC visit sends it.
            global_privacy_control: self.gpc && !self.compliance,
            ..ScanOptions::default()
        }))
    }
}

pub async fn run(args: ScanArgs) -> ExitCode {
    // Everything that can be wrong with the input is checked before the browser starts.
    if let Err(error) = scanner::validate_url(&args.url) {
        return fail(error);
    }
    let options = match args.scan_options() {
        Ok(options) => options,
        Err(error) => return fail(error),
    };
    let rules = match args
        .fail_on
        .iter()
        .map(|r| FailRule::parse(r))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(rules) => rules,
        Err(error) => return fail(error),
    };
    if !args.compliance && rules.contains(&FailRule::ComplianceFinding) {
        return fail("--fail-on compliance-finding needs --compliance");
    }
    if let Err(error) = prepare_out_dir(&args.out) {
        return fail(error);
    }
    if let Some(har) = &args.har
        && let Err(error) = check_har_path(har)
    {
        return fail(error);
    }
    if args.compliance {
        return super::scan_compliance::run(&args, options, &rules).await;
    }
    if args.crawl.crawl {
        return super::crawl::run(&args, options, &rules).await;
    }
    let scanner = Scanner::new(Supervisor::new(args.browser.browser_options(1)));
    let started = Instant::now();
    let quiet = args.quiet_progress;
    let progress = move |stage: Stage| {
        if !quiet {
            eprintln!(
                "[{:>5.1}s] {}",
                started.elapsed().as_secs_f64(),
                stage.describe()
            );
        }
    };
    let result = scanner.scan(&args.url, &options, &progress).await;
    scanner.supervisor().shutdown().await;
    let output = match result {
        Ok(output) => output,
        Err(error) => return fail(error),
    };
    if let Err(error) = write_output(&args.out, &output) {
        return fail(error);
    }
    if let Some(path) = &args.har
        && let Err(error) = write_har(path, &output.snapshot)
    {
        return fail(error);
    }
    if !quiet {
        eprintln!(
            "[{:>5.1}s] wrote {}",
            started.elapsed().as_secs_f64(),
            args.out.join("report.html").display()
        );
    }
    let violations: Vec<String> = rules
        .iter()
        .flat_map(|rule| rule.violations(&output.snapshot))
        .collect();
    super::fail_on::exit_with(&violations)
}

pub(super) fn prepare_out_dir(out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let probe = out.join(".siteward-write-test");
    std::fs::write(&probe, b"").map_err(|e| format!("cannot write into {}: {e}", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A HAR file can be written at `path`: its folder exists and it is not a folder itself.
fn check_har_path(path: &Path) -> Result<(), String> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!(
            "cannot write the HAR file {}: {} is not a folder",
            path.display(),
            folder.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "cannot write the HAR file {}: it is a folder",
            path.display()
        ));
    }
    Ok(())
}

fn write_har(path: &Path, snapshot: &scanner::Snapshot) -> Result<(), String> {
    let har = scanner::har::har(snapshot, env!("CARGO_PKG_VERSION"));
    let bytes =
        serde_json::to_vec_pretty(&har).map_err(|e| format!("cannot encode the HAR: {e}"))?;
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes the four output files.
pub fn write_output(out: &Path, output: &scanner::ScanOutput) -> Result<(), String> {
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes)
            .map_err(|e| format!("cannot write {}: {e}", out.join(name).display()))
    };
    let json = serde_json::to_vec_pretty(&output.snapshot)
        .map_err(|e| format!("cannot encode the snapshot: {e}"))?;
    let report = render_scan_report(
        &output.snapshot,
        &output.viewport_png,
        &output.full_page_png,
    )
    .map_err(|e| format!("cannot render the report: {e}"))?;
    write("snapshot.json", &json)?;
    write("viewport.png", &output.viewport_png)?;
    write("fullpage.png", &output.full_page_png)?;
    write("report.html", report.as_bytes())
}
