//! `siteward scan URL --crawl --out DIR`: the pages of a whole site, as a visitor moves through
//! it, written as `site.json` (the site snapshot: every page, and every cookie, third-party host,
//! script and tracker with the pages it appeared on; what was not visited and why) and one folder
//! per page (`pages/NNN/`: snapshot, screenshots, report, `requests.har`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use scanner::crawl::{CrawlRules, MAX_PAGES_CEILING, Pattern};
use scanner::{CrawlStep, ScanOptions, Scanner, Supervisor};

use super::fail_on::FailRule;
use super::scan::{ScanArgs, write_output};
use super::{fail, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct CrawlArgs {
    /// Crawl the site from URL: follow its first-party links (and its sitemaps) and scan each
    /// page, in one browsing session unless --fresh-sessions.
    #[arg(long, conflicts_with = "compliance")]
    pub crawl: bool,
    /// Pages visited at most, the start page included.
    #[arg(long, default_value_t = CrawlRules::default().max_pages, requires = "crawl")]
    pub max_pages: usize,
    /// Follow links at most this many clicks from the start page.
    #[arg(long, default_value_t = CrawlRules::default().max_depth, requires = "crawl")]
    pub max_depth: u32,
    /// Visit only pages whose path matches PATTERN (`*` for any characters, e.g. /blog/*).
    /// Repeatable.
    #[arg(long, value_name = "PATTERN", requires = "crawl")]
    pub include: Vec<String>,
    /// Never visit pages whose path matches PATTERN. Repeatable.
    #[arg(long, value_name = "PATTERN", requires = "crawl")]
    pub exclude: Vec<String>,
    /// Visit at most this many pages that share a path template (/product/{slug}).
    #[arg(long, default_value_t = CrawlRules::default().per_template, requires = "crawl")]
    pub per_template: usize,
    /// Do not take pages from robots.txt's sitemaps and /sitemap.xml.
    #[arg(long, requires = "crawl")]
    pub no_sitemaps: bool,
    /// Visit what robots.txt disallows too (for a site you look after).
    #[arg(long, requires = "crawl")]
    pub ignore_robots: bool,
    /// Give each page a fresh browsing session instead of carrying cookies over.
    #[arg(long, requires = "crawl")]
    pub fresh_sessions: bool,
    /// Pages visited at once, each by a visitor of its own (a browsing session per visitor).
    #[arg(long, default_value_t = 1, requires = "crawl")]
    pub concurrency: usize,
    /// Time allowed for the whole crawl; pages not started by then are listed as unreachable.
    #[arg(long, default_value = "10m", value_parser = parse_duration, requires = "crawl")]
    pub crawl_budget: Duration,
}

impl CrawlArgs {
    fn rules(&self) -> Result<CrawlRules, String> {
        let patterns = |list: &[String]| -> Result<Vec<Pattern>, String> {
            list.iter()
                .map(|p| Pattern::try_from(p.clone()).map_err(|e| e.to_string()))
                .collect()
        };
        let rules = CrawlRules {
            max_pages: self.max_pages,
            max_depth: self.max_depth,
            include: patterns(&self.include)?,
            exclude: patterns(&self.exclude)?,
            sitemaps: !self.no_sitemaps,
            per_template: self.per_template.max(1),
            one_session: !self.fresh_sessions,
            respect_robots: !self.ignore_robots,
        };
        rules
            .validate(MAX_PAGES_CEILING)
            .map_err(|e| e.to_string())?;
        Ok(rules)
    }
}

pub async fn run(args: &ScanArgs, options: ScanOptions, rules: &[FailRule]) -> ExitCode {
    let crawl_rules = match args.crawl.rules() {
        Ok(rules) => rules,
        Err(error) => return fail(error),
    };
    if !(1..=8).contains(&args.crawl.concurrency) {
        return fail("--concurrency must be between 1 and 8");
    }
    let scanner = Scanner::new(Supervisor::new(
        args.browser.browser_options(args.crawl.concurrency),
    ));
    let started = Instant::now();
    let quiet = args.quiet_progress;
    let step = move |step: CrawlStep<'_>| {
        if quiet {
            return;
        }
        let elapsed = started.elapsed().as_secs_f64();
        match step {
            CrawlStep::Sitemaps => eprintln!("[{elapsed:>5.1}s] reading robots.txt and sitemaps"),
            CrawlStep::Visiting { number, url } => {
                eprintln!("[{elapsed:>5.1}s] page {number}: {url}")
            }
            CrawlStep::Failed { url, reason } => {
                eprintln!("[{elapsed:>5.1}s] could not visit {url}: {reason}")
            }
        }
    };
    let result = scanner
        .crawl(
            &args.url,
            &options,
            crawl_rules,
            args.crawl.crawl_budget,
            args.crawl.concurrency,
            &step,
        )
        .await;
    scanner.supervisor().shutdown().await;
    let output = match result {
        Ok(output) => output,
        Err(error) => return fail(error),
    };
    if output.site.pages.is_empty() {
        let reason = output
            .site
            .unreachable
            .first()
            .map_or("nothing to visit", |u| u.reason.as_str());
        return fail(format!("no page of the site could be visited: {reason}"));
    }
    if let Err(error) = write_crawl(&args.out, &output) {
        return fail(error);
    }
    if !quiet {
        eprintln!(
            "[{:>5.1}s] {} pages, {} unreachable; wrote {}",
            started.elapsed().as_secs_f64(),
            output.site.pages.len(),
            output.site.unreachable.len(),
            args.out.join("site.json").display()
        );
    }
    let violations: Vec<String> = rules
        .iter()
        .flat_map(|rule| {
            output.pages.iter().flat_map(move |page| {
                rule.violations(&page.snapshot)
                    .into_iter()
                    .map(move |v| format!("{}: {v}", page.snapshot.final_url))
            })
        })
        .collect();
    super::fail_on::exit_with(&violations)
}

/// Writes `site.json` and each page's folder, `pages/001/` on.
fn write_crawl(out: &Path, output: &scanner::CrawlOutput) -> Result<(), String> {
    for (index, page) in output.pages.iter().enumerate() {
        let folder = out.join("pages").join(format!("{:03}", index + 1));
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        write_output(&folder, page)?;
        let har = scanner::har::har(&page.snapshot, env!("CARGO_PKG_VERSION"));
        let bytes =
            serde_json::to_vec_pretty(&har).map_err(|e| format!("cannot encode a HAR: {e}"))?;
        std::fs::write(folder.join("requests.har"), bytes)
            .map_err(|e| format!("cannot write {}: {e}", folder.display()))?;
    }
    let site = serde_json::to_vec_pretty(&output.site)
        .map_err(|e| format!("cannot encode the site snapshot: {e}"))?;
    std::fs::write(out.join("site.json"), site)
        .map_err(|e| format!("cannot write {}: {e}", out.join("site.json").display()))
}
